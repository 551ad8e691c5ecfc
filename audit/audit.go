package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/logging"

	"github.com/esbake/packer-plugin-elasticsearch/audit/history"
	"github.com/esbake/packer-plugin-elasticsearch/audit/probe"
	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
	"github.com/esbake/packer-plugin-elasticsearch/audit/transport"
	"github.com/esbake/packer-plugin-elasticsearch/audit/waiver"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Exit codes of esaudit (see the package documentation).
const (
	ExitCompliant  = 0
	ExitViolations = 1
	ExitUsage      = 2
	ExitTool       = 3
)

// Defaults.
const (
	DefaultParallel    = 32
	DefaultNodeTimeout = 60 * time.Second
	DefaultFailOn      = "high"
	DefaultStage       = "audit"
	// DefaultMaxWaiverDays is how far ahead a waiver may expire before
	// esaudit warns.
	DefaultMaxWaiverDays = 180
)

// UsageError is a configuration mistake: exit code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...)}
}

// EC2Discovery selects EC2 instances by tag.
type EC2Discovery struct {
	// Tags are KEY=VALUE filters (all must match).
	Tags []string
	// Address is private (default) or public.
	Address string
}

// AWSConfig reaches the AWS APIs.
type AWSConfig struct {
	Region, Profile string
	// EC2Endpoint, SSMEndpoint and S3Endpoint override the service endpoints
	// (a VPC endpoint, or a test emulator; S3 then uses path-style addressing).
	EC2Endpoint, SSMEndpoint, S3Endpoint string
	// AutoScalingEndpoint overrides the Auto Scaling endpoint.
	AutoScalingEndpoint string
}

// Engine evaluates the policies for one node; one prepared engine serves
// every node, concurrently.
type Engine interface {
	Evaluate(ctx context.Context, in NodeInput) ([]report.Finding, error)
	Catalogue() []report.Rule
}

// Skipper is an Engine that can tell which rules a node's input cannot
// decide; they are reported as not evaluated.
type Skipper interface {
	NotEvaluated(in NodeInput) []report.NotEvaluated
}

// NodeInput is what a node's evaluation sees.
type NodeInput struct {
	Facts  *facts.Facts
	Target target.Target
	// Probes is nil when probes were off or impossible (facts files).
	Probes                *probe.Result
	ExpectInstanceProfile bool
	AutoScaled            bool
}

// Options configure a run.
type Options struct {
	// Discovery: any combination; nodes from all sources are audited.
	EC2        *EC2Discovery
	Inventory  string
	Local      bool
	FactsFiles []string
	// Targets are extra, already discovered nodes (tests, embedding).
	Targets []target.Target

	// Transport for EC2 and inventory nodes: ssh (default) or ssm.
	Transport string
	AWS       AWSConfig
	// EC2API and SSMAPI replace the AWS clients (tests).
	EC2API         target.EC2API
	AutoScalingAPI target.AutoScalingAPI
	SSMAPI         transport.SSMAPI
	S3API          transport.S3API
	SSH            transport.SSHConfig
	SSM            transport.SSMConfig
	// Transports replace the built-in transports by name (tests).
	Transports map[string]transport.Transport

	// Parallel bounds the nodes in flight. Default 32.
	Parallel int
	// NodeTimeout bounds each node: collection, probes and evaluation.
	NodeTimeout time.Duration

	// NoProbes turns off the auditor-side probes.
	NoProbes bool
	Probe    probe.Options

	// PoliciesDirs are policy directories merged with the built-in
	// policies (NoBuiltin: used alone); PoliciesDir is one more, for
	// callers of the single-directory API. Stage selects rules.
	PoliciesDirs []string
	PoliciesDir  string
	NoBuiltin    bool
	Stage        string
	// Rules, SkipRules, Packages and SkipPackages narrow the rules (globs).
	Rules, SkipRules, Packages, SkipPackages []string
	// Engine replaces the OPA engine (tests).
	Engine                Engine
	ExpectInstanceProfile bool
	AutoScaled            bool

	// WaiversFile is a YAML waiver file.
	WaiversFile string
	// LenientWaivers turns unknown rule ids and selectors that match no
	// node into warnings (errors otherwise).
	LenientWaivers bool
	// MaxWaiverDays warns about waivers expiring further ahead (0: never).
	MaxWaiverDays int
	// HistoryDir stores each run and diffs against the previous one.
	HistoryDir string
	// HistoryKeep keeps the newest N stored runs (0: all).
	HistoryKeep int
	// FailOn is the lowest failing severity. Default high.
	FailOn string
	// AllowNodeErrors: unreachable nodes do not fail the run (exit 0 when
	// no violation is at or above FailOn), unless every node failed.
	AllowNodeErrors bool

	// Formats to write (table, json, sarif, junit, html) to OutDir; the
	// table also goes to Stdout. Without OutDir, a single format goes to
	// Stdout (several are a usage error).
	Formats []string
	OutDir  string
	Stdout  io.Writer

	// Category keeps SARIF uploads of several clusters apart
	// (automationDetails.id); default: the nodes' es_cluster tag.
	Category string

	// Progress is called after each node (done, total), never concurrently.
	Progress func(done, total int)
	// Now is the clock (tests). Default time.Now.
	Now         func() time.Time
	ToolVersion string

	warnings []string
}

