package builder

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// stateImageTags is the rendered image tag set (user tags plus the
// builder's esbake:* manifest summary), reused for copies.
const (
	stateImageTags    = "image_tags"
	stateSnapshotTags = "snapshot_tags"
	// stateManifestTags may be set by earlier steps (the policy gate reads
	// the node manifest) with esbake:* tags to add to the image.
	stateManifestTags = "manifest_tags"
)

// stepCreateImage creates the image from the stopped instance, makes it
// IMDSv2-only and waits for it. Its cleanup removes every image of the
// build (copies included) when the build failed, halted or was cancelled.
type stepCreateImage struct {
	Region       string
	Name         string
	Description  string
	Tags         map[string]string // already rendered
	SnapshotTags map[string]string // already rendered
	IMDSSupport  string
	Polling      PollingConfig
}

func (s *stepCreateImage) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ec := state.Get(stateDriver).(Driver).EC2(s.Region)
	instanceID := state.Get(stateInstanceID).(string)

	tags := map[string]string{}
	for k, v := range s.Tags {
		tags[k] = v
	}
	if v, ok := state.GetOk(stateManifestTags); ok {
		for k, val := range v.(map[string]string) {
			tags[k] = val
		}
	}
	state.Put(stateImageTags, tags)
	state.Put(stateSnapshotTags, s.SnapshotTags)

	in := &ec2.CreateImageInput{
		InstanceId:        aws.String(instanceID),
		Name:              aws.String(s.Name),
		TagSpecifications: append(tagSpec(ec2types.ResourceTypeImage, tags), tagSpec(ec2types.ResourceTypeSnapshot, s.SnapshotTags)...),
	}
	desc := s.Description
	if v, ok := state.GetOk(stateDescription); ok {
		desc = v.(string)
	}
	if desc != "" {
		in.Description = aws.String(desc)
	}
	say(state, "Creating image "+s.Name+"...")
	out, err := ec.CreateImage(ctx, in)
	if err != nil {
		recoverImageByName(ec, s.Region, s.Name, state)
		return halt(state, wrapf(err, "create the image (ec2:CreateImage)"))
	}
	id := aws.ToString(out.ImageId)
	recordAMI(state, s.Region, id)

	if _, err := waitImageAvailable(ctx, ec, id, s.Polling); err != nil {
		return halt(state, err)
	}
	if s.IMDSSupport != "" {
		if _, err := ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{
			ImageId:     aws.String(id),
			ImdsSupport: &ec2types.AttributeValue{Value: aws.String(s.IMDSSupport)},
		}); err != nil {
			return halt(state, wrapf(err, "make image %s IMDSv2-only (ec2:ModifyImageAttribute imds_support)", id))
		}
	}
	say(state, fmt.Sprintf("Image %s is available in %s", id, s.Region))
	return multistep.ActionContinue
}

func (s *stepCreateImage) Cleanup(state multistep.StateBag) {
	if !buildFailed(state) {
		return
	}
	amis := recordedAMIs(state)
	if len(amis) == 0 {
		return
	}
	d := state.Get(stateDriver).(Driver)
	ctx, cancel := cleanupContext()
	defer cancel()
	regions := make([]string, 0, len(amis))
	for r := range amis {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		id := amis[r]
		say(state, fmt.Sprintf("Build failed: deleting image %s in %s and its snapshots...", id, r))
		if err := deleteImage(ctx, d.EC2(r), id, true); err != nil {
			reportCleanupError(state, fmt.Errorf("remove image %s in %s: %w; deregister it and delete its snapshots by hand", id, r, err))
			continue
		}
		delete(amis, r)
	}
}
