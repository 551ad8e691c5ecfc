package install

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/audit/eval"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// standinAutoConfig makes the fixture's elasticsearch package run the
// stand-in 8.x security auto-configuration (real openssl material) as its
// postinst, and returns a pointer to what it printed.
func standinAutoConfig(t *testing.T, fx *fixture) *string {
	t.Helper()
	for _, tool := range []string{"python3", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	home := t.TempDir()
	for _, d := range []string{"bin", "lib"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tool, _ := os.ReadFile("standin/files/elasticsearch-keystore")
	lib, _ := os.ReadFile("standin/files/standin_keystore.py")
	fx.sys.keystoreTool = filepath.Join(home, "bin/elasticsearch-keystore")
	if err := os.WriteFile(fx.sys.keystoreTool, []byte(strings.ReplaceAll(string(tool), "@VERSION@", esVersion8)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "lib/standin_keystore.py"), lib, 0o644); err != nil {
		t.Fatal(err)
	}
	printed := new(string)
	fx.sys.postinst = func() {
		fx.sys.write(ESConfigPath, "path.data: /var/lib/elasticsearch\n", 0o660)
		cmd := exec.Command("python3", "standin/files/standin-autoconfig.py")
		cmd.Env = append(os.Environ(), "ES_PATH_CONF="+fx.sys.host(ESConfigDir), "ES_HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("stand-in auto-configuration: %v\n%s", err, out)
		}
		*printed = string(out)
	}
	return printed
}

// bakeGate collects the facts of the baked root and returns the ES-SEC-006
// findings of the bake-stage policies, as the Packer gate evaluates them.
func bakeGate(t *testing.T, root string) []string {
	t.Helper()
	f, err := facts.Collect(context.Background(), facts.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	e, err := eval.New(context.Background(), eval.Options{Stage: eval.StageBake})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := e.Evaluate(context.Background(), eval.Input{Facts: f, Policy: eval.DefaultPolicyOptions()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range fs {
		if x.RuleID == "ES-SEC-006" {
			out = append(out, x.Message)
		}
	}
	return out
}

// keystoreList is the stand-in keystore's entry names, comma-separated.
func keystoreList(t *testing.T, fx *fixture) string {
	t.Helper()
	cmd := exec.Command(fx.sys.keystoreTool, "list")
	cmd.Env = append(os.Environ(), "ES_PATH_CONF="+fx.sys.host(ESConfigDir), "ES_HOME="+filepath.Dir(filepath.Dir(fx.sys.keystoreTool)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("keystore list: %v\n%s", err, out)
	}
	return strings.Join(strings.Fields(string(out)), ",")
}

// TestInstallRemovesAutoConfiguredSecrets: after the 8.x package generated
// its CA, http.p12, transport.p12, keystore passwords and password hash,
// install leaves none of them (files, keystore entries, yml settings that
// name them), the manifest says so and keeps the removed certificates'
// fingerprints, and no password reached install's output.
func TestInstallRemovesAutoConfiguredSecrets(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	printed := standinAutoConfig(t, fx)
	if _, err := fx.run(); err != nil {
		t.Fatalf("%v\n%s", err, fx.out.String())
	}
	pw := regexp.MustCompile(`superuser is : (\S+)`).FindStringSubmatch(*printed)
	if pw == nil {
		t.Fatalf("the auto-configuration printed no password:\n%s", *printed)
	}
	if _, err := os.Stat(fx.sys.host(ESCertsDir)); !os.IsNotExist(err) {
		t.Errorf("%s still exists (%v): %v", ESCertsDir, err, treeFiles(t, fx.sys.host(ESCertsDir)))
	}
	if left := keystoreList(t, fx); left != "keystore.seed" {
		t.Errorf("keystore still holds %s", left)
	}
	yml, _ := os.ReadFile(fx.sys.host(ESConfigPath))
	for _, l := range strings.Split(string(yml), "\n") {
		if strings.HasPrefix(l, "xpack.security.http.ssl") || strings.HasPrefix(l, "xpack.security.transport.ssl") ||
			strings.HasPrefix(l, "xpack.security.enrollment") || strings.HasPrefix(l, "  keystore.path") {
			t.Errorf("still active in elasticsearch.yml: %q", l)
		}
	}
	if !strings.Contains(string(yml), "\nxpack.security.enabled: true\n") {
		t.Errorf("xpack.security.enabled: true was disabled:\n%s", yml)
	}
	m := readManifest(t, fx.root)
	sec := m.Security
	if !sec.Clean() {
		t.Errorf("manifest says the image is not clean: %+v", sec)
	}
	removed := strings.Join(sec.Removed, " ")
	for _, want := range []string{"/etc/elasticsearch/certs/http.p12", "/etc/elasticsearch/certs/transport.p12", "/etc/elasticsearch/certs/http_ca.crt",
		"keystore:autoconfiguration.password_hash", "keystore:xpack.security.transport.ssl.truststore.secure_password",
		"elasticsearch.yml:xpack.security.http.ssl", "elasticsearch.yml:xpack.security.transport.ssl", "elasticsearch.yml:xpack.security.enrollment.enabled"} {
		if !strings.Contains(removed, want) {
			t.Errorf("manifest removed list lacks %s: %v", want, sec.Removed)
		}
	}
	if len(sec.ImageCertificates) != 1 || len(sec.ImageCertificates[0]) != 64 {
		t.Errorf("image certificates (the HTTP CA's fingerprint): %v", sec.ImageCertificates)
	}
	mb, _ := os.ReadFile(filepath.Join(fx.root, spec.ManifestPath))
	for _, where := range []string{fx.out.String(), string(mb)} {
		if strings.Contains(where, pw[1]) {
			t.Errorf("the generated elastic password appears in install's output or manifest")
		}
	}
	if got := bakeGate(t, fx.root); len(got) != 0 {
		t.Errorf("the bake gate flags the cleaned image: %v", got)
	}
	// A re-run keeps the record.
	if _, err := fx.run(); err != nil {
		t.Fatal(err)
	}
	if again := readManifest(t, fx.root).Security; again == nil || len(again.Removed) != len(sec.Removed) {
		t.Errorf("second run lost the record: %+v", again)
	}
}

// TestInstallRecordsSecretsLeftInImage: material install does not own (a
// key someone put in the config dir, a CA key beside its certificate, a
// TLS password in the keystore) is recorded, so the gate fails the bake.
func TestInstallRecordsSecretsLeftInImage(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	standinAutoConfig(t, fx)
	inner := fx.sys.postinst
	fx.sys.postinst = func() {
		inner()
		dir := fx.sys.host(ESConfigDir + "/custom")
		os.MkdirAll(dir, 0o750)
		for _, a := range [][]string{
			{"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/ca.key", "-out", dir + "/ca.crt", "-days", "30", "-subj", "/CN=left CA",
				"-addext", "basicConstraints=critical,CA:true"},
		} {
			if out, err := exec.Command("openssl", a...).CombinedOutput(); err != nil {
				t.Fatalf("openssl: %v\n%s", err, out)
			}
		}
		k, _ := os.ReadFile(dir + "/ca.key")
		c, _ := os.ReadFile(dir + "/ca.crt")
		os.WriteFile(dir+"/ca-bundle.pem", append(c, k...), 0o640)
		cmd := exec.Command(fx.sys.keystoreTool, "add", "-x", "xpack.security.http.ssl.key.secure_password")
		cmd.Env = append(os.Environ(), "ES_PATH_CONF="+fx.sys.host(ESConfigDir), "ES_HOME="+filepath.Dir(filepath.Dir(fx.sys.keystoreTool)))
		cmd.Stdin = strings.NewReader("pw\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("keystore add: %v\n%s", err, out)
		}
	}
	if _, err := fx.run(); err != nil {
		t.Fatalf("%v\n%s", err, fx.out.String())
	}
	sec := readManifest(t, fx.root).Security
	if sec.Clean() {
		t.Fatalf("manifest says clean: %+v", sec)
	}
	if strings.Join(sec.TLSKeys, ",") != "/etc/elasticsearch/custom/ca-bundle.pem,/etc/elasticsearch/custom/ca.key" {
		t.Errorf("tls_keys %v", sec.TLSKeys)
	}
	if strings.Join(sec.CAKeys, ",") != "/etc/elasticsearch/custom/ca-bundle.pem" {
		t.Errorf("ca_keys %v", sec.CAKeys)
	}
	if strings.Join(sec.KeystorePasswords, ",") != "xpack.security.http.ssl.key.secure_password" {
		t.Errorf("keystore_passwords %v", sec.KeystorePasswords)
	}
	got := strings.Join(bakeGate(t, fx.root), "\n")
	for _, want := range []string{"ca-bundle.pem (1 private key(s))", "ca.key", "keystore holds xpack.security.http.ssl.key.secure_password", "manifest records"} {
		if !strings.Contains(got, want) {
			t.Errorf("the bake gate's ES-SEC-006 findings lack %q:\n%s", want, got)
		}
	}
}
