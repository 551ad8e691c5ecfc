package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/esbake/packer-plugin-elasticsearch/audit"
	"github.com/esbake/packer-plugin-elasticsearch/audit/history"
	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/provisioner/esnodebin"
	"github.com/esbake/packer-plugin-elasticsearch/version"
)

const globalUsage = `esaudit: audit Elasticsearch nodes against the esbake policies.

Usage:
  esaudit [run] [flags]          audit nodes (the default command)
  esaudit diff OLD.json NEW.json compare two saved reports
  esaudit policies [flags]       print the rule catalogue (table, markdown, json)
  esaudit verify [flags]         run the policy tests (*_test.rego) with the embedded OPA
  esaudit completion SHELL       print a completion script (bash, zsh, fish)
  esaudit version | --version    print the version
  esaudit help [COMMAND]         help for a command (also: esaudit COMMAND --help)

Exit codes:
  0  compliant: no violation at or above --fail-on, every node audited
  1  violations at or above --fail-on
  2  usage or configuration error (bad flag or value, unreadable waiver or
     inventory file, missing AWS credentials or region)
  3  a node could not be audited (unless --allow-node-errors, and always when
     no node could be, or esaudit ran out of file descriptors), or a tool
     error: policies failed to load, discovery failed or found nothing, a
     report could not be written
`

const runUsage = `Usage: esaudit [run] [flags]

Targets (combine freely):
  --ec2-tag KEY=VALUE     EC2 instances with this tag (repeat: all must match), running only
  --region R, --profile P AWS region and shared-config profile
  --ec2-endpoint URL      custom EC2 endpoint;  --ssm-endpoint URL  custom SSM endpoint
  --s3-endpoint URL       custom S3 endpoint (path-style), for --ssm-s3-bucket
  --autoscaling-endpoint URL  custom Auto Scaling endpoint (lifecycle hooks of EC2 nodes)
  --address private|public  which EC2 address to connect and probe (default private)
  --inventory FILE        YAML list of {host, port, user, name, instance_id, tags}, or one
                          host a line: host[:port] [user=U] [name=N] [instance_id=I] [tag:K=V]
  --local                 this machine (facts collected in-process)
  --facts FILE            a captured facts document (repeat; globs allowed)

Transport:
  --transport ssh|ssm     for EC2 and inventory nodes (default ssh); ssm runs esnode facts
                          with SSM Run Command, targeting the --ec2-tag tags when discovery
                          is by tag alone, else the instance ids
  --ssm-max-concurrency N|P%  nodes running the command at once (default 50)
  --ssm-max-errors N|P%   failures after which SSM stops sending it (default 100%)
  --ssm-delivery-timeout D  how long a node may wait for delivery (default 10m, min 30s)
  --ssm-s3-bucket B, --ssm-s3-prefix P  SSM writes whole outputs to s3://B/P/ (facts over
                          the 24,000 characters SSM returns are read there; deleted after)
  --ssh-user U            login user when the inventory names none (default $USER)
  --ssh-key FILE          private key (repeatable); the ssh-agent (SSH_AUTH_SOCK) is used too
  --known-hosts FILE      host keys to verify against (default ~/.ssh/known_hosts)
  --accept-new-host-keys  record unknown host keys (a changed key is always a node error)
  --sudo                  run esnode with sudo -n when the user is not root (default true)
  --esnode-dir DIR        esnode-linux-amd64/arm64 to upload to nodes without esnode
                          (default: next to esaudit, else the copies built into esaudit)
  --parallel N            nodes in flight, 1 or more (default 32; capped to fit ulimit -n)
  --node-timeout D        deadline per node, a duration such as 90s or 2m (default 60s)

Probes (from the auditor to each node's spec ports, default 9200/9300/5000):
  --no-probes             skip them
  --es-user U, --es-password-file F   basic auth for the Elasticsearch API
  --es-ca FILE, --es-insecure         TLS verification of the API
  --es-scheme auto|http|https         default auto

Policies:
  --policies DIR          more Rego policies, merged with the built-in ones (repeatable)
  --no-builtin            use only the --policies directories
  --rule ID, --skip-rule ID          run only / never these rules (repeatable, globs)
  --package P, --skip-package P      run only / never these Rego packages (esbake.rules.network, globs)
  --expect-instance-profile  access keys in the keystore are findings (default true)
  --auto-scaled           cluster.initial_master_nodes is a finding (default true)

Waivers and history:
  --waivers FILE          YAML list of {rule, nodes, justification, expires}
  --lenient-waivers       unknown rule ids and node selectors matching no node are
                          warnings instead of errors
  --max-waiver-days N     warn about waivers expiring more than N days ahead (default 180, 0: never)
  --history DIR           store this run; report new, fixed, waived, unwaived, still
                          failing and vanished nodes since the last run of this cluster
  --history-keep N        keep the newest N runs in --history (default 0: all)

Results:
  --fail-on SEVERITY      low|medium|high|critical (default high)
  --allow-node-errors     nodes that cannot be audited do not fail the run
  --format LIST           table,json,sarif,junit,html (default table; several at once)
  --out DIR               write each format to DIR/report.{txt,json,sarif,xml,html}
                          (the table also goes to stdout); without --out one format
                          goes to stdout
  --sarif-category NAME   SARIF automationDetails category (default: the es_cluster tag)
  --quiet                 no progress bar, no table on stdout when --out is given;
                          never drops a report (without --out the report goes to stdout)

A summary line goes to stderr in every mode. See 'esaudit help' for exit codes.
`

