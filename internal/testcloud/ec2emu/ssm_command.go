package ec2emu

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// SSM Run Command: SendCommand, GetCommandInvocation, ListCommandInvocations, ListCommands
// and CancelCommand for the AWS-RunShellScript document, with the emulator playing the
// agent (see Agent). Statuses follow the AWS Systems Manager User Guide, "Understanding
// command statuses" (monitor-commands.html):
//
//	invocation  Pending → InProgress → Success | Failed | TimedOut (ExecutionTimedOut)
//	            Pending → Failed (StatusDetails Undeliverable): the agent is not online;
//	                      does not count against MaxErrors
//	            Pending → Delayed → TimedOut (DeliveryTimedOut): not picked up before
//	                      TimeoutSeconds; does not count against MaxErrors
//	            Pending → Cancelled (StatusDetails Terminated): MaxErrors was exceeded
//	            Pending | InProgress → Cancelled: CancelCommand
//	command     Pending → InProgress → Success | Failed (Failed, Incomplete,
//	            NoInstancesInTag) | TimedOut (DeliveryTimedOut, ExecutionTimedOut) | Cancelled
//
// MaxConcurrency bounds invocations InProgress at once; a percentage is of the target count,
// rounded up, at least 1. MaxErrors: when errors (Failed, ExecutionTimedOut) exceed it, no
// further target is sent the command; a percentage is of the target count, rounded down.
// Output: GetCommandInvocation returns the first 24,000 characters of standard output and
// the first 8,000 of standard error; with OutputS3BucketName the agent also uploads the whole
// streams to <prefix>/<command id>/<instance id>/awsrunShellScript/0.awsrunShellScript/
// {stdout,stderr} in the emulator's S3 (s3.go). The bucket must exist; if not, the upload is
// skipped (the agent only logs it) and the URLs point at objects that do not exist.

const (
	runShellScriptDoc    = "AWS-RunShellScript"
	runShellScriptPlugin = "aws:runShellScript"
	stdoutAPILimit       = 24000
	stderrAPILimit       = 8000
	listOutputLimit      = 2500 // CommandPlugins[].Output in ListCommandInvocations
)

// Invocation status details (StatusDetails) the emulator reports.
const (
	DetailPending           = "Pending"
	DetailInProgress        = "InProgress"
	DetailDelayed           = "Delayed"
	DetailSuccess           = "Success"
	DetailFailed            = "Failed"
	DetailExecutionTimedOut = "ExecutionTimedOut"
	DetailDeliveryTimedOut  = "DeliveryTimedOut"
	DetailUndeliverable     = "Undeliverable"
	DetailTerminated        = "Terminated"
	DetailCancelled         = "Cancelled"
	DetailIncomplete        = "Incomplete"
	DetailNoInstancesInTag  = "NoInstancesInTag"
)

// statusOfDetail is the invocation Status for a StatusDetails value.
var statusOfDetail = map[string]string{
	DetailPending: "Pending", DetailInProgress: "InProgress", DetailDelayed: "Delayed",
	DetailSuccess: "Success", DetailFailed: "Failed", DetailUndeliverable: "Failed",
	DetailExecutionTimedOut: "TimedOut", DetailDeliveryTimedOut: "TimedOut",
	DetailTerminated: "Cancelled", DetailCancelled: "Cancelled",
}

