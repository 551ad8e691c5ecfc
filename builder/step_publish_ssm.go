package builder

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// stepPublishSSM writes each region's AMI id to ssm_parameter_name there,
// typed aws:ec2:image so SSM checks it is an image. It runs last: nothing
// after it can fail and leave the parameter pointing at a deleted image.
type stepPublishSSM struct {
	Name string
}

func (s *stepPublishSSM) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	if s.Name == "" {
		return multistep.ActionContinue
	}
	d := state.Get(stateDriver).(Driver)
	amis := recordedAMIs(state)
	regions := make([]string, 0, len(amis))
	for r := range amis {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		say(state, fmt.Sprintf("Publishing %s to SSM parameter %s in %s...", amis[r], s.Name, r))
		if _, err := d.SSM(r).PutParameter(ctx, &ssm.PutParameterInput{
			Name:      aws.String(s.Name),
			Value:     aws.String(amis[r]),
			Type:      ssmtypes.ParameterTypeString,
			DataType:  aws.String("aws:ec2:image"),
			Overwrite: aws.Bool(true),
		}); err != nil {
			return halt(state, wrapf(err, "publish the AMI id to SSM parameter %s in %s (ssm:PutParameter)", s.Name, r))
		}
	}
	return multistep.ActionContinue
}

func (s *stepPublishSSM) Cleanup(multistep.StateBag) {}
