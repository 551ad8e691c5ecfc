package builder

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"
)

// stepCopyImage copies the image to ami_regions, encrypted (with the
// region's key when given), tags the copies and their snapshots, and waits
// for all of them. Ids are recorded as they come, so the create step's
// cleanup removes copies too.
type stepCopyImage struct {
	Region     string
	Regions    []string
	Name       string
	RegionKeys map[string]string
	Polling    PollingConfig
}

func (s *stepCopyImage) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	if len(s.Regions) == 0 {
		return multistep.ActionContinue
	}
	d := state.Get(stateDriver).(Driver)
	srcID := recordedAMIs(state)[s.Region]
	var tags, snapTags map[string]string
	if v, ok := state.GetOk(stateImageTags); ok {
		tags = v.(map[string]string)
	}
	if v, ok := state.GetOk(stateSnapshotTags); ok && v != nil {
		snapTags = v.(map[string]string)
	}
	for _, r := range s.Regions {
		in := &ec2.CopyImageInput{
			Name:              aws.String(s.Name),
			SourceImageId:     aws.String(srcID),
			SourceRegion:      aws.String(s.Region),
			Encrypted:         aws.Bool(true),
			ClientToken:       aws.String(uuid.TimeOrderedUUID()),
			TagSpecifications: tagSpec(ec2types.ResourceTypeImage, tags),
		}
		if k := s.RegionKeys[r]; k != "" {
			in.KmsKeyId = aws.String(k)
		}
		say(state, fmt.Sprintf("Copying image %s to %s...", srcID, r))
		out, err := d.EC2(r).CopyImage(ctx, in)
		if err != nil {
			recoverImageByName(d.EC2(r), r, s.Name, state)
			return halt(state, wrapf(err, "copy image %s to %s (ec2:CopyImage)", srcID, r))
		}
		recordAMI(state, r, aws.ToString(out.ImageId))
	}
	for _, r := range s.Regions {
		id := recordedAMIs(state)[r]
		ec := d.EC2(r)
		if _, err := waitImageAvailable(ctx, ec, id, s.Polling); err != nil {
			return halt(state, fmt.Errorf("copy to %s: %w", r, err))
		}
		if len(snapTags) > 0 {
			snaps, err := imageSnapshots(ctx, ec, id)
			if err != nil {
				return halt(state, err)
			}
			if len(snaps) > 0 {
				if _, err := ec.CreateTags(ctx, &ec2.CreateTagsInput{Resources: snaps, Tags: ec2Tags(snapTags)}, RetryNotFound); err != nil {
					return halt(state, wrapf(err, "tag the snapshots of image %s in %s (ec2:CreateTags)", id, r))
				}
			}
		}
	}
	return multistep.ActionContinue
}

func (s *stepCopyImage) Cleanup(multistep.StateBag) {}