var (
	reMaxConcurrency = regexp.MustCompile(`^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$`)
	reMaxErrors      = regexp.MustCompile(`^([1-9][0-9]*|0|[1-9][0-9]%|[0-9]%|100%)$`)
	reCommandID      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// ssmTarget is one SendCommand target (Key "tag:Name", "tag-key" or "InstanceIds").
type ssmTarget struct {
	Key    string   `json:"Key"`
	Values []string `json:"Values"`
}

type ssmCommand struct {
	id, region, document, comment string
	params                        map[string][]string
	instanceIDs                   []string
	targets                       []ssmTarget
	requested, expires            time.Time
	maxConc, maxErrs              string
	concN, errN                   int
	timeout                       int // TimeoutSeconds: delivery timeout
	execTimeout                   int // executionTimeout parameter
	bucket, prefix                string
	status, details               string
	invs                          []*ssmInvocation
	byInst                        map[string]*ssmInvocation
	errors, deliveryTimedOut      int
	cancelled                     bool
	cancelCh                      chan struct{} // closed by CancelCommand for the whole command
	inProgress, peakInProgress    int
	seq                           int64
	finished                      bool
}

type ssmInvocation struct {
	cmd                  *ssmCommand
	instanceID, name     string
	details              string
	code                 int
	stdout, stderr       string
	started, ended       time.Time
	stdoutURL, stderrURL string
	cancel               context.CancelFunc // set while InProgress
	cancelRequested      bool
}

func (inv *ssmInvocation) terminal() bool {
	switch inv.details {
	case DetailPending, DetailInProgress, DetailDelayed:
		return false
	}
	return true
}

// runCommandState holds every Run Command command. Guarded by Server.mu.
type runCommandState struct {
	commands map[string]*ssmCommand
}

// RunCommandTimeScale multiplies TimeoutSeconds and executionTimeout when the emulator
// enforces them, so a test can let AWS's 30-second minimum pass in 30 ms (0.001) while the
// API still validates the real ranges. Default 1.
func (s *Server) runScale() float64 {
	if s.opts.RunCommandTimeScale > 0 {
		return s.opts.RunCommandTimeScale
	}
	return 1
}

func (s *Server) scaled(seconds int) time.Duration {
	return time.Duration(float64(seconds) * s.runScale() * float64(time.Second))
}

// dispatchRunCommand serves the Run Command actions; ok is false for other actions. Runs
// under s.mu.
func (s *Server) dispatchRunCommand(req *request) (out any, aerr *apiError, ok bool) {
	switch req.action {
	case "SendCommand", "GetCommandInvocation", "ListCommandInvocations", "ListCommands", "CancelCommand":
	default:
		return nil, nil, false
	}
	if s.runCmd.commands == nil {
		s.runCmd.commands = map[string]*ssmCommand{}
	}
	var in struct {
		DocumentName       string
		InstanceIds        []string
		Targets            []ssmTarget
		Parameters         map[string][]string
		TimeoutSeconds     *int
		Comment            string
		MaxConcurrency     string
		MaxErrors          string
		OutputS3BucketName string
		OutputS3KeyPrefix  string
		OutputS3Region     string
		CommandId          string
		InstanceId         string
		PluginName         string
		MaxResults         *int
		NextToken          string
		Details            bool
		Filters            []struct{ Key, Value string }
	}
	if len(req.body) > 0 {
		if err := json.Unmarshal(req.body, &in); err != nil {
			return nil, errf("SerializationException", "cannot decode request JSON: %v", err), true
		}
	}
	switch req.action {
	case "SendCommand":
		out, aerr = s.sendCommand(req, in.DocumentName, in.InstanceIds, in.Targets, in.Parameters, in.TimeoutSeconds,
			in.Comment, in.MaxConcurrency, in.MaxErrors, in.OutputS3BucketName, in.OutputS3KeyPrefix)
	case "GetCommandInvocation":
		out, aerr = s.getCommandInvocation(req, in.CommandId, in.InstanceId, in.PluginName)
	case "ListCommandInvocations", "ListCommands":
		max := 50
		if in.MaxResults != nil {
			max = *in.MaxResults
			if max < 1 || max > 50 {
				return nil, errf("ValidationException", "1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 50", max), true
			}
		}
		start := 0
		if in.NextToken != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(in.NextToken, "emu-"))
			if err != nil || n < 0 {
				return nil, errf("InvalidNextToken", "The specified token isn't valid."), true
			}
			start = n
		}
		var status string
		for _, f := range in.Filters {
			if f.Key == "Status" {
				status = f.Value
			}
		}
		if req.action == "ListCommands" {
			out, aerr = s.listCommands(req, in.CommandId, in.InstanceId, status, start, max)
		} else {
			out, aerr = s.listCommandInvocations(req, in.CommandId, in.InstanceId, status, in.Details, start, max)
		}
	case "CancelCommand":
		out, aerr = s.cancelCommand(req, in.CommandId, in.InstanceIds)
	}
	return out, aerr, true
}

