package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/node/install/standin"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// clusterTag is the cluster every guest of these tests belongs to.
const clusterTag = "aardvark-cluster"

// guestBootTimeout is generous: the test machine is shared and loaded.
const guestBootTimeout = 3 * time.Minute

// builtBinaries holds each CLI built by goBinary, once per test binary.
var builtBinaries sync.Map // name -> func() (string, error)

// goBinary builds ./cmd/<name> once per test binary into a temp dir outside
// the checkout, as the Makefile builds releases (-trimpath, no symbol table
// or DWARF: the binary the plugin embeds), with env added to the build's
// environment.
func goBinary(t testing.TB, name string, env ...string) string {
	t.Helper()
	build, _ := builtBinaries.LoadOrStore(name, sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "esbake-"+name+"-")
		if err != nil {
			return "", err
		}
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/esbake/packer-plugin-elasticsearch/cmd/"+name)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %w\n%s", name, err, out)
		}
		return bin, nil
	}))
	bin, err := build.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// esnodeBinary is esnode for this machine, static (CGO_ENABLED=0) as the
// plugin embeds it.
func esnodeBinary(t testing.TB) string {
	t.Helper()
	return goBinary(t, "esnode", "CGO_ENABLED=0")
}

// clusterSecurity names each cluster's transport TLS material and elastic
// password in Parameter Store, as example.pkr.hcl does. Every 8.x image the
// tests bake carries it: Elasticsearch 8, and so esnode boot, does not start
// without transport TLS (TransportTLSBootstrapCheck).
var clusterSecurity = spec.Security{
	TransportKey: "/es/{cluster}/transport/key", TransportCertificate: "/es/{cluster}/transport/cert",
	TransportCA: "/es/{cluster}/transport/ca", ElasticPassword: "/es/{cluster}/elastic-password",
}

// bakeNodeSpec is the node the guest tests bake: ES 8.15.3 with
// discovery-ec2, ElasticHQ and the CloudWatch agent, all stand-ins served
// from mirror. The cluster name is left unset so the es_cluster tag (or
// userdata) decides at boot.
func bakeNodeSpec(arts *standin.Artifacts, mirror string) *spec.Node {
	n := &spec.Node{
		MirrorURL:       mirror,
		Elasticsearch:   spec.Elasticsearch{Version: esVersion, SHA512: arts.Elasticsearch.SHA512},
		Plugins:         []spec.Plugin{{Name: spec.PluginDiscoveryEC2, SHA512: arts.PluginEC2.SHA512}},
		ElasticHQ:       spec.ElasticHQ{Enabled: true, SHA512: arts.ElasticHQ.SHA512},
		CloudWatchAgent: spec.CloudWatchAgent{Enabled: true, SHA512: arts.CWAgent.SHA512, LogGroup: "/elasticsearch/" + clusterTag},
	}
	n.SetDefaults()
	return n
}

// baked is the outcome of bakeNode.
type baked struct {
	Image   *testcloud.Image
	Spec    *spec.Node
	Arts    *standin.Artifacts
	Install time.Duration // wall time of `esnode install` on the guest
	Output  string        // esnode install's output
}

// bakeImage bakes a node without the plugin and returns its image, which
// lives as long as cloud.
func bakeImage(t testing.TB, cloud *testcloud.Cloud) *testcloud.Image {
	t.Helper()
	return bakeNode(t, cloud).Image
}

// bakeOptions vary a bake: the base image (default the CIS image) and a
// change to the node spec.
type bakeOptions struct {
	Base testcloud.ImageSpec
	Spec func(*spec.Node)
	// Version is the Elasticsearch release (stand-ins); default esVersion.
	Version string
}

// bakeNode does what the elasticsearch-node provisioner does, by hand: it
// launches a CIS-like instance, uploads esnode and the spec over SSH as
// admin, runs `sudo -n esnode install --generalize` against stand-ins
// served from the host, removes the upload and snapshots the instance
// into an image (as CreateImage would). The bake instance is terminated.
func bakeNode(t testing.TB, cloud *testcloud.Cloud) *baked {
	t.Helper()
	return bakeNodeWith(t, cloud, bakeOptions{})
}

