package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/esbake/packer-plugin-elasticsearch/internal/plugintest"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// es6Version is the 6.x release baked (as stand-ins) to exercise the Java
// step: only 6.x needs a separate Java.
const es6Version = "6.8.23"

// javaPackage is a real distro Java that Elasticsearch 6.8 accepts (below
// 18) and that the host's suite (Debian 12) has; the spec's default,
// openjdk-11-jre-headless, is not in Debian 12.
const javaPackage = "openjdk-17-jre-headless"

// javaImage is the CIS-like image with the distro JRE baked in by
// debootstrap on the host: guests have no outside network, so esnode's
// java step must find the package installed and skip apt.
var javaImage = testcloud.ImageSpec{Variant: testcloud.VariantCIS, ExtraPackages: []string{javaPackage}}

// provisionOnGuest drives elasticsearch-node through the plugin protocol with
// cfg against inst over the SDK's SSH communicator, as Packer would, and
// returns the UI output.
func provisionOnGuest(ctx context.Context, t testing.TB, inst *testcloud.Instance, key Key, cfg map[string]interface{}) (string, error) {
	t.Helper()
	prov := plugintest.Start(t, plugintest.Binary(t), "provisioner", "node").Provisioner()
	if err := prov.Prepare(cfg, plugintest.PackerVars("elasticsearch-ami")); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	var out SafeBuffer
	ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &out, ErrorWriter: &out}
	comm := Communicator(t, inst, "admin", key)
	err := prov.Provision(ctx, ui, comm, map[string]interface{}{})
	return out.String(), err
}

