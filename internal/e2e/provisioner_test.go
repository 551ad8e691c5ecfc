package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/esbake/packer-plugin-elasticsearch/internal/plugintest"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/node/install/standin"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// bakeConfig is an elasticsearch-node provisioner block whose artifacts are
// the stand-ins served from mirror.
func bakeConfig(arts *standin.Artifacts, mirror string) map[string]interface{} {
	return map[string]interface{}{
		"mirror_url":    mirror,
		"elasticsearch": map[string]interface{}{"version": esVersion, "sha512": arts.Elasticsearch.SHA512},
		"plugin":        []map[string]interface{}{{"name": "discovery-ec2", "sha512": arts.PluginEC2.SHA512}},
		"elastichq":     map[string]interface{}{"enabled": true, "sha512": arts.ElasticHQ.SHA512},
		"cloudwatch_agent": map[string]interface{}{
			"enabled": true, "sha512": arts.CWAgent.SHA512, "log_group": "/elasticsearch/aardvark-cluster",
		},
		"cluster": map[string]interface{}{"name": "aardvark-cluster"},
		// 8.x does not start without transport TLS: the material the guests'
		// Parameter Store holds (guestSecrets), as example.pkr.hcl names it.
		"security": map[string]interface{}{
			"transport_key": clusterSecurity.TransportKey, "transport_certificate": clusterSecurity.TransportCertificate,
			"transport_ca": clusterSecurity.TransportCA, "elastic_password": clusterSecurity.ElasticPassword,
		},
	}
}

