// Package report holds the result of an esaudit run (the versioned JSON
// document, SchemaVersion) and renders it as a table, JSON, SARIF 2.1.0,
// JUnit XML or a self-contained HTML page.
package report

import (
	"fmt"
	"sort"
	"time"
)

// SchemaVersion names the JSON document a run produces. Bump it when a change
// is not backwards compatible (history reads older runs by this name).
const SchemaVersion = "esbake.report/v1"

// Finding statuses.
const (
	StatusViolation = "violation"
	StatusWaived    = "waived"
	// StatusNotEvaluated is a rule that could not be checked on a node
	// because a fact it needs is missing (NotEvaluated entries).
	StatusNotEvaluated = "not_evaluated"
)

// Node statuses.
const (
	NodeOK    = "ok"
	NodeError = "error"
)

// Severities from lowest to highest.
var Severities = []string{"low", "medium", "high", "critical"}

// SeverityRank orders severities; unknown ones rank above critical so that
// a typo in a policy never hides a finding.
func SeverityRank(s string) int {
	for i, v := range Severities {
		if v == s {
			return i
		}
	}
	return len(Severities)
}

// Result is one run: the rule catalogue, every node and its findings.
type Result struct {
	SchemaVersion string    `json:"schema_version"`
	Tool          Tool      `json:"tool"`
	StartedAt     time.Time `json:"started_at"`
	FinishedAt    time.Time `json:"finished_at"`
	// FailOn is the lowest severity that fails the run.
	FailOn string `json:"fail_on"`
	// AllowNodeErrors: nodes that could not be audited do not fail the run.
	AllowNodeErrors bool `json:"allow_node_errors"`
	// Policies says where the rules came from ("embedded" and/or
	// directories, joined by "+").
	Policies string `json:"policies"`
	// PoliciesDigest is "sha256:<hex>" over the policy set's files (path
	// and content), so a report shows exactly which rules judged it.
	PoliciesDigest string `json:"policies_digest,omitempty"`
	// Category keeps uploads of several clusters apart (SARIF
	// automationDetails.id); default: the nodes' cluster tag.
	Category string `json:"category,omitempty"`
	// UnusedWaivers are waivers that matched no finding in this run.
	UnusedWaivers []UnusedWaiver `json:"unused_waivers,omitempty"`
	// Warnings are non-fatal problems of the run's configuration (waivers
	// without a node selector, far expiries, ...).
	Warnings []string `json:"warnings,omitempty"`
	Rules    []Rule   `json:"rules"`
	Nodes    []Node   `json:"nodes"`
	Summary  Summary  `json:"summary"`
	// Diff compares with the previous stored run (--history); nil without one.
	Diff *Diff `json:"diff,omitempty"`
}

// Tool names the program that produced the result.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Rule is one policy rule of the catalogue.
type Rule struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Severity    string   `json:"severity"`
	Remediation string   `json:"remediation"`
	Stages      []string `json:"stages,omitempty"`
	Package     string   `json:"package,omitempty"`
	// HelpURI documents the rule (docs/policies.md#<id> for built-ins).
	HelpURI string `json:"help_uri,omitempty"`
	// Requires are the facts the rule needs; when one is missing on a node
	// the rule is not evaluated there.
	Requires []string `json:"requires,omitempty"`
}

// UnusedWaiver is a waiver entry no finding matched.
type UnusedWaiver struct {
	Rule  string `json:"rule"`
	Nodes string `json:"nodes"`
	Line  int    `json:"line,omitempty"`
}

// NotEvaluated is a rule that could not be checked on a node.
type NotEvaluated struct {
	RuleID   string `json:"rule_id"`
	Title    string `json:"title,omitempty"`
	Severity string `json:"severity,omitempty"`
	// Missing names the facts that were unavailable.
	Missing []string `json:"missing"`
	Reason  string   `json:"reason"`
}

