package builder

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// stepPreValidate fails fast, before anything is created: the copy regions
// must be enabled for the account and the AMI name must be free in every
// target region unless force_deregister is set.
type stepPreValidate struct {
	Region          string
	Regions         []string
	AMIName         string
	ForceDeregister bool
}

func (s *stepPreValidate) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	d := state.Get(stateDriver).(Driver)
	say(state, "Prevalidating the AMI name and regions...")

	if len(s.Regions) > 0 {
		out, err := d.EC2(s.Region).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
		if err != nil {
			return halt(state, wrapf(err, "list the account's enabled regions (ec2:DescribeRegions)"))
		}
		enabled := map[string]bool{}
		for _, r := range out.Regions {
			enabled[aws.ToString(r.RegionName)] = true
		}
		for _, r := range s.Regions {
			if !enabled[r] {
				return halt(state, fmt.Errorf("ami_regions: region %q is not enabled for this account: enable it or remove it from ami_regions", r))
			}
		}
	}

	if s.ForceDeregister {
		return multistep.ActionContinue
	}
	for _, r := range append([]string{s.Region}, s.Regions...) {
		out, err := d.EC2(r).DescribeImages(ctx, &ec2.DescribeImagesInput{
			Owners:  []string{"self"},
			Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{s.AMIName}}},
		})
		if err != nil {
			return halt(state, wrapf(err, "check whether AMI name %q is free in %s (ec2:DescribeImages)", s.AMIName, r))
		}
		if len(out.Images) > 0 {
			return halt(state, fmt.Errorf("ami_name: an AMI named %q already exists in %s (%s): choose another name, or set force_deregister = true (or packer build -force) to replace it", s.AMIName, r, aws.ToString(out.Images[0].ImageId)))
		}
	}
	return multistep.ActionContinue
}

func (s *stepPreValidate) Cleanup(multistep.StateBag) {}