// Result is the run's report document, the files written and the exit code.
type Result struct {
	Report      *report.Result
	Files       []string
	HistoryFile string
	ExitCode    int
}

// Run audits every node and writes the reports. Node failures are part of
// the result; Run returns an error only when the run itself cannot go on
// (a *UsageError for configuration mistakes, anything else is a tool error).
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	var waivers *waiver.Set
	if opts.WaiversFile != "" {
		w, err := waiver.Load(opts.WaiversFile)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		waivers = w
	}
	eng := opts.Engine
	src := PolicySource{Dirs: opts.PoliciesDirs, NoBuiltin: opts.NoBuiltin}
	if opts.PoliciesDir != "" {
		src.Dirs = append(src.Dirs, opts.PoliciesDir)
	}
	policiesSrc := src.String()
	digest := ""
	if eng == nil {
		e, err := newEvalEngine(ctx, src, opts.Stage, Selection{Rules: opts.Rules, SkipRules: opts.SkipRules, Packages: opts.Packages, SkipPackages: opts.SkipPackages})
		if err != nil {
			var ue *UsageError
			if errors.As(err, &ue) {
				return nil, err
			}
			return nil, fmt.Errorf("load policies (%s): %w", policiesSrc, err)
		}
		eng = e
		digest = e.Digest()
	}
	targets, err := discover(ctx, &opts)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, errors.New("no nodes to audit: EC2 discovery found no running instance with those tags, or the inventory is empty")
	}
	transports, closers, err := buildTransports(ctx, &opts, targets)
	for _, c := range closers {
		defer c.Close()
	}
	if err != nil {
		return nil, err
	}
	var prober *probe.Prober
	if !opts.NoProbes {
		prober, err = probe.New(opts.Probe)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
	}

	res := &report.Result{
		SchemaVersion:   report.SchemaVersion,
		Tool:            report.Tool{Name: "esaudit", Version: opts.ToolVersion},
		StartedAt:       opts.Now().UTC(),
		FailOn:          opts.FailOn,
		AllowNodeErrors: opts.AllowNodeErrors,
		Policies:        policiesSrc,
		PoliciesDigest:  digest,
		Rules:           eng.Catalogue(),
		Nodes:           make([]report.Node, len(targets)),
	}
	// Bounded worker pool: at most Parallel nodes hold a connection and
	// a parsed facts document at once. Each slot of res.Nodes is written
	// by exactly one goroutine: the worker that received its index, or the
	// dispatcher for indexes it never sent.
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := 0; w < min(opts.Parallel, len(targets)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				n := auditNode(ctx, &opts, eng, transports, prober, waivers, targets[i])
				mu.Lock()
				res.Nodes[i] = n
				done++
				if opts.Progress != nil {
					opts.Progress(done, len(targets))
				}
				mu.Unlock()
			}
		}()
	}
	sent := 0