func validationErr(field, constraint, value string) *apiError {
	return errf("ValidationException", "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", value, field, constraint)
}

func (s *Server) sendCommand(req *request, doc string, ids []string, targets []ssmTarget, params map[string][]string,
	timeout *int, comment, maxConc, maxErrs, bucket, prefix string) (any, *apiError) {
	r := req.region
	if doc == "" {
		return nil, validationErr("documentName", "Member must not be null", "null")
	}
	if doc != runShellScriptDoc {
		return nil, errf("InvalidDocument", "Document with name %s does not exist (the emulator serves only %s).", doc, runShellScriptDoc)
	}
	if (len(ids) == 0) == (len(targets) == 0) {
		return nil, errf("ValidationException", "Specify either InstanceIds or Targets, not both and not neither.")
	}
	if len(ids) > 50 {
		return nil, validationErr("instanceIds", "Member must have length less than or equal to 50", strings.Join(ids, ","))
	}
	if len(targets) > 5 {
		return nil, validationErr("targets", "Member must have length less than or equal to 5", fmt.Sprint(len(targets)))
	}
	cmds := params["commands"]
	if len(cmds) == 0 {
		return nil, errf("InvalidParameters", "Parameter \"commands\" is required by document %s.", doc)
	}
	for k := range params {
		if k != "commands" && k != "executionTimeout" && k != "workingDirectory" {
			return nil, errf("InvalidParameters", "Parameter \"%s\" is not defined in document %s (it takes commands, executionTimeout, workingDirectory).", k, doc)
		}
	}
	execTimeout := 3600
	if v := params["executionTimeout"]; len(v) > 0 {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > 172800 {
			return nil, errf("InvalidParameters", "Parameter \"executionTimeout\" %q must be a number of seconds from 1 to 172800.", v[0])
		}
		execTimeout = n
	}
	to := 3600
	if timeout != nil {
		to = *timeout
		if to < 30 || to > 2592000 {
			return nil, validationErr("timeoutSeconds", "Member must have value between 30 and 2592000", strconv.Itoa(to))
		}
	}
	if maxConc == "" {
		maxConc = "50"
	}
	if !reMaxConcurrency.MatchString(maxConc) {
		return nil, validationErr("maxConcurrency", "Member must satisfy regular expression pattern: ^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$", maxConc)
	}
	if maxErrs == "" {
		maxErrs = "0"
	}
	if !reMaxErrors.MatchString(maxErrs) {
		return nil, validationErr("maxErrors", "Member must satisfy regular expression pattern: ^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$", maxErrs)
	}
	if bucket != "" && (len(bucket) < 3 || len(bucket) > 63) {
		return nil, validationErr("outputS3BucketName", "Member must have length between 3 and 63", bucket)
	}
	if len(prefix) > 500 {
		return nil, validationErr("outputS3KeyPrefix", "Member must have length less than or equal to 500", prefix)
	}

	// Resolve the targets to managed instances, in a stable order.
	var insts []*instance
	if len(ids) > 0 {
		var bad []string
		seen := map[string]bool{}
		for _, id := range ids {
			in := r.instances[id]
			if in == nil || !s.managed(in) {
				bad = append(bad, id)
				continue
			}
			if !seen[id] {
				seen[id] = true
				insts = append(insts, in)
			}
		}
		if len(bad) > 0 {
			return nil, errf("InvalidInstanceId", "Instances [%s] not in a valid state for account %s: not managed by Systems Manager in %s (no SSM agent registered, or the instance is terminated).", strings.Join(bad, ", "), s.account, r.name)
		}
	} else {
		var err *apiError
		if insts, err = s.resolveTargets(r, targets); err != nil {
			return nil, err
		}
	}

	c := &ssmCommand{
		id: newRequestID(), region: r.name, document: doc, comment: comment, params: params,
		instanceIDs: ids, targets: targets, requested: req.now, maxConc: maxConc, maxErrs: maxErrs,
		timeout: to, execTimeout: execTimeout, bucket: bucket, prefix: prefix,
		byInst: map[string]*ssmInvocation{}, cancelCh: make(chan struct{}), seq: s.nextSeq(),
		status: "Pending", details: DetailPending,
	}
	c.expires = c.requested.Add(time.Duration(to+execTimeout) * time.Second)
	n := len(insts)
	c.concN = countOrPercent(maxConc, n, true)
	c.errN = countOrPercent(maxErrs, n, false)
	for _, in := range insts {
		inv := &ssmInvocation{cmd: c, instanceID: in.id, name: in.privateDNSName(r), details: DetailPending, code: -1}
		c.invs = append(c.invs, inv)
		c.byInst[in.id] = inv
	}
	s.runCmd.commands[c.id] = c
	if n == 0 {
		c.status, c.details, c.finished = "Failed", DetailNoInstancesInTag, true
	} else if s.ctx.Err() == nil {
		s.wg.Add(1)
		go s.runCommand(c)
	}
	return map[string]any{"Command": s.commandJSON(c)}, nil
}

