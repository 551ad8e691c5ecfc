package ec2emu

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

func (e *env) s3(region string, attempts int) *s3.Client {
	return s3.NewFromConfig(e.cfg(region, attempts), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(e.url)
		o.UsePathStyle = true
	})
}

// runTagged starts n running instances tagged es_cluster=cluster, in one reservation.
func (e *env) runTagged(n int, cluster string) []string {
	e.t.Helper()
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis-" + cluster)
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(int32(n)),
		MaxCount: aws.Int32(int32(n)), InstanceType: ec2types.InstanceTypeT3Medium,
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance,
			Tags: []ec2types.Tag{{Key: aws.String("es_cluster"), Value: aws.String(cluster)}}}}}))(e.t)
	var ids []string
	for _, in := range run.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	if err := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, waitMax); err != nil {
		e.t.Fatalf("wait running: %v", err)
	}
	return ids
}

// waitCommand polls ListCommands until the command is terminal.
func (e *env) waitCommand(c *ssm.Client, id string) types.Command {
	e.t.Helper()
	deadline := time.Now().Add(waitMax)
	for time.Now().Before(deadline) {
		out := must(c.ListCommands(e.ctx, &ssm.ListCommandsInput{CommandId: aws.String(id)}))(e.t)
		if len(out.Commands) != 1 {
			e.t.Fatalf("ListCommands(%s) = %d commands", id, len(out.Commands))
		}
		switch out.Commands[0].Status {
		case types.CommandStatusPending, types.CommandStatusInProgress, types.CommandStatusCancelling:
		default:
			return out.Commands[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("command %s did not finish", id)
	return types.Command{}
}

func shellInput(cluster string) *ssm.SendCommandInput {
	return &ssm.SendCommandInput{DocumentName: aws.String("AWS-RunShellScript"),
		Targets:        []types.Target{{Key: aws.String("tag:es_cluster"), Values: []string{cluster}}},
		Parameters:     map[string][]string{"commands": {"esnode facts"}, "executionTimeout": {"5"}},
		TimeoutSeconds: aws.Int32(30), MaxConcurrency: aws.String("100%"), MaxErrors: aws.String("100%")}
}

// TestRunCommandStatuses drives one command over every invocation outcome through the SDK:
// Success (with output over the 24,000-character API limit, whole in S3), Failed,
// Undeliverable, Delayed → DeliveryTimedOut, ExecutionTimedOut; then the command's status.
func TestRunCommandStatuses(t *testing.T) {
	e := newEnv(t, Options{RunCommandTimeScale: 0.01}) // TimeoutSeconds 150 → 1.5 s, executionTimeout 20 → 200 ms
	c := e.ssm("us-east-1")
	ids := e.runTagged(6, "statuses")
	other := e.runTagged(1, "other")[0]
	unmanaged := e.runTagged(1, "statuses-unmanaged")[0]
	big := strings.Repeat("0123456789", 3000) // 30,000 characters
	agents := []Agent{
		SimulatedAgent{Stdout: big, Stderr: "warning: big"},
		SimulatedAgent{Stdout: "partial", Stderr: strings.Repeat("e", 9000) + "boom", ExitCode: 3},
		SimulatedAgent{Stdout: "never"},
		SimulatedAgent{Stdout: "never"},
		SimulatedAgent{Hang: true},
		SimulatedAgent{Stdout: "ok\n", Latency: 5 * time.Millisecond},
	}
	for i, a := range agents {
		if err := e.srv.SetAgent(ids[i], a); err != nil {
			t.Fatal(err)
		}
	}
	must(0, e.srv.SetAgent(other, SimulatedAgent{Stdout: "not targeted"}))(t)
	must(0, e.srv.SetAgentStatus(ids[2], AgentConnectionLost))(t)
	must(0, e.srv.SetAgentStatus(ids[3], AgentStalled))(t)
	if err := e.srv.SetAgentStatus(unmanaged, AgentOnline); err == nil {
		t.Error("SetAgentStatus on an instance without an agent succeeded")
	}
	must(0, e.srv.CreateBucket("us-east-1", "esaudit-output"))(t)

	in := shellInput("statuses")
	in.TimeoutSeconds, in.Parameters["executionTimeout"] = aws.Int32(150), []string{"20"}
	in.OutputS3BucketName, in.OutputS3KeyPrefix = aws.String("esaudit-output"), aws.String("runs/1")
	sent := must(c.SendCommand(e.ctx, in))(t)
	cmdID := aws.ToString(sent.Command.CommandId)
	if sent.Command.TargetCount != 6 {
		t.Errorf("TargetCount = %d, want the 6 managed instances tagged statuses (not the unmanaged one)", sent.Command.TargetCount)
	}
	cmd := e.waitCommand(c, cmdID)
	if cmd.Status != types.CommandStatusFailed || aws.ToString(cmd.StatusDetails) != DetailIncomplete || cmd.ErrorCount != 2 || cmd.DeliveryTimedOutCount != 1 {
		t.Errorf("command: status %s/%s errors %d delivery-timed-out %d, want Failed/Incomplete, 2 errors (Failed, ExecutionTimedOut), 1",
			cmd.Status, aws.ToString(cmd.StatusDetails), cmd.ErrorCount, cmd.DeliveryTimedOutCount)
	}
	want := []struct {
		status  types.CommandInvocationStatus
		details string
		code    int32
	}{
		{types.CommandInvocationStatusSuccess, DetailSuccess, 0},
		{types.CommandInvocationStatusFailed, DetailFailed, 3},
		{types.CommandInvocationStatusFailed, DetailUndeliverable, -1},
		{types.CommandInvocationStatusTimedOut, DetailDeliveryTimedOut, -1},
		{types.CommandInvocationStatusTimedOut, DetailExecutionTimedOut, -1},
		{types.CommandInvocationStatusSuccess, DetailSuccess, 0},
	}
	for i, w := range want {
		inv := must(c.GetCommandInvocation(e.ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(cmdID), InstanceId: aws.String(ids[i])}))(t)
		if inv.Status != w.status || aws.ToString(inv.StatusDetails) != w.details || inv.ResponseCode != w.code {
			t.Errorf("invocation %d: %s/%s code %d, want %s/%s code %d", i, inv.Status, aws.ToString(inv.StatusDetails), inv.ResponseCode, w.status, w.details, w.code)
		}
	}
	first := must(c.GetCommandInvocation(e.ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(cmdID), InstanceId: aws.String(ids[0])}))(t)
	if got := aws.ToString(first.StandardOutputContent); got != big[:24000] {
		t.Errorf("StandardOutputContent has %d characters, want the first 24,000", len(got))
	}
	failed := must(c.GetCommandInvocation(e.ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(cmdID), InstanceId: aws.String(ids[1])}))(t)
	if got := aws.ToString(failed.StandardErrorContent); len(got) != 8000 || aws.ToString(failed.StandardOutputContent) != "partial" {
		t.Errorf("failed invocation: stderr %d characters (want the first 8,000), stdout %q", len(got), aws.ToString(failed.StandardOutputContent))
	}
	if _, err := c.GetCommandInvocation(e.ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(cmdID), InstanceId: aws.String(other)}); err == nil {
		t.Error("an instance outside the tag has an invocation")
	} else {
		wantCode(t, err, "InvocationDoesNotExist")
	}

	// The whole output is in S3 under the documented layout.
	s3c := e.s3("us-east-1", 3)
	base := "runs/1/" + cmdID + "/" + ids[0] + "/awsrunShellScript/0.awsrunShellScript/"
	if aws.ToString(first.StandardOutputUrl) != e.url+"/esaudit-output/"+base+"stdout" {
		t.Errorf("StandardOutputUrl = %s", aws.ToString(first.StandardOutputUrl))
	}
	obj := must(s3c.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String("esaudit-output"), Key: aws.String(base + "stdout")}))(t)
	body, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(body) != big {
		t.Errorf("S3 stdout has %d bytes, want the whole 30,000", len(body))
	}
	list := must(s3c.ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{Bucket: aws.String("esaudit-output"), Prefix: aws.String("runs/1/" + cmdID + "/")}))(t)
	if len(list.Contents) != 5 { // stdout+stderr of #0, stdout+stderr of #1, stdout of #5 (ids[4] hung: no output)
		var keys []string
		for _, o := range list.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		t.Errorf("S3 objects = %v, want 5", keys)
	}
	if leaks := e.srv.Leaks(); len(leaks.Objects) != 5 || len(leaks.Commands) != 0 || leaks.Empty() {
		t.Errorf("leaks before cleanup: %s", leaks)
	}
	for _, o := range list.Contents {
		must(s3c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String("esaudit-output"), Key: o.Key}))(t)
	}
	if leaks := e.srv.Leaks(); len(leaks.Objects) != 0 {
		t.Errorf("objects left after DeleteObject: %s", leaks)
	}

	// Instance ids: an unmanaged instance is refused for the whole call.
	byID := shellInput("")
	byID.Targets, byID.InstanceIds = nil, []string{ids[0], unmanaged}
	_, err := c.SendCommand(e.ctx, byID)
	wantCode(t, err, "InvalidInstanceId")

	// ListCommandInvocations pages and reports every target.
	var seen []string
	p := ssm.NewListCommandInvocationsPaginator(c, &ssm.ListCommandInvocationsInput{CommandId: aws.String(cmdID), MaxResults: aws.Int32(4), Details: true})
	for p.HasMorePages() {
		pg := must(p.NextPage(e.ctx))(t)
		for _, inv := range pg.CommandInvocations {
			seen = append(seen, aws.ToString(inv.InstanceId)+"="+aws.ToString(inv.StatusDetails))
			if len(inv.CommandPlugins) != 1 || len(aws.ToString(inv.CommandPlugins[0].Output)) > 2500 {
				t.Errorf("plugin details for %s: %+v", aws.ToString(inv.InstanceId), inv.CommandPlugins)
			}
		}
	}
	if len(seen) != 6 {
		t.Errorf("ListCommandInvocations listed %v", seen)
	}
}

