package waiver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
)

const valid = `
- rule: ESA-CORS-001
  nodes: "es-data-*"
  justification: ElasticHQ needs CORS until CHG-42 lands
  expires: 2026-12-31
- rule: ESA-SYS-001
  nodes: "tag:es_cluster=aardvark-*"
  justification: kernel upgrade pending
  expires: 2026-10-01
- rule: ESA-NET-001
  nodes: i-0123456789abcdef0
  justification: isolated lab node
  expires: "2027-01-01T00:00:00Z"
`

func findings() []report.Finding {
	return []report.Finding{
		{RuleID: "ESA-CORS-001", Severity: "medium"},
		{RuleID: "ESA-SYS-001", Severity: "low"},
		{RuleID: "ESA-NET-001", Severity: "critical"},
		{RuleID: "ESA-HEAP-001", Severity: "high"},
	}
}

func TestApplyValidAndExpired(t *testing.T) {
	s, err := Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Waivers) != 3 {
		t.Fatalf("parsed %d waivers", len(s.Waivers))
	}
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	fs := findings()
	s.Apply(Node{Name: "es-data-1", InstanceID: "i-0123456789abcdef0", Tags: map[string]string{"es_cluster": "aardvark-cluster"}}, fs, now)
	want := []string{report.StatusWaived, report.StatusViolation, report.StatusWaived, report.StatusViolation}
	for i, f := range fs {
		if f.Status != want[i] {
			t.Errorf("%s: status %s, want %s", f.RuleID, f.Status, want[i])
		}
	}
	if fs[0].Waiver == nil || fs[0].Waiver.Justification == "" || fs[0].Waiver.Expired {
		t.Errorf("waived finding must carry its waiver: %+v", fs[0].Waiver)
	}
	if fs[1].Waiver == nil || !fs[1].Waiver.Expired || !strings.Contains(fs[1].Note, "expired on 2026-10-01") {
		t.Errorf("expired waiver must leave a violation with a note: %+v", fs[1])
	}
	if fs[3].Waiver != nil {
		t.Errorf("unwaived finding got a waiver")
	}

	// A date waiver is valid through the end of its day, UTC.
	fs = findings()
	s.Apply(Node{Name: "es-data-2"}, fs, time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC))
	if fs[0].Status != report.StatusWaived {
		t.Errorf("waiver must hold on its expiry day")
	}
	fs = findings()
	s.Apply(Node{Name: "es-data-2"}, fs, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	if fs[0].Status != report.StatusViolation {
		t.Errorf("waiver must lapse the day after")
	}
	// Selectors: another name, another tag.
	fs = findings()
	s.Apply(Node{Name: "es-master-1", Tags: map[string]string{"es_cluster": "other"}}, fs, now)
	for _, f := range fs {
		if f.Status != report.StatusViolation || f.Waiver != nil {
			t.Errorf("%s must not be waived on a non-matching node: %+v", f.RuleID, f)
		}
	}
}

func TestParseErrorsNameTheEntry(t *testing.T) {
	cases := map[string]struct{ doc, want string }{
		"missing justification": {"- rule: ESA-CORS-001\n  nodes: '*'\n  expires: 2026-12-31\n", `waiver #1 (line 1, rule "ESA-CORS-001"): missing justification`},
		"missing expiry":        {"- rule: A\n  justification: x\n  expires: 2026-12-31\n- rule: B\n  justification: y\n", `waiver #2 (line 4, rule "B"): missing expires`},
		"bad date":              {"- rule: A\n  justification: x\n  expires: next week\n", `expires "next week" is not a date`},
		"unknown key":           {"- rule: A\n  justification: x\n  expires: 2026-12-31\n  reason: y\n", `unknown field "reason" (a waiver has rule, nodes, justification, expires)`},
		"bad tag selector":      {"- rule: A\n  nodes: 'tag:novalue'\n  justification: x\n  expires: 2026-12-31\n", "tag:KEY=VALUE"},
		"not a list":            {"rule: A\n", "unknown key \"rule\""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestLoadWrappedForm(t *testing.T) {
	p := filepath.Join(t.TempDir(), "waivers.yaml")
	if err := os.WriteFile(p, []byte("waivers:\n  - rule: A\n    justification: x\n    expires: 2026-12-31\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(p)
	if err != nil || len(s.Waivers) != 1 || s.Waivers[0].Nodes != "*" {
		t.Fatalf("Load = %+v, %v", s, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml")); err == nil {
		t.Error("a missing file must be an error")
	}
}
