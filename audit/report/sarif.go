package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
)

// SARIFSchema is the schema URI written into SARIF logs.
const SARIFSchema = "https://json.schemastore.org/sarif-2.1.0.json"

// securitySeverity maps severities to the CVSS-like scores code-scanning
// tools sort by.
var securitySeverity = map[string]string{
	"critical": "9.5",
	"high":     "8.0",
	"medium":   "5.5",
	"low":      "3.0",
}

func sarifLevel(sev string) string {
	switch sev {
	case "critical", "high":
		return "error"
	case "medium":
		return "warning"
	case "low":
		return "note"
	}
	return "error"
}

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	// Results is resultsPlaceholder when written: WriteSARIF streams the
	// results in its place.
	Results any `json:"results"`
	// AutomationDetails.ID is "<category>/<run>": code scanning keeps
	// uploads of different categories (clusters) apart.
	AutomationDetails *sarifAutomation `json:"automationDetails,omitempty"`
	Properties        map[string]any   `json:"properties,omitempty"`
}

type sarifAutomation struct {
	ID string `json:"id"`
}

type sarifRuleRef struct {
	ID    string `json:"id"`
	Index int    `json:"index"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	SemanticVer    string      `json:"semanticVersion,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	HelpURI              string         `json:"helpUri,omitempty"`
	Help                 sarifText      `json:"help"`
	DefaultConfiguration map[string]any `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool   `json:"executionSuccessful"`
	StartTimeUTC        string `json:"startTimeUtc,omitempty"`
	EndTimeUTC          string `json:"endTimeUtc,omitempty"`
	// Notifications is nil or notificationsPlaceholder when written.
	Notifications any `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations,omitempty"`
	Descr      *sarifDescrRef  `json:"descriptor,omitempty"`
	Rule       *sarifRuleRef   `json:"associatedRule,omitempty"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifDescrRef struct {
	ID string `json:"id"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifText          `json:"message"`
	Locations           []sarifLocation    `json:"locations"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	Properties          map[string]any     `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
	Message          *sarifText     `json:"message,omitempty"`
	Properties       map[string]any `json:"properties,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName,omitempty"`
	Kind               string `json:"kind"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification,omitempty"`
}

// ProjectURL is esaudit's home, the SARIF driver's informationUri.
const ProjectURL = "https://github.com/esbake/packer-plugin-elasticsearch"

// PolicyDocsURL is the rule catalogue; built-in rules link to
// PolicyDocsURL#<lower-cased id>.
const PolicyDocsURL = ProjectURL + "/blob/main/docs/policies.md"

