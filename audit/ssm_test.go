package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
	"github.com/esbake/packer-plugin-elasticsearch/audit/transport"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// ssmFleet is the EC2/SSM emulator with n instances tagged es_cluster=ssm-fleet and no
// guests: each has a simulated SSM agent (see agent), or none when agent returns nil.
type ssmFleet struct {
	srv *ec2emu.Server
	url string
	ids []string
}

// ssmScriptOutput is what the transport's script prints for a facts document.
func ssmScriptOutput(tb testing.TB, doc []byte) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(doc)
	zw.Close()
	return "ESAUDIT-FACTS-GZ-BEGIN\n" + base64.StdEncoding.EncodeToString(buf.Bytes()) + "\nESAUDIT-FACTS-GZ-END\n"
}

// useEmulatorCredentials points the default credential chain at static environment keys,
// as a CI job would, and away from any file or IMDS on the machine.
func useEmulatorCredentials(tb testing.TB) {
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "AKIDSSMFLEET", "AWS_SECRET_ACCESS_KEY": "stand-in-secret",
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1"} {
		tb.Setenv(k, v)
	}
}

func newSSMFleet(tb testing.TB, n int, agent func(i int, name string) ec2emu.Agent) *ssmFleet {
	tb.Helper()
	srv := ec2emu.New(ec2emu.Options{Subnets: []ec2emu.SubnetSpec{{CIDR: "10.0.0.0/17", Zone: "a"}}})
	f := &ssmFleet{srv: srv, url: srv.Start()}
	tb.Cleanup(srv.Close)
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"), config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}), config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDSETUP", "secret", "")),
		config.WithRetryMaxAttempts(10))
	if err != nil {
		tb.Fatal(err)
	}
	ec := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(f.url) })
	ami, err := srv.AddImage(ec2emu.ImageSpec{Name: "esbake-node"})
	if err != nil {
		tb.Fatal(err)
	}
	for len(f.ids) < n {
		k := min(20, n-len(f.ids)) // the emulator's per-call instance limit
		run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(int32(k)), MaxCount: aws.Int32(int32(k)),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance,
				Tags: []ec2types.Tag{{Key: aws.String("es_cluster"), Value: aws.String("ssm-fleet")}}}}})
		if err != nil {
			tb.Fatal(err)
		}
		for _, in := range run.Instances {
			id := aws.ToString(in.InstanceId)
			if a := agent(len(f.ids), id); a != nil {
				if err := srv.SetAgent(id, a); err != nil {
					tb.Fatal(err)
				}
			}
			f.ids = append(f.ids, id)
		}
	}
	for i := 0; i < 2; i++ { // pending, then running
		if _, err := ec.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{IncludeAllInstances: aws.Bool(true)}); err != nil {
			tb.Fatal(err)
		}
	}
	srv.ResetCalls()
	return f
}

func (f *ssmFleet) options(eng Engine) Options {
	return Options{
		EC2:         &EC2Discovery{Tags: []string{"es_cluster=ssm-fleet"}},
		AWS:         AWSConfig{Region: "us-east-1", EC2Endpoint: f.url, SSMEndpoint: f.url, S3Endpoint: f.url, AutoScalingEndpoint: f.url},
		Transport:   target.SSM,
		Engine:      eng,
		NoProbes:    true,
		NodeTimeout: time.Minute,
	}
}