// bakeNodeWith is bakeNode from another base image or with another spec.
func bakeNodeWith(t testing.TB, cloud *testcloud.Cloud, o bakeOptions) *baked {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	if o.Base.Variant == "" {
		o.Base = testcloud.CISImage
	}
	base, err := testcloud.EnsureImage(ctx, o.Base)
	if err != nil {
		t.Fatal(err)
	}
	if o.Version == "" {
		o.Version = esVersion
	}
	arts, mirror := ServeStandins(t, cloud, o.Version)
	n := bakeNodeSpec(arts, mirror)
	n.Elasticsearch.Version = o.Version
	if v, err := spec.ParseVersion(o.Version); err == nil && v.Major >= 8 {
		n.Security = clusterSecurity // 8.x does not start without transport TLS
	}
	if o.Spec != nil {
		o.Spec(n)
		if err := n.Validate(); err != nil {
			t.Fatalf("the changed node spec: %v", err)
		}
	}
	specJSON, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(esnodeBinary(t))
	if err != nil {
		t.Fatal(err)
	}

	key := NewKey(t)
	inst, err := cloud.Launch(ctx, testcloud.LaunchSpec{Image: base, AuthorizedKey: key.Authorized,
		Tags: map[string]string{"Name": "esnode-bake"}, BootTimeout: guestBootTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := inst.Terminate(context.Background()); err != nil {
			t.Errorf("terminate the bake instance: %v", err)
		}
	}()
	client, err := inst.SSH(ctx, "admin", key.Signer)
	if err != nil {
		t.Fatalf("SSH to the bake instance: %v", err)
	}
	defer client.Close()

	const up = "/home/admin/.esnode-bake"
	if _, err := sshRun(client, "mkdir -p -m 0700 "+up, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sshRun(client, "cat > "+up+"/esnode && chmod 0700 "+up+"/esnode", bytes.NewReader(bin)); err != nil {
		t.Fatal(err)
	}
	if _, err := sshRun(client, "cat > "+up+"/node-spec.json", bytes.NewReader(specJSON)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := sshRun(client, "sudo -n "+up+"/esnode install --spec "+up+"/node-spec.json --generalize", nil)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("esnode install on the guest: %v\n%s", err, out)
	}
	if _, err := sshRun(client, "rm -rf "+up, nil); err != nil {
		t.Fatal(err)
	}
	img, err := inst.SnapshotImage(ctx)
	if err != nil {
		t.Fatalf("snapshot the baked instance: %v", err)
	}
	return &baked{Image: img, Spec: n, Arts: arts, Install: took, Output: out}
}

// sshRun runs command over client with stdin and returns its combined
// output; a non-zero exit is an error.
func sshRun(client *ssh.Client, command string, stdin io.Reader) (string, error) {
	sess, err := client.NewSession()
	if err != nil {
		return "", fmt.Errorf("SSH session for %q: %w", command, err)
	}
	defer sess.Close()
	sess.Stdin = stdin
	out, err := sess.CombinedOutput(command)
	if err != nil {
		return string(out), fmt.Errorf("%q over SSH: %w: %s", command, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// vpcAround is the /16 holding subnet, the VPC IMDS reports around the
// cloud's real bridge subnet (so SSH from the host, allowed from the VPC,
// still reaches the guests).
func vpcAround(subnet netip.Prefix) string {
	p, _ := subnet.Addr().Prefix(16)
	return p.String()
}

// waitUnitsSettled waits until esnode-boot has finished (active or failed)
// and Elasticsearch is active, or the context ends; it returns the
// states last seen.
func waitUnitsSettled(ctx context.Context, inst *testcloud.Instance) (bootState, esState string) {
	for {
		out, _ := inst.Exec(ctx, "systemctl is-active esnode-boot.service elasticsearch.service || true")
		f := strings.Fields(out)
		if len(f) == 2 {
			bootState, esState = f[0], f[1]
			if bootState == "failed" || (bootState == "active" && (esState == "active" || esState == "failed")) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
