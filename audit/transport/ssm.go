package transport

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
)

// SSMAPI is the part of the SSM client the transport uses.
type SSMAPI interface {
	SendCommand(context.Context, *ssm.SendCommandInput, ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
	GetCommandInvocation(context.Context, *ssm.GetCommandInvocationInput, ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
	ListCommandInvocations(context.Context, *ssm.ListCommandInvocationsInput, ...func(*ssm.Options)) (*ssm.ListCommandInvocationsOutput, error)
	ListCommands(context.Context, *ssm.ListCommandsInput, ...func(*ssm.Options)) (*ssm.ListCommandsOutput, error)
	CancelCommand(context.Context, *ssm.CancelCommandInput, ...func(*ssm.Options)) (*ssm.CancelCommandOutput, error)
}

// S3API is the part of the S3 client the transport uses for command output.
type S3API interface {
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// SSMConfig configures the SSM transport.
type SSMConfig struct {
	// MaxConcurrency is SendCommand's MaxConcurrency: a count ("50") or a percentage of the
	// targets ("10%"). Default "50".
	MaxConcurrency string
	// MaxErrors is SendCommand's MaxErrors: once more instances than this fail, SSM stops
	// sending the command to the rest (they are reported as not audited). Default "100%":
	// an audit wants every node tried.
	MaxErrors string
	// TimeoutSeconds is the script's execution timeout. Default 60.
	TimeoutSeconds int32
	// DeliveryTimeoutSeconds is SendCommand's TimeoutSeconds: how long an instance may wait
	// for delivery (its agent offline, or MaxConcurrency queueing it) before SSM gives up
	// with DeliveryTimedOut. Default 600; SSM's minimum is 30.
	DeliveryTimeoutSeconds int32
	// PollInterval between status rounds (ListCommands + ListCommandInvocations). Default 2s.
	PollInterval time.Duration
	// MaxOutput bounds the decoded facts document. Default DefaultMaxOutput.
	MaxOutput int64
	// Tags, when set, target instances by tag (SendCommand Targets tag:KEY=VALUE, one call
	// for the whole fleet) instead of by instance id in batches of 50. Set it only when every
	// SSM target was discovered with exactly these tags; values with EC2 wildcards (* ?) fall
	// back to instance ids.
	Tags map[string]string
	// S3Bucket and S3KeyPrefix ask SSM to write the whole output to S3, so a facts document
	// whose encoded form exceeds the 24,000 characters GetCommandInvocation returns is read
	// from there. The transport deletes the objects it caused when it closes.
	S3Bucket, S3KeyPrefix string
}

// SSM runs `esnode facts` with SSM Run Command (AWS-RunShellScript). Its output comes back
// gzip+base64 between markers: GetCommandInvocation keeps only the first 24,000 characters
// of standard output, which most compressed facts fit; a longer one is read from S3 when an
// output bucket is configured, and reported as truncated otherwise.
//
// Prepare sends one command (by tag, or per 50 instance ids); a poller then follows every
// invocation with ListCommands and ListCommandInvocations (50 per call), and Fetch reads the
// output of a finished instance with one GetCommandInvocation. Every instance ends with its
// SSM status: facts, or an error that says whether the agent was offline, the command timed
// out (delivery or execution), failed (with the tail of its stderr) or never reached it.
type SSM struct {
	api SSMAPI
	s3  S3API
	cfg SSMConfig

	mu        sync.Mutex
	cmdOf     map[string]string // instance id -> command id
	sendErr   map[string]error
	invs      map[string]invState // instance id -> last listed state
	commands  map[string]*ssmCmdState
	changed   chan struct{} // closed and replaced after every poll round
	pollErr   error
	polling   bool
	cancelPol context.CancelFunc
	stop      chan struct{} // closed by Close: the poller ends after its current call
	pollDone  chan struct{}
	closed    bool
}

type invState struct {
	status  types.CommandInvocationStatus
	details string
}

type ssmCmdState struct {
	id       string
	done     bool // the command is terminal and its invocations are all listed
	byTag    bool
	s3Output bool
}

// NewSSM returns the transport. s3api may be nil when cfg.S3Bucket is empty.
func NewSSM(api SSMAPI, s3api S3API, cfg SSMConfig) *SSM {
	if cfg.MaxConcurrency == "" {
		cfg.MaxConcurrency = "50"
	}
	if cfg.MaxErrors == "" {
		cfg.MaxErrors = "100%"
	}
	if cfg.TimeoutSeconds <= 0 {
		cfg.TimeoutSeconds = 60
	}
	if cfg.DeliveryTimeoutSeconds <= 0 {
		cfg.DeliveryTimeoutSeconds = 600
	}
	cfg.DeliveryTimeoutSeconds = max(cfg.DeliveryTimeoutSeconds, 30)
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = DefaultMaxOutput
	}
	return &SSM{api: api, s3: s3api, cfg: cfg, cmdOf: map[string]string{}, sendErr: map[string]error{},
		invs: map[string]invState{}, commands: map[string]*ssmCmdState{}, changed: make(chan struct{})}
}

var (
	reConcurrency = regexp.MustCompile(`^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$`)
	reErrors      = regexp.MustCompile(`^([1-9][0-9]*|0|[1-9][0-9]%|[0-9]%|100%)$`)
)

// ValidateSSMConfig checks the fields SSM would refuse, with a message that says what to write.
func ValidateSSMConfig(c SSMConfig) error {
	if c.MaxConcurrency != "" && !reConcurrency.MatchString(c.MaxConcurrency) {
		return fmt.Errorf("--ssm-max-concurrency %q: write a count (50) or a percentage of the nodes (10%%), at least 1", c.MaxConcurrency)
	}
	if c.MaxErrors != "" && !reErrors.MatchString(c.MaxErrors) {
		return fmt.Errorf("--ssm-max-errors %q: write a count (0, 5) or a percentage of the nodes (10%%, 100%%)", c.MaxErrors)
	}
	if c.S3KeyPrefix != "" && c.S3Bucket == "" {
		return errors.New("--ssm-s3-prefix needs --ssm-s3-bucket")
	}
	if c.S3Bucket != "" && (len(c.S3Bucket) < 3 || len(c.S3Bucket) > 63 || strings.ContainsAny(c.S3Bucket, "/:")) {
		return fmt.Errorf("--ssm-s3-bucket %q: give the bucket name only (3-63 characters), and the key prefix with --ssm-s3-prefix", c.S3Bucket)
	}
	return nil
}

// NewSSMClients builds the SSM and S3 clients from cfg (the default credential chain), with
// optional custom endpoints (VPC endpoints, an emulator; S3 then uses path-style addressing)
// and a standard retryer that retries throttling (ThrottlingException, SlowDown) with backoff
// up to 10 attempts: a fleet-sized audit polls SSM hard.
func NewSSMClients(cfg aws.Config, ssmEndpoint, s3Endpoint string) (*ssm.Client, *s3.Client) {
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 10
			o.MaxBackoff = 20 * time.Second
		})
	}
	sc := ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		o.Retryer = retryer()
		if ssmEndpoint != "" {
			o.BaseEndpoint = aws.String(ssmEndpoint)
		}
	})
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.Retryer = retryer()
		if s3Endpoint != "" {
			o.BaseEndpoint = aws.String(s3Endpoint)
			o.UsePathStyle = true
		}
	})
	return sc, s3c
}

