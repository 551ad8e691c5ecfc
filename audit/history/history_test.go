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
	if prev, _, err := Latest(dir, ""); err != nil || prev != nil {
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
	prev, file, err := Latest(dir, "")
	if err != nil || prev == nil || !prev.StartedAt.Equal(t0) {
		t.Fatalf("Latest = %v %s %v", prev, file, err)
	}

	// a: R1 fixed, R2 still failing, R4 new. b unreachable now: not "fixed".
	// c: R3 waived now: "waived", not "fixed".
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
	check("fixed", d.Fixed, "a/R1")
	check("waived", d.Waived, "c/R3")
	check("still failing", d.StillFailing, "a/R2")

	p, err := Save(dir, second)
	if err != nil {
		t.Fatal(err)
	}
	latest, lf, err := Latest(dir, "")
	if err != nil || lf != p || !latest.StartedAt.Equal(second.StartedAt) {
		t.Errorf("Latest after second save = %s, %v (want %s)", lf, err, p)
	}
}

func withResource(n report.Node, rule, res string, status string) report.Node {
	n.Findings = append(n.Findings, report.Finding{RuleID: rule, Severity: "medium", Status: status, Details: map[string]any{"resource": res}})
	return n
}

// TestCompareIdentity: findings are compared by node + rule + resource:
// a second stray listener under an already failing rule is new; a waiver
// that expires makes a finding "unwaived", not "new"; a node that is gone
// is "vanished", its findings not "fixed"; other clusters' runs are not
// "the previous run".
func TestCompareIdentity(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	a1 := withResource(node("a"), "ES-NET-001", "tcp/8080", report.StatusViolation)
	a1 = withResource(a1, "ES-NET-005", "elasticsearch.yml:http.cors.allow-origin", report.StatusWaived)
	prev := run(t0, a1, node("gone", "R1"))
	a2 := withResource(node("a"), "ES-NET-001", "tcp/8080", report.StatusViolation)
	a2 = withResource(a2, "ES-NET-001", "tcp/8081", report.StatusViolation)
	a2 = withResource(a2, "ES-NET-005", "elasticsearch.yml:http.cors.allow-origin", report.StatusViolation)
	cur := run(t0.Add(time.Hour), a2, node("fresh"))
	d := Compare(prev, cur, "prev.json")
	if len(d.New) != 1 || d.New[0].Resource != "tcp/8081" {
		t.Errorf("new = %+v, want the second listener", d.New)
	}
	if len(d.Unwaived) != 1 || d.Unwaived[0].RuleID != "ES-NET-005" {
		t.Errorf("unwaived = %+v", d.Unwaived)
	}
	if len(d.StillFailing) != 1 || len(d.Fixed) != 0 {
		t.Errorf("still failing %+v, fixed %+v", d.StillFailing, d.Fixed)
	}
	if len(d.VanishedNodes) != 1 || d.VanishedNodes[0] != "gone" || len(d.NewNodes) != 1 || d.NewNodes[0] != "fresh" {
		t.Errorf("vanished %v, new nodes %v", d.VanishedNodes, d.NewNodes)
	}

	dir := t.TempDir()
	prev.Category = "aardvark"
	other := run(t0.Add(30*time.Minute), node("x"))
	other.Category = "badger"
	for _, r := range []*report.Result{prev, other} {
		if _, err := Save(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := Latest(dir, "aardvark")
	if err != nil || got == nil || got.Category != "aardvark" {
		t.Errorf("Latest(aardvark) = %+v, %v: another cluster's run must not be the previous one", got, err)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		if _, err := Save(dir, run(t0.Add(time.Duration(i)*time.Hour), node("a"))); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := Prune(dir, 2)
	if err != nil || len(removed) != 3 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	left, _ := runFiles(dir)
	if len(left) != 2 || left[1] != "esaudit-20261124T070000.000Z.json" {
		t.Errorf("left %v, want the two newest", left)
	}
}