// WriteSARIF writes a SARIF 2.1.0 log that GitHub code scanning ingests:
// one run, the catalogue as rules, one result per finding. Every result has
// a physical location: a repository-style, percent-encoded URI under
// nodes/<node>/ for the file (or resource) the finding is about, with a
// region (line 1 when the line is unknown), and a partial fingerprint from
// the finding's identity. Waived findings carry an accepted suppression;
// node errors and rules not evaluated are tool notifications.
func WriteSARIF(w io.Writer, r *Result) error {
	rules := r.rulesWithFindings()
	index := map[string]int{}
	driver := sarifDriver{Name: nonEmpty(r.Tool.Name, "esaudit"), Version: r.Tool.Version, InformationURI: ProjectURL, Rules: []sarifRule{}}
	if semverRe.MatchString(r.Tool.Version) {
		driver.SemanticVer = strings.TrimPrefix(r.Tool.Version, "v")
	}
	for i, ru := range rules {
		index[ru.ID] = i
		desc := nonEmpty(ru.Description, ru.Title)
		tags := []string{"security", "elasticsearch"}
		if ru.Severity != "" {
			tags = append(tags, ru.Severity)
		}
		props := map[string]any{"tags": tags, "precision": "high"}
		if s, ok := securitySeverity[ru.Severity]; ok {
			props["security-severity"] = s
		}
		if ru.Package != "" {
			props["package"] = ru.Package
		}
		driver.Rules = append(driver.Rules, sarifRule{
			ID:               ru.ID,
			Name:             ruleName(ru),
			ShortDescription: sarifText{Text: nonEmpty(ru.Title, ru.ID)},
			FullDescription:  sarifText{Text: desc},
			HelpURI:          ru.HelpURI,
			Help: sarifText{
				Text:     fmt.Sprintf("%s\n\nRemediation: %s", desc, nonEmpty(ru.Remediation, "see the rule description")),
				Markdown: fmt.Sprintf("**%s** (%s)\n\n%s\n\n**Remediation:** %s", nonEmpty(ru.Title, ru.ID), nonEmpty(ru.Severity, "unknown severity"), desc, nonEmpty(ru.Remediation, "see the rule description")),
			},
			DefaultConfiguration: map[string]any{"level": sarifLevel(ru.Severity)},
			Properties:           props,
		})
	}
	inv := sarifInvocation{ExecutionSuccessful: r.Summary.NodeErrors == 0}
	if !r.StartedAt.IsZero() {
		inv.StartTimeUTC = r.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z")
		inv.EndTimeUTC = r.FinishedAt.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	// Notifications (a node's errors and rules not evaluated) and results
	// grow with the fleet: they are encoded one at a time where their
	// placeholders sit in the encoded log, as encoding/json would indent
	// them there; the rest is encoded whole.
	noteCount := len(r.UnusedWaivers) + len(r.Warnings)
	for _, n := range r.Nodes {
		if n.Status == NodeError {
			noteCount++
		} else {
			noteCount += len(n.NotEvaluated)
		}
	}
	if noteCount > 0 {
		inv.Notifications = notificationsPlaceholder
	}
	run := sarifRun{
		Tool:        sarifTool{Driver: driver},
		Invocations: []sarifInvocation{inv},
		Results:     resultsPlaceholder,
		Properties:  map[string]any{"esaudit": map[string]any{"summary": r.Summary, "fail_on": r.FailOn, "policies": r.Policies, "policies_digest": r.PoliciesDigest}},
	}
	cat := nonEmpty(r.Category, "esaudit")
	run.AutomationDetails = &sarifAutomation{ID: cat + "/" + r.StartedAt.UTC().Format("20060102T150405Z")}
	log := sarifLog{Schema: SARIFSchema, Version: "2.1.0", Runs: []sarifRun{run}}
	doc, err := json.MarshalIndent(log, "", "  ")
	if err != nil {
		return fmt.Errorf("encode SARIF report: %w", err)
	}
	if noteCount > 0 {
		var before []byte
		before, doc, _ = bytes.Cut(doc, notificationsPlaceholderJSON)
		if _, err := w.Write(before); err != nil {
			return fmt.Errorf("write SARIF report: %w", err)
		}
		// Depth 6: log, runs, run, invocations, invocation, notifications.
		err := streamJSONArray(w, strings.Repeat("  ", 6), func(emit func(any) error) error {
			return r.sarifNotifications(index, func(n sarifNotification) error { return emit(n) })
		})
		if err != nil {
			return fmt.Errorf("write SARIF report: %w", err)
		}
	}
	before, after, ok := bytes.Cut(doc, resultsPlaceholderJSON)
	if !ok {
		return errors.New("encode SARIF report: results placeholder missing")
	}
	if _, err := w.Write(before); err != nil {
		return fmt.Errorf("write SARIF report: %w", err)
	}
	// Depth 4: log, runs, run, results.
	err = streamJSONArray(w, strings.Repeat("  ", 4), func(emit func(any) error) error {
		return r.sarifResults(index, func(res sarifResult) error { return emit(res) })
	})
	if err != nil {
		return fmt.Errorf("write SARIF report: %w", err)
	}
	if _, err := w.Write(append(after, '\n')); err != nil {
		return fmt.Errorf("write SARIF report: %w", err)
	}
	return nil
}

// streamJSONArray writes the array of what each calls emit with, as
// json.MarshalIndent(v, "", "  ") writes an array whose elements sit at
// indent.
func streamJSONArray(w io.Writer, indent string, each func(emit func(any) error) error) error {
	sep := "[\n" + indent
	err := each(func(v any) error {
		b, err := json.MarshalIndent(v, indent, "  ")
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		sep = ",\n" + indent
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	closing := "\n" + indent[:len(indent)-2] + "]"
	if sep[0] == '[' {
		closing = "[]"
	}
	_, err = io.WriteString(w, closing)
	return err
}

// sarifNotifications calls emit with each tool notification: per node its
// error or the rules not evaluated, then unused waivers and warnings.
func (r *Result) sarifNotifications(index map[string]int, emit func(sarifNotification) error) error {
	for _, n := range r.Nodes {
		logical := []sarifLogical{{Name: n.Name, FullyQualifiedName: nodeFQN(n), Kind: "resource"}}
		if n.Status == NodeError {
			if err := emit(sarifNotification{
				Level:     "error",
				Message:   sarifText{Text: fmt.Sprintf("%s: %s: %s", n.Name, n.ErrorKind, n.Error)},
				Locations: []sarifLocation{{LogicalLocations: logical}},
				Descr:     &sarifDescrRef{ID: "esaudit/node-" + nonEmpty(n.ErrorKind, "error")},
			}); err != nil {
				return err
			}
			continue
		}
		for _, ne := range n.NotEvaluated {
			note := sarifNotification{
				Level:      "warning",
				Message:    sarifText{Text: fmt.Sprintf("%s: %s not evaluated: %s", n.Name, ne.RuleID, ne.Reason)},
				Locations:  []sarifLocation{{LogicalLocations: logical}},
				Descr:      &sarifDescrRef{ID: "esaudit/not-evaluated"},
				Properties: map[string]any{"node": n.Name, "rule_id": ne.RuleID, "missing": ne.Missing, "kind": "notApplicable"},
			}
			if i, ok := index[ne.RuleID]; ok {
				note.Rule = &sarifRuleRef{ID: ne.RuleID, Index: i}
			}
			if err := emit(note); err != nil {
				return err
			}
		}
	}
	for _, uw := range r.UnusedWaivers {
		if err := emit(sarifNotification{
			Level:      "note",
			Message:    sarifText{Text: fmt.Sprintf("unused waiver: rule %s, nodes %s (line %d) matched no finding", uw.Rule, uw.Nodes, uw.Line)},
			Descr:      &sarifDescrRef{ID: "esaudit/unused-waiver"},
			Properties: map[string]any{"rule_id": uw.Rule, "nodes": uw.Nodes, "line": uw.Line},
		}); err != nil {
			return err
		}
	}
	for _, w := range r.Warnings {
		if err := emit(sarifNotification{Level: "warning", Message: sarifText{Text: w}, Descr: &sarifDescrRef{ID: "esaudit/warning"}}); err != nil {
			return err
		}
	}
	return nil
}

// The placeholders stand for the streamed arrays in the encoded log.
const (
	resultsPlaceholder       = "\x00esaudit SARIF results\x00"
	notificationsPlaceholder = "\x00esaudit SARIF notifications\x00"
)

var (
	resultsPlaceholderJSON       = mustJSON(resultsPlaceholder)
	notificationsPlaceholderJSON = mustJSON(notificationsPlaceholder)
)

func mustJSON(s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return b
}

var semverRe = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// ArtifactURI is the repository-style location of a finding: a relative,
// percent-encoded URI under nodes/<node>/, so code scanning can show it
// and keep it apart per node. Files keep their path on the node
// (nodes/<node>/etc/elasticsearch/elasticsearch.yml); other resources get
// a path that names them (ports/tcp/9200, services/<unit>, proc/sys/...).
// line is the line in the file when the finding says so, else 0.
func ArtifactURI(n Node, f Finding) (uri string, line int) {
	base := "nodes/" + url.PathEscape(n.Name)
	conf := nonEmpty(n.ConfigDir, "/etc/elasticsearch")
	rel := ""
	if p, l := findingFile(f); p != "" {
		rel, line = p, l
	} else {
		res := f.Resource
		switch {
		case strings.HasPrefix(res, "elasticsearch.yml:") || res == "elasticsearch.yml":
			rel = conf + "/elasticsearch.yml"
		case strings.HasPrefix(res, "keystore:"):
			rel = conf + "/elasticsearch.keystore"
		case strings.HasPrefix(res, "sysctl:"):
			rel = "/proc/sys/" + strings.ReplaceAll(strings.TrimPrefix(res, "sysctl:"), ".", "/")
		case strings.HasPrefix(res, "tcp/") || strings.HasPrefix(res, "udp/"):
			rel = "/ports/" + res
		case strings.HasPrefix(res, "service:"):
			rel = "/services/" + strings.TrimPrefix(res, "service:")
		case strings.HasPrefix(res, "process:"):
			rel = "/processes/" + strings.TrimPrefix(res, "process:")
		case strings.HasPrefix(res, "sg-"):
			id, rest, _ := strings.Cut(res, ":")
			rel = "/security-groups/" + id
			if rest != "" {
				rel += "/" + rest
			}
		case strings.HasPrefix(res, "/"):
			rel = strings.SplitN(res, ",", 2)[0]
		case strings.HasPrefix(res, "_"):
			rel = "/api/" + res
		default:
			rel = "/facts.json"
		}
	}
	var segs []string
	for _, s := range strings.Split(rel, "/") {
		if s == "" || s == "." || s == ".." {
			continue
		}
		segs = append(segs, url.PathEscape(s))
	}
	if len(segs) == 0 {
		segs = []string{"facts.json"}
	}
	return base + "/" + strings.Join(segs, "/"), line
}

// ruleName is a PascalCase identifier from the title, as SARIF viewers show
// rule names as identifiers.
func ruleName(ru Rule) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(ru.Title, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	if b.Len() == 0 {
		return ru.ID
	}
	return b.String()
}

func nodeFQN(n Node) string {
	if n.InstanceID != "" && n.InstanceID != n.Name {
		return n.Name + "/" + n.InstanceID
	}
	return n.Name
}

func nonEmpty(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// sarifResults calls emit with each finding's result, node by node.
func (r *Result) sarifResults(index map[string]int, emit func(sarifResult) error) error {
	for _, n := range r.Nodes {
		if n.Status == NodeError {
			continue
		}
		logical := []sarifLogical{{Name: n.Name, FullyQualifiedName: nodeFQN(n), Kind: "resource"}}
		for _, f := range n.Findings {
			uri, line := ArtifactURI(n, f)
			loc := sarifLocation{
				PhysicalLocation: &sarifPhysical{
					ArtifactLocation: sarifArtifact{URI: uri},
					Region:           &sarifRegion{StartLine: max(line, 1)},
				},
				LogicalLocations: logical,
			}
			res := sarifResult{
				RuleID:              f.RuleID,
				RuleIndex:           index[f.RuleID],
				Level:               sarifLevel(f.Severity),
				Message:             sarifText{Text: fmt.Sprintf("%s: %s", n.Name, f.Message)},
				Locations:           []sarifLocation{loc},
				PartialFingerprints: map[string]string{"esauditFinding/v1": f.ID},
				Properties:          map[string]any{"node": n.Name, "severity": f.Severity},
			}
			if f.Resource != "" {
				res.Properties["resource"] = f.Resource
			}
			if n.InstanceID != "" {
				res.Properties["instance_id"] = n.InstanceID
			}
			if len(f.Details) > 0 {
				res.Properties["details"] = f.Details
			}
			if f.Note != "" {
				res.Properties["note"] = f.Note
			}
			if f.Status == StatusWaived && f.Waiver != nil {
				res.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted", Justification: fmt.Sprintf("%s (expires %s)", f.Waiver.Justification, f.Waiver.Expires)}}
			}
			if err := emit(res); err != nil {
				return err
			}
		}
	}
	return nil
}