// privateDNSName is the instance's name as Run Command lists it (InstanceName).
func (in *instance) privateDNSName(r *region) string {
	if in.privateIP == "" {
		return ""
	}
	return r.privateDNS(in.privateIP)
}

// countOrPercent turns "10" or "10%" of n targets into a count: percentages of
// MaxConcurrency round up (at least 1), of MaxErrors round down.
func countOrPercent(v string, n int, concurrency bool) int {
	if p, ok := strings.CutSuffix(v, "%"); ok {
		pct, _ := strconv.Atoi(p)
		x := float64(pct) * float64(n) / 100
		if concurrency {
			return max(1, int(math.Ceil(x)))
		}
		return int(math.Floor(x))
	}
	c, _ := strconv.Atoi(v)
	return c
}

// resolveTargets finds the managed instances matching every target; callers hold s.mu.
func (s *Server) resolveTargets(r *region, targets []ssmTarget) ([]*instance, *apiError) {
	for _, t := range targets {
		if len(t.Values) == 0 && t.Key != "tag-key" {
			return nil, errf("InvalidTarget", "Target %s has no values.", t.Key)
		}
		switch {
		case strings.HasPrefix(t.Key, "tag:") && len(t.Key) > 4, t.Key == "tag-key", t.Key == "InstanceIds":
		default:
			return nil, errf("InvalidTarget", "Target key %q is not supported by the emulator: use tag:<key>, tag-key or InstanceIds.", t.Key)
		}
	}
	var out []*instance
	for _, in := range sortedBySeq(r.instances, func(x *instance) int64 { return x.seq }) {
		if !s.managed(in) {
			continue
		}
		ok := true
		for _, t := range targets {
			switch {
			case t.Key == "InstanceIds":
				ok = ok && contains(t.Values, in.id)
			case t.Key == "tag-key":
				for _, k := range t.Values {
					_, has := in.tags[k]
					ok = ok && has
				}
			default:
				v, has := in.tags[t.Key[4:]]
				ok = ok && has && contains(t.Values, v)
			}
		}
		if ok {
			out = append(out, in)
		}
	}
	return out, nil
}

