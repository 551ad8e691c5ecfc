// Command esnode is the node agent baked into every Elasticsearch image:
// `install` at bake time, `boot` on every boot, `facts` for audits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/node/boot"
	"github.com/esbake/packer-plugin-elasticsearch/node/install"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
	"github.com/esbake/packer-plugin-elasticsearch/version"
)

const usage = `esnode — the Elasticsearch node agent

Usage:
  esnode install --spec FILE [--root DIR] [--mirror URL] [--wait-cloud-init DURATION] [--generalize]
  esnode boot    [--root DIR] [--imds-endpoint URL] [--imds-timeout DURATION] [--dry-run]
  esnode facts   [--root DIR] [--out FILE]
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
	case "facts":
		err = runFacts(ctx, args[1:], stdout)
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
	res, err := boot.Run(ctx, boot.Options{Root: *root, IMDSEndpoint: *endpoint, IMDSTimeout: *timeout, DryRun: *dry, Out: out})
	if err != nil {
		return err
	}
	verb := "changed"
	if *dry {
		verb = "would change"
	}
	if len(res.Changed) == 0 {
		fmt.Fprintf(out, "esnode boot: nothing to change (%s)\n", time.Since(start).Round(time.Millisecond))
	} else {
		fmt.Fprintf(out, "esnode boot: %s %d file(s) in %s\n", verb, len(res.Changed), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func runFacts(ctx context.Context, args []string, out io.Writer) error {
	fs := flags("facts")
	root := fs.String("root", "/", "read the node whose root is this directory (/proc included)")
	outFile := fs.String("out", "", "write the document here instead of standard output")
	if err := parse(fs, args); err != nil {
		return err
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
