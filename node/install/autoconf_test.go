package install

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// es8AutoConfig is the block the real 8.x package's postinst appends
// (AutoConfigureNode), as the stand-in .deb writes it.
const es8AutoConfig = `path.data: /var/lib/elasticsearch
#----------------------- BEGIN SECURITY AUTO CONFIGURATION -----------------------
xpack.security.enabled: true
xpack.security.enrollment.enabled: true
xpack.security.http.ssl:
  enabled: true
  keystore.path: certs/http.p12
# Create a new cluster with the current node only
cluster.initial_master_nodes: ["${HOSTNAME}"]

# Allow HTTP API connections from anywhere
http.host: 0.0.0.0
#transport.host: 0.0.0.0
#----------------------- END SECURITY AUTO CONFIGURATION -------------------------
`

// TestNeutraliseAutoConfig: the auto-configured bootstrap list and
// every-interface HTTP bind are commented out, the security block stays,
// and the file keeps its mode.
func TestNeutraliseAutoConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "elasticsearch.yml")
	if err := os.WriteFile(p, []byte(es8AutoConfig), 0o660); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o660); err != nil {
		t.Fatal(err)
	}
	keys, err := neutraliseAutoConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "cluster.initial_master_nodes,http.host" {
		t.Errorf("disabled %v", keys)
	}
	b, _ := os.ReadFile(p)
	got := string(b)
	for _, l := range strings.Split(got, "\n") {
		if strings.HasPrefix(l, "cluster.initial_master_nodes") || strings.HasPrefix(l, "http.host") {
			t.Errorf("still active: %q", l)
		}
	}
	for _, want := range []string{
		AutoConfigDisabledPrefix + `cluster.initial_master_nodes: ["${HOSTNAME}"]` + "\n",
		AutoConfigDisabledPrefix + "http.host: 0.0.0.0\n",
		"xpack.security.enabled: true\n", "xpack.security.http.ssl:\n  enabled: true\n  keystore.path: certs/http.p12\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o660 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	// A second run changes nothing.
	if keys, err := neutraliseAutoConfig(p); err != nil || len(keys) != 0 {
		t.Errorf("second run: %v %v", keys, err)
	}
}
