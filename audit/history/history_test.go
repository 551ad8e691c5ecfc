package history

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
)

func run(at time.Time, nodes ...report.Node) *report.Result {
	r := &report.Result{SchemaVersion: report.SchemaVersion, StartedAt: at, FinishedAt: at, FailOn: "high", Nodes: nodes}
	r.Summarize()
	return r
}

func node(name string, rules ...string) report.Node {
	n := report.Node{Name: name, Status: report.NodeOK}
	for _, r := range rules {
		n.Findings = append(n.Findings, report.Finding{RuleID: r, Severity: "high", Status: report.StatusViolation})
	}
	return n
}

func TestSaveLatestCompare(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hist")
	if prev, _, err := Latest(dir); err != nil || prev != nil {
		t.Fatalf("empty history: %v, %v", prev, err)
	}
	t0 := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	first := run(t0, node("a", "R1", "R2"), node("b", "R1"), node("c", "R3"))
	if _, err := Save(dir, first); err != nil {
		t.Fatal(err)
	}
	// A newer, damaged file must be skipped, not break the audit.
	if err := os.WriteFile(filepath.Join(dir, "esaudit-20261124T120000.000Z.json"), []byte("{junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	prev, file, err := Latest(dir)
	if err != nil || prev == nil || !prev.StartedAt.Equal(t0) {
		t.Fatalf("Latest = %v %s %v", prev, file, err)
	}

	// a: R1 fixed, R2 still failing, R4 new. b unreachable now: not "fixed".
	// c: R3 waived now: counts as fixed (no longer a violation).
	waivedC := node("c", "R3")
	waivedC.Findings[0].Status = report.StatusWaived
	unreach := report.Node{Name: "b", Status: report.NodeError, ErrorKind: "unreachable"}
	second := run(t0.Add(24*time.Hour), node("a", "R2", "R4"), unreach, waivedC, node("d", "R1"))
	d := Compare(prev, second, file)
	check := func(what string, got []report.DiffEntry, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s = %+v, want %v", what, got, want)
			return
		}
		for i, e := range got {
			if e.Node+"/"+e.RuleID != want[i] {
				t.Errorf("%s[%d] = %s/%s, want %s", what, i, e.Node, e.RuleID, want[i])
			}
		}
	}
	check("new", d.New, "a/R4", "d/R1")
	check("fixed", d.Fixed, "a/R1", "c/R3")
	check("still failing", d.StillFailing, "a/R2")

	p, err := Save(dir, second)
	if err != nil {
		t.Fatal(err)
	}
	latest, lf, err := Latest(dir)
	if err != nil || lf != p || !latest.StartedAt.Equal(second.StartedAt) {
		t.Errorf("Latest after second save = %s, %v (want %s)", lf, err, p)
	}
}
