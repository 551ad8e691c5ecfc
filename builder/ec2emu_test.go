package builder

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// The builder against the EC2 API emulator over real HTTP (loopback), with
// the SDK's real clients, retryer and waiters. The communicator is "none":
// no guest backs these instances, so connect/provision/generalize are
// skipped; everything AWS-side is real protocol.

const emuAccount = "123456789012"

func emuBuilder(t *testing.T) (*Builder, *ec2emu.Server, Driver) {
	t.Helper()
	return emuBuilderWith(t, ec2emu.Options{Regions: []string{"eu-west-2", "eu-west-1"}, DefaultRegion: "eu-west-2", AccountID: emuAccount, EventualConsistency: 1},
		map[string]interface{}{
			"ami_regions": []interface{}{"eu-west-1"}, "ami_users": []interface{}{"210987654321"},
			"snapshot_tags": map[string]interface{}{"Cluster": "aardvark"},
			"deprecate_at":  time.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339),
		})
}

// emuBuilderWith is a prepared builder and its driver against a started
// emulator with one Debian source image: validRaw with the emulator's
// endpoints, a publish parameter, the gate off and settings on top
// (a nil value removes the key).
func emuBuilderWith(t *testing.T, opts ec2emu.Options, settings map[string]interface{}) (*Builder, *ec2emu.Server, Driver) {
	t.Helper()
	isolateAWSEnv(t)
	srv := ec2emu.New(opts)
	endpoint := srv.Start()
	t.Cleanup(srv.Close)
	if _, err := srv.AddImage(ec2emu.ImageSpec{Region: "eu-west-2", Name: "debian-12-amd64-20261101", Owner: "210987654321", CreationDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	raw := validRaw()
	for k, v := range map[string]interface{}{
		"source_ami_filter": map[string]interface{}{
			"filters": map[string]interface{}{"name": "debian-12-amd64-*"}, "owners": []interface{}{"210987654321"}, "most_recent": true,
		},
		"ec2_endpoint": endpoint, "ssm_endpoint": endpoint, "sts_endpoint": endpoint,
		"ssm_parameter_name": "/esbake/aardvark/ami",
		"policy_gate":        map[string]interface{}{"enabled": false},
		"polling":            map[string]interface{}{"max_attempts": 500},
	} {
		raw[k] = v
	}
	for k, v := range settings {
		if v == nil {
			delete(raw, k)
		} else {
			raw[k] = v
		}
	}
	var b Builder
	if _, _, err := b.Prepare(raw); err != nil {
		t.Fatal(err)
	}
	b.config.Comm.Type = "none"
	b.config.Polling.delay = 5 * time.Millisecond
	d, err := NewDriver(t.Context(), &b.config.AccessConfig, WithMaxBackoff(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ValidateCredentials(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &b, srv, d
}

func TestEmulatorBuildSucceedsAndDestroyLeavesNothing(t *testing.T) {
	b, srv, d := emuBuilder(t)
	art, err := b.run(t.Context(), packersdk.TestUi(t), &packersdk.MockHook{}, d)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	a := art.(*Artifact)
	if len(a.Amis) != 2 {
		t.Fatalf("amis = %v", a.Amis)
	}
	for r, id := range a.Amis {
		img, ok := srv.Image(r, id)
		if !ok {
			t.Fatalf("image %s not in %s", id, r)
		}
		if img.ImdsSupport != "v2.0" {
			t.Errorf("%s: imds_support = %q", r, img.ImdsSupport)
		}
		if v, _ := srv.Parameter(r, "/esbake/aardvark/ami"); v != id {
			t.Errorf("%s: SSM parameter = %q, want %s", r, v, id)
		}
	}
	if rep := srv.Leaks(); len(rep.Instances)+len(rep.SecurityGroups)+len(rep.KeyPairs) != 0 {
		t.Errorf("after success: %s", rep)
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	if rep := srv.Leaks(); !rep.Empty() {
		t.Errorf("after Destroy: %s", rep)
	}
}

func TestEmulatorBuildSurvivesThrottling(t *testing.T) {
	b, srv, d := emuBuilder(t)
	srv.SetThrottle(0.3, 7)
	art, err := b.run(t.Context(), packersdk.TestUi(t), &packersdk.MockHook{}, d)
	if err != nil {
		t.Fatalf("build with 30%% RequestLimitExceeded: %v", err)
	}
	srv.SetThrottle(0, 0)
	if err := art.Destroy(); err != nil {
		t.Fatal(err)
	}
	if rep := srv.Leaks(); !rep.Empty() {
		t.Errorf("after Destroy: %s", rep)
	}
}

// For every action a build calls, failing its first call leaves nothing.
func TestEmulatorFaultInjectionLeavesNothing(t *testing.T) {
	b, srv, d := emuBuilder(t)
	art, err := b.run(t.Context(), packersdk.TestUi(t), &packersdk.MockHook{}, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := art.Destroy(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range srv.Calls() {
		seen[c.Action] = true
	}
	var actions []string
	for a := range seen {
		switch a {
		case "GetCallerIdentity", "TerminateInstances", "DeleteSecurityGroup", "DeleteKeyPair", "DeregisterImage", "DeleteSnapshot":
			// setup or cleanup calls; a failing cleanup is reported, not hidden
		default:
			actions = append(actions, a)
		}
	}
	sort.Strings(actions)
	if len(actions) < 12 {
		t.Fatalf("only %d actions seen: %v", len(actions), actions)
	}
	for _, action := range actions {
		// AfterApply: the call takes effect but its answer is lost, the
		// leak amazon-ebs is known for; only creating calls matter there.
		for _, lost := range []bool{false, true} {
			if lost && !strings.HasPrefix(action, "Create") && action != "RunInstances" && action != "CopyImage" {
				continue
			}
			name := action
			if lost {
				name += "/answer-lost"
			}
			t.Run(name, func(t *testing.T) {
				b, srv, d := emuBuilder(t)
				srv.InjectFault(ec2emu.Fault{Action: action, Code: "UnauthorizedOperation", Nth: 1, AfterApply: lost})
				_, err := b.run(t.Context(), packersdk.TestUi(t), &packersdk.MockHook{}, d)
				if err == nil {
					t.Fatalf("build succeeded although %s failed", action)
				}
				rep := srv.Leaks()
				fmt.Printf("fault %-45s leaks: %s\n", name, rep)
				if !rep.Empty() {
					t.Errorf("leaked after %s failed: %s", name, rep)
				}
			})
		}
	}
}

// An interrupt (the build context cancelled, as Ctrl-C does) after each
// step leaves nothing behind.
func TestEmulatorInterruptAtEachStepLeavesNothing(t *testing.T) {
	b0, _, _ := emuBuilder(t)
	n := len(b0.steps())
	for i := 1; i <= n; i++ {
		t.Run(fmt.Sprintf("after-step-%02d", i), func(t *testing.T) {
			b, srv, d := emuBuilder(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var name string
			b.stepsHook = func(steps []multistep.Step) []multistep.Step {
				name = fmt.Sprintf("%T", steps[i-1])
				out := append([]multistep.Step{}, steps[:i]...)
				out = append(out, &cancelStep{cancel: cancel})
				return append(out, steps[i:]...)
			}
			art, err := b.run(ctx, packersdk.TestUi(t), &packersdk.MockHook{}, d)
			if i == n {
				// After the last step the build is done: it stands.
				if err != nil {
					t.Fatalf("interrupt after the last step failed the build: %v", err)
				}
				if err := art.Destroy(); err != nil {
					t.Fatal(err)
				}
				rep := srv.Leaks()
				if !rep.Empty() {
					t.Errorf("after Destroy: %s", rep)
				}
				return
			}
			if err == nil {
				t.Fatal("interrupted build reported success")
			}
			rep := srv.Leaks()
			fmt.Printf("interrupt after %-40s leaks: %s\n", name, rep)
			if !rep.Empty() || len(rep.Parameters) != 0 {
				t.Errorf("interrupt after %s left: %s", name, rep)
			}
		})
	}
}
