package builder

import (
	"context"
	"fmt"

	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/packerbuilderdata"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

const stateDescription = "ami_description_rendered"

// stepRenderTemplates publishes the source AMI's build data and renders
// the fields Prepare left raw (tags, description) with it, in place.
type stepRenderTemplates struct {
	Region string
	Ctx    interpolate.Context
	Config *Config
}

func (s *stepRenderTemplates) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	img := state.Get(stateSourceImage).(ec2types.Image)
	data := sourceGeneratedData(s.Region, img)
	gd := &packerbuilderdata.GeneratedData{State: state}
	for k, v := range data {
		gd.Put(k, v)
	}
	ctx := s.Ctx
	ctx.Data = data
	render := func(field string, m map[string]string) error {
		for k, v := range m {
			out, err := interpolate.Render(v, &ctx)
			if err != nil {
				return fmt.Errorf("%s: render value of %q: %w", field, k, err)
			}
			m[k] = out
		}
		return nil
	}
	c := s.Config
	for _, f := range []struct {
		name string
		m    map[string]string
	}{{"run_tags", c.RunTags}, {"run_volume_tags", c.RunVolumeTags}, {"tags", c.AMITags}, {"snapshot_tags", c.SnapshotTags}} {
		if err := render(f.name, f.m); err != nil {
			return halt(state, err)
		}
	}
	desc, err := interpolate.Render(c.AMIDescription, &ctx)
	if err != nil {
		return halt(state, fmt.Errorf("ami_description: render: %w", err))
	}
	state.Put(stateDescription, desc)
	return multistep.ActionContinue
}

func (s *stepRenderTemplates) Cleanup(multistep.StateBag) {}