// runCommand delivers c to its targets, at most concN at a time, stopping new deliveries
// once errors exceed errN, and settles the command when every invocation is terminal.
func (s *Server) runCommand(c *ssmCommand) {
	defer s.wg.Done()
	slots := make(chan struct{}, c.concN)
	deliveryDeadline := time.NewTimer(s.scaled(c.timeout))
	defer deliveryDeadline.Stop()
	var running sync.WaitGroup
	s.mu.Lock()
	c.status, c.details = "InProgress", DetailInProgress
	s.mu.Unlock()
	expired := false
	for _, inv := range c.invs {
		agent, status, skip := s.prepareDelivery(c, inv, expired)
		if skip {
			continue
		}
		// Wait for a concurrency slot, the delivery deadline, cancellation or shutdown.
		gotSlot := false
		select {
		case slots <- struct{}{}:
			gotSlot = true
		case <-deliveryDeadline.C:
			expired = true
		case <-c.cancelCh:
		case <-s.ctx.Done():
			expired = true
		}
		// Errors may have grown, or the command been cancelled, while it waited.
		agent, status, skip = s.prepareDelivery(c, inv, expired || !gotSlot)
		if skip || !gotSlot {
			if gotSlot {
				<-slots
			}
			continue
		}
		s.mu.Lock()
		if status == AgentStalled {
			// Never picked up: Delayed until the delivery deadline; it holds no slot.
			inv.details = DetailDelayed
			s.mu.Unlock()
			<-slots
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.scaled(c.execTimeout))
		inv.cancel = cancel
		inv.details = DetailInProgress
		inv.started = s.now()
		c.inProgress++
		c.peakInProgress = max(c.peakInProgress, c.inProgress)
		script := strings.Join(c.params["commands"], "\n")
		s.mu.Unlock()
		running.Add(1)
		go func() {
			defer running.Done()
			defer func() { <-slots }()
			res := agent.RunShellScript(ctx, script)
			timedOut := ctx.Err() == context.DeadlineExceeded && s.ctx.Err() == nil
			cancel()
			s.mu.Lock()
			defer s.mu.Unlock()
			c.inProgress--
			inv.cancel = nil
			inv.stdout, inv.stderr = string(res.Stdout), string(res.Stderr)
			switch {
			case inv.cancelRequested:
				s.finishInv(inv, DetailCancelled, -1)
			case timedOut:
				s.finishInv(inv, DetailExecutionTimedOut, -1)
			case res.Err != nil:
				if inv.stderr == "" {
					inv.stderr = res.Err.Error()
				}
				s.finishInv(inv, DetailFailed, -1)
			case res.ExitCode != 0:
				s.finishInv(inv, DetailFailed, res.ExitCode)
			default:
				s.finishInv(inv, DetailSuccess, 0)
			}
			s.uploadOutput(inv)
		}()
	}
	// Delayed invocations end DeliveryTimedOut at the deadline (or on cancel).
	for {
		s.mu.Lock()
		delayed := false
		for _, inv := range c.invs {
			if inv.details == DetailDelayed {
				delayed = true
				if c.cancelled || expired {
					d := DetailDeliveryTimedOut
					if c.cancelled {
						d = DetailCancelled
					}
					s.finishInv(inv, d, -1)
				}
			}
		}
		s.mu.Unlock()
		if !delayed || c.cancelled || expired {
			break
		}
		select {
		case <-deliveryDeadline.C:
			expired = true
		case <-c.cancelCh:
		case <-s.ctx.Done():
			expired = true
		}
	}
	running.Wait()
	s.mu.Lock()
	s.settleCommand(c)
	s.mu.Unlock()
}

// prepareDelivery settles inv without delivering it when it cannot be delivered (already
// terminal, cancelled, MaxErrors exceeded, delivery deadline passed, agent not online);
// otherwise it returns the agent and its ping state.
func (s *Server) prepareDelivery(c *ssmCommand, inv *ssmInvocation, expired bool) (Agent, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case inv.terminal():
		return nil, "", true
	case c.cancelled:
		s.finishInv(inv, DetailCancelled, -1)
		return nil, "", true
	case c.errors > c.errN:
		s.finishInv(inv, DetailTerminated, -1)
		return nil, "", true
	case expired:
		s.finishInv(inv, DetailDeliveryTimedOut, -1)
		return nil, "", true
	}
	in := s.regions[c.region].instances[inv.instanceID]
	if in == nil {
		s.finishInv(inv, DetailUndeliverable, -1)
		return nil, "", true
	}
	agent, status := s.agentFor(in)
	if status == AgentConnectionLost {
		s.finishInv(inv, DetailUndeliverable, -1)
		return nil, "", true
	}
	return agent, status, false
}

// finishInv moves inv to a terminal state and counts it; callers hold s.mu.
func (s *Server) finishInv(inv *ssmInvocation, detail string, code int) {
	if inv.terminal() {
		return
	}
	inv.details, inv.code, inv.ended = detail, code, s.now()
	switch detail {
	case DetailFailed, DetailExecutionTimedOut:
		inv.cmd.errors++
	case DetailDeliveryTimedOut:
		inv.cmd.deliveryTimedOut++
	}
}

