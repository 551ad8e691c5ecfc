package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
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
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes JUnit XML: a test suite per node and a test case per
// finding, plus one passing case per rule that found nothing. Only
// violations at or above fail-on are failures; lower ones pass with the
// finding in system-out, so the CI widget agrees with the exit code.
// Waived findings and rules that could not be evaluated are skipped, with
// the reason. A node that could not be audited has one test case, "collect
// facts", in error. Class names are "esaudit.<node>" with the node's dots
// replaced, so Jenkins does not split a node name into packages.
func WriteJUnit(w io.Writer, r *Result) error {
	rules := r.rulesWithFindings()
	failRank := SeverityRank(r.FailOn)
	// Streamed a suite at a time, so memory does not grow with the fleet:
	// a first pass counts for the root element's totals, a second writes.
	out := junitSuites{Name: nonEmpty(r.Tool.Name, "esaudit"), Time: seconds(r.FinishedAt.Sub(r.StartedAt).Milliseconds())}
	add := func(s junitSuite) {
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
	}
	for _, n := range r.Nodes {
		add(r.junitNodeSuite(n, rules, failRank))
	}
	waivers, hasWaivers := r.junitWaiverSuite()
	if hasWaivers {
		add(waivers)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	root := xml.StartElement{Name: xml.Name{Local: "testsuites"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "name"}, Value: out.Name},
		{Name: xml.Name{Local: "tests"}, Value: strconv.Itoa(out.Tests)},
		{Name: xml.Name{Local: "failures"}, Value: strconv.Itoa(out.Failures)},
		{Name: xml.Name{Local: "errors"}, Value: strconv.Itoa(out.Errors)},
		{Name: xml.Name{Local: "skipped"}, Value: strconv.Itoa(out.Skipped)},
		{Name: xml.Name{Local: "time"}, Value: out.Time},
	}}
	suite := xml.StartElement{Name: xml.Name{Local: "testsuite"}}
	err := enc.EncodeToken(root)
	for i := 0; err == nil && i < len(r.Nodes); i++ {
		err = enc.EncodeElement(r.junitNodeSuite(r.Nodes[i], rules, failRank), suite)
	}
	if err == nil && hasWaivers {
		err = enc.EncodeElement(waivers, suite)
	}
	if err == nil {
		err = enc.EncodeToken(root.End())
	}
	if err == nil {
		err = enc.Flush()
	}
	if err != nil {
		return fmt.Errorf("encode JUnit report: %w", err)
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// junitNodeSuite is one node's test suite.
func (r *Result) junitNodeSuite(n Node, rules []Rule, failRank int) junitSuite {
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
	class := "esaudit." + junitClass(n.Name)
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
		notEval := map[string]NotEvaluated{}
		for _, ne := range n.NotEvaluated {
			notEval[ne.RuleID] = ne
		}
		for _, ru := range rules {
			title := ru.ID + ": " + nonEmpty(ru.Title, ru.ID)
			if ne, ok := notEval[ru.ID]; ok && len(byRule[ru.ID]) == 0 {
				s.Cases = append(s.Cases, junitCase{Name: title, Classname: class, Time: "0",
					Skipped: &junitMessage{Message: "not evaluated: " + oneLine(ne.Reason, 200), Text: "missing: " + strings.Join(ne.Missing, ", ") + "\n" + ne.Reason}})
				s.Skipped++
				s.Tests++
				continue
			}
			fs := byRule[ru.ID]
			if len(fs) == 0 {
				s.Cases = append(s.Cases, junitCase{Name: title, Classname: class, Time: "0"})
				s.Tests++
				continue
			}
			for _, f := range fs {
				c := junitCase{Name: title, Classname: class, Time: "0"}
				if f.Resource != "" {
					c.Name += " [" + f.Resource + "]"
				}
				line := fmt.Sprintf("[%s] %s", f.Severity, f.Message)
				if f.Note != "" {
					line += " (" + f.Note + ")"
				}
				switch {
				case f.Status == StatusWaived:
					just := ""
					if f.Waiver != nil {
						just = fmt.Sprintf(" (waived until %s: %s)", f.Waiver.Expires, f.Waiver.Justification)
					}
					c.Skipped = &junitMessage{Message: "waived: " + oneLine(line+just, 200), Text: line + just}
					s.Skipped++
				case SeverityRank(f.Severity) >= failRank:
					text := line
					if ru.Remediation != "" {
						text += "\n\nRemediation: " + ru.Remediation
					}
					c.Failure = &junitMessage{Message: oneLine(line, 200), Type: f.Severity, Text: text}
					s.Failures++
				default:
					c.SystemOut = fmt.Sprintf("below --fail-on %s, not a failure: %s", r.FailOn, line)
				}
				s.Cases = append(s.Cases, c)
				s.Tests++
			}
		}
	}
	return s
}

// junitWaiverSuite lists the unused waivers; false when there are none.
func (r *Result) junitWaiverSuite() (junitSuite, bool) {
	if len(r.UnusedWaivers) == 0 {
		return junitSuite{}, false
	}
	// Unused waivers are reported, not failed: a suite of passing
	// cases whose output names each one.
	s := junitSuite{Name: "esaudit waivers"}
	for _, uw := range r.UnusedWaivers {
		s.Cases = append(s.Cases, junitCase{Name: fmt.Sprintf("unused waiver %s for %s (line %d)", uw.Rule, uw.Nodes, uw.Line), Classname: "esaudit.waivers", Time: "0",
			SystemOut: "this waiver matched no finding: remove it, or check its rule id and node selector"})
		s.Tests++
	}
	return s, true
}

// junitClass keeps a node name one Jenkins class: dots (which Jenkins
// reads as package separators) become underscores.
func junitClass(name string) string {
	return strings.ReplaceAll(name, ".", "_")
}

func seconds(ms int64) string {
	if ms < 0 {
		ms = 0
	}
	return fmt.Sprintf("%.3f", float64(ms)/1000)
}
