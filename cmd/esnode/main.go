// Command esnode is the node agent baked into every Elasticsearch image:
// `install` at bake time, `boot` on every boot, `facts` for audits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/node/boot"
	"github.com/esbake/packer-plugin-elasticsearch/node/drain"
	"github.com/esbake/packer-plugin-elasticsearch/node/install"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
	"github.com/esbake/packer-plugin-elasticsearch/version"
)

const usage = `esnode — the Elasticsearch node agent

Usage:
  esnode install --spec FILE [--root DIR] [--mirror URL] [--wait-cloud-init DURATION] [--generalize]
  esnode boot    [--root DIR] [--imds-endpoint URL] [--imds-timeout DURATION] [--dry-run]
  esnode security-refresh [--root DIR] [--imds-endpoint URL] [--dry-run]
  esnode joined  [--root DIR] [--url URL] [--timeout DURATION]
  esnode facts   [--root DIR] [--out FILE]
  esnode drain   [--root DIR] [--now] [--url URL] [--imds-endpoint URL] [--group NAME] [--hook NAME]
  esnode version

Exit status: 0 success, 1 failure, 2 usage error.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "install":
		err = runInstall(ctx, args[1:], stdout)
	case "boot":
		err = runBoot(ctx, args[1:], stdout)
	case "security-refresh":
		err = runSecurityRefresh(ctx, args[1:], stdout)
	case "joined":
		err = runJoined(ctx, args[1:], stdout)
	case "facts":
		err = runFacts(ctx, args[1:], stdout)
	case "drain":
		err = runDrain(ctx, args[1:], stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, "esnode", version.String())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "esnode: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	var help helpRequested
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		help.print(stdout)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "esnode %s: %v\n\n%s", args[0], err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "esnode %s: %v\n", args[0], err)
		return 1
	}
}

type usageError struct{ error }

// helpRequested is `esnode CMD -h`: the command's flags on stdout, exit 0.
type helpRequested struct{ fs *flag.FlagSet }

func (h helpRequested) Error() string { return "help requested" }

// commandSummary is the first line of each command's help.
var commandSummary = map[string]string{
	"install": "bake time, as root: install Elasticsearch and its companions from a node spec and record the manifest",
	"boot":    "every boot, from esnode-boot.service: per-boot configuration from IMDSv2 metadata and userdata",
	"joined":  "after Elasticsearch starts, from esnode-joined.service: wait until the node is in a cluster, record its UUID and remove cluster.initial_master_nodes",
	"facts":   "print this node's facts (schema " + facts.SchemaVersion + ") as JSON for audits",
}

func (h helpRequested) print(w io.Writer) {
	fmt.Fprintf(w, "esnode %s: %s\n\nFlags:\n", h.fs.Name(), commandSummary[h.fs.Name()])
	h.fs.SetOutput(w)
	h.fs.PrintDefaults()
	fmt.Fprint(w, "\nExit status: 0 success, 1 failure, 2 usage error.\n")
}

func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return helpRequested{fs}
	} else if err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func runInstall(ctx context.Context, args []string, out io.Writer) error {
	fs := flags("install")
	specFile := fs.String("spec", "", "node spec JSON (required)")
	root := fs.String("root", "/", "install into this directory tree")
	mirror := fs.String("mirror", "", "artifact mirror base URL (overrides the spec's mirror_url)")
	wait := fs.Duration("wait-cloud-init", 0, "wait this long for cloud-init and package locks")
	generalize := fs.Bool("generalize", false, "remove host keys, authorized_keys, history, cloud-init state, machine-id")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *specFile == "" {
		return usageError{errors.New("--spec is required")}
	}
	data, err := os.ReadFile(*specFile)
	if err != nil {
		return fmt.Errorf("read the node spec: %w", err)
	}
	n, err := spec.Parse(data)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find esnode's own binary to install it: %w", err)
	}
	res, err := install.Run(ctx, install.Options{
		Spec: n, Root: *root, Mirror: *mirror, WaitCloudInit: *wait,
		Generalize: *generalize, Out: out, EsnodeBinary: self,
	})
	if err != nil {
		return err
	}
	if !res.Changed {
		fmt.Fprintln(out, "esnode install: nothing to change; the node already matches the spec")
	}
	return nil
}

func runBoot(ctx context.Context, args []string, out io.Writer) error {
	fs := flags("boot")
	root := fs.String("root", "/", "configure the node whose root is this directory")
	endpoint := fs.String("imds-endpoint", "", "instance metadata endpoint (default http://169.254.169.254)")
	timeout := fs.Duration("imds-timeout", boot.DefaultIMDSTimeout, "how long to wait for instance metadata")
	dry := fs.Bool("dry-run", false, "print the diff it would apply and change nothing")
	if err := parse(fs, args); err != nil {
		return err
	}
	start := time.Now()
	// AWS_ENDPOINT_URL_EC2 (the SDK's own variable) names a VPC endpoint for
	// discovery; AWS_ENDPOINT_URL_SSM is read by the SDK itself.
	res, err := boot.Run(ctx, boot.Options{Root: *root, IMDSEndpoint: *endpoint, IMDSTimeout: *timeout, DryRun: *dry, Out: out,
		EC2Endpoint: os.Getenv("AWS_ENDPOINT_URL_EC2"), SSMEndpoint: os.Getenv("AWS_ENDPOINT_URL_SSM"),
		SecretsManagerEndpoint: os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")})
	if err != nil {
		return err
	}
	verb := "changed"
	if *dry {
		verb = "would change"
	}
	took := time.Since(start).Round(time.Millisecond)
	// Since the process started, its own start-up included: how much was
	// CPU and how much waiting for one.
	sched := ""
	if cpu, wait, ok := boot.CPUWait(); ok {
		sched = fmt.Sprintf("; process cpu %s, waited for a cpu %s", cpu.Round(100*time.Microsecond), wait.Round(100*time.Microsecond))
	}
	if len(res.Changed) == 0 {
		fmt.Fprintf(out, "esnode boot: nothing to change (%s: %s)%s\n", took, boot.FormatStages(res.Stages), sched)
	} else {
		fmt.Fprintf(out, "esnode boot: %s %d file(s) in %s (%s)%s\n", verb, len(res.Changed), took, boot.FormatStages(res.Stages), sched)
	}
	return nil
}

// runSecurityRefresh re-fetches the TLS material without a reboot (a
// rotation; from SSM Run Command: AWS-RunShellScript "esnode security-refresh").
func runSecurityRefresh(ctx context.Context, args []string, out io.Writer) error {
	fs := flags("security-refresh")
	root := fs.String("root", "/", "the node whose root is this directory")
	endpoint := fs.String("imds-endpoint", "", "instance metadata endpoint (default http://169.254.169.254)")
	dry := fs.Bool("dry-run", false, "say which files would change and change nothing")
	if err := parse(fs, args); err != nil {
		return err
	}
	res, err := boot.RefreshSecurity(ctx, boot.Options{Root: *root, IMDSEndpoint: *endpoint, DryRun: *dry, Out: out,
		SSMEndpoint: os.Getenv("AWS_ENDPOINT_URL_SSM"), SecretsManagerEndpoint: os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")})
	if err != nil {
		return err
	}
	switch {
	case len(res.Written) == 0:
		fmt.Fprintln(out, "esnode security-refresh: the material is current; nothing changed")
	case *dry:
		fmt.Fprintf(out, "esnode security-refresh: would replace %d file(s)\n", len(res.Written))
	default:
		fmt.Fprintf(out, "esnode security-refresh: replaced %d file(s); Elasticsearch reloads them within seconds, no restart needed\n", len(res.Written))
	}
	if res.NeedsBoot {
		fmt.Fprintln(out, "esnode security-refresh: the TLS settings changed too (a layer turned on or off, or PEM/PKCS#12 switched): run esnode boot and restart Elasticsearch")
	}
	return nil
}

func runJoined(ctx context.Context, args []string, out io.Writer) error {
	fs := flags("joined")
	root := fs.String("root", "/", "the node whose root is this directory")
	url := fs.String("url", "", "the node's HTTP API (default http://<private IP>:<http_port>/ from boot.json)")
	timeout := fs.Duration("timeout", 0, "give up after this long (default: wait until stopped)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	_, err := boot.WaitJoined(ctx, boot.JoinedOptions{Root: *root, URL: *url, Out: out})
	return err
}

// runDrain is esnode-drain.service: it watches the instance's Auto Scaling
// target lifecycle state and drains the node on Terminated; --now drains
// at once (by hand, or from SSM Run Command).
func runDrain(ctx context.Context, args []string, out io.Writer) error {
	fs := flags("drain")
	root := fs.String("root", "/", "the node whose root is this directory")
	now := fs.Bool("now", false, "drain at once and complete the lifecycle action, instead of watching")
	url := fs.String("url", "", "the node's HTTP API (default http://<private IP>:<http_port> from boot.json)")
	endpoint := fs.String("imds-endpoint", "", "instance metadata endpoint (default http://169.254.169.254)")
	group := fs.String("group", "", "the Auto Scaling group (default: looked up with DescribeAutoScalingInstances)")
	hook := fs.String("hook", "", "the termination lifecycle hook (default lifecycle.termination_hook of the spec)")
	if err := parse(fs, args); err != nil {
		return err
	}
	t, err := boot.ReadDrainTarget(*root)
	if err != nil {
		return err
	}
	if *hook == "" {
		*hook = t.Lifecycle.TerminationHook
	}
	if *url == "" {
		*url = t.URL
	}
	timeout, heartbeat, err := t.Lifecycle.Durations()
	if err != nil {
		return err
	}
	cluster, err := drainClient(ctx, t, *url, *endpoint)
	if err != nil {
		return err
	}
	node := drain.Node{Name: t.Name, MasterEligible: t.MasterEligible, Voting: t.Version.Major >= 7}
	opts := drain.Options{Timeout: timeout, HeartbeatEvery: heartbeat, Out: out}
	newHook := func(ctx context.Context) (drain.Hook, error) {
		// AWS_ENDPOINT_URL_AUTO_SCALING is read by the SDK itself.
		return drain.NewLifecycleClient(ctx, t.Region, "", *endpoint, *group, *hook, t.InstanceID)
	}
	if *now {
		h, err := newHook(ctx)
		if err != nil {
			return err
		}
		return drain.Drain(ctx, cluster, h, node, opts)
	}
	if *hook == "" {
		fmt.Fprintln(out, "esnode drain: no lifecycle.termination_hook in the spec: nothing to watch for (see docs/esnode.md, Safe scale-in)")
		return nil
	}
	fmt.Fprintf(out, "esnode drain: watching the target lifecycle state of %s (hook %s)\n", t.InstanceID, *hook)
	return drain.Watch(ctx, drain.WatchOptions{State: drain.IMDSTargetState(*endpoint), Cluster: cluster, Hook: newHook, Node: node, Drain: opts, Out: out})
}

// drainClient is the node's own API with the cluster's credentials and
// HTTP CA, fetched with the instance role when the spec names them.
func drainClient(ctx context.Context, t *boot.DrainTarget, url, imdsEndpoint string) (*drain.ESClient, error) {
	c := &drain.ESClient{BaseURL: url, Major: t.Version.Major, Minor: t.Version.Minor}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if t.Security.ElasticPassword != "" || strings.HasPrefix(url, "https://") {
		// AWS_ENDPOINT_URL_SSM / _SECRETS_MANAGER are read by the SDK itself.
		store, err := boot.NewAWSSecrets(ctx, t.Region, "", "", imdsEndpoint)
		if err != nil {
			return nil, err
		}
		a, err := t.Access(ctx, store)
		if err != nil {
			return nil, fmt.Errorf("esnode drain: reading the cluster's credentials for the node's API: %w", err)
		}
		c.Username, c.Password = a.Username, a.Password
		transport.TLSClientConfig = a.TLS
	}
	c.Client = &http.Client{Timeout: 30 * time.Second, Transport: transport}
	return c, nil
}

func runFacts(ctx context.Context, args []string, out io.Writer) error {
	fs := flags("facts")
	root := fs.String("root", "/", "read the node whose root is this directory (/proc included)")
	outFile := fs.String("out", "", "write the document here instead of standard output")
	if err := parse(fs, args); err != nil {
		return err
	}
	if st, err := os.Stat(*root); err != nil || !st.IsDir() {
		return usageError{fmt.Errorf("--root %s is not a directory: give the node's root file system (default /)", *root)}
	}
	f, err := facts.Collect(ctx, facts.Options{Root: *root, Live: *root == "/"})
	if err != nil {
		return err
	}
	doc, err := f.JSON()
	if err != nil {
		return err
	}
	doc = append(doc, '\n')
	if *outFile == "" {
		_, err = out.Write(doc)
		return err
	}
	tmp := *outFile + ".tmp"
	if err := os.WriteFile(tmp, doc, 0o600); err != nil {
		return fmt.Errorf("write facts: %w", err)
	}
	return os.Rename(tmp, *outFile)
}