const (
	ssmBegin = "ESAUDIT-FACTS-GZ-BEGIN"
	ssmEnd   = "ESAUDIT-FACTS-GZ-END"
)

// ssmScript runs as root (the SSM agent's user), so no sudo.
var ssmScript = `PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
p=$(command -v esnode) || { echo "esaudit-no-esnode $(uname -m)" >&2; exit 127; }
out=$("$p" facts) || exit $?
echo ` + ssmBegin + `
printf '%s' "$out" | gzip -c | base64 | tr -d '\n'
echo
echo ` + ssmEnd

// ssmBatch is SendCommand's limit of instance ids per call.
const ssmBatch = 50

func (s *SSM) sendInput() *ssm.SendCommandInput {
	in := &ssm.SendCommandInput{
		DocumentName:   aws.String("AWS-RunShellScript"),
		MaxConcurrency: aws.String(s.cfg.MaxConcurrency),
		MaxErrors:      aws.String(s.cfg.MaxErrors),
		TimeoutSeconds: aws.Int32(s.cfg.DeliveryTimeoutSeconds),
		Comment:        aws.String("esaudit: esnode facts"),
		Parameters: map[string][]string{
			"commands":         {ssmScript},
			"executionTimeout": {strconv.Itoa(int(s.cfg.TimeoutSeconds))},
		},
	}
	if s.cfg.S3Bucket != "" {
		in.OutputS3BucketName = aws.String(s.cfg.S3Bucket)
		if s.cfg.S3KeyPrefix != "" {
			in.OutputS3KeyPrefix = aws.String(strings.Trim(s.cfg.S3KeyPrefix, "/"))
		}
	}
	return in
}

