package standin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testpki"
)

// material writes a node key and certificate signed by ca, and the CA, into
// dir; it returns the yml lines that enable transport TLS with them.
func material(t *testing.T, ca *testpki.CA, dir string) string {
	t.Helper()
	keyPEM, certPEM, _, _ := ca.Issue(t, "node", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	os.MkdirAll(dir, 0o750)
	os.WriteFile(filepath.Join(dir, "transport.key"), keyPEM, 0o640)
	os.WriteFile(filepath.Join(dir, "transport.crt"), certPEM, 0o640)
	os.WriteFile(filepath.Join(dir, "transport-ca.crt"), ca.PEM, 0o640)
	return "xpack.security.transport.ssl.enabled: true\n" +
		"xpack.security.transport.ssl.key: " + filepath.Join(dir, "transport.key") + "\n" +
		"xpack.security.transport.ssl.certificate: " + filepath.Join(dir, "transport.crt") + "\n" +
		"xpack.security.transport.ssl.certificate_authorities: [" + filepath.Join(dir, "transport-ca.crt") + "]\n" +
		"xpack.security.transport.ssl.verification_mode: certificate\n"
}

// TestStandInTransportMutualTLS: two 8.x nodes with their cluster's CA form
// a cluster over TLS; a node whose certificate another cluster's CA signed
// cannot join (mutual TLS refuses it both ways) and says why; a node's
// rotated certificate is reloaded without a restart and the cluster holds.
func TestStandInTransportMutualTLS(t *testing.T) {
	need(t, "python3")
	c := newStandinCluster(t, "8.15.3")
	prod, other := testpki.NewCA(t, "prod transport CA"), testpki.NewCA(t, "other cluster CA")
	disc := "discovery.seed_providers: ec2\ndiscovery.ec2.tag.es_cluster: aardvark\ncluster.initial_master_nodes: [es-1, es-2]\n"
	dirs := []string{t.TempDir(), t.TempDir()}
	n1 := c.start(c.launchInstance(1, "aardvark"), "es-1", "", disc+material(t, prod, dirs[0]))
	n2 := c.start(c.launchInstance(2, "aardvark"), "es-2", "", disc+material(t, prod, dirs[1]))
	n1.waitOutput(t, "transport TLS on (verification_mode certificate, client_authentication required)")
	views := c.waitFor("two nodes over TLS", func(v clusterView) bool { return len(v.Nodes) == 2 && v.UUID != "" && v.UUID != "_na_" }, n1, n2)
	uuid := views["es-1"].UUID

	intruder := c.start(c.launchInstance(1, "aardvark"), "es-x", "", "discovery.seed_providers: ec2\ndiscovery.ec2.tag.es_cluster: aardvark\n"+material(t, other, t.TempDir()))
	intruder.waitOutput(t, "failed to establish a TLS transport connection")
	n1.waitOutput(t, "closing connection from")
	var v clusterView
	c.get(n1, "/_cluster/state/master_node,nodes", &v)
	if len(v.Nodes) != 2 || strings.Contains(v.names(), "es-x") {
		t.Errorf("the node with another cluster's CA joined: %+v", v)
	}
	if code := c.get(intruder, "/_cluster/health", nil); code != 503 {
		t.Errorf("intruder health %d, want 503 (no master)", code)
	}

	// Rotation: new material from the same CA, no restart.
	time.Sleep(10 * time.Millisecond) // a distinct mtime
	material(t, prod, dirs[0])
	n1.waitOutput(t, "reloaded the changed SSL material of [xpack.security.transport.ssl]")
	c.waitFor("the cluster holds after the rotation", func(v clusterView) bool { return len(v.Nodes) == 2 && v.UUID == uuid }, n1, n2)
}
