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

// stateBuildComplete is set by the last step: an interrupt arriving after
// it no longer undoes the build.
const stateBuildComplete = "build_complete"

// stepPublishSSM writes each region's AMI id to ssm_parameter_name there,
// typed aws:ec2:image so SSM checks it is an image. If the build is then
// halted or interrupted, its cleanup puts back the previous value (or
// deletes a parameter it created), so nothing points at a deleted image.
type stepPublishSSM struct {
	Name string

	previous map[string]*string // region -> old value (nil: did not exist)
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
	s.previous = map[string]*string{}
	for _, r := range regions {
		cl := d.SSM(r)
		old, err := cl.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(s.Name)})
		var notFound *ssmtypes.ParameterNotFound
		switch {
		case err == nil && old.Parameter != nil:
			s.previous[r] = old.Parameter.Value
		case err != nil && !asErr(err, &notFound):
			return halt(state, wrapf(err, "read SSM parameter %s in %s before replacing it (ssm:GetParameter)", s.Name, r))
		}
		say(state, fmt.Sprintf("Publishing %s to SSM parameter %s in %s...", amis[r], s.Name, r))
		if _, err := cl.PutParameter(ctx, &ssm.PutParameterInput{
			Name:      aws.String(s.Name),
			Value:     aws.String(amis[r]),
			Type:      ssmtypes.ParameterTypeString,
			DataType:  aws.String("aws:ec2:image"),
			Overwrite: aws.Bool(true),
		}); err != nil {
			delete(s.previous, r)
			return halt(state, wrapf(err, "publish the AMI id to SSM parameter %s in %s (ssm:PutParameter)", s.Name, r))
		}
		if _, existed := s.previous[r]; !existed {
			s.previous[r] = nil
		}
	}
	return multistep.ActionContinue
}

func (s *stepPublishSSM) Cleanup(state multistep.StateBag) {
	if len(s.previous) == 0 || !buildFailed(state) {
		return
	}
	if _, done := state.GetOk(stateBuildComplete); done {
		return
	}
	d := state.Get(stateDriver).(Driver)
	ctx, cancel := cleanupContext()
	defer cancel()
	for r, old := range s.previous {
		var err error
		if old == nil {
			_, err = d.SSM(r).DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(s.Name)})
		} else {
			_, err = d.SSM(r).PutParameter(ctx, &ssm.PutParameterInput{
				Name: aws.String(s.Name), Value: old, Type: ssmtypes.ParameterTypeString,
				DataType: aws.String("aws:ec2:image"), Overwrite: aws.Bool(true),
			})
		}
		if err != nil {
			reportCleanupError(state, fmt.Errorf("restore SSM parameter %s in %s after the failed build: %w; it may point at a deleted image", s.Name, r, err))
		}
	}
}

// stepComplete marks the build done.
type stepComplete struct{}

func (stepComplete) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	state.Put(stateBuildComplete, true)
	return multistep.ActionContinue
}

func (stepComplete) Cleanup(multistep.StateBag) {}
