package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/esbake/packer-plugin-elasticsearch/audit"
	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
	"github.com/esbake/packer-plugin-elasticsearch/audit/transport"
)

// ssmAuditMatchesSSH audits the cluster's baked, booted nodes (the demo's
// kind of node) found by their cluster tag, once over SSH and once over
// SSM Run Command (the emulator runs esnode facts in each guest as root),
// and wants the same findings per node.
func (e *clusterEnv) ssmAuditMatchesSSH(members []*clusterNode) {
	parent := e.t
	parent.Run("ssm-audit-matches-ssh", func(t *testing.T) {
		e.t = t
		defer func() { e.t = parent }()
		// The default credential chain, from the environment, as a CI job gives it.
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDE2E")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "stand-in-secret")
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
		work := t.TempDir()
		var kh strings.Builder
		for _, n := range members {
			fmt.Fprintln(&kh, knownhosts.Line([]string{knownhosts.Normalize(n.inst.PrivateIP() + ":22")}, n.inst.HostKey()))
		}
		knownHosts := filepath.Join(work, "known_hosts")
		if err := os.WriteFile(knownHosts, []byte(kh.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.lc.Server().CreateBucket("us-east-1", "esaudit-cluster-output"); err != nil {
			t.Fatal(err)
		}
		run := func(tr string) map[string]report.Node {
			ep := e.lc.Endpoint()
			res, err := audit.Run(e.ctx, audit.Options{
				EC2:         &audit.EC2Discovery{Tags: []string{"es_cluster=" + clusterTag}},
				AWS:         audit.AWSConfig{Region: "us-east-1", EC2Endpoint: ep, SSMEndpoint: ep, S3Endpoint: ep, AutoScalingEndpoint: ep},
				Transport:   tr,
				SSH:         transport.SSHConfig{User: "admin", KnownHostsFile: knownHosts, Signers: []ssh.Signer{e.key.Signer}, Sudo: true},
				SSM:         transport.SSMConfig{S3Bucket: "esaudit-cluster-output", S3KeyPrefix: "esaudit", PollInterval: 500 * time.Millisecond},
				NodeTimeout: 3 * time.Minute, FailOn: "critical", Formats: []string{"json"}, OutDir: filepath.Join(work, tr),
			})
			if err != nil {
				t.Fatalf("audit over %s: %v", tr, err)
			}
			nodes := map[string]report.Node{}
			for _, n := range res.Report.Nodes {
				nodes[n.InstanceID] = n
			}
			return nodes
		}
		viaSSH, viaSSM := run(target.SSH), run(target.SSM)
		for _, n := range members {
			s, m := viaSSH[n.id], viaSSM[n.id]
			if s.Status != report.NodeOK || m.Status != report.NodeOK {
				t.Errorf("%s: over SSH %s %s, over SSM %s %s; want both audited", n.id, s.Status, s.Error, m.Status, m.Error)
				continue
			}
			t.Logf("%s: %d findings over SSM %v", n.id, len(m.Findings), auditFindingIDs(&m))
			if got, want := auditFindingIDs(&m), auditFindingIDs(&s); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: SSM findings %v, SSH findings %v: want the same\nSSM:\n%sSSH:\n%s", n.id, got, want, auditFindingText(&m), auditFindingText(&s))
			}
		}
		if len(viaSSH) != len(members) || len(viaSSM) != len(members) {
			t.Errorf("audited %d nodes over SSH and %d over SSM, want the %d members", len(viaSSH), len(viaSSM), len(members))
		}
	})
}
