// Package waiver reads esaudit waiver files and applies them to findings.
//
// A waiver file is YAML, a list of entries (or a map with a `waivers` list):
//
//   - rule: ESA-NET-001
//     nodes: "es-data-*"          # glob on node name or instance id, or tag:key=value
//     justification: "behind the VPN until the firewall change CHG-1234 lands"
//     expires: 2026-12-31         # waived through the end of that day, UTC
//
// Justification and expiry are required. A finding a waiver matches is
// reported as waived; after the expiry it is a violation again, with a note.
package waiver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
)

// Waiver is one entry of a waiver file.
type Waiver struct {
	Rule          string `yaml:"rule"`
	Nodes         string `yaml:"nodes"`
	Justification string `yaml:"justification"`
	Expires       string `yaml:"expires"`
	// ExpiresAt is the first instant the waiver no longer applies.
	ExpiresAt time.Time `yaml:"-"`
	// Line is the entry's line in the file, for messages.
	Line int `yaml:"-"`
}

// Set is a parsed waiver file. Apply may be called concurrently.
type Set struct {
	File    string
	Waivers []Waiver

	mu   sync.Mutex
	used map[int]bool
}

// Node is what a selector matches against.
type Node struct {
	Name       string
	InstanceID string
	Tags       map[string]string
}

// Load reads and validates a waiver file.
func Load(file string) (*Set, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read waiver file: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("waiver file %s: %w", file, err)
	}
	s.File = file
	return s, nil
}

