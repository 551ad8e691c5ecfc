package audit

import (
	"context"

	"github.com/esbake/packer-plugin-elasticsearch/audit/eval"
	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/policies"
)

// evalEngine adapts the OPA engine (audit/eval) to Engine.
type evalEngine struct {
	e     *eval.Engine
	rules []report.Rule
}

// newEvalEngine prepares the policies once: the embedded ones, or dir.
func newEvalEngine(ctx context.Context, dir, stage string) (*evalEngine, error) {
	opts := eval.Options{FS: policies.FS, Stage: stage}
	if dir != "" {
		opts = eval.Options{Dir: dir, Stage: stage}
	}
	e, err := eval.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &evalEngine{e: e, rules: convertRules(e.Catalogue())}, nil
}

func convertRules(in []eval.Rule) []report.Rule {
	out := make([]report.Rule, 0, len(in))
	for _, r := range in {
		out = append(out, report.Rule{ID: r.ID, Title: r.Title, Description: r.Description, Severity: r.Severity, Remediation: r.Remediation, Stages: r.Stages, Package: r.Package})
	}
	return out
}

// Catalogue returns the loaded rules.
func (a *evalEngine) Catalogue() []report.Rule { return a.rules }

// Evaluate runs the prepared query for one node.
func (a *evalEngine) Evaluate(ctx context.Context, in NodeInput) ([]report.Finding, error) {
	node := eval.NodeInfo{Name: in.Target.Name, Address: in.Target.Host, InstanceID: in.Target.InstanceID, Tags: in.Target.Tags,
		SubnetCIDR: in.Target.SubnetCIDR, VPCCIDRs: in.Target.VPCCIDRs}
	for _, g := range in.Target.SecurityGroups {
		sg := eval.SecurityGroup{ID: g.ID, Name: g.Name}
		for _, r := range g.Ingress {
			sg.Ingress = append(sg.Ingress, eval.IngressRule{Proto: r.Proto, FromPort: r.FromPort, ToPort: r.ToPort, CIDRs: r.CIDRs, IPv6CIDRs: r.IPv6CIDRs})
		}
		node.SecurityGroups = append(node.SecurityGroups, sg)
	}
	input := eval.Input{Facts: in.Facts, Node: node, Policy: eval.PolicyOptions{ExpectInstanceProfile: in.ExpectInstanceProfile, AutoScaled: in.AutoScaled}}
	if in.Probes != nil {
		input.Probes = &eval.Probes{ReachablePorts: in.Probes.ReachablePorts, SnapshotPolicies: in.Probes.SnapshotPolicies}
		if a := in.Probes.ESAPI; a != nil {
			input.Probes.ESAPI = &eval.ESAPI{Version: a.Version, ClusterName: a.ClusterName, NodeName: a.NodeName, Settings: a.Settings, HeapInitBytes: a.HeapInitBytes, HeapMaxBytes: a.HeapMaxBytes}
		}
	}
	fs, err := a.e.Evaluate(ctx, input)
	if err != nil {
		return nil, err
	}
	out := make([]report.Finding, 0, len(fs))
	for _, f := range fs {
		out = append(out, report.Finding{RuleID: f.RuleID, Title: f.Title, Severity: f.Severity, Message: f.Message, Remediation: f.Remediation, Details: f.Details})
	}
	return out, nil
}

// Catalogue loads the policies and returns their rules (for `esaudit
// policies`), and the Markdown rendering the docs are generated from.
func Catalogue(ctx context.Context, dir, stage string) ([]report.Rule, string, error) {
	opts := eval.Options{FS: policies.FS, Stage: stage}
	if dir != "" {
		opts = eval.Options{Dir: dir, Stage: stage}
	}
	e, err := eval.New(ctx, opts)
	if err != nil {
		return nil, "", err
	}
	rules := e.Catalogue()
	return convertRules(rules), eval.CatalogueMarkdown(rules), nil
}