dispatch:
	for sent < len(targets) {
		select {
		case jobs <- sent:
			sent++
		case <-ctx.Done():
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	for j := sent; j < len(targets); j++ {
		res.Nodes[j] = nodeError(targets[j], transport.KindTimeout, fmt.Errorf("not audited: run cancelled: %w", ctx.Err()), 0)
	}
	res.FinishedAt = opts.Now().UTC()
	if waivers != nil {
		known := map[string]bool{}
		for _, r := range res.Rules {
			known[r.ID] = true
		}
		var wn []waiver.Node
		for _, n := range res.Nodes {
			wn = append(wn, waiver.Node{Name: n.Name, InstanceID: n.InstanceID, Tags: n.Tags})
		}
		problems, warns := waivers.Check(func(id string) bool { return known[id] }, wn, opts.Now(), opts.MaxWaiverDays)
		selected := len(opts.Rules)+len(opts.SkipRules)+len(opts.Packages)+len(opts.SkipPackages) > 0
		if len(problems) > 0 && !opts.LenientWaivers && !selected {
			return nil, usagef("waiver file %s: %s (or pass --lenient-waivers to only warn)", opts.WaiversFile, strings.Join(problems, "; "))
		}
		res.Warnings = append(res.Warnings, problems...)
		res.Warnings = append(res.Warnings, warns...)
		for _, w := range waivers.Unused() {
			res.UnusedWaivers = append(res.UnusedWaivers, report.UnusedWaiver{Rule: w.Rule, Nodes: w.Nodes, Line: w.Line})
		}
	}
	res.Category = category(opts, res.Nodes)
	res.Warnings = append(res.Warnings, opts.warnings...)
	res.Summarize()

	out := &Result{Report: res}
	if opts.HistoryDir != "" {
		prev, prevFile, err := history.Latest(opts.HistoryDir, res.Category)
		if err != nil {
			return nil, err
		}
		if prev != nil {
			res.Diff = history.Compare(prev, res, prevFile)
		}
		p, err := history.Save(opts.HistoryDir, res)
		if err != nil {
			return nil, err
		}
		out.HistoryFile = p
		if _, err := history.Prune(opts.HistoryDir, opts.HistoryKeep); err != nil {
			return nil, err
		}
	}
	switch {
	case opts.Stdout == nil:
	case opts.OutDir == "" && len(opts.Formats) == 1:
		// One format and no --out: it goes to stdout (esaudit --format sarif > x.sarif).
		if err := report.Write(opts.Stdout, opts.Formats[0], res); err != nil {
			return nil, err
		}
	case contains(opts.Formats, "table"):
		if err := report.WriteTable(opts.Stdout, res); err != nil {
			return nil, err
		}
	}
	if opts.OutDir != "" {
		files, err := report.WriteFiles(opts.OutDir, opts.Formats, res)
		out.Files = files
		if err != nil {
			return nil, err
		}
	}
	out.ExitCode = ExitCode(res)
	return out, nil
}

// ExitCode is the process exit code for a finished run: 3 when a node
// could not be audited (unless AllowNodeErrors and some node was), always
// when esaudit itself ran out of file descriptors; 1 for violations at or
// above fail-on; else 0.
func ExitCode(r *report.Result) int {
	s := r.Summary
	for _, n := range r.Nodes {
		if n.Status == report.NodeError && n.ErrorKind == KindLocalResources {
			return ExitTool
		}
	}
	switch {
	case s.Nodes > 0 && s.NodesOK == 0:
		return ExitTool
	case s.NodeErrors > 0 && !r.AllowNodeErrors:
		return ExitTool
	case s.FailingViolations > 0:
		return ExitViolations
	}
	return ExitCompliant
}

func (o *Options) defaults() error {
	if o.Parallel < 0 {
		return usagef("--parallel %d: give a number of nodes of 1 or more (default %d)", o.Parallel, DefaultParallel)
	}
	if o.NodeTimeout < 0 {
		return usagef("--node-timeout %s: give a positive duration such as 90s or 2m (default %s)", o.NodeTimeout, DefaultNodeTimeout)
	}
	if o.Parallel == 0 {
		o.Parallel = DefaultParallel
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = DefaultNodeTimeout
	}
	if p, msg := capParallel(o.Parallel, openFileLimit()); msg != "" {
		o.Parallel = p
		o.warnings = append(o.warnings, msg)
	}
	if o.FailOn == "" {
		o.FailOn = DefaultFailOn
	}
	if report.SeverityRank(o.FailOn) >= len(report.Severities) {
		return usagef("--fail-on %q: use low, medium, high or critical", o.FailOn)
	}
	if o.Stage == "" {
		o.Stage = DefaultStage
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ToolVersion == "" {
		o.ToolVersion = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			o.ToolVersion = bi.Main.Version
		}
	}
	switch o.Transport {
	case "":
		o.Transport = target.SSH
	case target.SSH, target.SSM:
	default:
		return usagef("--transport %q: use ssh or ssm", o.Transport)
	}
	if err := transport.ValidateSSMConfig(o.SSM); err != nil {
		return &UsageError{Err: err}
	}
	if len(o.Formats) > 0 {
		f, err := report.ParseFormats(o.Formats)
		if err != nil {
			return &UsageError{Err: err}
		}
		o.Formats = f
	}
	if len(o.Formats) > 1 && o.OutDir == "" {
		return usagef("--format %s writes several reports: give --out DIR (one format alone goes to stdout)", strings.Join(o.Formats, ","))
	}
	if o.EC2 == nil && o.Inventory == "" && !o.Local && len(o.FactsFiles) == 0 && len(o.Targets) == 0 {
		return usagef("no nodes to audit: give --ec2-tag KEY=VALUE, --inventory FILE, --local or --facts FILE")
	}
	return nil
}

// clusterTagKey is the spec's default discovery tag key.
const clusterTagKey = "es_cluster"

// category is --sarif-category, else the cluster tag most nodes carry,
// else the value of an --ec2-tag es_cluster=..., else "esaudit".
func category(o Options, nodes []report.Node) string {
	if o.Category != "" {
		return o.Category
	}
	count := map[string]int{}
	best := ""
	for _, n := range nodes {
		if v := n.Tags[clusterTagKey]; v != "" {
			count[v]++
			if count[v] > count[best] || count[v] == count[best] && v < best {
				best = v
			}
		}
	}
	if best != "" {
		return best
	}
	if o.EC2 != nil {
		for _, t := range o.EC2.Tags {
			if k, v, ok := strings.Cut(t, "="); ok && k == clusterTagKey && v != "" {
				return v
			}
		}
	}
	return "esaudit"
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func discover(ctx context.Context, o *Options) ([]target.Target, error) {
	var all []target.Target
	if o.EC2 != nil {
		tags := map[string]string{}
		for _, t := range o.EC2.Tags {
			k, v, err := target.ParseTag(t)
			if err != nil {
				return nil, &UsageError{Err: err}
			}
			tags[k] = v
		}
		// One AWS configuration (and one credential check) for EC2 and Auto Scaling.
		var cfg *aws.Config
		loadCfg := func() (aws.Config, error) {
			if cfg == nil {
				c, err := awsConfig(ctx, o.AWS)
				if err != nil {
					return aws.Config{}, err
				}
				cfg = &c
			}
			return *cfg, nil
		}
		api := o.EC2API
		if api == nil {
			cfg, err := loadCfg()
			if err != nil {
				return nil, err
			}
			api = ec2.NewFromConfig(cfg, func(eo *ec2.Options) {
				if o.AWS.EC2Endpoint != "" {
					eo.BaseEndpoint = aws.String(o.AWS.EC2Endpoint)
				}
			})
		}
		ts, err := target.DiscoverEC2(ctx, api, target.EC2Options{Tags: tags, Address: o.EC2.Address, Transport: o.Transport})
		if err != nil {
			if o.EC2.Address != "" && o.EC2.Address != "private" && o.EC2.Address != "public" {
				return nil, &UsageError{Err: err}
			}
			return nil, err
		}
		addAutoScaling(ctx, o, ts, loadCfg)
		all = append(all, ts...)
	}
	if o.Inventory != "" {
		ts, err := target.LoadInventory(o.Inventory)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		for i := range ts {
			ts[i].Transport = o.Transport
		}
		all = append(all, ts...)
	}
	if o.Local {
		all = append(all, target.LocalTarget())
	}
	if len(o.FactsFiles) > 0 {
		ts, err := target.FactsFiles(o.FactsFiles)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		all = append(all, ts...)
	}
	all = append(all, o.Targets...)
	// Names key reports and history: make them unique across sources.
	seen := map[string]int{}
	for i := range all {
		seen[all[i].Name]++
	}
	for i := range all {
		if seen[all[i].Name] > 1 {
			all[i].Name = fmt.Sprintf("%s [%s #%d]", all[i].Name, all[i].Transport, i+1)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, nil
}

func awsConfig(ctx context.Context, a AWSConfig) (aws.Config, error) {
	var lo []func(*config.LoadOptions) error
	if a.Region != "" {
		lo = append(lo, config.WithRegion(a.Region))
	}
	if a.Profile != "" {
		lo = append(lo, config.WithSharedConfigProfile(a.Profile))
	}
	// esaudit reports AWS problems itself: the SDK's own log lines (such
	// as "falling back to IMDSv1" off EC2) would only add noise.
	lo = append(lo, config.WithLogger(logging.Nop{}))
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return aws.Config{}, &UsageError{Err: fmt.Errorf("load AWS configuration: %w: check --profile and --region", err)}
	}
	if cfg.Region == "" {
		return aws.Config{}, usagef("no AWS region: pass --region or set AWS_REGION")
	}
	// Find missing credentials now, as a configuration error, rather than
	// as a failed API call after discovery started.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := cfg.Credentials.Retrieve(cctx); err != nil {
		return aws.Config{}, &UsageError{Err: fmt.Errorf("no AWS credentials (%s): set AWS_PROFILE or --profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on an instance with an instance profile", credCause(err))}
	}
	return cfg, nil
}

// credCause is the SDK's credential error without its wrapping noise.
func credCause(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i > 0 && len(msg)-i < 200 {
		return strings.TrimSpace(msg[i+2:])
	}
	return msg
}

func buildTransports(ctx context.Context, o *Options, ts []target.Target) (map[string]transport.Transport, []transport.Closer, error) {
	out := map[string]transport.Transport{}
	var closers []transport.Closer
	need := map[string]bool{}
	for _, t := range ts {
		need[t.Transport] = true
	}
	for name, tr := range o.Transports {
		out[name] = tr
	}
	if need[target.SSH] && out[target.SSH] == nil {
		s, err := transport.NewSSH(o.SSH)
		if err != nil {
			return nil, closers, &UsageError{Err: err}
		}
		closers = append(closers, s)
		out[target.SSH] = s
	}
	if need[target.SSM] && out[target.SSM] == nil {
		api, s3api := o.SSMAPI, o.S3API
		if api == nil {
			cfg, err := awsConfig(ctx, o.AWS)
			if err != nil {
				return nil, closers, err
			}
			sc, s3c := transport.NewSSMClients(cfg, o.AWS.SSMEndpoint, o.AWS.S3Endpoint)
			api = sc
			if s3api == nil {
				s3api = s3c
			}
		}
		sc := o.SSM
		if sc.TimeoutSeconds <= 0 {
			sc.TimeoutSeconds = int32(o.NodeTimeout / time.Second)
		}
		// Tag targets (one SendCommand for the fleet) only when every SSM node came
		// from the tag discovery; other nodes are sent by instance id.
		if o.EC2 != nil && o.Inventory == "" && len(o.Targets) == 0 && sc.Tags == nil {
			sc.Tags = map[string]string{}
			for _, t := range o.EC2.Tags {
				if k, v, err := target.ParseTag(t); err == nil {
					sc.Tags[k] = v
				}
			}
		}
		s := transport.NewSSM(api, s3api, sc)
		closers = append(closers, s)
		out[target.SSM] = s
	}
	if need[target.Local] && out[target.Local] == nil {
		out[target.Local] = transport.Local{}
	}
	if need[target.File] && out[target.File] == nil {
		out[target.File] = transport.File{}
	}
	for name, tr := range out {
		if p, ok := tr.(transport.Preparer); ok {
			var batch []target.Target
			for _, t := range ts {
				if t.Transport == name {
					batch = append(batch, t)
				}
			}
			if err := p.Prepare(ctx, batch); err != nil {
				return nil, closers, err
			}
		}
	}
	return out, closers, nil
}

func nodeError(t target.Target, kind string, err error, d time.Duration) report.Node {
	n := baseNode(t)
	n.Status = report.NodeError
	n.ErrorKind = kind
	n.Error = err.Error()
	n.DurationMS = d.Milliseconds()
	return n
}

func baseNode(t target.Target) report.Node {
	addr := t.Host
	if t.Transport == target.File {
		addr = t.FactsFile
	}
	return report.Node{Name: t.Name, Address: addr, InstanceID: t.InstanceID, Transport: t.Transport, Tags: t.Tags, Findings: []report.Finding{}}
}

// auditNode runs one node end to end under its own deadline. It never
// panics the run: a panic in a transport or the engine is a node error.
func auditNode(ctx context.Context, o *Options, eng Engine, trs map[string]transport.Transport, prober *probe.Prober, waivers *waiver.Set, t target.Target) (n report.Node) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			n = nodeError(t, "internal", fmt.Errorf("esaudit bug while auditing this node: %v", p), time.Since(start))
		}
	}()
	nctx, cancel := context.WithTimeout(ctx, o.NodeTimeout)
	defer cancel()
	tr := trs[t.Transport]
	if tr == nil {
		return nodeError(t, transport.KindTransport, fmt.Errorf("no transport %q", t.Transport), time.Since(start))
	}
	raw, err := tr.Fetch(nctx, t)
	if err != nil {
		kind := transport.KindOf(err)
		if nctx.Err() != nil && ctx.Err() == nil {
			kind = transport.KindTimeout
		}
		if fdExhausted(err) {
			// The auditor's limit, not the node's fault: say so, and fail
			// the run even with --allow-node-errors (see ExitCode).
			kind = KindLocalResources
			err = fmt.Errorf("esaudit ran out of file descriptors (%w): the node was not audited; lower --parallel or raise the open-file limit (ulimit -n)", err)
		}
		return nodeError(t, kind, err, time.Since(start))
	}
	f, err := facts.Parse(raw)
	raw = nil
	if err != nil {
		return nodeError(t, transport.KindInvalidOutput, fmt.Errorf("node returned no usable facts: %w", err), time.Since(start))
	}
	if t.InstanceID == "" {
		t.InstanceID = f.Host.InstanceID
	}
	if len(t.Tags) == 0 && len(f.Host.Tags) > 0 {
		t.Tags = f.Host.Tags
	}
	in := NodeInput{Facts: f, Target: t, ExpectInstanceProfile: o.ExpectInstanceProfile, AutoScaled: o.AutoScaled}
	if _, ok := t.Tags["aws:autoscaling:groupName"]; ok {
		in.AutoScaled = true
	}
	n = baseNode(t)
	n.ConfigDir = f.Elasticsearch.ConfigDir
	if prober != nil && t.Transport != target.File {
		host := t.Host
		if t.Transport == target.Local {
			host = "127.0.0.1"
			if f.Host.Boot != nil && f.Host.Boot.LocalIPv4 != "" {
				host = f.Host.Boot.LocalIPv4
			}
		}
		ports, httpPort := specPorts(f)
		pr := prober.Probe(nctx, host, ports, httpPort)
		in.Probes = &pr
		n.Probes = &report.Probes{ReachablePorts: pr.ReachablePorts, ESAPI: pr.ESAPI != nil, ESAPIError: pr.ESAPIError, SnapshotPolicies: pr.SnapshotPolicies}
	}
	findings, err := eng.Evaluate(nctx, in)
	if err != nil {
		return nodeError(t, "evaluation", fmt.Errorf("evaluate policies: %w", err), time.Since(start))
	}
	for i := range findings {
		findings[i].Status = report.StatusViolation
	}
	waivers.Apply(waiver.Node{Name: t.Name, InstanceID: t.InstanceID, Tags: t.Tags}, findings, o.Now())
	if sk, ok := eng.(Skipper); ok {
		fired := map[string]bool{}
		for _, f := range findings {
			fired[f.RuleID] = true
		}
		// A rule that found something was evaluated well enough.
		for _, ne := range sk.NotEvaluated(in) {
			if !fired[ne.RuleID] {
				n.NotEvaluated = append(n.NotEvaluated, ne)
			}
		}
	}
	n.Status = report.NodeOK
	n.Findings = findings
	if n.Findings == nil {
		n.Findings = []report.Finding{}
	}
	for _, fe := range f.Errors {
		n.FactErrors = append(n.FactErrors, fe.Fact+": "+fe.Error)
	}
	n.DurationMS = time.Since(start).Milliseconds()
	return n
}

