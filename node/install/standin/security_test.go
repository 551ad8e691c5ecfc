package standin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testpki"
)

// Elastic's wording of the x-pack transport TLS bootstrap checks.
const (
	tlsCheck8 = "Transport SSL must be enabled if security is enabled. Please set [xpack.security.transport.ssl.enabled] to [true] or disable security by setting [xpack.security.enabled] to [false]"
	tlsCheck7 = "Transport SSL must be enabled if security is enabled on a [basic] license. Please set [xpack.security.transport.ssl.enabled] to [true] or disable security by setting [xpack.security.enabled] to [false]"
)

// enforced forces production mode on a loopback address, with unequal heap
// sizes so that the bootstrap checks always fail (whatever the host's limits)
// and the list of failures can be read.
const enforced = "ES_JAVA_OPTS=-Xms512m -Xmx1g -Des.enforce.bootstrap.checks=true"

// TestStandInTransportTLSBootstrapCheck: in production mode 8.x refuses
// security (on by default, or set) without transport TLS, and accepts it
// with transport TLS or with security off; in development mode (loopback,
// no enforcement) the node starts without TLS, as the real one does.
func TestStandInTransportTLSBootstrapCheck(t *testing.T) {
	need(t, "python3")
	c := newStandinCluster(t, "8.15.3")
	disc := "discovery.seed_hosts: [127.88.7.9]\n"
	tlsYML := material(t, testpki.NewCA(t, "check CA"), t.TempDir())
	for _, tc := range []struct {
		name, yml string
		refused   bool
	}{
		{"security-default", "", true},
		{"security-on", "xpack.security.enabled: true\n", true},
		{"transport-ssl-false", "xpack.security.transport.ssl.enabled: false\n", true},
		{"security-off", "xpack.security.enabled: false\n", false},
		{"transport-tls", tlsYML, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := c.start("127.88.7.1", "es-1", "", disc+tc.yml, enforced).exited(t)
			if code != 78 || !strings.Contains(out, "bootstrap checks failed") {
				t.Fatalf("exit %d, want 78 with the bootstrap check failures:\n%s", code, out)
			}
			if got := strings.Contains(out, tlsCheck8); got != tc.refused {
				t.Errorf("transport TLS check failed: %v, want %v:\n%s", got, tc.refused, out)
			}
		})
	}
	t.Run("development-mode-starts", func(t *testing.T) {
		n := c.start("127.88.7.2", "es-2", "", "discovery.type: single-node\n")
		n.waitOutput(t, "bootstrap checks not enforced")
		n.waitOutput(t, "listening on")
		if strings.Contains(n.out.String(), "Transport SSL") {
			t.Errorf("development mode applied the TLS check:\n%s", n.out)
		}
	})
}

// TestStandIn7TLSLicenseBootstrapCheck: 7.x requires transport TLS only
// when security is explicitly on and the node's cluster state holds the
// self-generated basic license, i.e. once it has formed a cluster.
func TestStandIn7TLSLicenseBootstrapCheck(t *testing.T) {
	need(t, "python3")
	c := newStandinCluster(t, "7.17.25")
	formed := t.TempDir()
	if err := os.MkdirAll(filepath.Join(formed, "standin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(formed, "standin", "node-state.json"), []byte(`{"node_id":"n1","cluster_uuid":"u1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	disc := "discovery.seed_hosts: [127.88.8.9]\n"
	for _, tc := range []struct {
		name, data, yml string
		refused         bool
	}{
		{"formed-explicit", formed, "xpack.security.enabled: true\n", true},
		{"fresh-explicit", "", "xpack.security.enabled: true\n", false},
		{"formed-default", formed, "", false},
		{"formed-trial", formed, "xpack.security.enabled: true\nxpack.license.self_generated.type: trial\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := c.start("127.88.8.1", "es-1", tc.data, disc+tc.yml, enforced).exited(t)
			if code != 78 {
				t.Fatalf("exit %d, want 78:\n%s", code, out)
			}
			if got := strings.Contains(out, tlsCheck7); got != tc.refused {
				t.Errorf("TLS license check failed: %v, want %v:\n%s", got, tc.refused, out)
			}
		})
	}
}

// TestStandInRefusesSSLSettings: 8.x SSLService refuses, at start and in any
// mode, an SSL layer enabled without a key and certificate, and SSL settings
// without their layer's enabled key.
func TestStandInRefusesSSLSettings(t *testing.T) {
	need(t, "python3")
	c := newStandinCluster(t, "8.15.3")
	for _, tc := range []struct{ name, yml, want string }{
		{"http-enabled-no-key", "xpack.security.http.ssl.enabled: true\n",
			"org.elasticsearch.ElasticsearchSecurityException: invalid SSL configuration for xpack.security.http.ssl - server ssl configuration requires a key and certificate, but these have not been configured; you must set either [xpack.security.http.ssl.keystore.path], or both [xpack.security.http.ssl.key] and [xpack.security.http.ssl.certificate]"},
		{"http-enabled-key-only", "xpack.security.http.ssl.enabled: true\nxpack.security.http.ssl.key: http.key\n",
			"invalid SSL configuration for xpack.security.http.ssl - server ssl configuration requires a key and certificate"},
		{"transport-enabled-no-key", "xpack.security.transport.ssl.enabled: true\nxpack.security.transport.ssl.verification_mode: certificate\n",
			"invalid SSL configuration for xpack.security.transport.ssl - server ssl configuration requires a key and certificate, but these have not been configured; you must set either [xpack.security.transport.ssl.keystore.path], or both [xpack.security.transport.ssl.key] and [xpack.security.transport.ssl.certificate]"},
		{"http-settings-without-enabled", "xpack.security.http.ssl.key: http.key\nxpack.security.http.ssl.certificate: http.crt\n",
			"invalid configuration for xpack.security.http.ssl - [xpack.security.http.ssl.enabled] is not set, but the following settings have been configured in elasticsearch.yml : [xpack.security.http.ssl.certificate,xpack.security.http.ssl.key]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := c.start("127.88.9.1", "es-1", "", "discovery.type: single-node\n"+tc.yml).exited(t)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output lacks %q:\n%s", code, tc.want, out)
			}
		})
	}
	// HTTP TLS switched off explicitly with no material is fine.
	n := c.start("127.88.9.2", "es-2", "", "discovery.type: single-node\nxpack.security.http.ssl.enabled: false\n")
	n.waitOutput(t, "listening on")
}
