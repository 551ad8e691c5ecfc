package eval

import (
	"fmt"
	"strings"
)

// Skip is a rule that cannot be evaluated on a node: a fact it requires
// is missing.
type Skip struct {
	RuleID  string
	Missing []string
	// Reason says which fact was missing and why, for reports.
	Reason string
}

// Unevaluable lists the engine's rules that the input cannot decide,
// because a fact in their METADATA custom.requires is missing: the
// collector reported an error for it, or the auditor had no security
// groups or probes for the node. Reports show these as "not evaluated"
// instead of passed.
func (e *Engine) Unevaluable(in Input) []Skip {
	var out []Skip
	for _, r := range e.rules {
		var missing, why []string
		for _, req := range r.Requires {
			if reason := missingFact(in, req); reason != "" {
				missing = append(missing, req)
				why = append(why, reason)
			}
		}
		if len(missing) > 0 {
			out = append(out, Skip{RuleID: r.ID, Missing: missing, Reason: strings.Join(why, "; ")})
		}
	}
	return out
}

// missingFact explains why req is not in the input ("" when it is).
func missingFact(in Input, req string) string {
	switch req {
	case "node.security_groups":
		if len(in.Node.SecurityGroups) == 0 {
			return "no security groups for the node (only --ec2-tag discovery reads them)"
		}
		return ""
	case "node.auto_scaling":
		if in.Node.AutoScaling == nil {
			return "the auditor did not read the node's Auto Scaling group (only --ec2-tag discovery does, with autoscaling:DescribeAutoScalingInstances and autoscaling:DescribeLifecycleHooks)"
		}
		return ""
	case "probes":
		if in.Probes == nil {
			return "no probes from the auditor (--no-probes, or a facts file)"
		}
		return ""
	case "probes.es_api":
		if in.Probes == nil || in.Probes.ESAPI == nil {
			return "the Elasticsearch API did not answer the auditor's probe"
		}
		return ""
	case "probes.cluster":
		if in.Probes == nil || in.Probes.ESAPI == nil {
			return "the Elasticsearch API did not answer the auditor's probe (indices and zones unknown)"
		}
		if in.Probes.Cluster == nil {
			return "the Elasticsearch API did not report the indices, cluster settings and nodes (GET /_cat/indices, /_cluster/settings, /_nodes need the monitor privilege)"
		}
		return ""
	case "probes.snapshot_policies":
		if in.Probes == nil || in.Probes.ESAPI == nil {
			return "the Elasticsearch API did not answer the auditor's probe (snapshot policies unknown)"
		}
		if in.Probes.SnapshotPolicies == nil {
			return "the Elasticsearch API did not report snapshot policies (Elasticsearch before 7.4, or no permission)"
		}
		return ""
	}
	if in.Facts == nil {
		return fmt.Sprintf("fact %s: no facts document", req)
	}
	for _, fe := range in.Facts.Errors {
		if fe.Fact == req || strings.HasPrefix(req, fe.Fact+".") || strings.HasPrefix(fe.Fact, req+".") {
			return fmt.Sprintf("fact %s could not be collected: %s", fe.Fact, strings.Join(strings.Fields(fe.Error), " "))
		}
	}
	return ""
}