// TestRunCommandConcurrencyAndErrors: MaxConcurrency as a percentage bounds the invocations
// in progress; MaxErrors stops further deliveries (Terminated) once exceeded.
func TestRunCommandConcurrencyAndErrors(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ssm("us-east-1")
	ids := e.runTagged(20, "conc")
	for _, id := range ids {
		must(0, e.srv.SetAgent(id, SimulatedAgent{Stdout: "ok", Latency: 10 * time.Millisecond}))(t)
	}
	in := shellInput("conc")
	in.MaxConcurrency = aws.String("10%") // 2 of 20
	cmd := e.waitCommand(c, aws.ToString(must(c.SendCommand(e.ctx, in))(t).Command.CommandId))
	info := e.srv.Commands()[0]
	if cmd.Status != types.CommandStatusSuccess || info.PeakInProgress != 2 {
		t.Errorf("status %s, peak in progress %d, want Success with at most (and reaching) 2", cmd.Status, info.PeakInProgress)
	}

	for _, id := range ids {
		must(0, e.srv.SetAgent(id, SimulatedAgent{Stderr: "no", ExitCode: 1, Latency: 5 * time.Millisecond}))(t)
	}
	in.MaxErrors = aws.String("1")
	in.MaxConcurrency = aws.String("1")
	cmd = e.waitCommand(c, aws.ToString(must(c.SendCommand(e.ctx, in))(t).Command.CommandId))
	info = e.srv.Commands()[1]
	count := map[string]int{}
	for _, d := range info.Invocations {
		count[d]++
	}
	if cmd.Status != types.CommandStatusFailed || count[DetailFailed] != 2 || count[DetailTerminated] != 18 {
		t.Errorf("MaxErrors 1: status %s, invocations %v, want Failed with 2 Failed (the one beyond MaxErrors stops it) and 18 Terminated", cmd.Status, count)
	}

	for _, tc := range []struct {
		v    string
		n    int
		conc bool
		want int
	}{{"10%", 20, true, 2}, {"10%", 5, true, 1}, {"1%", 10000, true, 100}, {"33%", 10, true, 4},
		{"10%", 50, false, 5}, {"10%", 5, false, 0}, {"0", 7, false, 0}, {"100%", 3, false, 3}, {"7", 3, true, 7}} {
		if got := countOrPercent(tc.v, tc.n, tc.conc); got != tc.want {
			t.Errorf("countOrPercent(%s of %d, concurrency %v) = %d, want %d", tc.v, tc.n, tc.conc, got, tc.want)
		}
	}
}