// settleCommand sets the command's final status; callers hold s.mu.
func (s *Server) settleCommand(c *ssmCommand) {
	c.finished = true
	counted, success, execTO := 0, 0, 0
	for _, inv := range c.invs {
		switch inv.details {
		case DetailUndeliverable:
			continue // counts neither way
		case DetailSuccess:
			success++
		case DetailExecutionTimedOut:
			execTO++
		}
		counted++
	}
	switch {
	case c.cancelled:
		c.status, c.details = "Cancelled", DetailCancelled
	case c.errors > c.errN && execTO*2 > c.errors:
		c.status, c.details = "TimedOut", DetailExecutionTimedOut
	case c.errors > c.errN:
		c.status, c.details = "Failed", DetailFailed
	case c.deliveryTimedOut > c.errN:
		c.status, c.details = "TimedOut", DetailDeliveryTimedOut
	case success == counted && counted > 0:
		c.status, c.details = "Success", DetailSuccess
	default:
		c.status, c.details = "Failed", DetailIncomplete
	}
}

// uploadOutput puts the whole streams in S3 as the agent does; callers hold s.mu.
func (s *Server) uploadOutput(inv *ssmInvocation) {
	c := inv.cmd
	if c.bucket == "" {
		return
	}
	base := outputKeyBase(c.prefix, c.id, inv.instanceID)
	for _, o := range []struct {
		name, body string
		url        *string
	}{{"stdout", inv.stdout, &inv.stdoutURL}, {"stderr", inv.stderr, &inv.stderrURL}} {
		if o.body == "" {
			continue
		}
		key := base + o.name
		*o.url = s.endpoint + "/" + c.bucket + "/" + key
		if err := s.s3.put(c.bucket, key, []byte(o.body), s.now()); err != nil {
			s.backendError("S3 upload of command output", inv.instanceID, err)
		}
	}
}

// outputKeyBase is where the agent writes an AWS-RunShellScript invocation's output.
func outputKeyBase(prefix, cmdID, instanceID string) string {
	p := strings.TrimSuffix(prefix, "/")
	if p != "" {
		p += "/"
	}
	return p + cmdID + "/" + instanceID + "/awsrunShellScript/0.awsrunShellScript/"
}

func epoch(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return float64(t.UnixMilli()) / 1000
}

