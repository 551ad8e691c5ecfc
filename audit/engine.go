package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/esbake/packer-plugin-elasticsearch/audit/eval"
	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
)

// evalEngine adapts the OPA engine (audit/eval) to Engine.
type evalEngine struct {
	e     *eval.Engine
	rules []report.Rule
}

// PolicySource says which policy sets to load: the built-ins (unless
// NoBuiltin) merged with each directory.
type PolicySource struct {
	Dirs      []string
	NoBuiltin bool
}

// sources resolves the policy sets; a missing directory is a usage error.
func (p PolicySource) sources() ([]eval.Source, error) {
	var out []eval.Source
	if !p.NoBuiltin {
		out = append(out, eval.BuiltinSource())
	}
	for _, d := range p.Dirs {
		s, err := eval.DirSource(d)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("--policies %s: %w", d, err)}
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, usagef("--no-builtin without --policies DIR leaves no rules: give a policy directory")
	}
	return out, nil
}

// String describes the policy set for reports: "embedded", a directory,
// or both joined by " + ".
func (p PolicySource) String() string {
	var parts []string
	if !p.NoBuiltin {
		parts = append(parts, "embedded")
	}
	parts = append(parts, p.Dirs...)
	return strings.Join(parts, " + ")
}

// Selection narrows the rules (globs on ids and packages).
type Selection struct {
	Rules, SkipRules, Packages, SkipPackages []string
}

// newEvalEngine prepares the policies once.
func newEvalEngine(ctx context.Context, src PolicySource, stage string, sel Selection) (*evalEngine, error) {
	srcs, err := src.sources()
	if err != nil {
		return nil, err
	}
	e, err := eval.New(ctx, eval.Options{Sources: srcs, Stage: stage, Rules: sel.Rules, SkipRules: sel.SkipRules, Packages: sel.Packages, SkipPackages: sel.SkipPackages})
	if err != nil {
		var se *eval.SelectionError
		if errors.As(err, &se) {
			return nil, &UsageError{Err: err}
		}
		return nil, err
	}
	return &evalEngine{e: e, rules: convertRules(e.Catalogue(), !src.NoBuiltin, srcs)}, nil
}

// Digest is the policy set's sha256 digest.
func (a *evalEngine) Digest() string { return a.e.Digest() }

// convertRules turns the engine's catalogue into report rules; built-in
// rules link to their section of docs/policies.md.
func convertRules(in []eval.Rule, builtin bool, _ []eval.Source) []report.Rule {
	out := make([]report.Rule, 0, len(in))
	for _, r := range in {
		ru := report.Rule{ID: r.ID, Title: r.Title, Description: r.Description, Severity: r.Severity, Remediation: r.Remediation, Stages: r.Stages, Package: r.Package, Requires: r.Requires}
		if builtin && eval.IsBuiltin(r.ID) {
			ru.HelpURI = report.PolicyDocsURL + "#" + strings.ToLower(r.ID)
		}
		out = append(out, ru)
	}
	return out
}

// Catalogue returns the loaded rules.
func (a *evalEngine) Catalogue() []report.Rule { return a.rules }

// NotEvaluated lists the rules the node's input cannot decide (a required
// fact is missing).
func (a *evalEngine) NotEvaluated(in NodeInput) []report.NotEvaluated {
	var out []report.NotEvaluated
	for _, s := range a.e.Unevaluable(a.input(in)) {
		ne := report.NotEvaluated{RuleID: s.RuleID, Missing: s.Missing, Reason: s.Reason}
		if r, ok := a.e.Rule(s.RuleID); ok {
			ne.Title, ne.Severity = r.Title, r.Severity
		}
		out = append(out, ne)
	}
	return out
}

// Evaluate runs the prepared query for one node.
func (a *evalEngine) Evaluate(ctx context.Context, in NodeInput) ([]report.Finding, error) {
	fs, err := a.e.Evaluate(ctx, a.input(in))
	if err != nil {
		return nil, err
	}
	out := make([]report.Finding, 0, len(fs))
	for _, f := range fs {
		out = append(out, report.Finding{RuleID: f.RuleID, Title: f.Title, Severity: f.Severity, Message: f.Message, Remediation: f.Remediation, Details: f.Details})
	}
	return out, nil
}