const policiesUsage = `Usage: esaudit policies [--format table|markdown|json] [--policies DIR]... [--no-builtin] [--stage audit|bake|all]

Print the rule catalogue: the built-in rules merged with each --policies DIR.
`

const verifyUsage = `Usage: esaudit verify [--policies DIR]... [--no-builtin] [--run REGEX] [--verbose]

Run the policy tests (*_test.rego) with the embedded OPA, over the built-in
policies and each --policies DIR (tests of a custom rule can use the built-in
fixtures under data.esbake.fixtures). Exit 0 when all pass, 1 when a test
fails, 3 when the policies do not compile.
`

const diffUsage = `Usage: esaudit diff [--format table|json] OLD.json NEW.json

Compare two reports written with --format json (or stored by --history) by
finding identity: new, fixed, waived, unwaived and still failing findings,
vanished and new nodes. Exit 1 when NEW has new or unwaived violations, else 0.
`

const completionUsage = `Usage: esaudit completion bash|zsh|fish

Print a shell completion script:
  bash:  source <(esaudit completion bash)
  zsh:   esaudit completion zsh > "${fpath[1]}/_esaudit"
  fish:  esaudit completion fish > ~/.config/fish/completions/esaudit.fish
`

var commandUsage = map[string]string{
	"run": runUsage, "policies": policiesUsage, "verify": verifyUsage, "diff": diffUsage,
	"completion": completionUsage, "version": "Usage: esaudit version\n", "help": globalUsage,
}

var commandNames = []string{"run", "diff", "policies", "verify", "completion", "version", "help"}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// countFlag is a whole number with a lower bound.
type countFlag struct {
	v   *int
	min int
}

func (c countFlag) String() string {
	if c.v == nil {
		return ""
	}
	return strconv.Itoa(*c.v)
}

func (c countFlag) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	if n < c.min {
		return fmt.Errorf("%d is below %d", n, c.min)
	}
	*c.v = n
	return nil
}

// durationFlag is a positive Go duration with a helpful error.
type durationFlag struct{ v *time.Duration }

func (d durationFlag) String() string {
	if d.v == nil {
		return ""
	}
	return d.v.String()
}

