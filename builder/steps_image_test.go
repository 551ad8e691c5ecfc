package builder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"
)

type imageFixture struct {
	d     *fakeDriver
	state *multistep.BasicStateBag
	steps []multistep.Step
}

func newImageFixture(extra ...multistep.Step) *imageFixture {
	d := &fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": newFakeEC2(), "eu-west-1": newFakeEC2()}}
	s := newState(d)
	s.Put(stateInstanceID, "i-0123456789abcdef0")
	s.Put(stateManifestTags, map[string]string{"esbake:es-version": "8.15.0"})
	poll := PollingConfig{DelaySeconds: 1, MaxAttempts: 3}
	steps := []multistep.Step{
		&stepCreateImage{Region: "eu-west-2", Name: "es-8", Tags: map[string]string{"Cluster": "aardvark"}, SnapshotTags: map[string]string{"Cluster": "aardvark"}, IMDSSupport: "v2.0", Polling: poll},
		&stepCopyImage{Region: "eu-west-2", Regions: []string{"eu-west-1"}, Name: "es-8", RegionKeys: map[string]string{"eu-west-1": "alias/esbake"}, Polling: poll},
		&stepModifyImage{BuildRegion: "eu-west-2", IMDSSupport: "v2.0", Users: []string{"210987654321"}, DeprecateAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	steps = append(steps, extra...)
	steps = append(steps, &stepPublishSSM{Name: "/esbake/aardvark/ami"})
	return &imageFixture{d: d, state: s, steps: steps}
}

func (f *imageFixture) leftovers() (images, snaps int) {
	for _, e := range f.d.byRegion {
		images += len(e.images)
		snaps += len(e.snapshots)
	}
	return
}

func TestImageStepsSuccess(t *testing.T) {
	f := newImageFixture()
	(&multistep.BasicRunner{Steps: f.steps}).Run(t.Context(), f.state)
	if err, ok := f.state.GetOk(stateError); ok {
		t.Fatalf("build failed: %v", err)
	}
	amis := recordedAMIs(f.state)
	if len(amis) != 2 || amis["eu-west-2"] == "" || amis["eu-west-1"] == "" {
		t.Fatalf("amis = %v, want one per region", amis)
	}
	if images, snaps := f.leftovers(); images != 2 || snaps != 2 {
		t.Errorf("%d images / %d snapshots after success, want 2/2 (kept)", images, snaps)
	}
	home, copyRegion := f.d.byRegion["eu-west-2"], f.d.byRegion["eu-west-1"]
	tags := map[string]string{}
	for _, ts := range home.lastCreate.TagSpecifications {
		for _, tg := range ts.Tags {
			tags[string(ts.ResourceType)+"/"+aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
	}
	if tags["image/Cluster"] != "aardvark" || tags["image/esbake:es-version"] != "8.15.0" || tags["snapshot/Cluster"] != "aardvark" {
		t.Errorf("image tags on create = %v, want user tags plus the manifest summary", tags)
	}
	if c := copyRegion.lastCopy; !aws.ToBool(c.Encrypted) || aws.ToString(c.KmsKeyId) != "alias/esbake" || aws.ToString(c.SourceRegion) != "eu-west-2" {
		t.Errorf("copy = %+v, want encrypted with the region key from eu-west-2", c)
	}
	if len(copyRegion.tagged) != 1 || !strings.HasPrefix(copyRegion.tagged[0], "snap-") {
		t.Errorf("copied snapshots tagged = %v", copyRegion.tagged)
	}
	for r, e := range f.d.byRegion {
		var imds, share bool
		for _, m := range e.modifies {
			if m.ImdsSupport != nil && aws.ToString(m.ImdsSupport.Value) == "v2.0" {
				imds = true
			}
			if m.LaunchPermission != nil && aws.ToString(m.LaunchPermission.Add[0].UserId) == "210987654321" {
				share = true
			}
		}
		if !imds || !share || len(e.deprecations) != 1 {
			t.Errorf("%s: imds_support=%v shared=%v deprecations=%d", r, imds, share, len(e.deprecations))
		}
		p := f.d.ssm[r].params["/esbake/aardvark/ami"]
		if p == nil || aws.ToString(p.Value) != amis[r] || aws.ToString(p.DataType) != "aws:ec2:image" || !aws.ToBool(p.Overwrite) {
			t.Errorf("%s: SSM parameter = %+v, want %s", r, p, amis[r])
		}
	}
}

// Every EC2 call of the image steps, failing once, leaves no image or
// snapshot anywhere.
func TestImageStepsFaultInjectionLeavesNothing(t *testing.T) {
	for _, tc := range []struct{ region, op string }{
		{"eu-west-2", "CreateImage"},
		{"eu-west-2", "DescribeImages"},
		{"eu-west-2", "ModifyImageAttribute"},
		{"eu-west-1", "CopyImage"},
		{"eu-west-1", "DescribeImages"},
		{"eu-west-1", "CreateTags"},
		{"eu-west-1", "ModifyImageAttribute"},
		{"eu-west-2", "EnableImageDeprecation"},
		{"eu-west-1", "EnableImageDeprecation"},
	} {
		t.Run(tc.region+"/"+tc.op, func(t *testing.T) {
			f := newImageFixture()
			f.d.byRegion[tc.region].failOnce[tc.op] = []error{apiErr("UnauthorizedOperation")}
			(&multistep.BasicRunner{Steps: f.steps}).Run(t.Context(), f.state)
			if _, ok := f.state.GetOk(stateError); !ok {
				t.Fatal("the injected failure did not fail the build")
			}
			images, snaps := f.leftovers()
			t.Logf("injection %s/%s: %d images, %d snapshots left", tc.region, tc.op, images, snaps)
			if images != 0 || snaps != 0 {
				t.Errorf("leaked %d images and %d snapshots", images, snaps)
			}
		})
	}
}

// cancelStep cancels the build context, as an interrupt does.
type cancelStep struct{ cancel context.CancelFunc }

func (c *cancelStep) Run(ctx context.Context, _ multistep.StateBag) multistep.StepAction {
	c.cancel()
	return multistep.ActionContinue
}
func (c *cancelStep) Cleanup(multistep.StateBag) {}

func TestImageStepsInterruptRemovesImages(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := newImageFixture(&cancelStep{cancel: cancel})
	(&multistep.BasicRunner{Steps: f.steps}).Run(ctx, f.state)
	if _, ok := f.state.GetOk(multistep.StateCancelled); !ok {
		t.Fatal("runner did not record the cancellation")
	}
	if images, snaps := f.leftovers(); images != 0 || snaps != 0 {
		t.Errorf("interrupted build left %d images and %d snapshots", images, snaps)
	}
	if len(f.d.ssm) != 0 {
		t.Error("SSM parameter published by an interrupted build")
	}
}

func TestImageCleanupFailureIsReported(t *testing.T) {
	f := newImageFixture()
	f.d.byRegion["eu-west-1"].failOnce["EnableImageDeprecation"] = []error{apiErr("UnauthorizedOperation")}
	f.d.byRegion["eu-west-1"].failOnce["DeregisterImage"] = []error{errors.New("connection reset")}
	(&multistep.BasicRunner{Steps: f.steps}).Run(t.Context(), f.state)
	v, ok := f.state.GetOk("cleanup_errors")
	if !ok || !strings.Contains(fmt.Sprint(v), "eu-west-1") {
		t.Fatalf("cleanup failure not reported: %v", v)
	}
	if left := recordedAMIs(f.state); len(left) != 1 || left["eu-west-1"] == "" {
		t.Errorf("state should still name the image that could not be removed: %v", left)
	}
}

func TestArtifact(t *testing.T) {
	f := newImageFixture()
	(&multistep.BasicRunner{Steps: f.steps}).Run(t.Context(), f.state)
	a := &Artifact{Amis: recordedAMIs(f.state), SourceAMI: "ami-0123456789abcdef0", driver: f.d}
	if !strings.HasPrefix(a.Id(), "eu-west-1:ami-") || !strings.Contains(a.Id(), ",eu-west-2:ami-") {
		t.Errorf("Id = %q", a.Id())
	}
	if a.BuilderId() != BuilderId {
		t.Errorf("BuilderId = %q", a.BuilderId())
	}
	md, ok := a.State(registryimage.ArtifactStateURI).([]*registryimage.Image)
	if !ok || len(md) != 2 {
		t.Fatalf("HCP metadata = %#v, want one image per region", a.State(registryimage.ArtifactStateURI))
	}
	for _, img := range md {
		if img.ProviderName != "aws" || img.SourceImageID != "ami-0123456789abcdef0" || img.ImageID != a.Amis[img.ProviderRegion] {
			t.Errorf("HCP image = %+v", img)
		}
	}
	if err := a.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if images, snaps := f.leftovers(); images != 0 || snaps != 0 {
		t.Errorf("Destroy left %d images and %d snapshots", images, snaps)
	}
}