// specPorts are the ports the node's baked spec opens (defaults for nodes
// without a manifest) and its HTTP port.
func specPorts(f *facts.Facts) ([]int, int) {
	httpPort, transportPort, hqPort := spec.DefaultHTTPPort, spec.DefaultTransportPort, spec.DefaultHQPort
	if s := f.Manifest.Spec; s != nil {
		if s.Elasticsearch.HTTPPort != 0 {
			httpPort = s.Elasticsearch.HTTPPort
		}
		if s.Elasticsearch.TransportPort != 0 {
			transportPort = s.Elasticsearch.TransportPort
		}
		if s.ElasticHQ.Port != 0 {
			hqPort = s.ElasticHQ.Port
		}
	}
	return []int{httpPort, transportPort, hqPort}, httpPort
}

// addAutoScaling reads the EC2 targets' Auto Scaling groups and hooks with
// the auditor's credentials. Without them (no permission, no endpoint) the
// rules that need them are reported as not evaluated, with a warning; the
// audit goes on.
func addAutoScaling(ctx context.Context, o *Options, ts []target.Target, loadCfg func() (aws.Config, error)) {
	api := o.AutoScalingAPI
	if api == nil {
		cfg, err := loadCfg()
		if err != nil {
			o.warnings = append(o.warnings, "Auto Scaling not read: "+err.Error())
			return
		}
		api = autoscaling.NewFromConfig(cfg, func(ao *autoscaling.Options) {
			if o.AWS.AutoScalingEndpoint != "" {
				ao.BaseEndpoint = aws.String(o.AWS.AutoScalingEndpoint)
			}
		})
	}
	if err := target.AddAutoScaling(ctx, api, ts); err != nil {
		o.warnings = append(o.warnings, "Auto Scaling not read, its rules are not evaluated: "+err.Error())
	}
}
