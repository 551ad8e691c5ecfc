package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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
	Results     []sarifResult     `json:"results"`
	Properties  map[string]any    `json:"properties,omitempty"`
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
	Help                 sarifText      `json:"help"`
	DefaultConfiguration map[string]any `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	StartTimeUTC        string              `json:"startTimeUtc,omitempty"`
	EndTimeUTC          string              `json:"endTimeUtc,omitempty"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
	Descr     *sarifDescrRef  `json:"descriptor,omitempty"`
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

// WriteSARIF writes a SARIF 2.1.0 log: one run, the catalogue as rules, one
// result per finding located at the node (logical) and, when the finding
// names a file, at that file on the node (physical). Waived findings carry
// an accepted external suppression; node errors are tool notifications.
func WriteSARIF(w io.Writer, r *Result) error {
	rules := r.rulesWithFindings()
	index := map[string]int{}
	driver := sarifDriver{Name: nonEmpty(r.Tool.Name, "esaudit"), Version: r.Tool.Version, Rules: []sarifRule{}}
	for i, ru := range rules {
		index[ru.ID] = i
		desc := nonEmpty(ru.Description, ru.Title)
		tags := []string{"security", "elasticsearch"}
		if ru.Severity != "" {
			tags = append(tags, ru.Severity)
		}
		props := map[string]any{"tags": tags}
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
	results := []sarifResult{}
	for _, n := range r.Nodes {
		logical := []sarifLogical{{Name: n.Name, FullyQualifiedName: nodeFQN(n), Kind: "resource"}}
		if n.Status == NodeError {
			inv.Notifications = append(inv.Notifications, sarifNotification{
				Level:     "error",
				Message:   sarifText{Text: fmt.Sprintf("%s: %s: %s", n.Name, n.ErrorKind, n.Error)},
				Locations: []sarifLocation{{LogicalLocations: logical}},
				Descr:     &sarifDescrRef{ID: "esaudit/node-" + nonEmpty(n.ErrorKind, "error")},
			})
			continue
		}
		for _, f := range n.Findings {
			loc := sarifLocation{LogicalLocations: logical}
			if p, line := findingFile(f); p != "" {
				loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: "file://" + p}}
				if line > 0 {
					loc.PhysicalLocation.Region = &sarifRegion{StartLine: line}
				}
			}
			sum := sha256.Sum256([]byte(n.Name + "\x00" + f.RuleID + "\x00" + f.Message))
			res := sarifResult{
				RuleID:              f.RuleID,
				RuleIndex:           index[f.RuleID],
				Level:               sarifLevel(f.Severity),
				Message:             sarifText{Text: fmt.Sprintf("%s: %s", n.Name, f.Message)},
				Locations:           []sarifLocation{loc},
				PartialFingerprints: map[string]string{"esauditNodeRule/v1": hex.EncodeToString(sum[:16])},
				Properties:          map[string]any{"node": n.Name, "severity": f.Severity},
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
			results = append(results, res)
		}
	}
	log := sarifLog{
		Schema:  SARIFSchema,
		Version: "2.1.0",
		Runs: []sarifRun{{
			Tool:        sarifTool{Driver: driver},
			Invocations: []sarifInvocation{inv},
			Results:     results,
			Properties:  map[string]any{"esaudit": map[string]any{"summary": r.Summary, "fail_on": r.FailOn}},
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("encode SARIF report: %w", err)
	}
	return nil
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
