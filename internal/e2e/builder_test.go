package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/esbake/packer-plugin-elasticsearch/internal/plugintest"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/localcloud"
	"github.com/esbake/packer-plugin-elasticsearch/node/install/standin"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// localRegion is ec2emu's default region (Options.Regions[0] when none are
// given, as localcloud does): the seed images are registered there.
const localRegion = "us-east-1"

// Obvious test credentials: the emulator checks that requests are signed,
// not by whom.
const (
	testAccessKey = "AKIDTESTCLOUD"
	testSecretKey = "test"
)

// builderConfig is example.pkr.hcl's source block pointed at the local cloud.
func builderConfig(lc *localcloud.LocalCloud, amiName, ssmName string) map[string]interface{} {
	ep := lc.Endpoint()
	return map[string]interface{}{
		"region":       localRegion,
		"ec2_endpoint": ep,
		"ssm_endpoint": ep,
		"sts_endpoint": ep,
		"source_ami_filter": map[string]interface{}{
			"filters":     map[string]interface{}{"name": "debian-12-cis-hardened-*"},
			"owners":      []interface{}{"self"},
			"most_recent": true,
		},
		"instance_type":                         "m6i.large",
		"temporary_security_group_source_cidrs": []interface{}{lc.Cloud().Subnet().String()},
		"ssh_interface":                         "private_ip",
		"ssh_username":                          "admin",
		"ami_name":                              amiName,
		"ssm_parameter_name":                    ssmName,
		"tags":                                  map[string]interface{}{"Cluster": "aardvark-cluster", "Source": "{{ .SourceAMIName }}"},
		"policy_gate":                           map[string]interface{}{"enabled": true},
		// The emulator answers at once; poll it every second, not every 15.
		"polling": map[string]interface{}{"delay_seconds": 1, "max_attempts": 600},
	}
}

// TestE2EBuilderBakesAMIOnLocalCloud runs the elasticsearch-ami builder
// through the plugin protocol against the local cloud (EC2 emulator backed
// by nspawn guests), with the elasticsearch-node provisioner run from the
// provision hook the way Packer core does, and checks the image really
// carries the bake.
// localBuild is what the builder tests share: a local cloud with its seed
// images, the stand-ins served on its bridge and the plugin binary.
type localBuild struct {
	lc     *localcloud.LocalCloud
	arts   *standin.Artifacts
	mirror string
	bin    string
}

// newLocalBuild sets test credentials in the environment first (the plugin
// processes inherit it), so nothing can reach a real account.
func newLocalBuild(t *testing.T, ctx context.Context) *localBuild {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)

	lc := localcloud.New(t)
	if _, ok := lc.Server().DefaultNetwork(localRegion); !ok {
		t.Fatalf("the emulator serves no %s: localRegion must be ec2emu's default region", localRegion)
	}
	if _, err := lc.RegisterBaseImages(ctx); err != nil {
		t.Fatal(err)
	}
	arts, mirror := ServeStandins(t, lc.Cloud(), esVersion)
	return &localBuild{lc: lc, arts: arts, mirror: mirror, bin: plugintest.Binary(t)}
}