// tagTargets are SendCommand Targets for cfg.Tags, or nil when they cannot express them.
func (s *SSM) tagTargets() []types.Target {
	if len(s.cfg.Tags) == 0 || len(s.cfg.Tags) > 5 {
		return nil
	}
	keys := make([]string, 0, len(s.cfg.Tags))
	for k, v := range s.cfg.Tags {
		if strings.ContainsAny(k+v, "*?") {
			return nil // EC2 filter wildcards; SSM tag targets match exact values
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []types.Target
	for _, k := range keys {
		out = append(out, types.Target{Key: aws.String("tag:" + k), Values: []string{s.cfg.Tags[k]}})
	}
	return out
}

// Prepare sends the command to every SSM target (by tag when configured, else in batches of
// 50 instance ids) and starts following it, so the instances work in parallel (bounded by
// MaxConcurrency) while Fetch collects the answers.
func (s *SSM) Prepare(ctx context.Context, ts []target.Target) error {
	var ids []string
	for _, t := range ts {
		if t.InstanceID != "" {
			ids = append(ids, t.InstanceID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if tt := s.tagTargets(); tt != nil {
		in := s.sendInput()
		in.Targets = tt
		out, err := s.api.SendCommand(ctx, in)
		s.record(ids, out, err, true)
	} else {
		for len(ids) > 0 {
			n := min(ssmBatch, len(ids))
			batch := ids[:n]
			ids = ids[n:]
			in := s.sendInput()
			in.InstanceIds = batch
			out, err := s.api.SendCommand(ctx, in)
			s.record(batch, out, err, false)
		}
	}
	s.startPolling()
	return nil
}

func (s *SSM) record(ids []string, out *ssm.SendCommandOutput, err error, byTag bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		hint := "the caller needs ssm:SendCommand on the instances and on document AWS-RunShellScript"
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidInstanceId" {
			hint = "an instance in this batch is not managed by SSM (agent not registered, no instance profile with AmazonSSMManagedInstanceCore, or not running)"
		}
		for _, id := range ids {
			s.sendErr[id] = errorf(KindTransport, "SSM SendCommand: %w (%s)", err, hint)
		}
		return
	}
	c := &ssmCmdState{id: aws.ToString(out.Command.CommandId), byTag: byTag, s3Output: s.cfg.S3Bucket != ""}
	s.commands[c.id] = c
	for _, id := range ids {
		s.cmdOf[id] = c.id
	}
}

func (s *SSM) startPolling() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.polling || s.closed {
		return
	}
	s.polling = true
	// The poller outlives the Prepare call (its ctx may be a short one); Close stops it.
	ctx, cancel := context.WithCancel(context.Background())
	s.cancelPol = cancel
	s.stop = make(chan struct{})
	s.pollDone = make(chan struct{})
	go s.poll(ctx)
}

// poll follows every command until each is terminal and fully listed.
func (s *SSM) poll(ctx context.Context) {
	defer close(s.pollDone)
	for {
		s.mu.Lock()
		var open []string
		for id, c := range s.commands {
			if !c.done {
				open = append(open, id)
			}
		}
		s.mu.Unlock()
		sort.Strings(open)
		var roundErr error
		for _, id := range open {
			if err := s.pollCommand(ctx, id); err != nil && ctx.Err() == nil {
				roundErr = err
			}
		}
		s.mu.Lock()
		s.pollErr = roundErr // a later good round clears a transient failure
		close(s.changed)
		s.changed = make(chan struct{})
		allDone := true
		for _, c := range s.commands {
			allDone = allDone && c.done
		}
		if allDone {
			s.polling = false
		}
		s.mu.Unlock()
		if allDone || ctx.Err() != nil {
			return
		}
		select {
		case <-time.After(s.cfg.PollInterval):
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// pollCommand lists the command's status and then its invocations.
func (s *SSM) pollCommand(ctx context.Context, id string) error {
	lc, err := s.api.ListCommands(ctx, &ssm.ListCommandsInput{CommandId: aws.String(id)})
	if err != nil {
		return errorf(KindTransport, "SSM ListCommands %s: %w (the caller needs ssm:ListCommands)", id, err)
	}
	terminal := false
	if len(lc.Commands) == 1 {
		switch lc.Commands[0].Status {
		case types.CommandStatusPending, types.CommandStatusInProgress, types.CommandStatusCancelling:
		default:
			terminal = true
		}
	}
	got := map[string]invState{}
	allTerminal := true
	p := ssm.NewListCommandInvocationsPaginator(s.api, &ssm.ListCommandInvocationsInput{CommandId: aws.String(id), MaxResults: aws.Int32(50)})
	for p.HasMorePages() {
		select {
		case <-s.stop:
			return nil // closing: this round's partial listing is not needed
		default:
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return errorf(KindTransport, "SSM ListCommandInvocations %s: %w (the caller needs ssm:ListCommandInvocations)", id, err)
		}
		for _, inv := range page.CommandInvocations {
			st := invState{status: inv.Status, details: aws.ToString(inv.StatusDetails)}
			got[aws.ToString(inv.InstanceId)] = st
			allTerminal = allTerminal && st.terminal()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for iid, st := range got {
		s.invs[iid] = st
	}
	if terminal && allTerminal {
		s.commands[id].done = true
	}
	return nil
}

func (st invState) terminal() bool {
	switch st.status {
	case "", types.CommandInvocationStatusPending, types.CommandInvocationStatusInProgress,
		types.CommandInvocationStatusDelayed, types.CommandInvocationStatusCancelling:
		return false
	}
	return true
}

// Fetch implements Transport: it waits for the instance's invocation to end, then decodes
// the facts from its output (API, or S3 when the API's copy is truncated).
func (s *SSM) Fetch(ctx context.Context, t target.Target) ([]byte, error) {
	if t.InstanceID == "" {
		return nil, errorf(KindUnreachable, "SSM needs an instance id (discover with --ec2-tag, or give instance_id= in the inventory)")
	}
	s.mu.Lock()
	cmdID, sent := s.cmdOf[t.InstanceID]
	sendErr := s.sendErr[t.InstanceID]
	s.mu.Unlock()
	if sendErr != nil {
		return nil, sendErr
	}
	if !sent {
		if err := s.Prepare(ctx, []target.Target{t}); err != nil {
			return nil, err
		}
		s.mu.Lock()
		_, sent = s.cmdOf[t.InstanceID]
		sendErr = s.sendErr[t.InstanceID]
		s.mu.Unlock()
		if sendErr != nil {
			return nil, sendErr
		}
		if !sent {
			return nil, errorf(KindTransport, "SSM: no command was sent to %s", t.InstanceID)
		}
	}
	for {
		s.mu.Lock()
		st, listed := s.invs[t.InstanceID]
		cmd := s.commands[cmdID]
		done := cmd.done
		perr := s.pollErr
		changed := s.changed
		s.mu.Unlock()
		switch {
		case listed && st.terminal():
			return s.result(ctx, t, cmd, st)
		case done && !listed:
			return nil, errorf(KindAgentOffline, "SSM did not run the command on %s (SSM status: not targeted): the instance is not a managed instance — its SSM agent never registered (no instance profile with AmazonSSMManagedInstanceCore, no route to SSM) or it lacks the tag %s", t.InstanceID, tagText(s.cfg.Tags))
		case perr != nil:
			return nil, perr
		}
		select {
		case <-changed:
		case <-ctx.Done():
			state := "not yet listed"
			if listed {
				state = st.details
			}
			return nil, errorf(KindTimeout, "SSM command %s on %s: node deadline reached (SSM status: %s); a queued instance waits for MaxConcurrency %s", cmdID, t.InstanceID, state, s.cfg.MaxConcurrency)
		}
	}
}

func tagText(tags map[string]string) string {
	if len(tags) == 0 {
		return "(none: sent by instance id)"
	}
	var parts []string
	for k, v := range tags {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// result turns a terminal invocation into facts or an error that names its SSM status.
func (s *SSM) result(ctx context.Context, t target.Target, cmd *ssmCmdState, st invState) ([]byte, error) {
	id := t.InstanceID
	switch st.details {
	case "Undeliverable":
		return nil, errorf(KindAgentOffline, "SSM could not deliver the command to %s (SSM status: Undeliverable): its SSM agent is not online — check that amazon-ssm-agent runs, the instance profile has AmazonSSMManagedInstanceCore, and the instance reaches the SSM endpoints", id)
	case "DeliveryTimedOut":
		return nil, errorf(KindTimeout, "SSM command on %s was not picked up by its agent within %ds (SSM status: DeliveryTimedOut): the agent is stalled or the instance was queued behind MaxConcurrency %s (raise --ssm-delivery-timeout)", id, s.cfg.DeliveryTimeoutSeconds, s.cfg.MaxConcurrency)
	case "ExecutionTimedOut":
		return nil, errorf(KindTimeout, "esnode facts on %s did not finish within %ds (SSM status: ExecutionTimedOut)", id, s.cfg.TimeoutSeconds)
	case "Terminated":
		return nil, errorf(KindCommand, "SSM stopped sending the command before %s (SSM status: Terminated): more nodes failed than --ssm-max-errors %s allows", id, s.cfg.MaxErrors)
	}
	switch st.status {
	case types.CommandInvocationStatusCancelled:
		return nil, errorf(KindCommand, "SSM command on %s was cancelled (SSM status: %s)", id, st.details)
	case types.CommandInvocationStatusSuccess, types.CommandInvocationStatusFailed, types.CommandInvocationStatusTimedOut:
	default:
		return nil, errorf(KindCommand, "SSM command on %s ended %s/%s", id, st.status, st.details)
	}
	inv, err := s.api.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(cmd.id), InstanceId: aws.String(id)})
	if err != nil {
		return nil, errorf(KindTransport, "SSM GetCommandInvocation on %s: %w (the caller needs ssm:GetCommandInvocation)", id, err)
	}
	if inv.Status == types.CommandInvocationStatusFailed {
		stderr := aws.ToString(inv.StandardErrorContent)
		if strings.Contains(stderr, "esaudit-no-esnode") {
			return nil, errorf(KindNoEsnode, "esnode is not installed on %s, and SSM cannot upload it: audit this node over SSH, or install esnode", id)
		}
		if cmd.s3Output && len(stderr) >= 8000 {
			// The API keeps the first 8,000 characters; the end of stderr says why it failed.
			if whole, err := s.readOutput(ctx, cmd.id, id, "stderr", 1<<20); err == nil {
				stderr = whole
			}
		}
		return nil, errorf(KindCommand, "esnode facts on %s failed (SSM status: Failed, exit %d): %s", id, inv.ResponseCode, strings.TrimSpace(lastBytes(stderr, 2000)))
	}
	out := aws.ToString(inv.StandardOutputContent)
	if !strings.Contains(out, ssmEnd) && cmd.s3Output {
		whole, err := s.readOutput(ctx, cmd.id, id, "stdout", s.cfg.MaxOutput*4/3+64<<10)
		if err != nil {
			return nil, err
		}
		out = whole
	}
	return s.decode(out)
}

// outputKey is where the SSM agent writes an AWS-RunShellScript stream in the output bucket
// (<prefix>/<command id>/<instance id>/awsrunShellScript/0.awsrunShellScript/<stream>).
func (s *SSM) outputKey(cmdID, instanceID, stream string) string {
	return s.commandPrefix(cmdID) + instanceID + "/awsrunShellScript/0.awsrunShellScript/" + stream
}

// commandPrefix holds every object of one command: <prefix>/<command id>/.
func (s *SSM) commandPrefix(cmdID string) string {
	p := strings.Trim(s.cfg.S3KeyPrefix, "/")
	if p != "" {
		p += "/"
	}
	return p + cmdID + "/"
}

func (s *SSM) readOutput(ctx context.Context, cmdID, instanceID, stream string, limit int64) (string, error) {
	key := s.outputKey(cmdID, instanceID, stream)
	obj, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.S3Bucket), Key: aws.String(key)})
	if err != nil {
		return "", errorf(KindTransport, "the facts of %s exceed the 24,000 characters SSM returns, and reading the whole output from s3://%s/%s failed: %w (the caller needs s3:GetObject on the prefix; the instance profile needs s3:PutObject there)", instanceID, s.cfg.S3Bucket, key, err)
	}
	defer obj.Body.Close()
	b, err := io.ReadAll(io.LimitReader(obj.Body, limit+1))
	if err != nil {
		return "", errorf(KindTransport, "read s3://%s/%s: %w", s.cfg.S3Bucket, key, err)
	}
	if int64(len(b)) > limit {
		return "", errorf(KindOutputTooBig, "SSM output of %s in s3://%s/%s is larger than %d bytes", instanceID, s.cfg.S3Bucket, key, limit)
	}
	return string(b), nil
}

// Close cancels commands still running (nodes the run gave up on), stops the poller and
// deletes the S3 output the commands wrote.
func (s *SSM) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cancel, done, stop := s.cancelPol, s.pollDone, s.stop
	var open, withS3 []string
	for id, c := range s.commands {
		if !c.done {
			open = append(open, id)
		}
		if c.s3Output {
			withS3 = append(withS3, id)
		}
	}
	s.mu.Unlock()
	if cancel != nil {
		// Let the call in flight finish (cancelling it mid-response makes the SDK warn),
		// unless it hangs.
		close(stop)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		cancel()
		<-done
	}
	ctx, cancelCleanup := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelCleanup()
	var errs []error
	sort.Strings(open)
	for _, id := range open {
		if _, err := s.api.CancelCommand(ctx, &ssm.CancelCommandInput{CommandId: aws.String(id)}); err != nil {
			errs = append(errs, fmt.Errorf("cancel SSM command %s (still running on some nodes): %w", id, err))
		}
	}
	sort.Strings(withS3)
	for _, id := range withS3 {
		if err := s.deleteOutput(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteOutput removes every object under <prefix>/<command id>/.
func (s *SSM) deleteOutput(ctx context.Context, cmdID string) error {
	prefix := s.commandPrefix(cmdID)
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.S3Bucket), Prefix: aws.String(prefix)})
	var keys []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list SSM output s3://%s/%s to delete it: %w (the caller needs s3:ListBucket on the prefix)", s.cfg.S3Bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	for _, k := range keys {
		if _, err := s.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.S3Bucket), Key: aws.String(k)}); err != nil {
			var nk *s3types.NoSuchKey
			if errors.As(err, &nk) {
				continue
			}
			return fmt.Errorf("delete SSM output s3://%s/%s: %w (the caller needs s3:DeleteObject on the prefix)", s.cfg.S3Bucket, k, err)
		}
	}
	return nil
}

func (s *SSM) decode(out string) ([]byte, error) {
	i := strings.Index(out, ssmBegin)
	j := strings.Index(out, ssmEnd)
	if i < 0 || j < i {
		hint := "give --ssm-s3-bucket so SSM writes the whole output to S3, or audit this node over SSH"
		if s.cfg.S3Bucket != "" {
			hint = "the output in S3 is incomplete too"
		}
		return nil, errorf(KindInvalidOutput, "SSM output has no complete facts block (%d characters; SSM returns the first 24,000): %s", len(out), hint)
	}
	enc := strings.TrimSpace(out[i+len(ssmBegin) : j])
	gz, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errorf(KindInvalidOutput, "SSM output is not base64: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, errorf(KindInvalidOutput, "SSM output is not gzip: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, s.cfg.MaxOutput+1))
	if err != nil {
		return nil, errorf(KindInvalidOutput, "SSM output: %w", err)
	}
	if int64(len(b)) > s.cfg.MaxOutput {
		return nil, errorf(KindOutputTooBig, "facts from SSM exceed %d bytes", s.cfg.MaxOutput)
	}
	return b, nil
}
