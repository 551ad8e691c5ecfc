package builder

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// stateAMIs holds region -> AMI id for every image the build created,
// saved the moment EC2 returns each id.
const stateAMIs = "amis"

func recordAMI(state multistep.StateBag, region, id string) {
	amis := map[string]string{}
	if v, ok := state.GetOk(stateAMIs); ok {
		amis = v.(map[string]string)
	}
	amis[region] = id
	state.Put(stateAMIs, amis)
}

func recordedAMIs(state multistep.StateBag) map[string]string {
	if v, ok := state.GetOk(stateAMIs); ok {
		return v.(map[string]string)
	}
	return nil
}

// imageSnapshots lists the EBS snapshots behind an image.
func imageSnapshots(ctx context.Context, ec EC2API, id string) ([]string, error) {
	out, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}}, RetryNotFound)
	if err != nil {
		return nil, fmt.Errorf("describe image %s: %w", id, err)
	}
	var snaps []string
	for _, img := range out.Images {
		for _, bd := range img.BlockDeviceMappings {
			if bd.Ebs != nil && bd.Ebs.SnapshotId != nil {
				snaps = append(snaps, aws.ToString(bd.Ebs.SnapshotId))
			}
		}
	}
	return snaps, nil
}

// deleteImage deregisters an image and deletes its snapshots. A missing
// image counts as deleted.
func deleteImage(ctx context.Context, ec EC2API, id string, withSnapshots bool) error {
	var snaps []string
	if withSnapshots {
		var err error
		snaps, err = imageSnapshots(ctx, ec, id)
		if err != nil && errorCode(err) != "InvalidAMIID.NotFound" {
			return err
		}
	}
	if _, err := ec.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(id)}, RetryNotFound); err != nil &&
		errorCode(err) != "InvalidAMIID.NotFound" && errorCode(err) != "InvalidAMIID.Unavailable" {
		return fmt.Errorf("deregister image %s: %w", id, err)
	}
	for _, snap := range snaps {
		if _, err := ec.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)}); err != nil &&
			errorCode(err) != "InvalidSnapshot.NotFound" {
			return fmt.Errorf("delete snapshot %s of image %s: %w", snap, id, err)
		}
	}
	return nil
}

// waitImageAvailable waits for an image, failing early if it fails.
func waitImageAvailable(ctx context.Context, ec EC2API, id string, p PollingConfig) (ec2types.Image, error) {
	w := ec2.NewImageAvailableWaiter(ec, func(o *ec2.ImageAvailableWaiterOptions) {
		o.MinDelay = p.Delay()
		o.MaxDelay = p.Delay()
		// A new image may not be visible yet (eventual consistency).
		o.ClientOptions = append(o.ClientOptions, RetryNotFound)
	})
	out, err := w.WaitForOutput(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}}, p.MaxWait())
	if err != nil {
		return ec2types.Image{}, fmt.Errorf("wait for image %s to become available (raise polling.max_attempts if it is just slow): %w", id, err)
	}
	return out.Images[0], nil
}

// buildFailed reports whether the run ended in error, halt or cancel: the
// images it made must then go.
func buildFailed(state multistep.StateBag) bool {
	if _, done := state.GetOk(stateBuildComplete); done {
		return false
	}
	_, failed := state.GetOk(stateError)
	_, cancelled := state.GetOk(multistep.StateCancelled)
	_, halted := state.GetOk(multistep.StateHalted)
	return failed || cancelled || halted
}

// recoverImageByName records an image named name owned by us in region
// when a create/copy call failed: its answer may have been lost after the
// image was made.
func recoverImageByName(ec EC2API, region, name string, state multistep.StateBag) {
	ctx, cancel := cleanupContext()
	defer cancel()
	out, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"self"},
		Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{name}}},
	})
	if err != nil {
		reportCleanupError(state, fmt.Errorf("check whether the failed image call in %s made image %q anyway: %w; look for it and deregister it", region, name, err))
		return
	}
	for _, img := range out.Images {
		recordAMI(state, region, aws.ToString(img.ImageId))
	}
}
