package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/audit/internal/ghsarif"
	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/internal/docschema"
)

// seedFacts is a node as the original bootstrap script leaves it: CORS open
// to every origin, network.host 0.0.0.0, -Xms twice and no -Xmx.
func seedFacts(host string) *facts.Facts {
	return &facts.Facts{
		SchemaVersion: facts.SchemaVersion,
		CollectedAt:   time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC),
		Root:          "/",
		Live:          true,
		Host:          facts.Host{Hostname: host, InstanceID: "i-0" + host, MemTotalBytes: 8 << 30},
		Listeners:     []facts.Listener{},
		Firewall:      facts.Firewall{Backend: "none", DefaultInputPolicy: "ACCEPT", Chains: []facts.Chain{}, Rules: []facts.FirewallRule{}},
		Elasticsearch: facts.Elasticsearch{
			ConfigDir: "/etc/elasticsearch",
			YML: map[string]any{
				"cluster.name": "aardvark-cluster", "network.host": "0.0.0.0",
				"http.cors.enabled": true, "http.cors.allow-origin": "*",
			},
			YMLErrors: []string{},
			Version:   "6.4.2",
			Heap: facts.Heap{
				JDKMajor: 8, Files: []string{"/etc/elasticsearch/jvm.options"}, XmsBytes: 4 << 30,
				Sources: []facts.HeapSetting{
					{Kind: "xms", Option: "-Xms4g", Bytes: 4 << 30, Source: "/etc/elasticsearch/jvm.options:3"},
					{Kind: "xms", Option: "-Xms4g", Bytes: 4 << 30, Source: "/etc/elasticsearch/jvm.options:4"},
				},
				Duplicates: []facts.HeapDuplicate{{Kind: "xms", Count: 2, Sources: []string{"/etc/elasticsearch/jvm.options:3", "/etc/elasticsearch/jvm.options:4"}}},
				Missing:    []string{"xmx"},
			},
		},
		Sysctl:     map[string]any{"vm.max_map_count": 65530},
		SysctlConf: map[string]facts.SysctlSetting{},
		Services:   []facts.Service{},
		Paths:      []facts.PathInfo{},
		Manifest:   facts.ManifestFacts{Path: "/etc/esnode/manifest.json", Drift: []facts.Drift{}},
		Users:      []facts.User{},
		Errors:     []facts.FactError{},
	}
}