// input is the policy input document of a node.
func (a *evalEngine) input(in NodeInput) eval.Input {
	node := eval.NodeInfo{Name: in.Target.Name, Address: in.Target.Host, InstanceID: in.Target.InstanceID, Tags: in.Target.Tags,
		SubnetCIDR: in.Target.SubnetCIDR, VPCCIDRs: in.Target.VPCCIDRs}
	for _, g := range in.Target.SecurityGroups {
		sg := eval.SecurityGroup{ID: g.ID, Name: g.Name}
		for _, r := range g.Ingress {
			sg.Ingress = append(sg.Ingress, eval.IngressRule{Proto: r.Proto, FromPort: r.FromPort, ToPort: r.ToPort, CIDRs: r.CIDRs, IPv6CIDRs: r.IPv6CIDRs})
		}
		node.SecurityGroups = append(node.SecurityGroups, sg)
	}
	if as := in.Target.AutoScaling; as != nil {
		node.AutoScaling = &eval.AutoScaling{Group: as.Group, Hooks: []eval.LifecycleHook{}}
		for _, h := range as.Hooks {
			node.AutoScaling.Hooks = append(node.AutoScaling.Hooks, eval.LifecycleHook{Name: h.Name, Transition: h.Transition, DefaultResult: h.DefaultResult, HeartbeatTimeout: h.HeartbeatTimeout})
		}
	}
	input := eval.Input{Facts: in.Facts, Node: node, Policy: eval.PolicyOptions{ExpectInstanceProfile: in.ExpectInstanceProfile, AutoScaled: in.AutoScaled}}
	if in.Probes != nil {
		input.Probes = &eval.Probes{ReachablePorts: in.Probes.ReachablePorts, SnapshotPolicies: in.Probes.SnapshotPolicies, Cluster: in.Probes.Cluster}
		if a := in.Probes.ESAPI; a != nil {
			input.Probes.ESAPI = &eval.ESAPI{Version: a.Version, ClusterName: a.ClusterName, NodeName: a.NodeName, Settings: a.Settings, HeapInitBytes: a.HeapInitBytes, HeapMaxBytes: a.HeapMaxBytes}
		}
	}
	return input
}

// Catalogue loads the policies and returns their rules (for `esaudit
// policies`), and the Markdown rendering the docs are generated from.
func Catalogue(ctx context.Context, src PolicySource, stage string) ([]report.Rule, string, error) {
	srcs, err := src.sources()
	if err != nil {
		return nil, "", err
	}
	e, err := eval.New(ctx, eval.Options{Sources: srcs, Stage: stage})
	if err != nil {
		return nil, "", err
	}
	rules := e.Catalogue()
	return convertRules(rules, !src.NoBuiltin, srcs), eval.CatalogueMarkdown(rules), nil
}

// VerifySummary counts policy test results.
type VerifySummary struct{ Passed, Failed, Errors int }

// VerifyPolicies runs the *_test.rego tests of the policy set with the
// embedded OPA and writes one line per failing test (every test when
// verbose) to w.
func VerifyPolicies(ctx context.Context, src PolicySource, filter string, verbose bool, w io.Writer) (VerifySummary, error) {
	var sum VerifySummary
	srcs, err := src.sources()
	if err != nil {
		return sum, err
	}
	if filter != "" {
		if _, err := regexp.Compile(filter); err != nil {
			return sum, usagef("--run %q is not a regular expression: %v", filter, err)
		}
	}
	results, err := eval.Verify(ctx, srcs, filter)
	if err != nil {
		return sum, err
	}
	for _, r := range results {
		switch {
		case r.Err != nil:
			sum.Errors++
			fmt.Fprintf(w, "ERROR %s (%s): %v\n", r.Name, r.Location, r.Err)
		case r.Failed || r.Skipped:
			sum.Failed++
			fmt.Fprintf(w, "FAIL  %s (%s)\n", r.Name, r.Location)
		default:
			sum.Passed++
			if verbose {
				fmt.Fprintf(w, "PASS  %s\n", r.Name)
			}
		}
	}
	return sum, nil
}
