package standin

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

// The 8.x stand-in's postinst runs the security auto-configuration as the
// real package does; run it as the postinst would, on the extracted tree.
func TestStandIn8AutoConfiguration(t *testing.T) {
	need(t, "dpkg-deb", "python3", "openssl")
	a, err := Build(t.TempDir(), "8.15.3")
	if err != nil {
		t.Fatal(err)
	}
	root := extract(t, a.Elasticsearch.Path)
	home, conf := filepath.Join(root, "usr/share/elasticsearch"), filepath.Join(root, "etc/elasticsearch")
	if info := run(t, "dpkg-deb", "--info", a.Elasticsearch.Path, "postinst"); !strings.Contains(info, "standin-autoconfig.py") {
		t.Errorf("postinst does not run the auto-configuration:\n%s", info)
	}
	autoconf := func() string {
		cmd := exec.Command("python3", filepath.Join(home, "lib/standin-autoconfig.py"))
		cmd.Env = append(os.Environ(), "ES_PATH_CONF="+conf, "ES_HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("auto-configuration: %v\n%s", err, out)
		}
		return string(out)
	}
	out := autoconf()
	m := regexp.MustCompile(`The generated password for the elastic built-in superuser is : (\S{20})\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no generated elastic password in:\n%s", out)
	}
	yml, _ := os.ReadFile(filepath.Join(conf, "elasticsearch.yml"))
	for _, want := range []string{"#----------------------- BEGIN SECURITY AUTO CONFIGURATION -----------------------",
		"xpack.security.enabled: true", "xpack.security.http.ssl:\n  enabled: true\n  keystore.path: certs/http.p12",
		"keystore.path: certs/transport.p12\n  truststore.path: certs/transport.p12",
		`cluster.initial_master_nodes: ["${HOSTNAME}"]`, "\nhttp.host: 0.0.0.0\n", "END SECURITY AUTO CONFIGURATION"} {
		if !strings.Contains(string(yml), want) {
			t.Errorf("elasticsearch.yml lacks %q:\n%s", want, yml)
		}
	}
	// The keystore is in Elasticsearch's format: esnode facts reads it.
	b, _ := os.ReadFile(filepath.Join(conf, "elasticsearch.keystore"))
	kc, err := facts.ParseKeystore(b)
	if err != nil || kc.FormatVersion != 6 {
		t.Fatalf("keystore: format %d, %v", kc.FormatVersion, err)
	}
	var ks struct{ Settings map[string]string }
	ks.Settings = map[string]string{}
	for _, name := range kc.Entries {
		cmd := exec.Command(filepath.Join(home, "bin/elasticsearch-keystore"), "show", name)
		cmd.Env = append(os.Environ(), "ES_PATH_CONF="+conf, "ES_HOME="+home)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("elasticsearch-keystore show %s: %v", name, err)
		}
		ks.Settings[name] = strings.TrimSuffix(string(out), "\n")
	}
	for _, k := range []string{"xpack.security.http.ssl.keystore.secure_password", "xpack.security.transport.ssl.keystore.secure_password",
		"xpack.security.transport.ssl.truststore.secure_password", "autoconfiguration.password_hash"} {
		if ks.Settings[k] == "" {
			t.Errorf("keystore lacks %s: %v", k, ks.Settings)
		}
	}
	if strings.Contains(string(b), m[1]) || strings.Contains(string(yml), m[1]) {
		t.Error("the elastic password itself was written down")
	}
	// http.p12 opens with its keystore password (MAC verified) and holds two
	// private keys, the node's and the CA's; transport.p12 one.
	for _, tc := range []struct {
		file, pw string
		keys     int
	}{
		{"http.p12", ks.Settings["xpack.security.http.ssl.keystore.secure_password"], 2},
		{"transport.p12", ks.Settings["xpack.security.transport.ssl.keystore.secure_password"], 1},
	} {
		out := run(t, "openssl", "pkcs12", "-in", filepath.Join(conf, "certs", tc.file), "-passin", "pass:"+tc.pw, "-nodes", "-info")
		if n := strings.Count(out, "-----BEGIN PRIVATE KEY-----"); n != tc.keys || !strings.Contains(out, "MAC:") {
			t.Errorf("%s: %d private keys, want %d:\n%s", tc.file, n, tc.keys, out)
		}
	}
	if out := run(t, "openssl", "x509", "-in", filepath.Join(conf, "certs/http_ca.crt"), "-noout", "-subject"); !strings.Contains(out, "Elasticsearch security auto-configuration HTTP CA") {
		t.Errorf("http_ca.crt subject: %s", out)
	}
	if out := autoconf(); !strings.Contains(out, "Skipping security auto configuration") {
		t.Errorf("second run reconfigured:\n%s", out)
	}
}