// TestRunCommandCancelAndValidation: CancelCommand ends running and pending invocations
// Cancelled; bad input is refused as SSM refuses it.
func TestRunCommandCancelAndValidation(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ssm("us-east-1")
	ids := e.runTagged(3, "cancel")
	for _, id := range ids {
		must(0, e.srv.SetAgent(id, SimulatedAgent{Hang: true}))(t)
	}
	in := shellInput("cancel")
	in.MaxConcurrency = aws.String("1")
	id := aws.ToString(must(c.SendCommand(e.ctx, in))(t).Command.CommandId)
	deadline := time.Now().Add(waitMax)
	for e.srv.Commands()[0].Invocations[ids[0]] != DetailInProgress && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if leaks := e.srv.Leaks(); len(leaks.Commands) != 1 {
		t.Errorf("a running command is not in the leak report: %s", leaks)
	}
	must(c.CancelCommand(e.ctx, &ssm.CancelCommandInput{CommandId: aws.String(id)}))(t)
	cmd := e.waitCommand(c, id)
	if cmd.Status != types.CommandStatusCancelled {
		t.Errorf("status %s, want Cancelled", cmd.Status)
	}
	for _, iid := range ids {
		if d := e.srv.Commands()[0].Invocations[iid]; d != DetailCancelled {
			t.Errorf("%s: %s, want Cancelled", iid, d)
		}
	}
	if leaks := e.srv.Leaks(); len(leaks.Commands) != 0 {
		t.Errorf("cancelled command still leaks: %s", leaks)
	}
	_, err := c.CancelCommand(e.ctx, &ssm.CancelCommandInput{CommandId: aws.String("11111111-2222-3333-4444-555555555555")})
	wantCode(t, err, "InvalidCommandId")

	bad := []struct {
		mod  func(*ssm.SendCommandInput)
		code string
	}{
		{func(i *ssm.SendCommandInput) { i.MaxConcurrency = aws.String("0") }, "ValidationException"},
		{func(i *ssm.SendCommandInput) { i.MaxErrors = aws.String("101%") }, "ValidationException"},
		{func(i *ssm.SendCommandInput) { i.TimeoutSeconds = aws.Int32(10) }, "ValidationException"},
		{func(i *ssm.SendCommandInput) { i.DocumentName = aws.String("AWS-RunPowerShellScript") }, "InvalidDocument"},
		{func(i *ssm.SendCommandInput) { i.Parameters = map[string][]string{"executionTimeout": {"5"}} }, "InvalidParameters"},
		{func(i *ssm.SendCommandInput) { i.InstanceIds = []string{ids[0]} }, "ValidationException"},
		{func(i *ssm.SendCommandInput) {
			i.Targets = []types.Target{{Key: aws.String("resource-groups:Name"), Values: []string{"x"}}}
		}, "InvalidTarget"},
	}
	for n, b := range bad {
		in := shellInput("cancel")
		b.mod(in)
		_, err := c.SendCommand(e.ctx, in)
		if err == nil {
			t.Errorf("bad input #%d accepted", n)
			continue
		}
		wantCode(t, err, b.code)
	}
	// No managed instance has the tag: the command fails at once.
	none := must(c.SendCommand(e.ctx, shellInput("nobody")))(t)
	if none.Command.Status != types.CommandStatusFailed || aws.ToString(none.Command.StatusDetails) != DetailNoInstancesInTag {
		t.Errorf("empty tag target: %s/%s", none.Command.Status, aws.ToString(none.Command.StatusDetails))
	}
}