// Node is one audited node.
type Node struct {
	Name       string            `json:"name"`
	Address    string            `json:"address,omitempty"`
	InstanceID string            `json:"instance_id,omitempty"`
	Transport  string            `json:"transport"`
	Tags       map[string]string `json:"tags,omitempty"`
	// Status is "ok" (facts collected and evaluated) or "error".
	Status string `json:"status"`
	// ErrorKind classifies an error: unreachable, timeout, host-key, auth,
	// invalid-output, evaluation, transport.
	ErrorKind string `json:"error_kind,omitempty"`
	Error     string `json:"error,omitempty"`
	// DurationMS is how long the node took, collection to evaluation.
	DurationMS int64     `json:"duration_ms"`
	Findings   []Finding `json:"findings"`
	// FactErrors are collectors that failed on the node (facts.errors).
	FactErrors []string `json:"fact_errors,omitempty"`
	// NotEvaluated are rules that could not be checked for lack of facts.
	NotEvaluated []NotEvaluated `json:"not_evaluated,omitempty"`
	// ConfigDir is Elasticsearch's configuration directory on the node.
	ConfigDir string  `json:"config_dir,omitempty"`
	Probes    *Probes `json:"probes,omitempty"`
}

// Probes is what the auditor saw from outside the node.
type Probes struct {
	ReachablePorts   []int  `json:"reachable_ports"`
	ESAPI            bool   `json:"es_api"`
	ESAPIError       string `json:"es_api_error,omitempty"`
	SnapshotPolicies *int   `json:"snapshot_policies,omitempty"`
}

// Finding is one rule a node violates.
type Finding struct {
	// ID is the finding's identity across runs: a hash of node, rule and
	// resource (never of the message, which may hold pids or sizes).
	ID     string `json:"id"`
	RuleID string `json:"rule_id"`
	// Resource is what the finding is about (a setting, a port, a path),
	// normalized so it is stable across restarts.
	Resource    string         `json:"resource,omitempty"`
	Title       string         `json:"title"`
	Severity    string         `json:"severity"`
	Message     string         `json:"message"`
	Remediation string         `json:"remediation,omitempty"`
	Details     map[string]any `json:"details,omitempty"`
	// Status is "violation" or "waived".
	Status string  `json:"status"`
	Waiver *Waiver `json:"waiver,omitempty"`
	// Note explains a status, e.g. an expired waiver.
	Note string `json:"note,omitempty"`
}

// Waiver is the waiver that matched a finding.
type Waiver struct {
	Rule          string `json:"rule"`
	Nodes         string `json:"nodes"`
	Justification string `json:"justification"`
	Expires       string `json:"expires"`
	Expired       bool   `json:"expired"`
}

// Summary counts the run.
type Summary struct {
	Nodes      int `json:"nodes"`
	NodesOK    int `json:"nodes_ok"`
	NodeErrors int `json:"node_errors"`
	Violations int `json:"violations"`
	Waived     int `json:"waived"`
	// NotEvaluated counts rule × node pairs that could not be checked.
	NotEvaluated int `json:"not_evaluated"`
	// BySeverity counts violations (not waived findings) by severity.
	BySeverity map[string]int `json:"by_severity"`
	// FailingViolations are violations at or above FailOn.
	FailingViolations int `json:"failing_violations"`
	// Compliant: some node audited, no violation at or above FailOn, and no
	// node error (unless AllowNodeErrors).
	Compliant bool `json:"compliant"`
}

// Diff is the change since the previous stored run, keyed by finding
// identity (node + rule + resource).
type Diff struct {
	PreviousFile string    `json:"previous_file"`
	PreviousAt   time.Time `json:"previous_at"`
	// New violations; Fixed: gone on a node audited both times.
	New   []DiffEntry `json:"new"`
	Fixed []DiffEntry `json:"fixed"`
	// Waived: a violation that a waiver now covers; Unwaived: a waived
	// finding that is a violation again (waiver expired or removed).
	Waived       []DiffEntry `json:"waived"`
	Unwaived     []DiffEntry `json:"unwaived"`
	StillFailing []DiffEntry `json:"still_failing"`
	// VanishedNodes were in the previous run and are not in this one;
	// NewNodes the reverse. Their findings are neither new nor fixed.
	VanishedNodes []string `json:"vanished_nodes"`
	NewNodes      []string `json:"new_nodes"`
}