func (d durationFlag) Set(s string) error {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return fmt.Errorf("%q has no unit: write %ss (seconds) or %sm (minutes)", s, s, s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 90s, 2m or 1m30s", s)
	}
	if v <= 0 {
		return fmt.Errorf("%s is not positive", s)
	}
	*d.v = v
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 {
		switch args[0] {
		case "--version", "-version", "-v":
			cmd, args = "version", args[1:]
		case "-h", "--help", "-help":
			if len(args) == 1 {
				fmt.Fprint(stdout, globalUsage+"\n"+runUsage)
				return audit.ExitCompliant
			}
		}
	}
	switch cmd {
	case "run":
		return runAudit(ctx, args, stdout, stderr)
	case "policies":
		return runPolicies(ctx, args, stdout, stderr)
	case "verify":
		return runVerify(ctx, args, stdout, stderr)
	case "diff":
		return runDiff(args, stdout, stderr)
	case "completion":
		return runCompletion(args, stdout, stderr)
	case "version":
		if len(args) > 0 && isHelp(args[0]) {
			fmt.Fprint(stdout, commandUsage["version"])
			return audit.ExitCompliant
		}
		fmt.Fprintln(stdout, "esaudit", version.String())
		return audit.ExitCompliant
	case "help":
		if len(args) == 0 {
			fmt.Fprint(stdout, globalUsage)
			return audit.ExitCompliant
		}
		if u, ok := commandUsage[args[0]]; ok {
			fmt.Fprint(stdout, u)
			return audit.ExitCompliant
		}
		return unknownCommand(args[0], stderr)
	}
	return unknownCommand(cmd, stderr)
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" }

func unknownCommand(cmd string, stderr io.Writer) int {
	msg := fmt.Sprintf("esaudit: unknown command %q", report.Sanitize(cmd))
	if s := suggest(cmd, commandNames); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	fmt.Fprintf(stderr, "%s\nRun 'esaudit help' for usage.\n", msg)
	return audit.ExitUsage
}

// newFlags is a flag set whose errors parseFlags reports.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args; on --help it prints the command's usage to
// stdout, on a mistake one line with a suggestion to stderr. done is true
// when the caller must return code.
func parseFlags(fs *flag.FlagSet, cmd string, args []string, stdout, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	if err == nil {
		return 0, false
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, commandUsage[cmd])
		return audit.ExitCompliant, true
	}
	fmt.Fprintf(stderr, "esaudit %s: %s\nRun 'esaudit %s --help' for usage.\n", cmd, flagError(fs, err), cmd)
	return audit.ExitUsage, true
}

// flagError rewrites the flag package's messages: --name spelling, a
// suggestion for unknown flags, the value's own explanation.
func flagError(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		name = strings.TrimLeft(name, "-")
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		out := fmt.Sprintf("unknown flag --%s", report.Sanitize(name))
		if s := suggest(name, names); s != "" {
			out += fmt.Sprintf("; did you mean --%s?", s)
		}
		return out
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Sprintf("--%s needs a value", strings.TrimLeft(name, "-"))
	}
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		// invalid value "X" for flag -name: reason
		if i := strings.Index(rest, " for flag -"); i >= 0 {
			nameAndWhy := rest[i+len(" for flag -"):]
			name, why, _ := strings.Cut(nameAndWhy, ": ")
			if why == "parse error" || why == "invalid syntax" {
				why = fmt.Sprintf("%s is not a valid value", rest[:i])
			}
			return fmt.Sprintf("--%s: %s", name, why)
		}
	}
	if rest, ok := strings.CutPrefix(msg, "invalid boolean value "); ok {
		return "invalid boolean " + rest + " (write --flag=true or --flag=false)"
	}
	return msg
}

