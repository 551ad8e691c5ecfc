package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/node/boot"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testpki"
)

// issueDays signs a node certificate valid for days, in PEM strings.
func issueDays(t *testing.T, ca *testpki.CA, days int) (keyPEM, certPEM string) {
	k, c, _, _ := ca.Issue(t, "node."+clusterTag, time.Now().Add(-time.Hour), time.Now().Add(time.Duration(days)*24*time.Hour))
	return string(k), string(c)
}

// TestE2EClusterTLSOnLocalCloud (issue 13): an 8.x image whose spec names
// the cluster's transport material in Parameter Store; three nodes fetch it
// from the emulator at boot with their instance profile and form one
// cluster over the stand-in's mutual TLS; a node given another cluster's
// CA (userdata security_*) cannot join; a rotation reaches every node with
// `esnode security-refresh`, without a reboot; the audit flags a node whose
// certificate expires in 10 days.
func TestE2EClusterTLSOnLocalCloud(t *testing.T) {
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	// Every 8.x cluster env bakes clusterSecurity and stores the cluster's
	// material (its own CA) in the emulator; another cluster has its own CA.
	e := newClusterEnv(t, ctx, esVersion, bakeOptions{})
	put := ssmPutter(t, ctx, e.lc.Endpoint(), localRegion)
	ca := e.ca
	putClusterMaterial(t, ctx, e.lc.Endpoint(), localRegion, "other")

	tParent := t
	start := time.Now()
	nodes := e.launch("", 0, 0, 1)
	v := e.waitCluster("three nodes form one cluster over mutual TLS", "green", nodes...)
	t.Logf("3 TLS nodes formed cluster %s in %s", v.UUID, time.Since(start).Round(time.Second))
	for _, n := range nodes {
		if got := e.sh(n, "stat -c '%a %U %G' "+boot.SecurityCertsDir+"/transport.key"); got != "640 root elasticsearch" {
			t.Errorf("%s: transport.key is %q, want 640 root elasticsearch", n.id, got)
		}
		if j := e.sh(n, "journalctl -u elasticsearch --no-pager | grep -c 'transport TLS on' || true"); j == "0" {
			t.Errorf("%s: the stand-in did not turn transport TLS on", n.id)
		}
		if j := e.sh(n, "journalctl -u esnode-boot --no-pager"); strings.Contains(j, "BEGIN PRIVATE KEY") || strings.Contains(j, elasticPassword) {
			t.Errorf("%s: a secret in esnode-boot's journal", n.id)
		}
	}

	t.Run("other-ca-cannot-join", func(t *testing.T) {
		e.t = t
		defer func() { e.t = tParent }()
		ud := "security_transport_key=/es/other/transport/key\nsecurity_transport_certificate=/es/other/transport/cert\nsecurity_transport_ca=/es/other/transport/ca\n"
		n := e.launch(ud, 1)[0]
		deadline := time.Now().Add(3 * time.Minute)
		for e.sh(n, "journalctl -u elasticsearch --no-pager | grep -c 'failed to establish a TLS transport connection' || true") == "0" {
			if time.Now().After(deadline) {
				t.Fatalf("the intruder never tried TLS to the cluster:\n%s", e.sh(n, "journalctl -u elasticsearch --no-pager | tail -30"))
			}
			time.Sleep(2 * time.Second)
		}
		if got := e.waitCluster("the cluster without the intruder", "green", nodes...); len(got.Nodes) != 3 {
			t.Errorf("cluster has %d nodes", len(got.Nodes))
		}
		e.terminate(n)
	})

	t.Run("rotation-without-reboot", func(t *testing.T) {
		e.t = t
		defer func() { e.t = tParent }()
		key2, cert2 := issueDays(t, ca, 10) // expires in 10 days: the audit flags it
		put("/es/"+clusterTag+"/transport/key", key2)
		put("/es/"+clusterTag+"/transport/cert", cert2)
		for _, n := range nodes {
			// As an operator would, with the environment esnode-boot.service
			// has (the local cloud's endpoint drop-in stands for VPC endpoints).
			if out := e.sh(n, "env $(systemctl show esnode-boot.service -p Environment --value) esnode security-refresh"); !strings.Contains(out, "replaced 2 file(s)") {
				t.Errorf("%s: security-refresh said %q", n.id, out)
			}
			if got := e.sh(n, "cat "+boot.SecurityCertsDir+"/transport.crt"); got != strings.TrimSpace(cert2) {
				t.Errorf("%s: the rotated certificate did not arrive", n.id)
			}
		}
		e.waitCluster("the cluster after the rotation (no restart)", "green", nodes...)
		res := e.audit(nodes[0])
		found := false
		for _, f := range res.Report.Nodes[0].Findings {
			found = found || f.RuleID == "ES-SEC-012"
		}
		if !found {
			t.Errorf("the audit did not flag the certificate expiring in 10 days")
		}
	})
}