func writeFacts(t *testing.T, dir, name string, f *facts.Facts) string {
	t.Helper()
	b, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunRealPoliciesWaiversHistory runs the embedded policies over facts
// files: the seed node is flagged, a waiver turns one finding into waived,
// a junk file is a node error, and the second stored run reports fixes.
func TestRunRealPoliciesWaiversHistory(t *testing.T) {
	dir := t.TempDir()
	seed := writeFacts(t, dir, "seed", seedFacts("seed"))
	junk := filepath.Join(dir, "junk.json")
	os.WriteFile(junk, []byte("esnode: command not found\n"), 0o644)
	hist := filepath.Join(dir, "history")
	out := filepath.Join(dir, "out")
	clock := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	var stdout bytes.Buffer
	ctx := context.Background()

	res, err := Run(ctx, Options{FactsFiles: []string{seed, junk}, HistoryDir: hist, Formats: []string{"table,json,sarif,junit,html"}, OutDir: out, Stdout: &stdout, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	if len(r.Rules) == 0 {
		t.Fatal("empty catalogue from the embedded policies")
	}
	byName := map[string]report.Node{}
	for _, n := range r.Nodes {
		byName[n.Name] = n
	}
	if n := byName["junk"]; n.Status != report.NodeError || n.ErrorKind != "invalid-output" {
		t.Errorf("junk facts file: %+v", n)
	}
	seedNode := byName["seed"]
	if seedNode.Status != report.NodeOK || len(seedNode.Findings) == 0 {
		t.Fatalf("seed node must have findings: %+v", seedNode)
	}
	// Match rules by title: ids belong to the policies.
	pkgs := map[string]string{}
	for _, ru := range r.Rules {
		pkgs[ru.ID] = strings.ToLower(ru.Title)
	}
	var corsID string
	var heap bool
	for _, f := range seedNode.Findings {
		if _, ok := pkgs[f.RuleID]; !ok {
			t.Errorf("finding %s is not in the catalogue", f.RuleID)
		}
		if strings.Contains(pkgs[f.RuleID], "cors") {
			corsID = f.RuleID
		}
		if strings.Contains(pkgs[f.RuleID], "heap") {
			heap = true
		}
	}
	if corsID == "" || !heap {
		t.Fatalf("seed findings lack CORS or heap rules: %+v", seedNode.Findings)
	}
	if res.ExitCode != ExitTool {
		t.Errorf("exit code %d, want %d (the junk node could not be audited)", res.ExitCode, ExitTool)
	}
	// The real policies' SARIF: schema-valid and accepted by GitHub (every
	// result located in the repository, issue 15).
	sarif, err := os.ReadFile(filepath.Join(out, "report.sarif"))
	if err != nil {
		t.Fatal(err)
	}
	if err := docschema.ValidateJSONSchema(sarif, "report/testdata/sarif-schema-2.1.0-rtm.5.json"); err != nil {
		t.Error(err)
	}
	if errs := ghsarif.Check(sarif); len(errs) > 0 {
		t.Errorf("GitHub would reject the SARIF of the seed node:\n%s", strings.Join(errs, "\n"))
	}
	if !strings.Contains(string(sarif), `"helpUri": "https://github.com/esbake/packer-plugin-elasticsearch/blob/main/docs/policies.md#es-net-005"`) {
		t.Error("built-in rules must link to docs/policies.md anchors")
	}
	if len(res.Files) != 5 || !strings.Contains(stdout.String(), corsID) {
		t.Errorf("files %v; table on stdout mentions %s: %v", res.Files, corsID, strings.Contains(stdout.String(), corsID))
	}
	if res.HistoryFile == "" || r.Diff != nil {
		t.Errorf("first run: history %q, diff %+v", res.HistoryFile, r.Diff)
	}

	// Second run: CORS waived, heap fixed (Xmx set), junk node gone.
	fixed := seedFacts("seed")
	fixed.Elasticsearch.Heap = facts.Heap{JDKMajor: 8, Files: []string{"/etc/elasticsearch/jvm.options"}, XmsBytes: 4 << 30, XmxBytes: 4 << 30,
		Sources:    []facts.HeapSetting{{Kind: "xms", Option: "-Xms4g", Bytes: 4 << 30, Source: "/etc/elasticsearch/jvm.options:3"}, {Kind: "xmx", Option: "-Xmx4g", Bytes: 4 << 30, Source: "/etc/elasticsearch/jvm.options:4"}},
		Duplicates: []facts.HeapDuplicate{}, Missing: []string{}}
	seed = writeFacts(t, dir, "seed", fixed)
	wf := filepath.Join(dir, "waivers.yaml")
	os.WriteFile(wf, []byte(fmt.Sprintf("- rule: %s\n  nodes: 'se*'\n  justification: HQ needs it until CHG-42\n  expires: 2026-12-31\n", corsID)), 0o644)
	clock = clock.Add(24 * time.Hour)
	res, err = Run(ctx, Options{FactsFiles: []string{seed}, HistoryDir: hist, WaiversFile: wf, Now: now, FailOn: "critical", AllowNodeErrors: true})
	if err != nil {
		t.Fatal(err)
	}
	r = res.Report
	var waived bool
	for _, f := range r.Nodes[0].Findings {
		if f.RuleID == corsID && f.Status == report.StatusWaived && f.Waiver != nil {
			waived = true
		}
	}
	if !waived || r.Summary.Waived == 0 {
		t.Errorf("CORS finding not waived: %+v", r.Nodes[0].Findings)
	}
	if r.Diff == nil || len(r.Diff.Fixed) == 0 {
		t.Fatalf("second run must report fixes: %+v", r.Diff)
	}
	var heapFixed, corsWaived bool
	for _, e := range r.Diff.Fixed {
		heapFixed = heapFixed || strings.Contains(pkgs[e.RuleID], "heap")
	}
	for _, e := range r.Diff.Waived {
		corsWaived = corsWaived || e.RuleID == corsID
	}
	if !heapFixed || !corsWaived {
		t.Errorf("fixed = %+v, waived = %+v (want the heap rule fixed and CORS waived, not fixed)", r.Diff.Fixed, r.Diff.Waived)
	}
	if len(r.Diff.VanishedNodes) != 1 || r.Diff.VanishedNodes[0] != "junk" {
		t.Errorf("the junk node is gone: vanished = %v", r.Diff.VanishedNodes)
	}

	// An expired waiver turns the finding back into a violation.
	clock = time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	res, err = Run(ctx, Options{FactsFiles: []string{seed}, WaiversFile: wf, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Report.Nodes[0].Findings {
		if f.RuleID == corsID && (f.Status != report.StatusViolation || !strings.Contains(f.Note, "expired")) {
			t.Errorf("expired waiver: %+v", f)
		}
	}
}

func TestRunErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	seed := writeFacts(t, dir, "seed", seedFacts("seed"))
	var ue *UsageError
	_, err := Run(ctx, Options{})
	if !errors.As(err, &ue) {
		t.Errorf("no targets: %v, want a usage error", err)
	}
	_, err = Run(ctx, Options{FactsFiles: []string{seed}, FailOn: "severe"})
	if !errors.As(err, &ue) {
		t.Errorf("bad --fail-on: %v", err)
	}
	bad := filepath.Join(dir, "w.yaml")
	os.WriteFile(bad, []byte("- rule: X\n  expires: 2026-12-31\n"), 0o644)
	_, err = Run(ctx, Options{FactsFiles: []string{seed}, WaiversFile: bad})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "justification") {
		t.Errorf("waiver without justification: %v", err)
	}
	// Broken policies: a tool error, not a usage error.
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "x.rego"), []byte("package esbake.rules.x\n\ndeny contains x if {"), 0o644)
	_, err = Run(ctx, Options{FactsFiles: []string{seed}, PoliciesDir: pol})
	if err == nil || errors.As(err, &ue) {
		t.Errorf("broken policies: %v, want a tool error", err)
	}
	// Every node in error: exit 3.
	junk := filepath.Join(dir, "junk.json")
	os.WriteFile(junk, []byte("{}"), 0o644)
	res, err := Run(ctx, Options{FactsFiles: []string{junk}, Engine: &fakeEngine{}})
	if err != nil || res.ExitCode != ExitTool {
		t.Errorf("all nodes failed: exit %v, %v", res, err)
	}
}

func TestExitCode(t *testing.T) {
	mk := func(failOn string, allow bool, nodes ...report.Node) int {
		r := &report.Result{FailOn: failOn, AllowNodeErrors: allow, Nodes: nodes}
		r.Summarize()
		return ExitCode(r)
	}
	ok := report.Node{Name: "a", Status: report.NodeOK}
	med := report.Node{Name: "b", Status: report.NodeOK, Findings: []report.Finding{{RuleID: "R", Severity: "medium", Status: report.StatusViolation}}}
	waived := report.Node{Name: "c", Status: report.NodeOK, Findings: []report.Finding{{RuleID: "R", Severity: "critical", Status: report.StatusWaived}}}
	bad := report.Node{Name: "d", Status: report.NodeError}
	for _, c := range []struct {
		name string
		got  int
		want int
	}{
		{"clean", mk("high", false, ok), 0},
		{"medium below high", mk("high", false, ok, med), 0},
		{"medium at medium", mk("medium", false, ok, med), 1},
		{"waived critical", mk("low", false, waived), 0},
		{"node error", mk("high", false, ok, bad), 3},
		{"node error and violations", mk("medium", false, med, bad), 3},
		{"node error allowed", mk("high", true, ok, bad), 0},
		{"node error allowed, violations", mk("medium", true, med, bad), 1},
		{"fd exhaustion even when allowed", mk("high", true, ok, report.Node{Name: "e", Status: report.NodeError, ErrorKind: KindLocalResources}), 3},
		{"all nodes failed", mk("high", true, bad), 3},
	} {
		if c.got != c.want {
			t.Errorf("%s: exit %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestNotEvaluated: a rule whose facts are missing is reported as not
// evaluated, naming the fact, in every format, instead of passing.
func TestNotEvaluated(t *testing.T) {
	dir := t.TempDir()
	f := seedFacts("blind")
	f.Errors = []facts.FactError{{Fact: "firewall", Error: "iptables-save: permission denied"}}
	p := writeFacts(t, dir, "blind", f)
	out := filepath.Join(dir, "out")
	res, err := Run(context.Background(), Options{FactsFiles: []string{p}, Formats: []string{"table,json,sarif,junit,html"}, OutDir: out, FailOn: "critical"})
	if err != nil {
		t.Fatal(err)
	}
	n := res.Report.Nodes[0]
	got := map[string]report.NotEvaluated{}
	for _, ne := range n.NotEvaluated {
		got[ne.RuleID] = ne
	}
	if ne := got["ES-NET-002"]; len(ne.Missing) != 1 || ne.Missing[0] != "firewall" || !strings.Contains(ne.Reason, "permission denied") {
		t.Errorf("firewall rule: %+v", ne)
	}
	if ne := got["ES-NET-003"]; !strings.Contains(ne.Reason, "security groups") {
		t.Errorf("security-group rule without groups: %+v", ne)
	}
	if ne := got["ES-CLU-003"]; !strings.Contains(ne.Reason, "API") {
		t.Errorf("snapshot rule without probes: %+v", ne)
	}
	for _, id := range []string{"ES-ASG-001", "ES-ASG-002"} {
		if ne := got[id]; !strings.Contains(ne.Reason, "autoscaling:DescribeLifecycleHooks") {
			t.Errorf("scale-in rule %s without Auto Scaling data: %+v", id, ne)
		}
	}
	if _, ok := got["ES-NET-005"]; ok {
		t.Error("CORS rule has its facts and fired: must not be 'not evaluated'")
	}
	if res.Report.Summary.NotEvaluated != len(n.NotEvaluated) {
		t.Errorf("summary counts %d", res.Report.Summary.NotEvaluated)
	}
	for file, want := range map[string]string{
		"report.txt":   "not evaluated",
		"report.json":  `"not_evaluated": [`,
		"report.sarif": `"id": "esaudit/not-evaluated"`,
		"report.xml":   `<skipped message="not evaluated: fact firewall could not be collected: iptables-save: permission denied">`,
		"report.html":  `class="c noteval"`,
	} {
		b, err := os.ReadFile(filepath.Join(out, file))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q (%v)", file, want, err)
		}
	}
}
