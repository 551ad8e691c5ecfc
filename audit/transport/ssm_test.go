package transport

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

func gzb64(t *testing.T, b []byte) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// scriptOutput is what ssmScript prints for a facts document.
func scriptOutput(t *testing.T, doc []byte) string {
	return "noise\n" + ssmBegin + "\n" + gzb64(t, doc) + "\n" + ssmEnd + "\n"
}

// bigFactsDoc is a facts document whose encoded form exceeds SSM's 24,000 characters:
// random tag values do not compress.
func bigFactsDoc(t *testing.T, host string) []byte {
	t.Helper()
	f := &facts.Facts{SchemaVersion: facts.SchemaVersion, Host: facts.Host{Hostname: host, Tags: map[string]string{}}}
	for i := 0; i < 40; i++ {
		b := make([]byte, 512)
		rand.Read(b)
		f.Host.Tags["k"+strings.Repeat("x", i)] = hex.EncodeToString(b)
	}
	out, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if len(gzb64(t, out)) <= 24000 {
		t.Fatalf("big facts encode to only %d characters", len(gzb64(t, out)))
	}
	return out
}

// emuFleet is an emulator with instances tagged es_cluster=fleet, one per behaviour.
type emuFleet struct {
	srv *ec2emu.Server
	url string
	cfg aws.Config
	ids map[string]string // behaviour -> instance id
}

func sdkConfig(t *testing.T, retryer func() aws.Retryer) aws.Config {
	t.Helper()
	opts := []func(*config.LoadOptions) error{config.WithRegion("us-east-1"),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""))}
	if retryer != nil {
		opts = append(opts, config.WithRetryer(retryer))
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func fastRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.RateLimiter = ratelimit.None
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
	})
}

