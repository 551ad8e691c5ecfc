package builder

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// pipelineBuilder is a prepared builder over a fake two-region EC2. The
// communicator is "none" (no guest behind the fake), so connect, provision
// and generalize are no-ops; everything AWS-side runs for real.
func pipelineBuilder(t *testing.T) (*Builder, *fakeDriver) {
	t.Helper()
	raw := validRaw()
	raw["ami_regions"] = []interface{}{"eu-west-1"}
	raw["ami_users"] = []interface{}{"210987654321"}
	raw["ssm_parameter_name"] = "/esbake/aardvark/ami"
	raw["tags"] = map[string]interface{}{"Base": "{{ .SourceAMIName }}"}
	raw["ami_description"] = "ES node from {{ .SourceAMI }}"
	raw["policy_gate"] = map[string]interface{}{"enabled": false}
	raw["polling"] = map[string]interface{}{"delay_seconds": 1, "max_attempts": 3}
	raw["snapshot_tags"] = map[string]interface{}{"Cluster": "aardvark"}
	raw["deprecate_at"] = time.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	var b Builder
	if _, _, err := b.Prepare(raw); err != nil {
		t.Fatal(err)
	}
	b.config.Comm.Type = "none"

	home, other := newFakeEC2(), newFakeEC2()
	home.regions = []string{"eu-west-1", "eu-west-2"}
	home.images = []ec2types.Image{{
		ImageId: aws.String("ami-0123456789abcdef0"), Name: aws.String("debian-12-amd64-20261101"),
		CreationDate: aws.String("2026-11-01T00:00:00.000Z"), RootDeviceType: ec2types.DeviceTypeEbs,
		RootDeviceName: aws.String("/dev/xvda"), State: ec2types.ImageStateAvailable, OwnerId: aws.String("123456789012"),
	}}
	return &b, &fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": home, "eu-west-1": other}}
}

// leftovers counts what a build may leave behind, per kind.
func leftovers(d *fakeDriver, amiName string) map[string]int {
	n := map[string]int{}
	for _, f := range d.byRegion {
		n["instances"] += f.live()
		n["security groups"] += len(f.groups)
		n["key pairs"] += len(f.keys)
		n["snapshots"] += len(f.snapshots)
		for _, img := range f.images {
			if aws.ToString(img.Name) == amiName {
				n["images"]++
			}
		}
	}
	return n
}

func TestBuilderRunPipeline(t *testing.T) {
	b, d := pipelineBuilder(t)
	art, err := b.run(t.Context(), packersdk.TestUi(t), &packersdk.MockHook{}, d)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	a := art.(*Artifact)
	if len(a.Amis) != 2 || a.SourceAMI != "ami-0123456789abcdef0" {
		t.Fatalf("artifact = %+v", a)
	}
	left := leftovers(d, b.config.AMIName)
	if left["instances"]+left["security groups"]+left["key pairs"] != 0 || left["images"] != 2 {
		t.Errorf("after success: %v, want only the 2 images", left)
	}
	home := d.byRegion["eu-west-2"]
	if got := aws.ToString(home.lastCreate.Description); got != "ES node from ami-0123456789abcdef0" {
		t.Errorf("description not rendered with build data: %q", got)
	}
	var base string
	for _, ts := range home.lastCreate.TagSpecifications {
		for _, tg := range ts.Tags {
			if aws.ToString(tg.Key) == "Base" {
				base = aws.ToString(tg.Value)
			}
		}
	}
	if base != "debian-12-amd64-20261101" {
		t.Errorf("tag Base = %q, want the source AMI name", base)
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(d, b.config.AMIName); left["images"]+left["snapshots"] != 0 {
		t.Errorf("after Destroy: %v", left)
	}
}

// For every EC2 call the build makes, a run where that call fails ends
// with nothing left behind.
func TestBuilderRunFaultInjectionLeavesNothing(t *testing.T) {
	b, d := pipelineBuilder(t)
	if _, err := b.run(t.Context(), packersdk.TestUi(t), &packersdk.MockHook{}, d); err != nil {
		t.Fatal(err)
	}
	// Every call a successful build made, per region: the k-th call of
	// each operation is an injection point.
	type point struct {
		region, op string
		k          int
	}
	var points []point
	for r, f := range d.byRegion {
		for op, n := range f.calls {
			if !strings.HasPrefix(op, "Delete") && op != "DeregisterImage" && op != "TerminateInstances" {
				for k := 1; k <= n; k++ {
					points = append(points, point{r, op, k})
				}
			}
		}
	}
	sort.Slice(points, func(i, j int) bool { return fmt.Sprint(points[i]) < fmt.Sprint(points[j]) })
	if len(points) < 12 {
		t.Fatalf("only %d injection points found: %v", len(points), points)
	}
	for _, p := range points {
		t.Run(fmt.Sprintf("%s/%s#%d", p.region, p.op, p.k), func(t *testing.T) {
			b, d := pipelineBuilder(t)
			d.byRegion[p.region].failOnce[p.op] = append(make([]error, p.k-1), apiErr("UnauthorizedOperation"))
			_, err := b.run(t.Context(), packersdk.TestUi(t), &packersdk.MockHook{}, d)
			left := leftovers(d, b.config.AMIName)
			if err == nil {
				// Only a call made by a cleanup after success (the wait for
				// the terminated instance) may fail without failing the
				// build; then the images stay and nothing else may.
				if left["images"] != 2 {
					t.Fatalf("build succeeded but left %d images, want 2", left["images"])
				}
				delete(left, "images")
				left["snapshots"] -= 2
			}
			t.Logf("inject %s call #%d in %s: left %v", p.op, p.k, p.region, left)
			for kind, n := range left {
				if n != 0 {
					t.Errorf("%d %s left behind", n, kind)
				}
			}
		})
	}
}
