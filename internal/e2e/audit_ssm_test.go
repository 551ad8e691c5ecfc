package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/audit/transport"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/localcloud"
)

// esauditBinary is the esaudit CLI, built once per test binary.
func esauditBinary(t testing.TB) string {
	t.Helper()
	return goBinary(t, "esaudit")
}

// TestE2EAuditOverSSMOnLocalCloud runs `esaudit --transport ssm` against three guests of the
// local cloud, discovered by tag: the emulator delivers Run Command to each guest's "agent"
// (the script runs as root inside the guest), one agent is offline (Undeliverable), and one
// node's facts exceed the 24,000 characters SSM returns, so they come back through S3. The
// same nodes audited with `--transport ssh` must give the same findings; the offline node is
// a node error, not a pass; nothing is left in S3 or running.
func TestE2EAuditOverSSMOnLocalCloud(t *testing.T) {
	lc := localcloud.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if _, err := lc.RegisterBaseImages(ctx); err != nil {
		t.Fatalf("RegisterBaseImages: %v", err)
	}
	esaudit := esauditBinary(t)
	esnode := esnodeBinary(t)
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"), config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}), config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDE2E", "stand-in-secret", "")))
	if err != nil {
		t.Fatal(err)
	}
	ec := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(lc.Endpoint()) })
	imgs, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"debian-12-cis-hardened-*"}}}})
	if err != nil || len(imgs.Images) != 1 {
		t.Fatalf("CIS seed image: %v (%d found)", err, len(imgs.Images))
	}
	kp, err := ec.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("ssm-e2e"), KeyType: types.KeyTypeEd25519})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	keyFile := filepath.Join(work, "id_ed25519")
	if err := os.WriteFile(keyFile, []byte(aws.ToString(kp.KeyMaterial)), 0o600); err != nil {
		t.Fatal(err)
	}
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, MinCount: aws.Int32(3), MaxCount: aws.Int32(3),
		InstanceType: types.InstanceTypeT3Medium, KeyName: aws.String("ssm-e2e"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance,
			Tags: []types.Tag{{Key: aws.String("es_cluster"), Value: aws.String("ssm-e2e")}}}}})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	var ids []string
	for _, in := range run.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	t.Cleanup(func() {
		_, _ = ec.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids})
	})
	if err := ec2.NewInstanceRunningWaiter(ec, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second }).
		Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, 5*time.Minute); err != nil {
		t.Fatalf("wait running: %v (backend errors %v)", err, lc.Server().BackendErrors())
	}

	// esnode on every guest (the image has none); node 1's elasticsearch.yml carries
	// incompressible settings so its facts exceed SSM's 24,000 characters even gzipped.
	bin, err := os.ReadFile(esnode)
	if err != nil {
		t.Fatal(err)
	}
	var khosts strings.Builder
	for i, id := range ids {
		g := lc.Instance(id)
		if g == nil {
			t.Fatalf("no guest for %s", id)
		}
		if err := g.WaitSSH(ctx); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if err := os.WriteFile(filepath.Join(g.RootDir(), "usr/local/bin/esnode"), bin, 0o755); err != nil {
			t.Fatalf("install esnode in %s: %v", id, err)
		}
		if i == 1 {
			var yml strings.Builder
			for j := 0; j < 800; j++ {
				b := make([]byte, 32)
				rand.Read(b)
				fmt.Fprintf(&yml, "esaudit.e2e.padding_%d: %s\n", j, hex.EncodeToString(b))
			}
			if _, err := g.Exec(ctx, "mkdir -p /etc/elasticsearch && cat > /etc/elasticsearch/elasticsearch.yml <<'EOF'\n"+yml.String()+"EOF"); err != nil {
				t.Fatalf("write elasticsearch.yml in %s: %v", id, err)
			}
		}
		fmt.Fprintln(&khosts, knownhosts.Line([]string{knownhosts.Normalize(g.SSHAddr())}, g.HostKey()))
	}
	kh := filepath.Join(work, "known_hosts")
	if err := os.WriteFile(kh, []byte(khosts.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Node 2's agent stops reporting (as `systemctl stop amazon-ssm-agent` would).
	if err := lc.Server().SetAgentStatus(ids[2], ec2emu.AgentConnectionLost); err != nil {
		t.Fatal(err)
	}
	if err := lc.Server().CreateBucket("us-east-1", "esaudit-e2e-output"); err != nil {
		t.Fatal(err)
	}

	audit := func(name string, args ...string) map[string]report.Node {
		t.Helper()
		out := filepath.Join(work, name)
		base := []string{"--ec2-tag", "es_cluster=ssm-e2e", "--region", "us-east-1", "--ec2-endpoint", lc.Endpoint(), "--autoscaling-endpoint", lc.Endpoint(),
			"--format", "json", "--out", out, "--fail-on", "low", "--node-timeout", "3m", "--quiet"}
		cmd := exec.CommandContext(ctx, esaudit, append(base, args...)...)
		// The default credential chain, from the environment, as a CI job would give it.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "AWS_ACCESS_KEY_ID=AKIDE2E",
			"AWS_SECRET_ACCESS_KEY=stand-in-secret", "AWS_EC2_METADATA_DISABLED=true"}
		stdout, err := cmd.CombinedOutput()
		// 1: violations; 3: node errors (the offline agent) without --allow-node-errors.
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() == 2 || ee.ExitCode() > 3) {
			rep, _ := os.ReadFile(filepath.Join(out, "report.json"))
			t.Fatalf("esaudit %s: %v\n%s\n%s", name, err, stdout, rep)
		}
		if strings.Contains(string(stdout), "stand-in-secret") {
			t.Errorf("esaudit %s printed the secret key", name)
		}
		b, err := os.ReadFile(filepath.Join(out, "report.json"))
		if err != nil {
			t.Fatalf("esaudit %s wrote no report: %v\n%s", name, err, stdout)
		}
		var doc report.Result
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		nodes := map[string]report.Node{}
		for _, n := range doc.Nodes {
			nodes[n.InstanceID] = n
		}
		if len(nodes) != 3 {
			t.Fatalf("esaudit %s accounted for %d nodes, want 3:\n%s", name, len(nodes), stdout)
		}
		t.Logf("esaudit %s: %+v", name, doc.Summary)
		return nodes
	}
	viaSSH := audit("ssh", "--transport", "ssh", "--ssh-user", "admin", "--ssh-key", keyFile, "--known-hosts", kh)
	lc.Server().ResetCalls()
	viaSSM := audit("ssm", "--transport", "ssm", "--ssm-endpoint", lc.Endpoint(), "--s3-endpoint", lc.Endpoint(),
		"--ssm-s3-bucket", "esaudit-e2e-output", "--ssm-s3-prefix", "esaudit/e2e", "--ssm-max-concurrency", "50%")

	for i, id := range ids {
		s, m := viaSSH[id], viaSSM[id]
		if s.Status != report.NodeOK {
			t.Errorf("node %d over SSH: %s %s", i, s.ErrorKind, s.Error)
			continue
		}
		if i == 2 {
			if m.Status != report.NodeError || m.ErrorKind != transport.KindAgentOffline || !strings.Contains(m.Error, "Undeliverable") || len(m.Findings) != 0 {
				t.Errorf("node with its agent offline over SSM: %s %s %q, %d findings; want an agent-offline node error", m.Status, m.ErrorKind, m.Error, len(m.Findings))
			}
			continue
		}
		if m.Status != report.NodeOK {
			t.Errorf("node %d over SSM: %s %s", i, m.ErrorKind, m.Error)
			continue
		}
		if got, want := auditFindingIDs(&m), auditFindingIDs(&s); strings.Join(got, ",") != strings.Join(want, ",") || len(got) == 0 {
			t.Errorf("node %d: SSM findings %v, SSH findings %v: want the same, non-empty\nSSM:\n%sSSH:\n%s", i, got, want, auditFindingText(&m), auditFindingText(&s))
		}
	}
	// How the SSM run went: one SendCommand by tag; node 1's output from S3.
	var sends, gets int
	for _, c := range lc.Server().Calls() {
		switch {
		case c.Action == "SendCommand":
			sends++
			if !strings.Contains(c.Body, `"tag:es_cluster"`) || strings.Contains(c.Body, "InstanceIds\":[\"") {
				t.Errorf("SendCommand did not target the tag: %s", c.Body)
			}
		case c.Service == "s3" && c.Action == "GetObject":
			gets++
			if k := strings.Join(c.Params["Key"], ""); !strings.Contains(k, ids[1]) || !strings.HasSuffix(k, "/stdout") {
				t.Errorf("S3 read of %s, want only node 1's stdout", k)
			}
		}
	}
	if sends != 1 || gets != 1 {
		t.Errorf("%d SendCommand, %d S3 GetObject calls; want 1 and 1 (node 1's facts over 24,000 characters)", sends, gets)
	}
	cmds := lc.Server().Commands()
	if len(cmds) != 1 || cmds[0].Invocations[ids[0]] != ec2emu.DetailSuccess || cmds[0].Invocations[ids[1]] != ec2emu.DetailSuccess ||
		cmds[0].Invocations[ids[2]] != ec2emu.DetailUndeliverable {
		t.Errorf("SSM commands: %+v", cmds)
	}
	if l := lc.Server().Leaks(); len(l.Objects) != 0 || len(l.Commands) != 0 {
		t.Errorf("the SSM audit left output or commands behind: %s", l)
	}
}