// suggest is the closest name within a small edit distance, or "".
func suggest(word string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		d := editDistance(strings.ToLower(word), n)
		if strings.HasPrefix(n, word) && len(word) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// auditFlags defines the run command's flags into o and the locals.
type auditFlags struct {
	ec2Tags, factsFiles, sshKeys, formats, policies multiFlag
	rules, skipRules, packages, skipPackages        multiFlag
	address, esPasswordFile, esnodeDir, knownHosts  string
	quiet                                           bool
}

func defineRunFlags(fs *flag.FlagSet, o *audit.Options, a *auditFlags) {
	home, _ := os.UserHomeDir()
	fs.Var(&a.ec2Tags, "ec2-tag", "")
	fs.StringVar(&o.AWS.Region, "region", "", "")
	fs.StringVar(&o.AWS.Profile, "profile", "", "")
	fs.StringVar(&o.AWS.EC2Endpoint, "ec2-endpoint", "", "")
	fs.StringVar(&o.AWS.SSMEndpoint, "ssm-endpoint", "", "")
	fs.StringVar(&o.AWS.S3Endpoint, "s3-endpoint", "", "")
	fs.StringVar(&o.AWS.AutoScalingEndpoint, "autoscaling-endpoint", "", "")
	fs.StringVar(&o.SSM.MaxConcurrency, "ssm-max-concurrency", "50", "")
	fs.StringVar(&o.SSM.MaxErrors, "ssm-max-errors", "100%", "")
	fs.Func("ssm-delivery-timeout", "", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 30*time.Second {
			return fmt.Errorf("--ssm-delivery-timeout %q: write a duration of at least 30s (SSM's minimum), e.g. 10m", v)
		}
		o.SSM.DeliveryTimeoutSeconds = int32(d / time.Second)
		return nil
	})
	fs.StringVar(&o.SSM.S3Bucket, "ssm-s3-bucket", "", "")
	fs.StringVar(&o.SSM.S3KeyPrefix, "ssm-s3-prefix", "", "")
	fs.StringVar(&a.address, "address", "private", "")
	fs.StringVar(&o.Inventory, "inventory", "", "")
	fs.BoolVar(&o.Local, "local", false, "")
	fs.Var(&a.factsFiles, "facts", "")
	fs.StringVar(&o.Transport, "transport", "ssh", "")
	fs.StringVar(&o.SSH.User, "ssh-user", "", "")
	fs.Var(&a.sshKeys, "ssh-key", "")
	fs.StringVar(&a.knownHosts, "known-hosts", filepath.Join(home, ".ssh", "known_hosts"), "")
	fs.BoolVar(&o.SSH.AcceptNewHostKeys, "accept-new-host-keys", false, "")
	fs.BoolVar(&o.SSH.Sudo, "sudo", true, "")
	fs.StringVar(&a.esnodeDir, "esnode-dir", "", "")
	o.Parallel = audit.DefaultParallel
	fs.Var(countFlag{&o.Parallel, 1}, "parallel", "")
	o.NodeTimeout = audit.DefaultNodeTimeout
	fs.Var(durationFlag{&o.NodeTimeout}, "node-timeout", "")
	fs.BoolVar(&o.NoProbes, "no-probes", false, "")
	fs.StringVar(&o.Probe.User, "es-user", "", "")
	fs.StringVar(&a.esPasswordFile, "es-password-file", "", "")
	fs.StringVar(&o.Probe.CAFile, "es-ca", "", "")
	fs.BoolVar(&o.Probe.Insecure, "es-insecure", false, "")
	fs.StringVar(&o.Probe.Scheme, "es-scheme", "auto", "")
	fs.Var(&a.policies, "policies", "")
	fs.BoolVar(&o.NoBuiltin, "no-builtin", false, "")
	fs.Var(&a.rules, "rule", "")
	fs.Var(&a.skipRules, "skip-rule", "")
	fs.Var(&a.packages, "package", "")
	fs.Var(&a.skipPackages, "skip-package", "")
	fs.BoolVar(&o.ExpectInstanceProfile, "expect-instance-profile", true, "")
	fs.BoolVar(&o.AutoScaled, "auto-scaled", true, "")
	fs.StringVar(&o.WaiversFile, "waivers", "", "")
	fs.BoolVar(&o.LenientWaivers, "lenient-waivers", false, "")
	o.MaxWaiverDays = audit.DefaultMaxWaiverDays
	fs.Var(countFlag{&o.MaxWaiverDays, 0}, "max-waiver-days", "")
	fs.StringVar(&o.HistoryDir, "history", "", "")
	fs.Var(countFlag{&o.HistoryKeep, 0}, "history-keep", "")
	fs.StringVar(&o.FailOn, "fail-on", audit.DefaultFailOn, "")
	fs.BoolVar(&o.AllowNodeErrors, "allow-node-errors", false, "")
	fs.Var(&a.formats, "format", "")
	fs.StringVar(&o.OutDir, "out", "", "")
	fs.StringVar(&o.Category, "sarif-category", "", "")
	fs.BoolVar(&a.quiet, "quiet", false, "")
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run")
	var (
		o audit.Options
		a auditFlags
	)
	defineRunFlags(fs, &o, &a)
	if code, done := parseFlags(fs, "run", args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "esaudit: unexpected argument %q (facts files go after --facts)\nRun 'esaudit run --help' for usage.\n", report.Sanitize(fs.Arg(0)))
		return audit.ExitUsage
	}
	if a.esPasswordFile != "" {
		b, err := os.ReadFile(a.esPasswordFile)
		if err != nil {
			fmt.Fprintf(stderr, "esaudit: read --es-password-file: %v\n", err)
			return audit.ExitUsage
		}
		o.Probe.Password = strings.TrimRight(string(b), "\r\n")
	}
	if len(a.ec2Tags) > 0 {
		o.EC2 = &audit.EC2Discovery{Tags: a.ec2Tags, Address: a.address}
	}
	o.FactsFiles = a.factsFiles
	o.SSH.KeyFiles = a.sshKeys
	o.SSH.UseAgent = true
	o.SSH.KnownHostsFile = a.knownHosts
	o.SSH.EsnodeBinary = esnodeSource(a.esnodeDir)
	o.PoliciesDirs = a.policies
	o.Rules, o.SkipRules, o.Packages, o.SkipPackages = a.rules, a.skipRules, a.packages, a.skipPackages
	o.Formats = a.formats
	if len(o.Formats) == 0 {
		o.Formats = []string{"table"}
	}
	// --quiet never drops a report: without --out the report is the
	// output; with --out the files hold it and stdout stays quiet.
	if !a.quiet || o.OutDir == "" {
		o.Stdout = stdout
	}
	o.ToolVersion = version.String()
	var bar *progressBar
	if f, ok := stderr.(*os.File); ok && !a.quiet && term.IsTerminal(int(f.Fd())) {
		bar = &progressBar{w: stderr}
		o.Progress = bar.update
	}
	res, err := audit.Run(ctx, o)
	if bar != nil {
		bar.clear()
	}
	if err != nil {
		fmt.Fprintf(stderr, "esaudit: %s\n", report.Sanitize(err.Error()))
		var ue *audit.UsageError
		if errors.As(err, &ue) {
			return audit.ExitUsage
		}
		return audit.ExitTool
	}
	for _, w := range res.Report.Warnings {
		fmt.Fprintf(stderr, "esaudit: warning: %s\n", report.Sanitize(w))
	}
	if !a.quiet {
		for _, f := range res.Files {
			fmt.Fprintf(stderr, "esaudit: wrote %s\n", f)
		}
		if res.HistoryFile != "" {
			fmt.Fprintf(stderr, "esaudit: stored run in %s\n", res.HistoryFile)
		}
	}
	fmt.Fprintln(stderr, report.SummaryLine(res.Report))
	return res.ExitCode
}

