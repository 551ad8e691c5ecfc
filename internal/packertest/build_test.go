package packertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/zclconf/go-cty/cty"

	"github.com/esbake/packer-plugin-elasticsearch/internal/e2e"
	"github.com/esbake/packer-plugin-elasticsearch/internal/packerrun"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/localcloud"
)

const (
	localRegion = "us-east-1" // ec2emu's default region: the seed images are there
	esVersion   = "8.15.3"    // the example's default
	ssmParam    = "/elasticsearch/aardvark-cluster/ami-id"
	accessKey   = "AKIDPACKERTEST"
	secretKey   = "packer-test-secret-for-the-local-emulator"
	interruptAt = "Installing the Elasticsearch node with esnode install"
)

// localBuild is the example ready for `packer build` on the local cloud:
// the release installed into a private Packer, the example with the
// demo's overrides (endpoints, polling, mirror and stand-ins' checksums).
type localBuild struct {
	e   *packerEnv
	lc  *localcloud.LocalCloud
	ec2 *ec2.Client
	ssm *ssm.Client
	// installed is the plugin binary Packer runs.
	installed string
}

func newLocalBuild(t *testing.T, ctx context.Context) *localBuild {
	r := releaseBuild(t)
	e := newPackerEnv(t)
	installed := e.install(t, r)
	e.mustRun(t, "init", "example.pkr.hcl")

	// Obvious test credentials: nothing can reach a real account.
	none := filepath.Join(t.TempDir(), "none")
	e.env = append(e.env, "AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey, "AWS_SESSION_TOKEN=",
		"AWS_PROFILE=", "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+none, "AWS_SHARED_CREDENTIALS_FILE="+none)

	lc := localcloud.New(t)
	if _, err := lc.RegisterBaseImages(ctx); err != nil {
		t.Fatal(err)
	}
	creds := credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")
	b := &localBuild{e: e, lc: lc, installed: installed,
		ec2: ec2.New(ec2.Options{Region: localRegion, BaseEndpoint: aws.String(lc.Endpoint()), Credentials: creds}),
		ssm: ssm.New(ssm.Options{Region: localRegion, BaseEndpoint: aws.String(lc.Endpoint()), Credentials: creds}),
	}
	// The example picks its build subnet by tag Name=packer-build.
	subs, err := b.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subs.Subnets) == 0 {
		t.Fatalf("describe the emulator's subnets: %v", err)
	}
	if _, err := b.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(subs.Subnets[0].SubnetId)},
		Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String("packer-build")}}}); err != nil {
		t.Fatal(err)
	}

	arts, mirror := e2e.ServeStandins(t, lc.Cloud(), esVersion)
	src, err := os.ReadFile(filepath.Join(e.dir, "example.pkr.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	ep := cty.StringVal(lc.Endpoint())
	tmpl, err := packerrun.Template("example.pkr.hcl", src, []packerrun.Override{
		{Path: []string{"ec2_endpoint"}, Value: ep},
		{Path: []string{"ssm_endpoint"}, Value: ep},
		{Path: []string{"sts_endpoint"}, Value: ep},
		{Path: []string{"polling", "delay_seconds"}, Value: cty.NumberIntVal(1)},
	}, []packerrun.Override{
		{Path: []string{"mirror_url"}, Value: cty.StringVal(mirror)},
		{Path: []string{"elasticsearch", "sha512"}, Value: cty.StringVal(arts.Elasticsearch.SHA512)},
		{Path: []string{"plugin", "0", "sha512"}, Value: cty.StringVal(arts.PluginEC2.SHA512)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "example.pkr.hcl"), tmpl, 0o600); err != nil {
		t.Fatal(err)
	}
	vars := fmt.Sprintf("region = %q\nbuilder_cidr = %q\nelastichq_sha512 = %q\ncloudwatch_agent_sha512 = %q\n",
		localRegion, lc.Cloud().Subnet().String(), arts.ElasticHQ.SHA512, arts.CWAgent.SHA512)
	if err := os.WriteFile(filepath.Join(e.dir, "local.pkrvars.hcl"), []byte(vars), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// build runs `packer build -machine-readable` and returns its lines; when
// interruptOn is set, Packer gets SIGINT once a UI line contains it.
func (b *localBuild) build(t *testing.T, ctx context.Context, interruptOn string) ([]packerrun.Line, string, error, bool) {
	cmd := exec.CommandContext(ctx, b.e.bin, "build", "-machine-readable", "-color=false", "-var-file=local.pkrvars.hcl", "example.pkr.hcl")
	cmd.Dir, cmd.Env = b.e.dir, b.e.env
	// Packer's panicwrap parent ignores SIGINT and leaves it to its child,
	// which gets it from the terminal's process group on Ctrl-C: run Packer
	// in its own group and signal the group, as a terminal does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 5 * time.Minute
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []packerrun.Line
	var raw strings.Builder
	var once sync.Once
	interrupted := false
	scanErr := machineLines(out, func(l packerrun.Line, text string) {
		raw.WriteString(text + "\n")
		lines = append(lines, l)
		if interruptOn != "" && l.Type == "ui" && len(l.Data) >= 2 && strings.Contains(l.Data[1], interruptOn) {
			once.Do(func() {
				t.Logf("%s in: SIGINT to packer (pid %d)", time.Since(start).Round(time.Second), cmd.Process.Pid)
				interrupted = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) == nil
			})
		}
	})
	err = cmd.Wait()
	t.Logf("packer build took %s; stderr:\n%s", time.Since(start).Round(time.Second), stderr.String())
	if scanErr != nil {
		t.Errorf("read packer's output: %v", scanErr)
	}
	return lines, raw.String(), err, interrupted
}

// removeImage deregisters the AMI, deletes its snapshots and the SSM
// parameter: the build's product, not a leak.
func (b *localBuild) removeImage(t *testing.T, ctx context.Context, ami string) {
	out, err := b.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}})
	if err != nil {
		t.Fatalf("describe %s: %v", ami, err)
	}
	if _, err := b.ec2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(ami)}); err != nil {
		t.Fatal(err)
	}
	for _, img := range out.Images {
		for _, bd := range img.BlockDeviceMappings {
			if bd.Ebs != nil && bd.Ebs.SnapshotId != nil {
				if _, err := b.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: bd.Ebs.SnapshotId}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	_, _ = b.ssm.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(ssmParam)})
}