// DiffEntry is one finding.
type DiffEntry struct {
	ID       string `json:"id"`
	Node     string `json:"node"`
	RuleID   string `json:"rule_id"`
	Resource string `json:"resource,omitempty"`
	Severity string `json:"severity"`
	Message  string `json:"message,omitempty"`
}

// Summarize recomputes r.Summary from the nodes and sorts nodes and
// findings into a stable order (nodes by name, findings by severity then id).
func (r *Result) Summarize() {
	sort.SliceStable(r.Nodes, func(i, j int) bool { return r.Nodes[i].Name < r.Nodes[j].Name })
	s := Summary{BySeverity: map[string]int{}}
	for _, sev := range Severities {
		s.BySeverity[sev] = 0
	}
	min := SeverityRank(r.FailOn)
	for i := range r.Nodes {
		n := &r.Nodes[i]
		if n.Findings == nil {
			n.Findings = []Finding{}
		}
		for i := range n.Findings {
			Identify(n.Name, &n.Findings[i])
		}
		sort.SliceStable(n.Findings, func(a, b int) bool {
			fa, fb := n.Findings[a], n.Findings[b]
			if ra, rb := SeverityRank(fa.Severity), SeverityRank(fb.Severity); ra != rb {
				return ra > rb
			}
			if fa.RuleID != fb.RuleID {
				return fa.RuleID < fb.RuleID
			}
			if fa.Resource != fb.Resource {
				return fa.Resource < fb.Resource
			}
			return fa.Message < fb.Message
		})
		s.NotEvaluated += len(n.NotEvaluated)
		s.Nodes++
		if n.Status == NodeError {
			s.NodeErrors++
		} else {
			s.NodesOK++
		}
		for _, f := range n.Findings {
			switch f.Status {
			case StatusWaived:
				s.Waived++
			default:
				s.Violations++
				s.BySeverity[f.Severity]++
				if SeverityRank(f.Severity) >= min {
					s.FailingViolations++
				}
			}
		}
	}
	s.Compliant = s.FailingViolations == 0 && (s.NodeErrors == 0 || r.AllowNodeErrors) && s.NodesOK > 0
	r.Summary = s
}

// RuleByID returns the catalogue entry of id, or a stand-in built from a
// finding when the catalogue lacks it.
func (r *Result) RuleByID(id string) (Rule, bool) {
	for _, ru := range r.Rules {
		if ru.ID == id {
			return ru, true
		}
	}
	return Rule{ID: id, Title: id}, false
}

// rulesWithFindings is the catalogue plus any rule id seen only in findings,
// so no finding ever points at a missing rule.
func (r *Result) rulesWithFindings() []Rule {
	out := append([]Rule(nil), r.Rules...)
	seen := map[string]bool{}
	for _, ru := range out {
		seen[ru.ID] = true
	}
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			if !seen[f.RuleID] {
				seen[f.RuleID] = true
				out = append(out, Rule{ID: f.RuleID, Title: f.Title, Severity: f.Severity, Remediation: f.Remediation})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Formats are the report formats, in the order they are written.
var Formats = []string{"table", "json", "sarif", "junit", "html"}

// FileName is the file a format is written to under --out.
func FileName(format string) (string, error) {
	switch format {
	case "table":
		return "report.txt", nil
	case "json":
		return "report.json", nil
	case "sarif":
		return "report.sarif", nil
	case "junit":
		return "report.xml", nil
	case "html":
		return "report.html", nil
	}
	return "", fmt.Errorf("unknown report format %q: use table, json, sarif, junit or html", format)
}