// TestRunCommandThrottling: throttled SSM and S3 calls are retried by the SDK's standard
// retryer (ThrottlingException, SlowDown) and surface only when retries run out.
func TestRunCommandThrottling(t *testing.T) {
	e := newEnv(t, Options{})
	ids := e.runTagged(2, "throttle")
	for _, id := range ids {
		must(0, e.srv.SetAgent(id, SimulatedAgent{Stdout: "ok"}))(t)
	}
	must(0, e.srv.CreateBucket("us-east-1", "throttled"))(t)
	e.srv.SetThrottle(0.5, 7)
	c := ssm.NewFromConfig(e.cfg("us-east-1", 20), func(o *ssm.Options) { o.BaseEndpoint = aws.String(e.url) })
	s3c := e.s3("us-east-1", 20)
	id := aws.ToString(must(c.SendCommand(e.ctx, shellInput("throttle")))(t).Command.CommandId)
	e.waitCommand(c, id)
	for _, iid := range ids {
		inv := must(c.GetCommandInvocation(e.ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(id), InstanceId: aws.String(iid)}))(t)
		if aws.ToString(inv.StandardOutputContent) != "ok" {
			t.Errorf("%s output %q", iid, aws.ToString(inv.StandardOutputContent))
		}
	}
	for i := 0; i < 5; i++ {
		must(s3c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String("throttled"), Key: aws.String("k"), Body: strings.NewReader("v")}))(t)
	}
	throttled := map[string]int{}
	for _, call := range e.srv.Calls() {
		if call.ErrorCode != "" {
			throttled[call.Service+":"+call.ErrorCode]++
		}
	}
	if throttled["ssm:RequestLimitExceeded"] == 0 || throttled["s3:SlowDown"] == 0 {
		t.Errorf("throttled calls %v: want some SSM and some S3 calls throttled and retried", throttled)
	}
	e.srv.SetThrottle(1, 1)
	one := ssm.NewFromConfig(e.cfg("us-east-1", 2), func(o *ssm.Options) { o.BaseEndpoint = aws.String(e.url) })
	_, err := one.ListCommands(e.ctx, &ssm.ListCommandsInput{})
	wantCode(t, err, "ThrottlingException")
	_, err = e.s3("us-east-1", 2).GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String("throttled"), Key: aws.String("k")})
	wantCode(t, err, "SlowDown")
	e.srv.ClearFaults()
	must(s3c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String("throttled"), Key: aws.String("k")}))(t)
}