// Parse reads a waiver document; every problem names the entry (index,
// line and rule) so the file can be fixed.
func Parse(data []byte) (*Set, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	s := &Set{}
	if len(doc.Content) == 0 {
		return s, nil
	}
	list := doc.Content[0]
	if list.Kind == yaml.MappingNode {
		var found *yaml.Node
		for i := 0; i+1 < len(list.Content); i += 2 {
			if list.Content[i].Value == "waivers" {
				found = list.Content[i+1]
			} else {
				return nil, fmt.Errorf("line %d: unknown key %q: a waiver file is a list of waivers, or a map with one key `waivers`", list.Content[i].Line, list.Content[i].Value)
			}
		}
		if found == nil {
			return s, nil
		}
		list = found
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: expected a list of waivers ({rule, nodes, justification, expires})", list.Line)
	}
	var errs []error
	for i, item := range list.Content {
		var w Waiver
		dec := yaml.NewDecoder(bytes.NewReader(mustYAML(item)))
		dec.KnownFields(true)
		if err := dec.Decode(&w); err != nil {
			errs = append(errs, fmt.Errorf("waiver #%d (line %d): %s", i+1, item.Line, yamlMessage(err)))
			continue
		}
		w.Line = item.Line
		if err := w.validate(); err != nil {
			errs = append(errs, fmt.Errorf("waiver #%d (line %d, rule %q): %w", i+1, item.Line, w.Rule, err))
			continue
		}
		s.Waivers = append(s.Waivers, w)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func mustYAML(n *yaml.Node) []byte {
	b, err := yaml.Marshal(n)
	if err != nil {
		return nil
	}
	return b
}

func (w *Waiver) validate() error {
	var missing []string
	w.Rule = strings.TrimSpace(w.Rule)
	w.Nodes = strings.TrimSpace(w.Nodes)
	if w.Rule == "" {
		missing = append(missing, "rule")
	}
	if strings.TrimSpace(w.Justification) == "" {
		missing = append(missing, "justification")
	}
	if strings.TrimSpace(w.Expires) == "" {
		missing = append(missing, "expires")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: every waiver needs a rule id, a justification and an expiry date (YYYY-MM-DD)", strings.Join(missing, ", "))
	}
	if w.Nodes == "" {
		w.Nodes = "*"
	}
	if strings.HasPrefix(w.Nodes, "tag:") {
		if k, _, ok := strings.Cut(strings.TrimPrefix(w.Nodes, "tag:"), "="); !ok || k == "" {
			return fmt.Errorf("nodes %q: a tag selector is tag:KEY=VALUE (VALUE may be a glob)", w.Nodes)
		}
	} else if _, err := path.Match(w.Nodes, ""); err != nil {
		return fmt.Errorf("nodes %q is not a valid glob: %w", w.Nodes, err)
	}
	exp, err := parseExpiry(w.Expires)
	if err != nil {
		return err
	}
	w.ExpiresAt = exp
	return nil
}

// parseExpiry reads a date (valid through the end of that day, UTC) or an
// RFC 3339 instant.
func parseExpiry(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.AddDate(0, 0, 1), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("expires %q is not a date: write YYYY-MM-DD (valid through that day, UTC) or an RFC 3339 time", s)
}

// Matches reports whether the waiver's selector selects the node.
func (w Waiver) Matches(n Node) bool {
	if sel, ok := strings.CutPrefix(w.Nodes, "tag:"); ok {
		k, v, _ := strings.Cut(sel, "=")
		tv, ok := n.Tags[k]
		if !ok {
			return false
		}
		m, _ := path.Match(v, tv)
		return m
	}
	for _, cand := range []string{n.Name, n.InstanceID} {
		if cand == "" {
			continue
		}
		if m, _ := path.Match(w.Nodes, cand); m {
			return true
		}
	}
	return false
}

// Apply marks the findings of one node that a waiver covers. The first
// matching waiver that is still valid wins; when only expired waivers match,
// the finding stays a violation with a note saying so.
func (s *Set) Apply(n Node, findings []report.Finding, now time.Time) {
	if s == nil {
		return
	}
	for i := range findings {
		f := &findings[i]
		if f.Status == "" {
			f.Status = report.StatusViolation
		}
		var expired *Waiver
		for j := range s.Waivers {
			w := &s.Waivers[j]
			if w.Rule != f.RuleID || !w.Matches(n) {
				continue
			}
			s.markUsed(j)
			if now.Before(w.ExpiresAt) {
				f.Status = report.StatusWaived
				f.Waiver = w.ref(false)
				f.Note = ""
				expired = nil
				break
			}
			if expired == nil {
				expired = w
			}
		}
		if expired != nil {
			f.Status = report.StatusViolation
			f.Waiver = expired.ref(true)
			f.Note = fmt.Sprintf("waiver expired on %s (%s); renew it with a new justification or fix the finding", expired.Expires, expired.Justification)
		}
	}
}

func (w *Waiver) ref(expired bool) *report.Waiver {
	return &report.Waiver{Rule: w.Rule, Nodes: w.Nodes, Justification: w.Justification, Expires: w.Expires, Expired: expired}
}

func (s *Set) markUsed(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used == nil {
		s.used = map[int]bool{}
	}
	s.used[i] = true
}

// Unused lists the waivers that matched no finding in the Apply calls so
// far (an expired waiver that matched counts as used: its note says so).
func (s *Set) Unused() []Waiver {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Waiver
	for i, w := range s.Waivers {
		if !s.used[i] {
			out = append(out, w)
		}
	}
	return out
}

// Fleetwide reports whether the waiver selects every node (no nodes:, or
// "*").
func (w Waiver) Fleetwide() bool { return w.Nodes == "" || w.Nodes == "*" }

// Check validates the waivers against the rule catalogue and the audited
// nodes: problems (an unknown rule id, a selector that matches no node)
// and warnings (fleet-wide waivers, expiries more than maxDays ahead;
// maxDays 0 turns that off).
func (s *Set) Check(knownRule func(string) bool, nodes []Node, now time.Time, maxDays int) (problems, warnings []string) {
	if s == nil {
		return nil, nil
	}
	for _, w := range s.Waivers {
		at := fmt.Sprintf("waiver for %s (line %d)", w.Rule, w.Line)
		if !knownRule(w.Rule) {
			problems = append(problems, fmt.Sprintf("%s: no loaded rule has id %q (see `esaudit policies`); fix the id or remove the waiver", at, w.Rule))
		}
		if !w.Fleetwide() {
			matched := false
			for _, n := range nodes {
				if w.Matches(n) {
					matched = true
					break
				}
			}
			if !matched {
				problems = append(problems, fmt.Sprintf("%s: nodes %q matches none of the %d audited nodes (names, instance ids, tag:KEY=VALUE)", at, w.Nodes, len(nodes)))
			}
		} else {
			warnings = append(warnings, fmt.Sprintf("%s waives the rule on every node (no nodes: selector); name the nodes it is for", at))
		}
		if maxDays > 0 && w.ExpiresAt.After(now.AddDate(0, 0, maxDays+1)) {
			warnings = append(warnings, fmt.Sprintf("%s expires %s, more than %d days ahead (--max-waiver-days): review waivers at least that often", at, w.Expires, maxDays))
		}
	}
	return problems, warnings
}

var (
	yamlFieldRe  = regexp.MustCompile(`field (\S+) not found in type \S+`)
	yamlTypeRe   = regexp.MustCompile(`cannot unmarshal !!(\w+)(?: ` + "`" + `[^` + "`" + `]*` + "`" + `)? into \S+`)
	yamlPrefixRe = regexp.MustCompile(`^yaml: unmarshal errors:\s*`)
)

// yamlMessage rewrites yaml.v3 decode errors without Go type names:
// "unknown field "x" (a waiver has rule, nodes, justification, expires)".
func yamlMessage(err error) string {
	msg := yamlPrefixRe.ReplaceAllString(err.Error(), "")
	msg = yamlFieldRe.ReplaceAllString(msg, `unknown field "$1" (a waiver has rule, nodes, justification, expires)`)
	msg = yamlTypeRe.ReplaceAllStringFunc(msg, func(m string) string {
		kind := yamlTypeRe.FindStringSubmatch(m)[1]
		names := map[string]string{"seq": "a list", "map": "a mapping", "int": "a number", "bool": "a boolean", "str": "a string", "float": "a number"}
		got := names[kind]
		if got == "" {
			got = kind
		}
		return "expected a plain text value, got " + got
	})
	return strings.Join(strings.Fields(msg), " ")
}