func factsFor(tb testing.TB, name string) []byte {
	doc, err := (&facts.Facts{SchemaVersion: facts.SchemaVersion, Host: facts.Host{Hostname: name}}).JSON()
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

// TestSSMAuditAccountsForEveryNode: discovery by tag, one SendCommand by tag, and every
// instance in the report: audited nodes with their findings, an agent that went offline and
// an instance without an agent as node errors (agent-offline, with the SSM status), never as
// a pass; a failing script as command-failed with its stderr tail.
func TestSSMAuditAccountsForEveryNode(t *testing.T) {
	useEmulatorCredentials(t)
	f := newSSMFleet(t, 6, func(i int, id string) ec2emu.Agent {
		switch i {
		case 4:
			return ec2emu.SimulatedAgent{Stderr: "esnode: cannot read /etc/elasticsearch: permission denied\n", ExitCode: 1}
		case 5:
			return nil // no agent registered at all
		}
		return ec2emu.SimulatedAgent{Stdout: ssmScriptOutput(t, factsFor(t, fmt.Sprintf("node-%d7", i)))}
	})
	if err := f.srv.SetAgentStatus(f.ids[3], ec2emu.AgentConnectionLost); err != nil {
		t.Fatal(err)
	}
	o := f.options(&fakeEngine{})
	o.SSM.PollInterval = 10 * time.Millisecond
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]report.Node{}
	for _, n := range res.Report.Nodes {
		byID[n.InstanceID] = n
	}
	if len(byID) != 6 {
		t.Fatalf("report has %d nodes, want all 6 instances", len(byID))
	}
	for i, id := range f.ids {
		n := byID[id]
		switch i {
		case 0, 1, 2:
			if n.Status != report.NodeOK || len(n.Findings) != 1 {
				t.Errorf("node %d: %s %s %s, %d findings; want audited with the stand-in finding", i, n.Status, n.ErrorKind, n.Error, len(n.Findings))
			}
		case 3, 5:
			want := map[int]string{3: "SSM status: Undeliverable", 5: "not a managed instance"}[i]
			if n.Status != report.NodeError || n.ErrorKind != transport.KindAgentOffline || !strings.Contains(n.Error, want) || len(n.Findings) != 0 {
				t.Errorf("node %d: %s %s %q; want an agent-offline node error with %q", i, n.Status, n.ErrorKind, n.Error, want)
			}
		case 4:
			if n.Status != report.NodeError || n.ErrorKind != transport.KindCommand || !strings.Contains(n.Error, "permission denied") {
				t.Errorf("node 4: %s %s %q", n.Status, n.ErrorKind, n.Error)
			}
		}
	}
	if res.Report.Summary.NodeErrors != 3 || res.ExitCode == ExitCompliant {
		t.Errorf("summary %+v, exit %d: the unaudited nodes must count as errors", res.Report.Summary, res.ExitCode)
	}
	if n := f.srv.CallCount("SendCommand"); n != 1 {
		t.Errorf("%d SendCommand calls, want one by tag", n)
	}
	for _, c := range f.srv.Calls() {
		if c.Action == "SendCommand" && !strings.Contains(c.Body, `"tag:es_cluster"`) {
			t.Errorf("SendCommand did not target the tag: %s", c.Body)
		}
	}
	if l := f.srv.Leaks(); len(l.Commands) != 0 || len(l.Objects) != 0 {
		t.Errorf("left behind: %s", l)
	}
}

// BenchmarkSSMFleet10000: wall time, API calls per node and peak RSS of auditing 10,000
// simulated instances (no guests: the emulator's simulated agents answer after 500 ms) through
// SSM Run Command by tag, MaxConcurrency 10 %, 1 % of the scripts failing, with the stand-in
// engine, from discovery to report. Peak RSS covers the whole test process, the emulator
// (which keeps every invocation's output) included.
func BenchmarkSSMFleet10000(b *testing.B) {
	const n = 10000
	useEmulatorCredentials(b)
	// The SDK logs connection-reuse warnings to stderr (the emulator's RunInstances answers
	// draw some during setup), which would land inside the benchmark's result line: keep
	// them in a file, and count those the audit runs draw.
	logFile, err := os.CreateTemp(b.TempDir(), "sdk-log")
	if err != nil {
		b.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = logFile
	defer func() { os.Stderr = stderr }()
	f := newSSMFleet(b, n, func(i int, id string) ec2emu.Agent {
		if i%100 == 42 {
			return ec2emu.SimulatedAgent{Stderr: "esnode: facts collector crashed\n", ExitCode: 1, Latency: 500 * time.Millisecond}
		}
		return ec2emu.SimulatedAgent{Stdout: ssmScriptOutput(b, factsFor(b, fmt.Sprintf("node-%05d", i))), Latency: 500 * time.Millisecond}
	})
	warnings := func() int {
		logged, _ := os.ReadFile(logFile.Name())
		return strings.Count(string(logged), "WARN")
	}
	setupWarnings := warnings()
	b.ResetTimer()
	calls := 0
	for i := 0; i < b.N; i++ {
		f.srv.ResetCalls()
		o := f.options(&fakeEngine{})
		o.SSM.MaxConcurrency = "10%"
		res, err := Run(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		if s := res.Report.Summary; s.Nodes != n || s.NodesOK != n-n/100 || s.NodeErrors != n/100 {
			b.Fatalf("summary = %+v", s)
		}
		calls += f.srv.CallCount("")
		if peak := f.srv.Commands()[len(f.srv.Commands())-1].PeakInProgress; peak > n/10 {
			b.Fatalf("peak %d invocations in progress, MaxConcurrency 10%% allows %d", peak, n/10)
		}
	}
	b.StopTimer()
	if hwm := vmHWM(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "wall-ms/run")
	b.ReportMetric(float64(calls)/float64(b.N*n), "api-calls/node")
	b.ReportMetric(float64(warnings()-setupWarnings)/float64(b.N), "sdk-warnings/run")
}