// guestShell runs commands on inst (through nsenter, not SSH), failing the
// test on a non-zero exit.
func guestShell(ctx context.Context, t *testing.T, inst *testcloud.Instance) func(string) string {
	return func(cmd string) string {
		t.Helper()
		s, err := inst.Exec(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(s)
	}
}

// TestE2EJavaES6OnGuest bakes Elasticsearch 6.8 (stand-ins) with the
// provisioner on a CIS-like guest whose image carries the real distro JRE,
// and checks the node uses that Java.
func TestE2EJavaES6OnGuest(t *testing.T) {
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	// The image with the JRE baked in is built once (minutes) and cached.
	cloud, inst, key := launchGuest(t, ctx, javaImage, testcloud.LaunchSpec{
		Tags: map[string]string{"es_cluster": clusterTag}, BootTimeout: guestBootTimeout})
	sh := guestShell(ctx, t, inst)
	// The premise: the JRE comes from the image, so the bake needs no apt.
	if v := sh(`dpkg-query -W -f='${Status}' ` + javaPackage + ` 2>&1 || true`); v != "install ok installed" {
		t.Fatalf("%s is not installed in the image (%q); the test image build did not include it", javaPackage, v)
	}

	arts, mirror := ServeStandins(t, cloud, es6Version)
	cfg := bakeConfig(arts, mirror)
	cfg["elasticsearch"] = map[string]interface{}{"version": es6Version, "sha512": arts.Elasticsearch.SHA512}
	cfg["java"] = map[string]interface{}{"package": javaPackage}
	cfg["cluster"] = map[string]interface{}{"name": "aardvark-cluster", "master_nodes": 3}
	delete(cfg, "security") // 6.x has no transport TLS requirement to meet

	start := time.Now()
	out, err := provisionOnGuest(ctx, t, inst, key, cfg)
	if err != nil {
		t.Fatalf("Provision: %v\noutput:\n%s", err, out)
	}
	t.Logf("bake took %s:\n%s", time.Since(start).Round(time.Second), out)
	if !strings.Contains(out, "Policy gate passed") {
		t.Errorf("the bake-time policy gate did not run or did not pass:\n%s", out)
	}
	// The JRE came with the image: the java step must not have gone to apt.
	if !strings.Contains(out, "java: unchanged") {
		t.Errorf("esnode's java step did not find %s already installed:\n%s", javaPackage, out)
	}

	jreVersion := sh(`dpkg-query -W -f='${Version}' ` + javaPackage)
	if jreVersion == "" {
		t.Errorf("dpkg-query reports no version for %s", javaPackage)
	}
	// Multi-Arch: same packages (the JREs) are listed arch-qualified.
	if v := sh(`dpkg-query -W ` + javaPackage); !strings.HasPrefix(v, javaPackage+"\t") && !strings.HasPrefix(v, javaPackage+":") {
		t.Errorf("dpkg-query -W %s: %q", javaPackage, v)
	}
	if v := sh("java -version 2>&1"); !strings.Contains(strings.ToLower(v), "openjdk") {
		t.Errorf("java -version on the guest: %q, want an OpenJDK runtime", v)
	}
	if v := sh(`dpkg-query -W -f='${Version}' elasticsearch`); v != es6Version {
		t.Errorf("elasticsearch package version %q, want %s", v, es6Version)
	}
	if v := sh("test -d /usr/share/elasticsearch/plugins/discovery-ec2 && echo yes || echo no"); v != "yes" {
		t.Errorf("discovery-ec2 plugin not installed")
	}
	for _, unit := range []string{"elasticsearch.service", "esnode-boot.service", "elastichq.service"} {
		if v := sh("systemctl is-enabled " + unit + " || true"); v != "enabled" {
			t.Errorf("%s is %q, want enabled", unit, v)
		}
	}

	m, err := spec.ParseManifest([]byte(sh("cat " + spec.ManifestPath)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec.Elasticsearch.Version != es6Version || m.Spec.Java.Package != javaPackage {
		t.Errorf("manifest spec: elasticsearch %q java %q, want %s and %s", m.Spec.Elasticsearch.Version, m.Spec.Java.Package, es6Version, javaPackage)
	}
	if got, ok := m.Packages[javaPackage]; !ok || got != jreVersion {
		t.Errorf("manifest packages %v: want %s at %s (the installed version)", m.Packages, javaPackage, jreVersion)
	}
	if got := m.Packages["elasticsearch"]; got != es6Version {
		t.Errorf("manifest lists elasticsearch %q, want %s", got, es6Version)
	}
}

// TestE2ERebootCheckOnGuest runs the provisioner with reboot_check: it must
// reboot the guest through execute_command, reconnect over the SDK's SSH
// communicator and see esnode-boot succeed on the new boot.
func TestE2ERebootCheckOnGuest(t *testing.T) {
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	// esnode-boot needs a cluster name at boot; the tag matches cluster.name.
	cloud, inst, key := launchSecuredGuest(t, ctx, testcloud.CISImage, testcloud.LaunchSpec{
		Tags: map[string]string{"es_cluster": clusterTag}, BootTimeout: guestBootTimeout}, clusterTag)
	sh := guestShell(ctx, t, inst)
	bootBefore := sh("cat /proc/sys/kernel/random/boot_id")

	cfg := bakeConfig(ServeStandins(t, cloud, esVersion))
	cfg["cluster"] = map[string]interface{}{"name": clusterTag}
	cfg["reboot_check"] = true
	cfg["reboot_timeout"] = "3m"

	start := time.Now()
	out, err := provisionOnGuest(ctx, t, inst, key, cfg)
	if err != nil {
		t.Fatalf("Provision with reboot_check: %v\noutput:\n%s", err, out)
	}
	t.Logf("bake with reboot check took %s:\n%s", time.Since(start).Round(time.Second), out)
	if !strings.Contains(out, "Reboot check passed") {
		t.Errorf("the reboot check did not report success:\n%s", out)
	}
	if st := inst.State(); st != testcloud.StateRunning {
		t.Fatalf("instance is %s after the reboot check, want running", st)
	}
	if after := sh("cat /proc/sys/kernel/random/boot_id"); after == "" || after == bootBefore {
		t.Errorf("boot id %q after the reboot check, was %q: the guest did not reboot", after, bootBefore)
	}
	if v := sh("systemctl show -p Result --value esnode-boot.service"); v != "success" {
		t.Errorf("esnode-boot.service result %q on the new boot", v)
	}
}
