package e2e

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/esbake/packer-plugin-elasticsearch/internal/plugintest"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// TestE2EBuilderBakesThroughSessionManager bakes with ssh_interface =
// "session_manager": the builder runs AWS's real session-manager-plugin,
// whose data channel the emulator serves (playing the SSM agent), and every
// SSH byte of the bake goes through that tunnel to the guest. No security
// group is created and no session is left open.
func TestE2EBuilderBakesThroughSessionManager(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	smp, err := testcloud.EnsureSessionManagerPlugin(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("no session-manager-plugin (run scripts/install-deps.sh): %v", err)
	}
	env := newLocalBuild(t, ctx)
	lc, arts, mirror, bin := env.lc, env.arts, env.mirror, env.bin
	srv := lc.Server()

	// Right after launch the agent has not registered: the first
	// StartSession answers TargetNotConnected and the builder retries.
	srv.InjectFault(ec2emu.Fault{Action: "StartSession", Code: "TargetNotConnected", Message: "stand-in: agent not registered yet", Nth: 1})
	sgBefore := srv.CallCount("CreateSecurityGroup")

	prov := plugintest.Start(t, bin, "provisioner", "node").Provisioner()
	if err := prov.Prepare(bakeConfig(arts, mirror), plugintest.PackerVars("elasticsearch-ami")); err != nil {
		t.Fatalf("provisioner Prepare: %v", err)
	}
	cfg := builderConfig(lc, "es-8-e2e-ssm-{{timestamp}}", "/esbake/e2e/ssm/ami")
	delete(cfg, "temporary_security_group_source_cidrs")
	cfg["ssh_interface"] = "session_manager"
	cfg["iam_instance_profile"] = "esbake-build"
	cfg["session_manager_plugin_path"] = smp
	b := plugintest.Start(t, bin, "builder", "ami").Builder()
	if _, warns, err := b.Prepare(cfg, plugintest.PackerVars("elasticsearch-ami")); err != nil {
		t.Fatalf("builder Prepare: %v (warnings %v)", err, warns)
	}
	var out SafeBuffer
	ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &out, ErrorWriter: &out}
	var provisioned atomic.Bool
	var streamsDuringProvision atomic.Int64
	hook := &plugintest.ProvisionHook{Provision: func(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, data interface{}) error {
		generated, _ := data.(map[string]interface{})
		if generated == nil {
			generated = map[string]interface{}{}
		}
		if err := prov.Provision(ctx, ui, comm, generated); err != nil {
			return err
		}
		provisioned.Store(true)
		// The session is open while provisioning; its relayed bytes count
		// when a tunnelled connection ends, so look at streams here.
		for _, s := range srv.Sessions() {
			if s.Status == ec2emu.SessionConnected {
				streamsDuringProvision.Store(s.Streams)
			}
		}
		return nil
	}}
	art, err := b.Run(ctx, ui, hook)
	t.Logf("build output:\n%s", out.String())
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if art == nil {
		t.Fatal("build returned no artifact")
	}
	destroyed := false
	defer func() {
		if !destroyed {
			_ = art.Destroy()
		}
	}()
	if !provisioned.Load() {
		t.Error("the provision hook never completed")
	}
	region, ami, ok := strings.Cut(art.Id(), ":")
	if !ok || region != localRegion || !strings.HasPrefix(ami, "ami-") {
		t.Fatalf("artifact id %q, want %s:ami-...", art.Id(), localRegion)
	}
	if img, ok := srv.Image(region, ami); !ok || img.State != "available" || img.Tags["esbake:es-version"] != esVersion {
		t.Errorf("image %s: found %v, %+v; want it available with the bake's tags", ami, ok, img)
	}

	if n := srv.CallCount("CreateSecurityGroup") - sgBefore; n != 0 {
		t.Errorf("CreateSecurityGroup called %d time(s) with session_manager, want none", n)
	}
	if n := srv.CallCount("StartSession"); n < 2 {
		t.Errorf("StartSession called %d time(s), want a retry after TargetNotConnected", n)
	}
	if n := srv.CallCount("TerminateSession"); n < 1 {
		t.Error("the builder never called TerminateSession")
	}
	sessions := srv.Sessions()
	if len(sessions) != 1 {
		t.Fatalf("sessions = %+v, want exactly one", sessions)
	}
	s := sessions[0]
	if s.Status != ec2emu.SessionTerminated || s.Document != "AWS-StartPortForwardingSession" || s.Port != 22 ||
		!strings.HasPrefix(s.Target, "i-") {
		t.Errorf("session = %+v, want a terminated port 22 forwarding session to the build instance", s)
	}
	// The SSH of the whole bake went through the tunnel: connections were
	// relayed while provisioning, and the provisioner's uploads (the
	// stand-in Elasticsearch package among them) are many bytes.
	if s.DataChannels < 1 || s.Streams < 1 || streamsDuringProvision.Load() < 1 || s.BytesToInstance < 100_000 || s.BytesFromInstance == 0 {
		t.Errorf("session = %+v (streams while provisioning: %d), want the bake's SSH relayed through it", s, streamsDuringProvision.Load())
	}
	t.Logf("session: %+v", s)
	if !strings.Contains(out.String(), "SSM tunnel to ") {
		t.Errorf("the build output does not mention the SSM tunnel:\n%s", out.String())
	}

	destroyed = true
	if err := art.Destroy(); err != nil {
		t.Errorf("artifact Destroy: %v", err)
	}
	if rep := lc.Leaks(); !rep.Empty() || len(rep.Sessions) != 0 || len(rep.BackendErrors) != 0 {
		t.Errorf("left behind: %s", rep)
	}
}