// newEmuFleet starts the emulator and one instance per agent (a nil agent: no SSM agent).
func newEmuFleet(t *testing.T, scale float64, agents map[string]ec2emu.Agent, tag string) *emuFleet {
	t.Helper()
	srv := ec2emu.New(ec2emu.Options{RunCommandTimeScale: scale})
	url := srv.Start()
	t.Cleanup(srv.Close)
	f := &emuFleet{srv: srv, url: url, cfg: sdkConfig(t, fastRetryer), ids: map[string]string{}}
	ec := ec2.NewFromConfig(f.cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(url) })
	ami, err := srv.AddImage(ec2emu.ImageSpec{Name: "debian-12"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, a := range agents {
		run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance,
				Tags: []ec2types.Tag{{Key: aws.String("es_cluster"), Value: aws.String(tag)}, {Key: aws.String("Name"), Value: aws.String(name)}}}}})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(run.Instances[0].InstanceId)
		f.ids[name] = id
		if a != nil {
			if err := srv.SetAgent(id, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The first Describe shows them pending, the next running.
	for i := 0; i < 2; i++ {
		if _, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *emuFleet) clients() (*ssm.Client, *s3.Client) {
	return NewSSMClients(f.cfg, f.url, f.url)
}

func (f *emuFleet) targets() []target.Target {
	var ts []target.Target
	for name, id := range f.ids {
		ts = append(ts, target.Target{Name: name, InstanceID: id, Transport: target.SSM})
	}
	return ts
}

// TestSSMEveryStatus runs the transport through the SDK against the emulator, one node per
// SSM outcome, targeting by tag with S3 output: facts (from the API, and from S3 when over
// 24,000 characters), esnode missing, a failure with its stderr tail, agent offline
// (Undeliverable), agent stalled (DeliveryTimedOut), a hung script (ExecutionTimedOut), and
// an instance with no agent at all (never targeted). Close leaves no object or command.
func TestSSMEveryStatus(t *testing.T) {
	small, big := factsDoc(t, "ok-node"), bigFactsDoc(t, "big-node")
	longErr := strings.Repeat("noise line\n", 1000) + "fatal: the real reason"
	f := newEmuFleet(t, 0.01, map[string]ec2emu.Agent{
		"ok":        ec2emu.SimulatedAgent{Stdout: scriptOutput(t, small)},
		"big":       ec2emu.SimulatedAgent{Stdout: scriptOutput(t, big)},
		"legacy":    ec2emu.SimulatedAgent{Stderr: "esaudit-no-esnode x86_64\n", ExitCode: 127},
		"failed":    ec2emu.SimulatedAgent{Stderr: longErr, ExitCode: 2},
		"offline":   ec2emu.SimulatedAgent{Stdout: "unused"},
		"stalled":   ec2emu.SimulatedAgent{Stdout: "unused"},
		"hung":      ec2emu.SimulatedAgent{Hang: true},
		"unmanaged": nil,
	}, "fleet")
	if err := f.srv.SetAgentStatus(f.ids["offline"], ec2emu.AgentConnectionLost); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.SetAgentStatus(f.ids["stalled"], ec2emu.AgentStalled); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.CreateBucket("us-east-1", "esaudit-out"); err != nil {
		t.Fatal(err)
	}
	api, s3c := f.clients()
	// Scale 0.01: delivery timeout 150s → 1.5s, execution timeout 20s → 200ms.
	s := NewSSM(api, s3c, SSMConfig{MaxConcurrency: "50%", TimeoutSeconds: 20, DeliveryTimeoutSeconds: 150,
		PollInterval: 5 * time.Millisecond, Tags: map[string]string{"es_cluster": "fleet"},
		S3Bucket: "esaudit-out", S3KeyPrefix: "/audits/run-1/"})
	ctx := context.Background()
	if err := s.Prepare(ctx, f.targets()); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ kind, text string }{
		"legacy":    {KindNoEsnode, "esnode is not installed"},
		"failed":    {KindCommand, "SSM status: Failed, exit 2"},
		"offline":   {KindAgentOffline, "SSM status: Undeliverable"},
		"stalled":   {KindTimeout, "SSM status: DeliveryTimedOut"},
		"hung":      {KindTimeout, "SSM status: ExecutionTimedOut"},
		"unmanaged": {KindAgentOffline, "not a managed instance"},
	}
	for name, id := range f.ids {
		nctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := s.Fetch(nctx, target.Target{Name: name, InstanceID: id, Transport: target.SSM})
		cancel()
		switch name {
		case "ok", "big":
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if g, err := facts.Parse(out); err != nil || g.Host.Hostname != name+"-node" {
				t.Errorf("%s: decoded facts = %v, %v", name, g, err)
			}
			continue
		}
		w := want[name]
		if KindOf(err) != w.kind || err == nil || !strings.Contains(err.Error(), w.text) {
			t.Errorf("%s: kind %s (%v), want %s with %q", name, KindOf(err), err, w.kind, w.text)
		}
		if name == "failed" && !strings.HasSuffix(err.Error(), "fatal: the real reason") {
			t.Errorf("failed node: the error does not end with the tail of stderr (read from S3): %v", err)
		}
	}
	sends := 0
	for _, c := range f.srv.Calls() {
		if c.Action == "SendCommand" {
			sends++
			var in map[string]any
			json.Unmarshal([]byte(c.Body), &in)
			tg, _ := in["Targets"].([]any)
			if len(tg) != 1 || in["InstanceIds"] != nil || in["MaxConcurrency"] != "50%" || in["MaxErrors"] != "100%" ||
				in["OutputS3KeyPrefix"] != "audits/run-1" || in["TimeoutSeconds"] != float64(150) {
				t.Errorf("SendCommand = %s", c.Body)
			}
		}
	}
	if sends != 1 {
		t.Errorf("%d SendCommand calls, want one for the tag", sends)
	}
	if l := f.srv.Leaks(); len(l.Objects) == 0 {
		t.Errorf("no S3 output before Close: %s", l)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if l := f.srv.Leaks(); len(l.Objects) != 0 || len(l.Commands) != 0 {
		t.Errorf("after Close: %s", l)
	}
}

// TestSSMByInstanceIDs: without tags the transport sends instance ids in batches of 50 with
// the configured percentages; a truncated document without S3 is reported as such, and an
// unmanaged instance in a batch fails that batch with a hint.
func TestSSMByInstanceIDs(t *testing.T) {
	doc := factsDoc(t, "n")
	agents := map[string]ec2emu.Agent{}
	for i := 0; i < 60; i++ {
		agents["n"+strings.Repeat("0", 3-len(itoa(i)))+itoa(i)] = ec2emu.SimulatedAgent{Stdout: scriptOutput(t, doc), Latency: time.Millisecond}
	}
	agents["big"] = ec2emu.SimulatedAgent{Stdout: scriptOutput(t, bigFactsDoc(t, "big"))}
	f := newEmuFleet(t, 1, agents, "ids")
	api, _ := f.clients()
	s := NewSSM(api, nil, SSMConfig{MaxConcurrency: "10%", MaxErrors: "0", PollInterval: 5 * time.Millisecond})
	ctx := context.Background()
	if err := s.Prepare(ctx, f.targets()); err != nil {
		t.Fatal(err)
	}
	for name, id := range f.ids {
		out, err := s.Fetch(ctx, target.Target{Name: name, InstanceID: id, Transport: target.SSM})
		if name == "big" {
			if KindOf(err) != KindInvalidOutput || !strings.Contains(err.Error(), "--ssm-s3-bucket") {
				t.Errorf("big facts without S3: %v", err)
			}
			continue
		}
		if err != nil || !bytes.Equal(out, doc) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cmds := f.srv.Commands()
	if len(cmds) != 2 || cmds[0].TargetCount+cmds[1].TargetCount != 61 || max(cmds[0].TargetCount, cmds[1].TargetCount) != 50 {
		t.Fatalf("commands = %+v, want batches of 50 and 11", cmds)
	}
	if cmds[0].PeakInProgress > 5 {
		t.Errorf("MaxConcurrency 10%% of 50: peak %d in progress", cmds[0].PeakInProgress)
	}

	// An unmanaged instance: SSM refuses the batch; the error says why.
	g := newEmuFleet(t, 1, map[string]ec2emu.Agent{"a": ec2emu.SimulatedAgent{Stdout: "x"}, "none": nil}, "mixed")
	api, _ = g.clients()
	s = NewSSM(api, nil, SSMConfig{PollInterval: 5 * time.Millisecond})
	defer s.Close()
	if err := s.Prepare(ctx, g.targets()); err != nil {
		t.Fatal(err)
	}
	_, err := s.Fetch(ctx, target.Target{InstanceID: g.ids["none"], Transport: target.SSM})
	if KindOf(err) != KindTransport || !strings.Contains(err.Error(), "not managed by SSM") {
		t.Errorf("unmanaged by id: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestSSMThrottling: with a third of all SSM and S3 calls throttled, the clients of
// NewSSMClients (the SDK's standard retryer) still audit every node.
func TestSSMThrottling(t *testing.T) {
	if testing.Short() {
		t.Skip("retries with the SDK's real backoff take seconds")
	}
	doc, big := factsDoc(t, "n"), bigFactsDoc(t, "big")
	f := newEmuFleet(t, 1, map[string]ec2emu.Agent{
		"a": ec2emu.SimulatedAgent{Stdout: scriptOutput(t, doc)},
		"b": ec2emu.SimulatedAgent{Stdout: scriptOutput(t, doc)},
		"c": ec2emu.SimulatedAgent{Stdout: scriptOutput(t, big)},
	}, "throttled")
	if err := f.srv.CreateBucket("us-east-1", "out"); err != nil {
		t.Fatal(err)
	}
	f.cfg = sdkConfig(t, nil) // NewSSMClients sets its own retryer
	api, s3c := f.clients()
	// Random throttling of everything, plus two throttled answers in a row for each call
	// the transport makes, so every call is known to have been retried.
	f.srv.SetThrottle(0.2, 3)
	for _, a := range []string{"SendCommand", "ListCommands", "ListCommandInvocations", "GetCommandInvocation", "GetObject", "ListObjectsV2", "DeleteObject"} {
		f.srv.InjectFault(ec2emu.Fault{Action: a, Code: "RequestLimitExceeded", Nth: 1, Count: 2})
	}
	s := NewSSM(api, s3c, SSMConfig{PollInterval: 5 * time.Millisecond, Tags: map[string]string{"es_cluster": "throttled"}, S3Bucket: "out"})
	ctx := context.Background()
	if err := s.Prepare(ctx, f.targets()); err != nil {
		t.Fatal(err)
	}
	for name, id := range f.ids {
		if _, err := s.Fetch(ctx, target.Target{InstanceID: id, Transport: target.SSM}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f.srv.ClearFaults()
	throttled := map[string]int{}
	for _, c := range f.srv.Calls() {
		if c.ErrorCode != "" {
			throttled[c.Action]++
		}
	}
	for _, a := range []string{"SendCommand", "ListCommands", "ListCommandInvocations", "GetCommandInvocation", "GetObject", "ListObjectsV2", "DeleteObject"} {
		if throttled[a] < 2 {
			t.Errorf("%s throttled %d times, want at least the 2 injected (throttled calls: %v)", a, throttled[a], throttled)
		}
	}
	if l := f.srv.Leaks(); len(l.Objects) != 0 {
		t.Errorf("objects left: %s", l)
	}
}

// TestSSMCloseCancels: a node the run gave up on (deadline) has its command cancelled on
// Close, so nothing keeps running on the fleet.
func TestSSMCloseCancels(t *testing.T) {
	f := newEmuFleet(t, 1, map[string]ec2emu.Agent{"hung": ec2emu.SimulatedAgent{Hang: true}}, "hang")
	api, _ := f.clients()
	s := NewSSM(api, nil, SSMConfig{PollInterval: 5 * time.Millisecond, TimeoutSeconds: 3600})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	s.Prepare(ctx, f.targets())
	_, err := s.Fetch(ctx, target.Target{InstanceID: f.ids["hung"], Transport: target.SSM})
	if KindOf(err) != KindTimeout || !strings.Contains(err.Error(), "InProgress") {
		t.Errorf("hung node: %v", err)
	}
	if l := f.srv.Leaks(); len(l.Commands) != 1 {
		t.Errorf("running command not reported: %s", l)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.srv.Leaks().Commands) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c := f.srv.Commands()[0]; c.Status != "Cancelled" {
		t.Errorf("command after Close: %+v", c)
	}
}

func TestValidateSSMConfig(t *testing.T) {
	for _, c := range []SSMConfig{{MaxConcurrency: "0"}, {MaxConcurrency: "150%"}, {MaxErrors: "-1"}, {S3KeyPrefix: "p"}, {S3Bucket: "s3://b/p"}} {
		if ValidateSSMConfig(c) == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	for _, c := range []SSMConfig{{}, {MaxConcurrency: "10%", MaxErrors: "0"}, {MaxConcurrency: "500", MaxErrors: "5%", S3Bucket: "my-bucket", S3KeyPrefix: "esaudit/"}} {
		if err := ValidateSSMConfig(c); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestFileAndLocal(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/n.json"
	doc := factsDoc(t, "file-node")
	if err := writeFile(p, doc); err != nil {
		t.Fatal(err)
	}
	out, err := File{}.Fetch(context.Background(), target.Target{FactsFile: p})
	if err != nil || !bytes.Equal(out, doc) {
		t.Errorf("File.Fetch = %q, %v", out, err)
	}
	if _, err := (File{MaxBytes: 10}).Fetch(context.Background(), target.Target{FactsFile: p}); KindOf(err) != KindOutputTooBig {
		t.Errorf("oversized file kind = %s", KindOf(err))
	}
	// Local collection of an empty root: a valid, mostly empty document.
	out, err = Local{Options: &facts.Options{Root: dir}}.Fetch(context.Background(), target.Target{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := facts.Parse(out); err != nil {
		t.Errorf("local facts do not parse: %v", err)
	}
}

func writeFile(p string, b []byte) error { return os.WriteFile(p, b, 0o644) }