// TestS3 covers the minimal S3 through the SDK's s3 client (path-style, custom endpoint),
// including its streaming (aws-chunked) uploads and pagination.
func TestS3(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.s3("us-east-1", 3)
	ctx := e.ctx
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nobucket"), Key: aws.String("a"), Body: strings.NewReader("x")})
	wantCode(t, err, "NoSuchBucket")
	must(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("esaudit")}))(t)
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("esaudit")})
	wantCode(t, err, "BucketAlreadyOwnedByYou")
	payload := strings.Repeat("facts ", 20000)
	for _, k := range []string{"p/a", "p/b", "p/c", "q/d"} {
		must(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("esaudit"), Key: aws.String(k), Body: strings.NewReader(payload + k)}))(t)
	}
	got := must(c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("esaudit"), Key: aws.String("p/b")}))(t)
	b, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if string(b) != payload+"p/b" {
		t.Errorf("GetObject returned %d bytes, want %d", len(b), len(payload)+3)
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("esaudit"), Prefix: aws.String("p/"), MaxKeys: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		pg := must(p.NextPage(ctx))(t)
		pages++
		for _, o := range pg.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if strings.Join(keys, ",") != "p/a,p/b,p/c" || pages != 2 {
		t.Errorf("ListObjectsV2 p/ = %v in %d pages", keys, pages)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("esaudit"), Key: aws.String("p/zz")})
	wantCode(t, err, "NoSuchKey")
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("esaudit")})
	wantCode(t, err, "BucketNotEmpty")
	if l := e.srv.Leaks(); len(l.Objects) != 4 || l.Objects[0].Name != "esaudit" {
		t.Errorf("leaks = %s", l)
	}
	for _, k := range []string{"p/a", "p/b", "p/c", "q/d", "missing"} {
		must(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("esaudit"), Key: aws.String(k)}))(t)
	}
	must(c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("esaudit")}))(t)
	if !e.srv.Leaks().Empty() {
		t.Errorf("leaks after cleanup: %s", e.srv.Leaks())
	}
	if dec, err := decodeAWSChunked([]byte("5;chunk-signature=ab\r\nhello\r\n0\r\nx-amz-checksum-crc32:abc=\r\n\r\n")); err != nil || string(dec) != "hello" {
		t.Errorf("decodeAWSChunked = %q, %v", dec, err)
	}
}
