package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/esbake/packer-plugin-elasticsearch/audit"
	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/provisioner/esnodebin"
	"github.com/esbake/packer-plugin-elasticsearch/version"
)

const usageText = `esaudit: audit Elasticsearch nodes against the esbake policies.

Usage:
  esaudit [run] [flags]                 audit nodes (the default command)
  esaudit policies [--format table|markdown] [--policies DIR] [--stage S]
                                        print the rule catalogue
  esaudit version                       print the version

Targets (combine freely):
  --ec2-tag KEY=VALUE     EC2 instances with this tag (repeat: all must match), running only
  --region R, --profile P AWS region and shared-config profile
  --ec2-endpoint URL      custom EC2 endpoint;  --ssm-endpoint URL  custom SSM endpoint
  --address private|public  which EC2 address to connect and probe (default private)
  --inventory FILE        YAML list of {host, port, user, name, instance_id, tags}, or one
                          host a line: host[:port] [user=U] [name=N] [instance_id=I] [tag:K=V]
  --local                 this machine (facts collected in-process)
  --facts FILE            a captured facts document (repeat; globs allowed)

Transport:
  --transport ssh|ssm     for EC2 and inventory nodes (default ssh)
  --ssh-user U            login user when the inventory names none (default $USER)
  --ssh-key FILE          private key (repeatable); the ssh-agent (SSH_AUTH_SOCK) is used too
  --known-hosts FILE      host keys to verify against (default ~/.ssh/known_hosts)
  --accept-new-host-keys  record unknown host keys (a changed key is always a node error)
  --sudo                  run esnode with sudo -n when the user is not root (default true)
  --esnode-dir DIR        esnode-linux-amd64/arm64 to upload to nodes without esnode
                          (default: next to esaudit, else the copies built into esaudit)
  --parallel N            nodes in flight (default 32)
  --node-timeout D        deadline per node: connect, collect, probe, evaluate (default 60s)

Probes (from the auditor to each node's spec ports, default 9200/9300/5000):
  --no-probes             skip them
  --es-user U, --es-password-file F   basic auth for the Elasticsearch API
  --es-ca FILE, --es-insecure         TLS verification of the API
  --es-scheme auto|http|https         default auto (https, falling back to http)

Policies and results:
  --policies DIR          Rego policies to use instead of the embedded ones
  --expect-instance-profile  discovery must use the instance role: access keys in the
                          keystore are findings (default true; =false to allow keys)
  --auto-scaled           nodes are replaced by an auto-scaling group, so
                          cluster.initial_master_nodes is a finding (default true;
                          =false for static clusters; the aws:autoscaling:groupName tag
                          always counts as auto-scaled)
  --waivers FILE          YAML list of {rule, nodes, justification, expires}
  --history DIR           store this run and report new / fixed / still failing since the last
  --fail-on SEVERITY      low|medium|high|critical (default high)
  --allow-node-errors     nodes that cannot be audited do not fail the run
  --format LIST           table,json,sarif,junit,html (default table; several at once)
  --out DIR               write each format to DIR/report.{txt,json,sarif,xml,html}
                          (the table also goes to stdout); without --out a single
                          format is written to stdout
  --quiet                 no table on stdout, no progress bar

Exit codes:
  0  compliant: no violation at or above --fail-on, no node error
  1  violations at or above --fail-on, or node errors (unless --allow-node-errors)
  2  usage or configuration error
  3  tool error: policies failed to load, discovery failed or found nothing,
     a report could not be written, or no node could be audited at all
`

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runAudit(ctx, args, stdout, stderr)
	case "policies":
		return runPolicies(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "esaudit", version.String())
		return audit.ExitCompliant
	case "help":
		fmt.Fprint(stdout, usageText)
		return audit.ExitCompliant
	}
	fmt.Fprintf(stderr, "esaudit: unknown command %q\n\n%s", cmd, usageText)
	return audit.ExitUsage
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("esaudit run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usageText) }
	var (
		ec2Tags, factsFiles, sshKeys, formats multiFlag
		o                                     audit.Options
		address, esPasswordFile, esnodeDir    string
		knownHosts                            string
		quiet                                 bool
	)
	home, _ := os.UserHomeDir()
	fs.Var(&ec2Tags, "ec2-tag", "")
	fs.StringVar(&o.AWS.Region, "region", "", "")
	fs.StringVar(&o.AWS.Profile, "profile", "", "")
	fs.StringVar(&o.AWS.EC2Endpoint, "ec2-endpoint", "", "")
	fs.StringVar(&o.AWS.SSMEndpoint, "ssm-endpoint", "", "")
	fs.StringVar(&address, "address", "private", "")
	fs.StringVar(&o.Inventory, "inventory", "", "")
	fs.BoolVar(&o.Local, "local", false, "")
	fs.Var(&factsFiles, "facts", "")
	fs.StringVar(&o.Transport, "transport", "ssh", "")
	fs.StringVar(&o.SSH.User, "ssh-user", "", "")
	fs.Var(&sshKeys, "ssh-key", "")
	fs.StringVar(&knownHosts, "known-hosts", filepath.Join(home, ".ssh", "known_hosts"), "")
	fs.BoolVar(&o.SSH.AcceptNewHostKeys, "accept-new-host-keys", false, "")
	fs.BoolVar(&o.SSH.Sudo, "sudo", true, "")
	fs.StringVar(&esnodeDir, "esnode-dir", "", "")
	fs.IntVar(&o.Parallel, "parallel", audit.DefaultParallel, "")
	fs.DurationVar(&o.NodeTimeout, "node-timeout", audit.DefaultNodeTimeout, "")
	fs.BoolVar(&o.NoProbes, "no-probes", false, "")
	fs.StringVar(&o.Probe.User, "es-user", "", "")
	fs.StringVar(&esPasswordFile, "es-password-file", "", "")
	fs.StringVar(&o.Probe.CAFile, "es-ca", "", "")
	fs.BoolVar(&o.Probe.Insecure, "es-insecure", false, "")
	fs.StringVar(&o.Probe.Scheme, "es-scheme", "auto", "")
	fs.StringVar(&o.PoliciesDir, "policies", "", "")
	fs.BoolVar(&o.ExpectInstanceProfile, "expect-instance-profile", true, "")
	fs.BoolVar(&o.AutoScaled, "auto-scaled", true, "")
	fs.StringVar(&o.WaiversFile, "waivers", "", "")
	fs.StringVar(&o.HistoryDir, "history", "", "")
	fs.StringVar(&o.FailOn, "fail-on", audit.DefaultFailOn, "")
	fs.BoolVar(&o.AllowNodeErrors, "allow-node-errors", false, "")
	fs.Var(&formats, "format", "")
	fs.StringVar(&o.OutDir, "out", "", "")
	fs.BoolVar(&quiet, "quiet", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return audit.ExitCompliant
		}
		return audit.ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "esaudit: unexpected argument %q (facts files go after --facts)\n", fs.Arg(0))
		return audit.ExitUsage
	}
	if len(ec2Tags) > 0 {
		o.EC2 = &audit.EC2Discovery{Tags: ec2Tags, Address: address}
	}
	o.FactsFiles = factsFiles
	o.SSH.KeyFiles = sshKeys
	o.SSH.UseAgent = true
	o.SSH.KnownHostsFile = knownHosts
	o.SSH.EsnodeBinary = esnodeSource(esnodeDir)
	if esPasswordFile != "" {
		b, err := os.ReadFile(esPasswordFile)
		if err != nil {
			fmt.Fprintf(stderr, "esaudit: read --es-password-file: %v\n", err)
			return audit.ExitUsage
		}
		o.Probe.Password = strings.TrimRight(string(b), "\r\n")
	}
	o.Formats = formats
	if len(o.Formats) == 0 {
		o.Formats = []string{"table"}
	}
	if !quiet {
		o.Stdout = stdout
	}
	o.ToolVersion = version.String()
	if f, ok := stderr.(*os.File); ok && !quiet && term.IsTerminal(int(f.Fd())) {
		o.Progress = progressBar(stderr)
	}
	res, err := audit.Run(ctx, o)
	if o.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		fmt.Fprintf(stderr, "esaudit: %v\n", err)
		var ue *audit.UsageError
		if errors.As(err, &ue) {
			return audit.ExitUsage
		}
		return audit.ExitTool
	}
	for _, f := range res.Files {
		fmt.Fprintf(stderr, "esaudit: wrote %s\n", f)
	}
	if res.HistoryFile != "" {
		fmt.Fprintf(stderr, "esaudit: stored run in %s\n", res.HistoryFile)
	}
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

func progressBar(w io.Writer) func(done, total int) {
	last := time.Time{}
	return func(done, total int) {
		if done != total && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		const width = 30
		filled := width * done / max(total, 1)
		fmt.Fprintf(w, "\r[%s%s] %d/%d nodes", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total)
	}
}

func runPolicies(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("esaudit policies", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usageText) }
	format := fs.String("format", "table", "")
	dir := fs.String("policies", "", "")
	stage := fs.String("stage", "all", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return audit.ExitCompliant
		}
		return audit.ExitUsage
	}
	if *format != "table" && *format != "markdown" {
		fmt.Fprintf(stderr, "esaudit policies: --format %q: use table or markdown\n", *format)
		return audit.ExitUsage
	}
	rules, md, err := audit.Catalogue(ctx, *dir, *stage)
	if err != nil {
		fmt.Fprintf(stderr, "esaudit policies: load policies: %v\n", err)
		return audit.ExitTool
	}
	if *format == "markdown" {
		fmt.Fprint(stdout, md)
		return audit.ExitCompliant
	}
	writeCatalogueTable(stdout, rules)
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