// TestE2EProvisionerBakesNodeOnGuest drives elasticsearch-node through the
// plugin protocol and the SDK's SSH communicator against a CIS-like Debian
// guest, installing a whole node from stand-in artifacts served over HTTP.
func TestE2EProvisionerBakesNodeOnGuest(t *testing.T) {
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	cloud, inst, key := launchGuest(t, ctx, testcloud.CISImage, testcloud.LaunchSpec{
		Tags: map[string]string{"es_cluster": "aardvark-cluster"}})
	arts, mirror := ServeStandins(t, cloud, esVersion)

	bin := plugintest.Binary(t)
	provisionErr := func(t *testing.T) (string, error) {
		t.Helper()
		prov := plugintest.Start(t, bin, "provisioner", "node").Provisioner()
		if err := prov.Prepare(bakeConfig(arts, mirror), plugintest.PackerVars("elasticsearch-ami")); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		var out SafeBuffer
		ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &out, ErrorWriter: &out}
		comm := Communicator(t, inst, "admin", key)
		err := prov.Provision(ctx, ui, comm, map[string]interface{}{})
		return out.String(), err
	}
	provision := func(t *testing.T) string {
		t.Helper()
		out, err := provisionErr(t)
		if err != nil {
			t.Fatalf("Provision: %v\noutput:\n%s", err, out)
		}
		return out
	}
	out := provision(t)
	t.Logf("first bake:\n%s", out)
	if !strings.Contains(out, "Policy gate passed") {
		t.Errorf("the bake-time policy gate did not run or did not pass:\n%s", out)
	}

	sh := func(cmd string) string {
		t.Helper()
		s, err := inst.Exec(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(s)
	}
	if v := sh(`dpkg-query -W -f='${Version}' elasticsearch`); v != esVersion {
		t.Errorf("elasticsearch package version %q, want %s", v, esVersion)
	}
	// The 8.x stand-in .deb ran the package's security auto-configuration
	// at install (its marked block in elasticsearch.yml); the bake, gate
	// passed, leaves none of its bootstrap list or HTTP-on-every-interface
	// active in the image.
	yml := sh("cat /etc/elasticsearch/elasticsearch.yml")
	if !strings.Contains(yml, "BEGIN SECURITY AUTO CONFIGURATION") {
		t.Errorf("the 8.x stand-in's install did not run the security auto-configuration:\n%s", yml)
	}
	for _, l := range strings.Split(yml, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "cluster.initial_master_nodes") || strings.HasPrefix(l, "http.host") {
			t.Errorf("the baked elasticsearch.yml keeps an active %q", l)
		}
	}
	if v := sh(`dpkg-query -W -f='${Status}' amazon-cloudwatch-agent`); v != "install ok installed" {
		t.Errorf("cloudwatch agent package status %q", v)
	}
	if v := sh(`getent passwd elastichq | cut -d: -f7`); v != "/usr/sbin/nologin" {
		t.Errorf("elastichq user shell %q, want /usr/sbin/nologin", v)
	}
	for _, unit := range []string{"elasticsearch.service", "esnode-boot.service", "elastichq.service"} {
		if v := sh("systemctl is-enabled " + unit + " || true"); v != "enabled" {
			t.Errorf("%s is %q, want enabled", unit, v)
		}
	}
	if v := sh("systemctl is-active elasticsearch.service || true"); v != "inactive" {
		t.Errorf("elasticsearch.service is %q after the bake; it must not be started", v)
	}
	if v := sh("cat /etc/sysctl.d/*elasticsearch*.conf"); !strings.Contains(v, "vm.max_map_count") || !strings.Contains(v, "262144") {
		t.Errorf("sysctl drop-in: %q", v)
	}
	if v := sh("test -d /usr/share/elasticsearch/plugins/discovery-ec2 && echo yes || echo no"); v != "yes" {
		t.Errorf("discovery-ec2 plugin not installed")
	}
	if v := sh("ls -A /home/admin/.esnode-bake /var/cache/esnode/downloads 2>/dev/null | wc -l"); v != "0" {
		t.Errorf("bake leftovers remain: %s", sh("ls -la /home/admin/.esnode-bake /var/cache/esnode/downloads 2>&1"))
	}
	if v := sh("find / -xdev -path /proc -prune -o -type f -perm -0002 -print 2>/dev/null | grep -E '^/(etc|usr/share/elasticsearch|usr/share/elastichq|usr/local)' || true"); v != "" {
		t.Errorf("world-writable files after the bake:\n%s", v)
	}

	m, err := spec.ParseManifest([]byte(sh("cat " + spec.ManifestPath)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec.Elasticsearch.Version != esVersion || m.SpecHash != m.Spec.Hash() {
		t.Errorf("manifest spec %s hash %s (spec says %s)", m.Spec.Elasticsearch.Version, m.SpecHash, m.Spec.Hash())
	}
	sums := map[string]string{}
	for _, a := range m.Artifacts {
		sums[a.Name] = a.SHA512
	}
	for name, want := range map[string]string{"elasticsearch": arts.Elasticsearch.SHA512, "plugin/discovery-ec2": arts.PluginEC2.SHA512, "elastichq": arts.ElasticHQ.SHA512, "cloudwatch-agent": arts.CWAgent.SHA512} {
		if sums[name] != want {
			t.Errorf("manifest sum of %s = %q, want %q", name, sums[name], want)
		}
	}
	if len(m.Files) == 0 {
		t.Fatal("manifest lists no files")
	}
	for _, f := range m.Files {
		got := sh("stat -c '%a %U %G' " + f.Path + " && sha256sum " + f.Path + " | cut -d' ' -f1")
		lines := strings.Split(got, "\n")
		mode := strings.TrimLeft(f.Mode, "0")
		if want := mode + " " + f.Owner + " " + f.Group; lines[0] != want || lines[1] != f.SHA256 {
			t.Errorf("%s on the guest: %q, manifest says %q sha256 %s", f.Path, got, want, f.SHA256)
		}
	}
	// Issue 13: the 8.x package's security auto-configuration ran in the
	// stand-in's postinst; nothing of it stays in the image.
	if v := sh("ls -A /etc/elasticsearch/certs 2>/dev/null | wc -l"); v != "0" {
		t.Errorf("auto-configured TLS material left in the image: %s", sh("ls -la /etc/elasticsearch/certs"))
	}
	if v := sh("/usr/share/elasticsearch/bin/elasticsearch-keystore list"); strings.Contains(v, "secure_password") || strings.Contains(v, "password_hash") {
		t.Errorf("keystore passwords or the password hash left in the image:\n%s", v)
	}
	if v := sh("grep -E '^xpack.security.(http|transport).ssl' /etc/elasticsearch/elasticsearch.yml || true"); v != "" {
		t.Errorf("active settings naming removed material:\n%s", v)
	}
	if !m.Security.Clean() || len(m.Security.Removed) < 7 {
		t.Errorf("manifest security record: %+v", m.Security)
	}
	if doc, err := json.MarshalIndent(m.Files, "", " "); err == nil && os.Getenv("ESBAKE_E2E_VERBOSE") != "" {
		t.Logf("manifest files: %s", doc)
	}

	manifestBefore := sh("sha256sum " + spec.ManifestPath)
	out = provision(t)
	if !strings.Contains(out, "nothing to change") {
		t.Errorf("second bake did not say it changed nothing:\n%s", out)
	}
	if after := sh("sha256sum " + spec.ManifestPath); after != manifestBefore {
		t.Errorf("second bake rewrote the manifest")
	}

	// The seed's chmod 777: the gate must fail the bake.
	sh("chmod 0777 /etc/elasticsearch")
	out, err = provisionErr(t)
	if err == nil || !strings.Contains(err.Error(), "ES-SEC-004") {
		t.Fatalf("a world-writable /etc/elasticsearch passed the policy gate: err=%v\n%s", err, out)
	}
}

// BenchmarkE2EProvisionWholeNode is the provisioning time of a whole node:
// elasticsearch-node through the plugin protocol and the SDK's SSH
// communicator on a fresh CIS-like guest (upload of esnode and the spec,
// esnode install of Elasticsearch, discovery-ec2, ElasticHQ and the
// CloudWatch agent from stand-ins, the policy gate). provision-s/op is
// that wall time; the guest's launch is not counted.
func BenchmarkE2EProvisionWholeNode(b *testing.B) {
	testcloud.RequireHost(b)
	// The SDK's SSH communicator logs on the standard logger, which would
	// split the benchmark's result line.
	log.SetOutput(io.Discard)
	b.Cleanup(func() { log.SetOutput(os.Stderr) })
	var total time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cloud, inst, key := launchGuest(b, ctx, testcloud.CISImage, testcloud.LaunchSpec{
			Tags: map[string]string{"es_cluster": clusterTag}, BootTimeout: guestBootTimeout})
		cfg := bakeConfig(ServeStandins(b, cloud, esVersion))
		start := time.Now()
		out, err := provisionOnGuest(ctx, b, inst, key, cfg)
		total += time.Since(start)
		cancel()
		if err != nil {
			b.Fatalf("Provision: %v\n%s", err, out)
		}
		if !strings.Contains(out, "Policy gate passed") {
			b.Fatalf("the provisioner did not reach its policy gate:\n%s", out)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "provision-s/op")
}
