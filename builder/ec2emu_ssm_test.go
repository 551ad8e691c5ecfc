package builder

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// The builder with ssh_interface = "session_manager" against the emulator,
// running AWS's real session-manager-plugin. The communicator is "none"
// (no guest), so nothing connects through the tunnel here; the e2e test
// does. What is checked: the session lifecycle and that no failure or
// interrupt leaves a session (or anything else) behind.

func emuSSMBuilder(t *testing.T) (*Builder, *ec2emu.Server, Driver) {
	t.Helper()
	plugin, err := testcloud.EnsureSessionManagerPlugin(t.Context())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("no session-manager-plugin (run scripts/install-deps.sh): %v", err)
	}
	return emuBuilderWith(t, ec2emu.Options{Regions: []string{"eu-west-2"}, AccountID: emuAccount,
		PortAddress: func(string, int) (string, error) { return "", fmt.Errorf("stand-in: no guest behind this instance") }},
		map[string]interface{}{
			"temporary_security_group_source_cidrs": nil,
			"ssh_interface":                         "session_manager", "iam_instance_profile": "esbake-build", "session_manager_plugin_path": plugin,
		})
}

func TestEmulatorSessionManagerBuild(t *testing.T) {
	b, srv, d := emuSSMBuilder(t)
	srv.InjectFault(ec2emu.Fault{Action: "StartSession", Code: "TargetNotConnected", Nth: 1, Count: 2})
	art, err := b.run(t.Context(), packersdk.TestUi(t), &packersdk.MockHook{}, d)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if n := srv.CallCount("CreateSecurityGroup"); n != 0 {
		t.Errorf("CreateSecurityGroup called %d times with session_manager", n)
	}
	if n := srv.CallCount("StartSession"); n != 3 {
		t.Errorf("StartSession called %d times, want 3 (two TargetNotConnected)", n)
	}
	s := srv.Sessions()
	if len(s) != 1 || s[0].Status != ec2emu.SessionTerminated || s[0].DataChannels != 1 || s[0].Rejected != 0 {
		t.Errorf("sessions = %+v, want one, opened by the plugin and terminated", s)
	}
	if err := art.Destroy(); err != nil {
		t.Fatal(err)
	}
	if rep := srv.Leaks(); !rep.Empty() {
		t.Errorf("after Destroy: %s", rep)
	}
}

func TestEmulatorSessionManagerFailuresLeaveNothing(t *testing.T) {
	for _, f := range []ec2emu.Fault{
		{Action: "StartSession", Code: "AccessDeniedException", Nth: 1},
		{Action: "StartSession", Code: "AccessDeniedException", Nth: 1, AfterApply: true}, // session exists, id lost
		{Action: "CreateImage", Code: "UnauthorizedOperation", Nth: 1},                    // after the tunnel is up
	} {
		name := f.Action + "/" + f.Code
		if f.AfterApply {
			name += "/answer-lost"
		}
		t.Run(name, func(t *testing.T) {
			b, srv, d := emuSSMBuilder(t)
			srv.InjectFault(f)
			if _, err := b.run(t.Context(), packersdk.TestUi(t), &packersdk.MockHook{}, d); err == nil {
				t.Fatalf("build succeeded although %s failed", f.Action)
			}
			rep := srv.Leaks()
			fmt.Printf("fault %-45s leaks: %s\n", name, rep)
			if f.AfterApply {
				// Like a lost RunInstances answer: the builder cannot know the
				// id. AWS ends such a session when its instance terminates;
				// the emulator reports it, so the test says so.
				if len(rep.Sessions) != 1 || len(rep.Instances)+len(rep.Images)+len(rep.SecurityGroups)+len(rep.KeyPairs) != 0 {
					t.Errorf("want only the unknowable session left: %s", rep)
				}
				return
			}
			if !rep.Empty() {
				t.Errorf("leaked after %s failed: %s", name, rep)
			}
		})
	}
}

// An interrupt after each step from the tunnel on terminates the session.
func TestEmulatorSessionManagerInterruptLeavesNothing(t *testing.T) {
	b0, _, _ := emuSSMBuilder(t)
	steps := b0.steps()
	first := -1
	for i, s := range steps {
		if _, ok := s.(*stepSSMTunnel); ok {
			first = i + 1
		}
	}
	if first < 0 {
		t.Fatal("no SSM tunnel step with ssh_interface = \"session_manager\"")
	}
	for i := first; i < len(steps); i++ {
		t.Run(fmt.Sprintf("after-step-%02d", i), func(t *testing.T) {
			b, srv, d := emuSSMBuilder(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var name string
			b.stepsHook = func(steps []multistep.Step) []multistep.Step {
				name = fmt.Sprintf("%T", steps[i-1])
				out := append([]multistep.Step{}, steps[:i]...)
				out = append(out, &cancelStep{cancel: cancel})
				return append(out, steps[i:]...)
			}
			if _, err := b.run(ctx, packersdk.TestUi(t), &packersdk.MockHook{}, d); err == nil {
				t.Fatal("interrupted build reported success")
			}
			rep := srv.Leaks()
			fmt.Printf("interrupt after %-40s leaks: %s\n", name, rep)
			if !rep.Empty() || len(rep.Parameters) != 0 {
				t.Errorf("interrupt after %s left: %s", name, rep)
			}
			if s := srv.Sessions(); len(s) != 1 || s[0].Status != ec2emu.SessionTerminated {
				t.Errorf("sessions = %+v, want the one session terminated", s)
			}
		})
	}
}