func (s *Server) commandJSON(c *ssmCommand) map[string]any {
	completed := 0
	for _, inv := range c.invs {
		if inv.terminal() {
			completed++
		}
	}
	m := map[string]any{
		"CommandId": c.id, "DocumentName": c.document, "DocumentVersion": "$DEFAULT", "Comment": c.comment,
		"ExpiresAfter": epoch(c.expires), "Parameters": c.params, "InstanceIds": nonNil(c.instanceIDs),
		"Targets": nonNilTargets(c.targets), "RequestedDateTime": epoch(c.requested), "Status": c.status,
		"StatusDetails": c.details, "MaxConcurrency": c.maxConc, "MaxErrors": c.maxErrs,
		"TargetCount": len(c.invs), "CompletedCount": completed, "ErrorCount": c.errors,
		"DeliveryTimedOutCount": c.deliveryTimedOut, "TimeoutSeconds": c.timeout,
	}
	if c.bucket != "" {
		m["OutputS3BucketName"], m["OutputS3KeyPrefix"], m["OutputS3Region"] = c.bucket, c.prefix, c.region
	}
	return m
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func nonNilTargets(l []ssmTarget) []ssmTarget {
	if l == nil {
		return []ssmTarget{}
	}
	return l
}

// truncChars keeps the first n characters (runes) of s.
func truncChars(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

func (s *Server) lookupCommand(req *request, id string) (*ssmCommand, *apiError) {
	if !reCommandID.MatchString(id) {
		return nil, errf("InvalidCommandId", "Command id %q is not valid.", id)
	}
	c := s.runCmd.commands[id]
	if c == nil || c.region != req.region.name {
		return nil, errf("InvalidCommandId", "Command %s does not exist in %s.", id, req.region.name)
	}
	return c, nil
}

func (s *Server) getCommandInvocation(req *request, cmdID, instanceID, plugin string) (any, *apiError) {
	c, aerr := s.lookupCommand(req, cmdID)
	if aerr != nil {
		if aerr.Code == "InvalidCommandId" && reCommandID.MatchString(cmdID) {
			return nil, errf("InvocationDoesNotExist", "Command %s has no invocation on %s.", cmdID, instanceID)
		}
		return nil, aerr
	}
	if plugin != "" && plugin != runShellScriptPlugin {
		return nil, errf("InvalidPluginName", "Plugin %s is not in document %s (it has %s).", plugin, c.document, runShellScriptPlugin)
	}
	inv := c.byInst[instanceID]
	if inv == nil {
		return nil, errf("InvocationDoesNotExist", "Command %s has no invocation on %s.", cmdID, instanceID)
	}
	out := map[string]any{
		"CommandId": c.id, "InstanceId": inv.instanceID, "Comment": c.comment, "DocumentName": c.document,
		"DocumentVersion": "$DEFAULT", "PluginName": runShellScriptPlugin, "ResponseCode": inv.code,
		"Status": statusOfDetail[inv.details], "StatusDetails": inv.details,
		"StandardOutputContent": "", "StandardErrorContent": "",
		"StandardOutputUrl": inv.stdoutURL, "StandardErrorUrl": inv.stderrURL,
		"ExecutionStartDateTime": fmtTime(inv.started), "ExecutionEndDateTime": fmtTime(inv.ended),
		"ExecutionElapsedTime":   "",
		"CloudWatchOutputConfig": map[string]any{"CloudWatchOutputEnabled": false},
	}
	if inv.details == DetailSuccess || inv.details == DetailFailed || inv.details == DetailExecutionTimedOut {
		out["StandardOutputContent"] = truncChars(inv.stdout, stdoutAPILimit)
		out["StandardErrorContent"] = truncChars(inv.stderr, stderrAPILimit)
	}
	if !inv.started.IsZero() && !inv.ended.IsZero() {
		d := inv.ended.Sub(inv.started)
		out["ExecutionElapsedTime"] = fmt.Sprintf("PT%.3fS", d.Seconds())
	}
	return out, nil
}

func (s *Server) commandsFor(req *request, cmdID string) ([]*ssmCommand, *apiError) {
	if cmdID != "" {
		c, aerr := s.lookupCommand(req, cmdID)
		if aerr != nil {
			return nil, aerr
		}
		return []*ssmCommand{c}, nil
	}
	var out []*ssmCommand
	for _, c := range sortedBySeq(s.runCmd.commands, func(c *ssmCommand) int64 { return c.seq }) {
		if c.region == req.region.name {
			out = append(out, c)
		}
	}
	// Newest first, as the console and CLI show them.
	sort.SliceStable(out, func(i, j int) bool { return out[i].seq > out[j].seq })
	return out, nil
}

func pageOf[T any](all []T, start, max int) ([]T, string) {
	if start > len(all) {
		start = len(all)
	}
	end := min(len(all), start+max)
	next := ""
	if end < len(all) {
		next = "emu-" + strconv.Itoa(end)
	}
	return all[start:end], next
}

func (s *Server) listCommands(req *request, cmdID, instanceID, status string, start, max int) (any, *apiError) {
	cmds, aerr := s.commandsFor(req, cmdID)
	if aerr != nil {
		return nil, aerr
	}
	var sel []map[string]any
	for _, c := range cmds {
		if instanceID != "" && c.byInst[instanceID] == nil {
			continue
		}
		if status != "" && c.status != status {
			continue
		}
		sel = append(sel, s.commandJSON(c))
	}
	pg, next := pageOf(sel, start, max)
	out := map[string]any{"Commands": nonNilMaps(pg)}
	if next != "" {
		out["NextToken"] = next
	}
	return out, nil
}

func nonNilMaps(l []map[string]any) []map[string]any {
	if l == nil {
		return []map[string]any{}
	}
	return l
}

func (s *Server) listCommandInvocations(req *request, cmdID, instanceID, status string, details bool, start, max int) (any, *apiError) {
	cmds, aerr := s.commandsFor(req, cmdID)
	if aerr != nil {
		return nil, aerr
	}
	var sel []map[string]any
	for _, c := range cmds {
		for _, inv := range c.invs {
			st := statusOfDetail[inv.details]
			if instanceID != "" && inv.instanceID != instanceID || status != "" && st != status {
				continue
			}
			m := map[string]any{
				"CommandId": c.id, "InstanceId": inv.instanceID, "InstanceName": inv.name, "Comment": c.comment,
				"DocumentName": c.document, "DocumentVersion": "$DEFAULT", "RequestedDateTime": epoch(c.requested),
				"Status": st, "StatusDetails": inv.details, "StandardOutputUrl": inv.stdoutURL,
				"StandardErrorUrl": inv.stderrURL, "CommandPlugins": []any{},
			}
			if details {
				p := map[string]any{"Name": runShellScriptPlugin, "Status": st, "StatusDetails": inv.details,
					"ResponseCode": inv.code, "ResponseStartDateTime": epoch(inv.started),
					"ResponseFinishDateTime": epoch(inv.ended), "Output": "",
					"StandardOutputUrl": inv.stdoutURL, "StandardErrorUrl": inv.stderrURL}
				if inv.terminal() {
					p["Output"] = truncChars(inv.stdout+inv.stderr, listOutputLimit)
				}
				if c.bucket != "" {
					p["OutputS3BucketName"], p["OutputS3KeyPrefix"], p["OutputS3Region"] = c.bucket, c.prefix, c.region
				}
				m["CommandPlugins"] = []any{p}
			}
			sel = append(sel, m)
		}
	}
	pg, next := pageOf(sel, start, max)
	out := map[string]any{"CommandInvocations": nonNilMaps(pg)}
	if next != "" {
		out["NextToken"] = next
	}
	return out, nil
}

// cancelCommand stops pending invocations and signals running ones; the invocation turns
// Cancelled when its script has been stopped. Callers hold s.mu.
func (s *Server) cancelCommand(req *request, cmdID string, ids []string) (any, *apiError) {
	c, aerr := s.lookupCommand(req, cmdID)
	if aerr != nil {
		return nil, aerr
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			return nil, errf("DuplicateInstanceId", "Instance %s is named twice.", id)
		}
		seen[id] = true
		if c.byInst[id] == nil {
			return nil, errf("InvalidInstanceId", "Command %s was not sent to %s.", cmdID, id)
		}
	}
	if c.finished {
		return map[string]any{}, nil
	}
	all := len(ids) == 0
	for _, inv := range c.invs {
		if !all && !seen[inv.instanceID] {
			continue
		}
		switch {
		case inv.cancel != nil:
			inv.cancelRequested = true
			inv.cancel()
		case !inv.terminal():
			s.finishInv(inv, DetailCancelled, -1)
		}
	}
	if all {
		c.cancelled = true
		close(c.cancelCh)
	}
	return map[string]any{}, nil
}

// CommandInfo describes a Run Command command for assertions.
type CommandInfo struct {
	ID, Region, Status, StatusDetails string
	TargetCount, ErrorCount           int
	// Invocations maps instance id to StatusDetails.
	Invocations map[string]string
	// PeakInProgress is the most invocations ever InProgress at once.
	PeakInProgress int
}

// Commands lists every command sent, oldest first.
func (s *Server) Commands() []CommandInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []CommandInfo
	for _, c := range sortedBySeq(s.runCmd.commands, func(c *ssmCommand) int64 { return c.seq }) {
		ci := CommandInfo{ID: c.id, Region: c.region, Status: c.status, StatusDetails: c.details,
			TargetCount: len(c.invs), ErrorCount: c.errors, Invocations: map[string]string{}, PeakInProgress: c.peakInProgress}
		for _, inv := range c.invs {
			ci.Invocations[inv.instanceID] = inv.details
		}
		out = append(out, ci)
	}
	return out
}

// commandLeaks lists commands still running (something is still executing on instances);
// callers hold s.mu.
func (s *Server) commandLeaks(region string) []Leak {
	var out []Leak
	for _, c := range sortedBySeq(s.runCmd.commands, func(c *ssmCommand) int64 { return c.seq }) {
		if c.region == region && !c.finished {
			out = append(out, Leak{Region: region, ID: c.id, Name: c.comment, State: c.status})
		}
	}
	return out
}