// esnodeSource finds esnode for upload: --esnode-dir, else next to the
// esaudit binary, else the copies embedded in the plugin package.
func esnodeSource(dir string) func(string) ([]byte, error) {
	return func(arch string) ([]byte, error) {
		name := "esnode-linux-" + arch
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return nil, fmt.Errorf("--esnode-dir: %w", err)
			}
			return b, nil
		}
		if exe, err := os.Executable(); err == nil {
			if b, err := os.ReadFile(filepath.Join(filepath.Dir(exe), name)); err == nil {
				return b, nil
			}
		}
		return esnodebin.Binary(arch)
	}
}

// progressBar draws "[###...] done/total" on a terminal; update is safe
// for concurrent use (audit.Run serializes it too).
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	last  time.Time
	drawn bool
}

func (p *progressBar) update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if done != total && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	const width = 30
	filled := width * done / max(total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d nodes", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total)
	p.drawn = true
}

func (p *progressBar) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func runPolicies(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("policies")
	format := fs.String("format", "table", "")
	var dirs multiFlag
	fs.Var(&dirs, "policies", "")
	noBuiltin := fs.Bool("no-builtin", false, "")
	stage := fs.String("stage", "all", "")
	if code, done := parseFlags(fs, "policies", args, stdout, stderr); done {
		return code
	}
	if *format != "table" && *format != "markdown" && *format != "json" {
		fmt.Fprintf(stderr, "esaudit policies: --format %q: use table, markdown or json\n", report.Sanitize(*format))
		return audit.ExitUsage
	}
	rules, md, err := audit.Catalogue(ctx, audit.PolicySource{Dirs: dirs, NoBuiltin: *noBuiltin}, *stage)
	if err != nil {
		fmt.Fprintf(stderr, "esaudit policies: load policies: %v\n", err)
		var ue *audit.UsageError
		if errors.As(err, &ue) {
			return audit.ExitUsage
		}
		return audit.ExitTool
	}
	switch *format {
	case "markdown":
		fmt.Fprint(stdout, md)
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"rules": rules}); err != nil {
			fmt.Fprintf(stderr, "esaudit policies: %v\n", err)
			return audit.ExitTool
		}
	default:
		writeCatalogueTable(stdout, rules)
	}
	return audit.ExitCompliant
}

