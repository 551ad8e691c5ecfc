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
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

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
	// EC2Endpoint and SSMEndpoint override the service endpoints (a VPC
	// endpoint, or a test emulator).
	EC2Endpoint, SSMEndpoint string
}

// Engine evaluates the policies for one node; one prepared engine serves
// every node, concurrently.
type Engine interface {
	Evaluate(ctx context.Context, in NodeInput) ([]report.Finding, error)
	Catalogue() []report.Rule
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
	EC2API target.EC2API
	SSMAPI transport.SSMAPI
	SSH    transport.SSHConfig
	SSM    transport.SSMConfig
	// Transports replace the built-in transports by name (tests).
	Transports map[string]transport.Transport

	// Parallel bounds the nodes in flight. Default 32.
	Parallel int
	// NodeTimeout bounds each node: collection, probes and evaluation.
	NodeTimeout time.Duration

	// NoProbes turns off the auditor-side probes.
	NoProbes bool
	Probe    probe.Options

	// PoliciesDir overrides the embedded policies; Stage selects rules.
	PoliciesDir string
	Stage       string
	// Engine replaces the OPA engine (tests).
	Engine                Engine
	ExpectInstanceProfile bool
	AutoScaled            bool

	// WaiversFile is a YAML waiver file.
	WaiversFile string
	// HistoryDir stores each run and diffs against the previous one.
	HistoryDir string
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

	// Progress is called after each node (done, total).
	Progress func(done, total int)
	// Now is the clock (tests). Default time.Now.
	Now         func() time.Time
	ToolVersion string
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
	policiesSrc := "embedded"
	if opts.PoliciesDir != "" {
		policiesSrc = opts.PoliciesDir
	}
	if eng == nil {
		e, err := newEvalEngine(ctx, opts.PoliciesDir, opts.Stage)
		if err != nil {
			return nil, fmt.Errorf("load policies (%s): %w", policiesSrc, err)
		}
		eng = e
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
		Rules:           eng.Catalogue(),
		Nodes:           make([]report.Node, len(targets)),
	}
	// Bounded worker pool: at most Parallel nodes hold a connection and
	// a parsed facts document at once.
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := 0; w < min(opts.Parallel, len(targets)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				res.Nodes[i] = auditNode(ctx, &opts, eng, transports, prober, waivers, targets[i])
				mu.Lock()
				done++
				d := done
				mu.Unlock()
				if opts.Progress != nil {
					opts.Progress(d, len(targets))
				}
			}
		}()
	}
	for i := range targets {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			for j := i; j < len(targets); j++ {
				res.Nodes[j] = nodeError(targets[j], transport.KindTimeout, fmt.Errorf("not audited: run cancelled: %w", ctx.Err()), 0)
			}
			break
		}
	}
	close(jobs)
	wg.Wait()
	res.FinishedAt = opts.Now().UTC()
	res.Summarize()

	out := &Result{Report: res}
	if opts.HistoryDir != "" {
		prev, prevFile, err := history.Latest(opts.HistoryDir)
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

// ExitCode is the process exit code for a finished run: 3 when no node could
// be audited, 1 for violations at or above fail-on (or node errors without
// AllowNodeErrors), else 0.
func ExitCode(r *report.Result) int {
	s := r.Summary
	switch {
	case s.Nodes > 0 && s.NodesOK == 0:
		return ExitTool
	case s.FailingViolations > 0:
		return ExitViolations
	case s.NodeErrors > 0 && !r.AllowNodeErrors:
		return ExitViolations
	}
	return ExitCompliant
}

func (o *Options) defaults() error {
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = DefaultNodeTimeout
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
		api := o.EC2API
		if api == nil {
			cfg, err := awsConfig(ctx, o.AWS)
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
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return aws.Config{}, &UsageError{Err: fmt.Errorf("load AWS configuration: %w: check --profile and --region", err)}
	}
	if cfg.Region == "" {
		return aws.Config{}, usagef("no AWS region: pass --region or set AWS_REGION")
	}
	return cfg, nil
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
		api := o.SSMAPI
		if api == nil {
			cfg, err := awsConfig(ctx, o.AWS)
			if err != nil {
				return nil, closers, err
			}
			api = ssm.NewFromConfig(cfg, func(so *ssm.Options) {
				if o.AWS.SSMEndpoint != "" {
					so.BaseEndpoint = aws.String(o.AWS.SSMEndpoint)
				}
			})
		}
		sc := o.SSM
		if sc.MaxConcurrency <= 0 {
			sc.MaxConcurrency = o.Parallel
		}
		if sc.TimeoutSeconds <= 0 {
			sc.TimeoutSeconds = int32(o.NodeTimeout / time.Second)
		}
		out[target.SSM] = transport.NewSSM(api, sc)
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
