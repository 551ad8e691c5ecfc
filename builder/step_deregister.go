package builder

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// stepDeregisterExisting removes images named ami_name owned by this
// account in every target region, when force_deregister is set; their
// snapshots too with force_delete_snapshot. It runs right before the new
// image is created, so a build that fails earlier replaces nothing.
type stepDeregisterExisting struct {
	Regions         []string // build region first
	AMIName         string
	Force           bool
	DeleteSnapshots bool
}

func (s *stepDeregisterExisting) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	if !s.Force {
		return multistep.ActionContinue
	}
	d := state.Get(stateDriver).(Driver)
	for _, r := range s.Regions {
		ec := d.EC2(r)
		out, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{
			Owners:  []string{"self"},
			Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{s.AMIName}}},
		})
		if err != nil {
			return halt(state, wrapf(err, "find existing images named %q in %s (ec2:DescribeImages)", s.AMIName, r))
		}
		for _, img := range out.Images {
			id := aws.ToString(img.ImageId)
			say(state, fmt.Sprintf("force_deregister: removing existing image %s in %s...", id, r))
			if err := deleteImage(ctx, ec, id, s.DeleteSnapshots); err != nil {
				return halt(state, fmt.Errorf("force_deregister: %w", err))
			}
		}
	}
	return multistep.ActionContinue
}

func (s *stepDeregisterExisting) Cleanup(multistep.StateBag) {}