func TestE2EBuilderBakesAMIOnLocalCloud(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	env := newLocalBuild(t, ctx)
	lc, arts, mirror, bin := env.lc, env.arts, env.mirror, env.bin
	ec := emuEC2(t, lc)

	// build runs the builder plugin with the node provisioner in the
	// provision hook; after, when set, runs on the builder's communicator
	// once provisioning is done.
	build := func(t *testing.T, amiName, ssmName string, after func(context.Context, packersdk.Communicator) error) (packersdk.Artifact, string, error) {
		t.Helper()
		prov := plugintest.Start(t, bin, "provisioner", "node").Provisioner()
		if err := prov.Prepare(bakeConfig(arts, mirror), plugintest.PackerVars("elasticsearch-ami")); err != nil {
			t.Fatalf("provisioner Prepare: %v", err)
		}
		b := plugintest.Start(t, bin, "builder", "ami").Builder()
		if _, warns, err := b.Prepare(builderConfig(lc, amiName, ssmName), plugintest.PackerVars("elasticsearch-ami")); err != nil {
			t.Fatalf("builder Prepare: %v (warnings %v)", err, warns)
		}
		var out SafeBuffer
		ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &out, ErrorWriter: &out}
		var provisioned atomic.Bool // set in the hook's RPC goroutine
		hook := &plugintest.ProvisionHook{Provision: func(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, data interface{}) error {
			// Packer core passes the builder's generated data on as a map.
			generated, _ := data.(map[string]interface{})
			if generated == nil {
				generated = map[string]interface{}{}
			}
			if err := prov.Provision(ctx, ui, comm, generated); err != nil {
				return err
			}
			provisioned.Store(true)
			if after != nil {
				return after(ctx, comm)
			}
			return nil
		}}
		art, err := b.Run(ctx, ui, hook)
		if !provisioned.Load() {
			t.Errorf("the builder never ran the provision hook (or provisioning failed); output:\n%s", out.String())
		}
		return art, out.String(), err
	}

	t.Run("bake", func(t *testing.T) {
		const ssmName = "/esbake/e2e/aardvark/ami"
		art, out, err := build(t, "es-8-e2e-{{timestamp}}", ssmName, nil)
		t.Logf("build output:\n%s", out)
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		if art == nil {
			t.Fatal("build returned no artifact")
		}
		region, ami, ok := strings.Cut(art.Id(), ":")
		if !ok || region != localRegion || !strings.HasPrefix(ami, "ami-") || strings.Contains(ami, ",") {
			t.Fatalf("artifact id %q, want %s:ami-...", art.Id(), localRegion)
		}
		destroyed := false
		defer func() {
			if !destroyed {
				_ = art.Destroy()
			}
		}()

		img, ok := lc.Server().Image(region, ami)
		if !ok {
			t.Fatalf("image %s is not in the emulator", ami)
		}
		if img.State != "available" {
			t.Errorf("image state %q, want available", img.State)
		}
		if img.ImdsSupport != "v2.0" {
			t.Errorf("imds_support %q, want v2.0", img.ImdsSupport)
		}
		if img.Tags["Cluster"] != "aardvark-cluster" || !strings.HasPrefix(img.Tags["Source"], "debian-12-cis-hardened-") {
			t.Errorf("user tags not on the image (Source rendered from the source AMI name): %v", img.Tags)
		}
		// The manifest summary (ami_config.go: esbake:es-version,
		// esbake:plugins, esbake:spec-hash).
		if v := img.Tags["esbake:es-version"]; v != esVersion {
			t.Errorf("tag esbake:es-version = %q, want %s (tags %v)", v, esVersion, img.Tags)
		}
		if v := img.Tags["esbake:plugins"]; !strings.Contains(v, "discovery-ec2") {
			t.Errorf("tag esbake:plugins = %q, want it to name discovery-ec2", v)
		}
		if v := img.Tags["esbake:spec-hash"]; len(v) < 12 {
			t.Errorf("tag esbake:spec-hash = %q, want the spec hash", v)
		}
		if v, _ := lc.Server().Parameter(region, ssmName); v != ami {
			t.Errorf("SSM parameter %s = %q, want %s", ssmName, v, ami)
		}
		if rep := lc.Leaks(); len(rep.Instances)+len(rep.SecurityGroups)+len(rep.KeyPairs) != 0 || len(rep.Guests) != 0 {
			t.Errorf("the build left temporary resources: %s", rep)
		}

		// Boot the image: it must carry the bake.
		run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeM6iLarge,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		})
		if err != nil {
			t.Fatalf("launch from %s: %v", ami, err)
		}
		id := aws.ToString(run.Instances[0].InstanceId)
		terminated := false
		terminate := func() error {
			if terminated {
				return nil
			}
			terminated = true
			if _, err := ec.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
				return err
			}
			return ec2.NewInstanceTerminatedWaiter(ec, func(o *ec2.InstanceTerminatedWaiterOptions) { o.MinDelay, o.MaxDelay = time.Second, 2*time.Second }).
				Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10*time.Minute)
		}
		defer func() { _ = terminate() }()
		if err := ec2.NewInstanceRunningWaiter(ec, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = time.Second, 2*time.Second }).
			Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10*time.Minute); err != nil {
			t.Fatalf("instance %s from %s never ran: %v", id, ami, err)
		}
		inst := lc.Instance(id)
		if inst == nil {
			t.Fatalf("no guest backs running instance %s", id)
		}
		sh := func(cmd string) string {
			t.Helper()
			s, err := inst.Exec(ctx, cmd)
			if err != nil {
				t.Fatalf("%s on %s: %v", cmd, id, err)
			}
			return strings.TrimSpace(s)
		}
		m, err := spec.ParseManifest([]byte(sh("cat " + spec.ManifestPath)))
		if err != nil {
			t.Fatalf("manifest on an instance of the new image: %v", err)
		}
		if m.Spec.Elasticsearch.Version != esVersion {
			t.Errorf("manifest on the instance says Elasticsearch %q, want %s", m.Spec.Elasticsearch.Version, esVersion)
		}
		if got := img.Tags["esbake:spec-hash"]; got != "" && got != m.SpecHash {
			t.Errorf("image tag esbake:spec-hash %q, manifest spec_hash %q", got, m.SpecHash)
		}
		if v := sh("systemctl is-enabled esnode-boot.service || true"); v != "enabled" {
			t.Errorf("esnode-boot.service is %q on an instance of the new image, want enabled", v)
		}
		// Generalized: no build key left for anyone.
		if v := sh("cat /home/admin/.ssh/authorized_keys 2>/dev/null | grep -c . || true"); v != "0" && v != "" {
			t.Errorf("the image kept %s authorized key(s) of the build", v)
		}

		if err := terminate(); err != nil {
			t.Errorf("terminate %s: %v", id, err)
		}
		destroyed = true
		if err := art.Destroy(); err != nil {
			t.Errorf("artifact Destroy: %v", err)
		}
		if _, ok := lc.Server().Image(region, ami); ok {
			t.Errorf("image %s still registered after Destroy", ami)
		}
		if rep := lc.Leaks(); !rep.Empty() || len(rep.BackendErrors) != 0 {
			t.Errorf("after Destroy and terminate: %s", rep)
		}
	})

	t.Run("policy violation leaves no image", func(t *testing.T) {
		createsBefore := lc.Server().CallCount("CreateImage")
		// The seed script's chmod 777, done after the provisioner (whose own
		// gate has passed): the builder's gate must catch it.
		art, out, err := build(t, "es-8-e2e-violation-{{timestamp}}", "/esbake/e2e/violation/ami",
			func(ctx context.Context, comm packersdk.Communicator) error {
				cmd := &packersdk.RemoteCmd{Command: "sudo -n chmod 0777 /etc/elasticsearch"}
				if err := comm.Start(ctx, cmd); err != nil {
					return err
				}
				if st := cmd.Wait(); st != 0 {
					return errors.New("chmod 0777 /etc/elasticsearch failed on the build instance")
				}
				return nil
			})
		t.Logf("build output:\n%s", out)
		if err == nil {
			if art != nil {
				_ = art.Destroy()
			}
			t.Fatal("a world-writable /etc/elasticsearch passed the builder's policy gate")
		}
		if !strings.Contains(err.Error(), "ES-SEC-004") {
			t.Errorf("build error does not name ES-SEC-004: %v", err)
		}
		if art != nil {
			t.Errorf("a failed build returned an artifact %q", art.Id())
		}
		if rep := lc.Leaks(); !rep.Empty() || len(rep.Parameters) > 1 {
			// One parameter is the bake subtest's published id.
			t.Errorf("the failed build left: %s", rep)
		}
		if v, ok := lc.Server().Parameter(localRegion, "/esbake/e2e/violation/ami"); ok {
			t.Errorf("the failed build published %q", v)
		}
		if n := lc.Server().CallCount("CreateImage"); n != createsBefore {
			t.Errorf("CreateImage was called %d time(s) although the gate failed", n-createsBefore)
		}
	})
}

// emuEC2 is an EC2 client of the emulator, as a user's tooling would use.
func emuEC2(t *testing.T, lc *localcloud.LocalCloud) *ec2.Client {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(localRegion),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(lc.Endpoint()) })
}