func writeCatalogueTable(w io.Writer, rules []report.Rule) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tTITLE\tREMEDIATION")
	for _, r := range rules {
		rem := strings.Join(strings.Fields(r.Remediation), " ")
		if len(rem) > 100 {
			rem = rem[:97] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Severity, r.Title, rem)
	}
	tw.Flush()
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("verify")
	var dirs multiFlag
	fs.Var(&dirs, "policies", "")
	noBuiltin := fs.Bool("no-builtin", false, "")
	filter := fs.String("run", "", "")
	verbose := fs.Bool("verbose", false, "")
	if code, done := parseFlags(fs, "verify", args, stdout, stderr); done {
		return code
	}
	sum, err := audit.VerifyPolicies(ctx, audit.PolicySource{Dirs: dirs, NoBuiltin: *noBuiltin}, *filter, *verbose, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "esaudit verify: %v\n", err)
		var ue *audit.UsageError
		if errors.As(err, &ue) {
			return audit.ExitUsage
		}
		return audit.ExitTool
	}
	fmt.Fprintf(stderr, "esaudit verify: %d passed, %d failed, %d errors\n", sum.Passed, sum.Failed, sum.Errors)
	if sum.Failed > 0 || sum.Errors > 0 {
		return audit.ExitViolations
	}
	return audit.ExitCompliant
}

func runDiff(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("diff")
	format := fs.String("format", "table", "")
	if code, done := parseFlags(fs, "diff", args, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 2 {
		fmt.Fprintf(stderr, "esaudit diff: give two reports, OLD.json NEW.json (got %d arguments)\nRun 'esaudit diff --help' for usage.\n", fs.NArg())
		return audit.ExitUsage
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "esaudit diff: --format %q: use table or json\n", report.Sanitize(*format))
		return audit.ExitUsage
	}
	old, err := history.Load(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "esaudit diff: %v\n", err)
		return audit.ExitUsage
	}
	cur, err := history.Load(fs.Arg(1))
	if err != nil {
		fmt.Fprintf(stderr, "esaudit diff: %v\n", err)
		return audit.ExitUsage
	}
	d := history.Compare(old, cur, fs.Arg(0))
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(d)
	} else {
		report.WriteDiff(stdout, d)
	}
	fmt.Fprintf(stderr, "esaudit diff: %d new, %d fixed, %d waived, %d unwaived, %d still failing, %d vanished nodes\n",
		len(d.New), len(d.Fixed), len(d.Waived), len(d.Unwaived), len(d.StillFailing), len(d.VanishedNodes))
	if len(d.New) > 0 || len(d.Unwaived) > 0 {
		return audit.ExitViolations
	}
	return audit.ExitCompliant
}

// commandFlags lists each command's flags (for completion).
func commandFlags() map[string][]string {
	out := map[string][]string{}
	collect := func(name string, fs *flag.FlagSet) {
		fs.VisitAll(func(f *flag.Flag) { out[name] = append(out[name], f.Name) })
		sort.Strings(out[name])
	}
	var o audit.Options
	var a auditFlags
	fs := newFlags("run")
	defineRunFlags(fs, &o, &a)
	collect("run", fs)
	out["policies"] = []string{"format", "no-builtin", "policies", "stage"}
	out["verify"] = []string{"no-builtin", "policies", "run", "verbose"}
	out["diff"] = []string{"format"}
	return out
}

func runCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprint(stdout, completionUsage)
		return audit.ExitCompliant
	}
	if len(args) != 1 {
		fmt.Fprintf(stderr, "esaudit completion: name one shell: bash, zsh or fish\n")
		return audit.ExitUsage
	}
	flags := commandFlags()
	switch args[0] {
	case "bash":
		fmt.Fprint(stdout, bashCompletion(flags))
	case "zsh":
		fmt.Fprint(stdout, zshCompletion(flags))
	case "fish":
		fmt.Fprint(stdout, fishCompletion(flags))
	default:
		fmt.Fprintf(stderr, "esaudit completion: %q: use bash, zsh or fish\n", report.Sanitize(args[0]))
		return audit.ExitUsage
	}
	return audit.ExitCompliant
}

// flagValues are the fixed choices of some flags, for completion.
var flagValues = map[string]string{
	"format": "table json sarif junit html markdown", "fail-on": "low medium high critical",
	"transport": "ssh ssm", "address": "private public", "es-scheme": "auto http https", "stage": "audit bake all",
}