// pluginProcesses lists live processes running the installed plugin.
func pluginProcesses(installed string) []string {
	var pids []string
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && exe == installed {
			pids = append(pids, strings.Split(p, "/")[2])
		}
	}
	return pids
}

// TestE2EPackerBuildsExampleOnLocalCloud is `packer build` of
// example.pkr.hcl by real Packer with the installed release, on the local
// cloud: the artifact, the manifest post-processor's file, the
// machine-readable events, the image and SSM parameter it made, and no
// leaks; then a build interrupted with SIGINT while esnode installs,
// which must leave nothing behind.
func TestE2EPackerBuildsExampleOnLocalCloud(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	b := newLocalBuild(t, ctx)

	lines, raw, err, _ := b.build(t, ctx, "")
	if err != nil {
		t.Fatalf("packer build: %v\n%s", err, raw)
	}
	types := map[string]int{}
	for _, l := range lines {
		types[l.Type]++
	}
	if types["ui"] == 0 || types["artifact-count"] == 0 {
		t.Errorf("machine-readable output has %v, want ui and artifact-count lines", types)
	}
	if types["error-count"] != 0 {
		t.Errorf("machine-readable output reports errors:\n%s", raw)
	}
	var ami, artID string
	for _, a := range packerrun.Artifacts(lines) {
		if a.BuilderID == "esbake.elasticsearch-ami" {
			artID = a.ID
			if r, id, ok := strings.Cut(a.ID, ":"); ok && r == localRegion {
				ami = id
			}
		}
	}
	if ami == "" {
		t.Fatalf("no artifact from builder esbake.elasticsearch-ami with an AMI in %s: %+v\n%s", localRegion, packerrun.Artifacts(lines), raw)
	}
	for _, want := range []string{interruptAt, "Policy gate passed"} {
		if !strings.Contains(raw, want) {
			t.Errorf("packer's UI lacks %q", want)
		}
	}

	// The manifest post-processor's file, as written in the work dir.
	mb, err := os.ReadFile(filepath.Join(b.e.dir, "packer-manifest.json"))
	if err != nil {
		t.Fatalf("the manifest post-processor wrote no packer-manifest.json: %v", err)
	}
	var manifest struct {
		Builds []struct {
			Name        string `json:"name"`
			BuilderType string `json:"builder_type"`
			ArtifactID  string `json:"artifact_id"`
		} `json:"builds"`
	}
	if err := json.Unmarshal(mb, &manifest); err != nil {
		t.Fatalf("packer-manifest.json: %v\n%s", err, mb)
	}
	if len(manifest.Builds) != 1 || manifest.Builds[0].BuilderType != "elasticsearch-ami" || manifest.Builds[0].ArtifactID != artID || manifest.Builds[0].Name != "node" {
		t.Errorf("packer-manifest.json = %+v, want one build \"node\" of elasticsearch-ami with artifact_id %q", manifest.Builds, artID)
	}

	// The image and the SSM parameter the build published.
	imgs, err := b.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}})
	if err != nil || len(imgs.Images) != 1 {
		t.Fatalf("describe %s: %v %+v", ami, err, imgs)
	}
	tags := map[string]string{}
	for _, tg := range imgs.Images[0].Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags["Cluster"] != "aardvark-cluster" || !strings.HasPrefix(aws.ToString(imgs.Images[0].Name), "elasticsearch-"+esVersion+"-") {
		t.Errorf("image %s: name %q tags %v", ami, aws.ToString(imgs.Images[0].Name), tags)
	}
	p, err := b.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(ssmParam)})
	if err != nil || aws.ToString(p.Parameter.Value) != ami {
		t.Errorf("SSM %s: %v, want %s", ssmParam, err, ami)
	}
	b.removeImage(t, ctx, ami)
	if rep := b.lc.Leaks(); !rep.Empty() {
		t.Errorf("the build left resources behind:\n%s", rep)
	}
	if pids := pluginProcesses(b.installed); len(pids) > 0 {
		t.Errorf("plugin processes still running after packer build: %v", pids)
	}

	t.Run("SIGINT", func(t *testing.T) {
		if err := os.Remove(filepath.Join(b.e.dir, "packer-manifest.json")); err != nil {
			t.Fatal(err)
		}
		lines, raw, err, interrupted := b.build(t, ctx, interruptAt)
		if !interrupted {
			t.Fatalf("the build never reached %q to be interrupted (err %v):\n%s", interruptAt, err, raw)
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("interrupted packer build: err %v, want a non-zero exit", err)
		}
		for _, a := range packerrun.Artifacts(lines) {
			if a.ID != "" {
				t.Errorf("an interrupted build reported artifact %+v", a)
			}
		}
		if _, err := os.Stat(filepath.Join(b.e.dir, "packer-manifest.json")); err == nil {
			t.Error("an interrupted build wrote a manifest")
		}
		if rep := b.lc.Leaks(); !rep.Empty() {
			t.Errorf("the interrupted build left resources behind:\n%s", rep)
		}
		imgs, err := b.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"},
			Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{"elasticsearch-*"}}}})
		if err != nil || len(imgs.Images) != 0 {
			t.Errorf("images after the interrupt: %v %+v", err, imgs)
		}
		if pids := pluginProcesses(b.installed); len(pids) > 0 {
			t.Errorf("plugin processes still running after the interrupt: %v", pids)
		}
	})
}
