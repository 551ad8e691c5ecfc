package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes JUnit XML: a test suite per node and a test case per
// catalogue rule. A violated rule is a failure, a waived one skipped. A node
// that could not be audited has one test case, "collect facts", in error:
// none of its rules ran, so none passed or failed.
func WriteJUnit(w io.Writer, r *Result) error {
	rules := r.rulesWithFindings()
	out := junitSuites{Name: nonEmpty(r.Tool.Name, "esaudit"), Time: seconds(r.FinishedAt.Sub(r.StartedAt).Milliseconds())}
	for _, n := range r.Nodes {
		s := junitSuite{Name: n.Name, Hostname: n.Address, Time: seconds(n.DurationMS)}
		if !r.StartedAt.IsZero() {
			s.Timestamp = r.StartedAt.UTC().Format("2006-01-02T15:04:05")
		}
		s.Properties = append(s.Properties, junitProperty{"transport", n.Transport})
		if n.InstanceID != "" {
			s.Properties = append(s.Properties, junitProperty{"instance_id", n.InstanceID})
		}
		for _, k := range sortedTagKeys(n.Tags) {
			s.Properties = append(s.Properties, junitProperty{"tag:" + k, n.Tags[k]})
		}
		class := "esaudit." + n.Name
		if n.Status == NodeError {
			s.Cases = append(s.Cases, junitCase{
				Name: "collect facts", Classname: class, Time: seconds(n.DurationMS),
				Error: &junitMessage{Message: n.ErrorKind + ": " + oneLine(n.Error, 200), Type: n.ErrorKind, Text: n.Error},
			})
			s.Tests, s.Errors = 1, 1
		} else {
			byRule := map[string][]Finding{}
			for _, f := range n.Findings {
				byRule[f.RuleID] = append(byRule[f.RuleID], f)
			}
			for _, ru := range rules {
				c := junitCase{Name: ru.ID + ": " + nonEmpty(ru.Title, ru.ID), Classname: class, Time: "0"}
				fs := byRule[ru.ID]
				var violations, waived []string
				for _, f := range fs {
					line := fmt.Sprintf("[%s] %s", f.Severity, f.Message)
					if f.Note != "" {
						line += " (" + f.Note + ")"
					}
					if f.Status == StatusWaived {
						just := ""
						if f.Waiver != nil {
							just = fmt.Sprintf(" (waived until %s: %s)", f.Waiver.Expires, f.Waiver.Justification)
						}
						waived = append(waived, line+just)
					} else {
						violations = append(violations, line)
					}
				}
				switch {
				case len(violations) > 0:
					text := strings.Join(violations, "\n")
					if ru.Remediation != "" {
						text += "\n\nRemediation: " + ru.Remediation
					}
					c.Failure = &junitMessage{Message: oneLine(violations[0], 200), Type: fs[0].Severity, Text: text}
					s.Failures++
				case len(waived) > 0:
					c.Skipped = &junitMessage{Message: oneLine(waived[0], 200), Text: strings.Join(waived, "\n")}
					s.Skipped++
				}
				s.Cases = append(s.Cases, c)
				s.Tests++
			}
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("encode JUnit report: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func seconds(ms int64) string {
	if ms < 0 {
		ms = 0
	}
	return fmt.Sprintf("%.3f", float64(ms)/1000)
}