func bashCompletion(flags map[string][]string) string {
	var b strings.Builder
	b.WriteString("# bash completion for esaudit (esaudit completion bash)\n_esaudit() {\n")
	b.WriteString("  local cur prev cmd i\n  cur=\"${COMP_WORDS[COMP_CWORD]}\"\n  prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n  cmd=run\n")
	b.WriteString("  for ((i=1; i<COMP_CWORD; i++)); do case \"${COMP_WORDS[i]}\" in -*) ;; *) cmd=\"${COMP_WORDS[i]}\"; break;; esac; done\n")
	b.WriteString("  case \"$prev\" in\n")
	keys := make([]string, 0, len(flagValues))
	for k := range flagValues {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "    --%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return;;\n", k, flagValues[k])
	}
	b.WriteString("    --facts|--inventory|--waivers|--ssh-key|--known-hosts|--es-password-file|--es-ca) COMPREPLY=($(compgen -f -- \"$cur\")); return;;\n")
	b.WriteString("    --out|--history|--policies|--esnode-dir) COMPREPLY=($(compgen -d -- \"$cur\")); return;;\n")
	b.WriteString("    completion) COMPREPLY=($(compgen -W \"bash zsh fish\" -- \"$cur\")); return;;\n  esac\n")
	b.WriteString("  case \"$cmd\" in\n")
	for _, c := range []string{"run", "policies", "verify", "diff"} {
		fmt.Fprintf(&b, "    %s) COMPREPLY=($(compgen -W \"%s\" -- \"$cur\"));;\n", c, "--"+strings.Join(flags[c], " --")+" --help")
	}
	fmt.Fprintf(&b, "    *) COMPREPLY=();;\n  esac\n  if [[ $COMP_CWORD -eq 1 && $cur != -* ]]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); fi\n}\ncomplete -o default -F _esaudit esaudit\n", strings.Join(commandNames, " "))
	return b.String()
}

func zshCompletion(flags map[string][]string) string {
	var b strings.Builder
	b.WriteString("#compdef esaudit\n# zsh completion for esaudit (esaudit completion zsh)\n_esaudit() {\n  local -a commands\n")
	fmt.Fprintf(&b, "  commands=(%s)\n", strings.Join(commandNames, " "))
	b.WriteString("  if (( CURRENT == 2 )) && [[ $words[2] != -* ]]; then _describe command commands; return; fi\n")
	b.WriteString("  local cmd=run\n  [[ $words[2] != -* ]] && cmd=$words[2]\n  case $cmd in\n")
	for _, c := range []string{"run", "policies", "verify", "diff"} {
		fmt.Fprintf(&b, "    %s) _arguments", c)
		for _, f := range flags[c] {
			if v, ok := flagValues[f]; ok {
				fmt.Fprintf(&b, " '--%s=[%s]:value:(%s)'", f, f, v)
			} else {
				fmt.Fprintf(&b, " '--%s[%s]'", f, f)
			}
		}
		b.WriteString(" '*:file:_files';;\n")
	}
	b.WriteString("    completion) _arguments '1:shell:(bash zsh fish)';;\n  esac\n}\ncompdef _esaudit esaudit\n")
	return b.String()
}

func fishCompletion(flags map[string][]string) string {
	var b strings.Builder
	b.WriteString("# fish completion for esaudit (esaudit completion fish)\n")
	fmt.Fprintf(&b, "complete -c esaudit -n __fish_use_subcommand -f -a %q\n", strings.Join(commandNames, " "))
	for _, c := range []string{"run", "policies", "verify", "diff"} {
		cond := fmt.Sprintf("__fish_seen_subcommand_from %s", c)
		if c == "run" {
			cond = "not __fish_seen_subcommand_from diff policies verify completion version help"
		}
		for _, f := range flags[c] {
			line := fmt.Sprintf("complete -c esaudit -n '%s' -l %s", cond, f)
			if v, ok := flagValues[f]; ok {
				line += fmt.Sprintf(" -x -a %q", v)
			}
			b.WriteString(line + "\n")
		}
	}
	b.WriteString("complete -c esaudit -n '__fish_seen_subcommand_from completion' -f -a 'bash zsh fish'\n")
	return b.String()
}
