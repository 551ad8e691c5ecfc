package eval

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return e
}

func ruleIDs(fs []Finding) []string {
	var ids []string
	for _, f := range fs {
		if !slices.Contains(ids, f.RuleID) {
			ids = append(ids, f.RuleID)
		}
	}
	sort.Strings(ids)
	return ids
}

func TestSeedNodeFindings(t *testing.T) {
	e := newEngine(t, Options{})
	fs, err := e.Evaluate(context.Background(), seedNode())
	if err != nil {
		t.Fatal(err)
	}
	if got := ruleIDs(fs); !reflect.DeepEqual(got, seedIDs) {
		for _, f := range fs {
			t.Logf("%s %s: %s", f.Severity, f.RuleID, f.Message)
		}
		t.Fatalf("seed node rule ids:\n got  %v\n want %v", got, seedIDs)
	}
	// Every finding carries its rule's metadata and a message.
	for _, f := range fs {
		r, ok := e.Rule(f.RuleID)
		if !ok || f.Title != r.Title || f.Severity != r.Severity || f.Remediation != r.Remediation || f.Message == "" {
			t.Errorf("finding %+v does not carry rule %+v", f, r)
		}
	}
	// Most severe first.
	if fs[0].Severity != "critical" || fs[0].RuleID != "ES-NET-003" {
		t.Errorf("first finding is %s %s; want the critical ES-NET-003", fs[0].Severity, fs[0].RuleID)
	}
	for i := 1; i < len(fs); i++ {
		if SeverityRank(fs[i].Severity) > SeverityRank(fs[i-1].Severity) {
			t.Errorf("finding %d (%s) is more severe than finding %d (%s)", i, fs[i].Severity, i-1, fs[i-1].Severity)
		}
	}
	// Details are plain Go values: the port is an int64, not a json.Number.
	for _, f := range fs {
		if f.RuleID == "ES-NET-003" {
			if p, ok := f.Details["port"].(int64); !ok || p != 9200 {
				t.Errorf("ES-NET-003 details port = %#v; want int64 9200", f.Details["port"])
			}
			if f.Details["resource"] != "sg-0bbbbbbbbbbbbbbb2:tcp/9200" {
				t.Errorf("ES-NET-003 resource = %v", f.Details["resource"])
			}
			if _, ok := f.Details["id"]; ok {
				t.Error("details repeat the id")
			}
		}
	}
}

func TestCleanNodeHasNoFindings(t *testing.T) {
	for _, stage := range []string{StageAudit, StageBake, StageAll} {
		e := newEngine(t, Options{Stage: stage})
		fs, err := e.Evaluate(context.Background(), cleanNode())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			t.Errorf("stage %s: clean node: %s %s: %s", stage, f.Severity, f.RuleID, f.Message)
		}
	}
}

// TestDriftFlaggedByRuleID makes the drifts the end-to-end test makes on a
// guest (edit elasticsearch.yml, open a port, change the heap) and expects
// each rule id.
func TestDriftFlaggedByRuleID(t *testing.T) {
	e := newEngine(t, Options{})
	cases := map[string]struct {
		edit func(*Input)
		want []string
	}{
		"yml edited to bind everywhere": {func(in *Input) {
			in.Facts.Elasticsearch.YML["network.host"] = "0.0.0.0"
			in.Facts.Manifest.Drift = []facts.Drift{{Path: "/etc/elasticsearch/elasticsearch.yml", Stage: "boot", Changed: []string{"content"}}}
		}, []string{"ES-FILE-001", "ES-NET-004"}},
		"port opened to the world": {func(in *Input) {
			in.Facts.Firewall.Rules = append(in.Facts.Firewall.Rules, facts.FirewallRule{
				Backend: "iptables", Family: "ipv4", Table: "filter", Chain: "INPUT", Hook: "input",
				Proto: "tcp", DPorts: []facts.PortRange{{From: 9200, To: 9200}}, Target: "ACCEPT",
			})
		}, []string{"ES-NET-002"}},
		"heap changed in the file only": {func(in *Input) {
			in.Facts.Elasticsearch.Heap.XmxBytes = 6 * gib
		}, []string{"ES-HEAP-001", "ES-HEAP-002", "ES-HEAP-004"}},
		"no facts at all": {func(in *Input) { in.Facts = nil }, nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in := cleanNode()
			c.edit(&in)
			fs, err := e.Evaluate(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if got := ruleIDs(fs); !slices.Equal(got, c.want) {
				t.Errorf("rule ids %v; want %v", got, c.want)
			}
		})
	}
}

// TestFactsRoundTrip evaluates a facts document as esaudit reads it from a
// file (facts.Parse keeps numbers as json.Number).
func TestFactsRoundTrip(t *testing.T) {
	in := seedNode()
	b, err := in.Facts.JSON()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := facts.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	in.Facts = parsed
	fs, err := newEngine(t, Options{}).Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if got := ruleIDs(fs); !reflect.DeepEqual(got, seedIDs) {
		t.Fatalf("rule ids after a JSON round trip %v; want %v", got, seedIDs)
	}
	raw, _ := json.Marshal(in)
	fs2, err := newEngine(t, Options{}).EvaluateJSON(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fs, fs2) {
		t.Errorf("EvaluateJSON differs from Evaluate:\n%v\n%v", fs2, fs)
	}
	if _, err := newEngine(t, Options{}).EvaluateJSON(context.Background(), []byte("{not json")); err == nil {
		t.Error("EvaluateJSON accepted broken JSON")
	}
}

// wantRules are the checks issue 6 asks for, by id.
var wantRules = []string{
	"ES-ASG-001", "ES-ASG-002",
	"ES-CLU-001", "ES-CLU-002", "ES-CLU-003", "ES-CLU-004", "ES-CLU-005",
	"ES-FILE-001", "ES-FILE-002",
	"ES-HEAP-001", "ES-HEAP-002", "ES-HEAP-003", "ES-HEAP-004",
	"ES-NET-001", "ES-NET-002", "ES-NET-003", "ES-NET-004", "ES-NET-005", "ES-NET-006",
	"ES-SEC-001", "ES-SEC-002", "ES-SEC-003", "ES-SEC-004", "ES-SEC-005", "ES-SEC-006", "ES-SEC-007", "ES-SEC-008", "ES-SEC-009", "ES-SEC-010", "ES-SEC-011", "ES-SEC-012", "ES-SEC-013",
	"ES-SYS-001", "ES-SYS-002", "ES-SYS-003",
}

func TestCatalogue(t *testing.T) {
	e := newEngine(t, Options{Stage: StageAll})
	cat := e.Catalogue()
	var ids []string
	for _, r := range cat {
		ids = append(ids, r.ID)
		if r.Title == "" || len(r.Description) < 40 || len(r.Remediation) < 20 || !ValidSeverity(r.Severity) || len(r.Stages) == 0 {
			t.Errorf("rule %s has thin metadata: %+v", r.ID, r)
		}
		if !strings.HasPrefix(r.Package, "esbake.rules.") {
			t.Errorf("rule %s in package %s", r.ID, r.Package)
		}
		if strings.Contains(r.Description, "\n") {
			t.Errorf("rule %s description keeps line breaks; use a folded (>-) YAML block", r.ID)
		}
	}
	if !slices.Equal(ids, wantRules) {
		t.Errorf("catalogue ids\n got  %v\n want %v", ids, wantRules)
	}
	// Catalogue returns copies: callers cannot change the engine's rules.
	cat[0].Stages[0] = "changed"
	if e.Catalogue()[0].Stages[0] == "changed" {
		t.Error("Catalogue shares its slices with the engine")
	}
}

func TestStageFiltering(t *testing.T) {
	all := newEngine(t, Options{Stage: StageAll}).Catalogue()
	bake := newEngine(t, Options{Stage: StageBake})
	audit := newEngine(t, Options{})
	if audit.Stage() != StageAudit {
		t.Errorf("default stage %q; want audit", audit.Stage())
	}
	var wantBake, wantAudit []string
	for _, r := range all {
		if slices.Contains(r.Stages, StageBake) {
			wantBake = append(wantBake, r.ID)
		}
		if slices.Contains(r.Stages, StageAudit) {
			wantAudit = append(wantAudit, r.ID)
		}
	}
	ids := func(rs []Rule) (out []string) {
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	if got := ids(bake.Catalogue()); !slices.Equal(got, wantBake) {
		t.Errorf("bake catalogue %v; want %v", got, wantBake)
	}
	if got := ids(audit.Catalogue()); !slices.Equal(got, wantAudit) {
		t.Errorf("audit catalogue %v; want %v", got, wantAudit)
	}
	// Rules that need boot configuration or the running fleet are audit-only.
	for _, id := range []string{"ES-NET-002", "ES-NET-003", "ES-NET-004", "ES-HEAP-002", "ES-HEAP-004", "ES-CLU-002", "ES-CLU-003"} {
		if slices.Contains(wantBake, id) {
			t.Errorf("%s runs at bake; it needs per-boot configuration or the fleet", id)
		}
	}
	if len(wantBake) < 10 {
		t.Errorf("only %d bake rules", len(wantBake))
	}
	// The bake gate does not evaluate audit-only rules at all.
	fs, err := bake.Evaluate(context.Background(), seedNode())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ES-FILE-002", "ES-HEAP-001", "ES-NET-005", "ES-SEC-002", "ES-SEC-004"}
	if got := ruleIDs(fs); !slices.Equal(got, want) {
		t.Errorf("bake stage on the seed node: %v; want %v", got, want)
	}
	if _, err := New(context.Background(), Options{Stage: "boot"}); err == nil || !strings.Contains(err.Error(), `"boot"`) {
		t.Errorf("unknown stage: err = %v", err)
	}
}

func TestEvaluateConcurrently(t *testing.T) {
	e := newEngine(t, Options{})
	want, err := e.Evaluate(context.Background(), seedNode())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(seed bool) {
			defer wg.Done()
			in, w := cleanNode(), []Finding(nil)
			if seed {
				in, w = seedNode(), want
			}
			got, err := e.Evaluate(context.Background(), in)
			if err != nil || !reflect.DeepEqual(got, w) {
				errs <- "concurrent evaluation differs"
			}
		}(i%2 == 0)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// ---- policy directories ----

const okRule = `package esbake.rules.extra

# METADATA
# title: Extra rule
# description: A site rule from a --policies directory.
# custom:
#   id: SITE-001
#   severity: low
#   remediation: Nothing to do.
#   stage: [audit]
deny contains finding if {
	input.node.name == "flag-me"
	finding := {"id": rego.metadata.rule().custom.id, "msg": "flagged", "resource": "node"}
}
`

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPolicyDirOverridesEmbedded(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"site/extra.rego": okRule,
		// Tests are not evaluated: this one would not even compile
		// without the package it imports.
		"site/extra_test.rego": "package esbake.rules.extra_test\n\nimport data.esbake.nothing\n\ntest_x if nothing.x\n",
		".git/junk.rego":       "not rego at all",
	})
	e := newEngine(t, Options{FS: fstest.MapFS{}, Dir: dir})
	cat := e.Catalogue()
	if len(cat) != 1 || cat[0].ID != "SITE-001" || cat[0].Package != "esbake.rules.extra" {
		t.Fatalf("catalogue %+v; want only SITE-001", cat)
	}
	fs, err := e.Evaluate(context.Background(), Input{Node: NodeInfo{Name: "flag-me"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].RuleID != "SITE-001" || fs[0].Message != "flagged" || fs[0].Severity != "low" {
		t.Errorf("findings %+v", fs)
	}
	if fs, _ := e.Evaluate(context.Background(), Input{Node: NodeInfo{Name: "fine"}}); len(fs) != 0 {
		t.Errorf("findings %+v on a passing node", fs)
	}
	// An fs.FS works the same.
	e2 := newEngine(t, Options{FS: fstest.MapFS{"x.rego": {Data: []byte(okRule)}}})
	if len(e2.Catalogue()) != 1 {
		t.Errorf("FS catalogue %+v", e2.Catalogue())
	}
}

func TestBrokenPolicies(t *testing.T) {
	meta := func(custom string) string {
		return "package esbake.rules.bad\n\n# METADATA\n# title: Bad\n# custom:\n" + custom +
			"deny contains finding if {\n\tfinding := {\"id\": \"X\", \"msg\": \"m\"}\n}\n"
	}
	cases := map[string]struct {
		files map[string]string
		want  []string // substrings of the error
	}{
		"syntax error": {map[string]string{"a.rego": "package esbake.rules.a\n\ndeny contains x if {\n\tx := \n}\n"},
			[]string{"a.rego:", "parse"}},
		"no metadata": {map[string]string{"b.rego": "package esbake.rules.b\n\ndeny contains \"x\" if true\n"},
			[]string{"b.rego:3", "no # METADATA"}},
		"no id": {map[string]string{"c.rego": meta("#   severity: low\n")},
			[]string{"c.rego:7", "custom.id is missing"}},
		"unknown severity": {map[string]string{"d.rego": meta("#   id: X-1\n#   severity: severe\n")},
			[]string{"d.rego:8", `custom.severity "severe"`}},
		"unknown stage": {map[string]string{"e.rego": meta("#   id: X-1\n#   severity: low\n#   stage: [boot]\n")},
			[]string{"e.rego:9", "custom.stage boot"}},
		"duplicate id": {map[string]string{"f.rego": meta("#   id: X-1\n#   severity: low\n"), "g.rego": strings.Replace(meta("#   id: X-1\n#   severity: high\n"), "rules.bad", "rules.bad2", 1)},
			[]string{"rule id X-1 is already used at"}},
		"outside esbake.rules": {map[string]string{"h.rego": strings.Replace(meta("#   id: X-1\n#   severity: low\n"), "esbake.rules.bad", "esbake.checks", 1)},
			[]string{"h.rego:8", "not under data.esbake.rules"}},
		"type error": {map[string]string{"i.rego": strings.Replace(okRule, `input.node.name == "flag-me"`, `count(1) > 0`, 1)},
			[]string{"i.rego:", "count"}},
		"network builtin": {map[string]string{"j.rego": strings.Replace(okRule, `input.node.name == "flag-me"`, `http.send({"method": "get", "url": "http://127.0.0.1/"})`, 1)},
			[]string{"j.rego:", "http.send"}},
		"empty": {map[string]string{"README.md": "no policies"}, []string{"no .rego policies"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writeDir(t, c.files)
			_, err := New(context.Background(), Options{Dir: dir})
			if err == nil {
				t.Fatal("New accepted broken policies")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if name != "empty" && name != "duplicate id" && !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the file under %s", err, dir)
			}
		})
	}
	if _, err := New(context.Background(), Options{Dir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("New accepted a missing directory")
	}
}

func TestBadFindings(t *testing.T) {
	cases := map[string]struct {
		body string
		want string
	}{
		"string finding": {`deny contains "just a string" if true`, "not an object"},
		"unknown id":     {`deny contains {"id": "NOPE-1", "msg": "m"} if true`, `id "NOPE-1"`},
		"boolean deny":   {`deny := true`, "not a set of findings"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			src := "package esbake.rules.odd\n\n# METADATA\n# title: Odd\n# custom:\n#   id: ODD-1\n#   severity: low\n" + c.body + "\n"
			e, err := New(context.Background(), Options{FS: fstest.MapFS{"odd.rego": {Data: []byte(src)}}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Evaluate(context.Background(), Input{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v; want it to contain %q", err, c.want)
			}
		})
	}
}

func TestSeverityAtLeast(t *testing.T) {
	cases := []struct {
		s, min string
		want   bool
	}{
		{"critical", "high", true}, {"high", "high", true}, {"medium", "high", false},
		{"low", "low", true}, {"low", "medium", false}, {"bogus", "low", false}, {"high", "bogus", false},
	}
	for _, c := range cases {
		if got := SeverityAtLeast(c.s, c.min); got != c.want {
			t.Errorf("SeverityAtLeast(%q, %q) = %v", c.s, c.min, got)
		}
	}
}

func TestCatalogueMarkdown(t *testing.T) {
	rules := []Rule{
		{ID: "ES-A-001", Title: "Pipes | in title", Description: "Line one\nline two.", Severity: "high", Remediation: "Fix it.", Stages: []string{"bake", "audit"}, Package: "esbake.rules.a"},
		{ID: "ES-B-002", Title: "Second", Severity: "low", Stages: []string{"audit"}, Package: "esbake.rules.b"},
	}
	md := CatalogueMarkdown(rules)
	for _, want := range []string{
		"# Policy catalogue\n",
		"| ID | Title | Severity | Stages |\n|----|-------|----------|--------|\n",
		"| [ES-A-001](#es-a-001) | Pipes \\| in title | high | bake, audit |\n",
		"| [ES-B-002](#es-b-002) | Second | low | audit |\n",
		"\n## ES-A-001\n\n**Pipes | in title**\n\nSeverity: high · Stages: bake, audit · Package: `esbake.rules.a`\n\nLine one\nline two.\n\nRemediation: Fix it.\n",
		"\n## ES-B-002\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "## ES-A-001") > strings.Index(md, "## ES-B-002") {
		t.Error("sections are not in catalogue order")
	}
	// The real catalogue renders a section per rule.
	cat := newEngine(t, Options{Stage: StageAll}).Catalogue()
	if n := strings.Count(CatalogueMarkdown(cat), "\n## "); n != len(cat) {
		t.Errorf("%d sections for %d rules", n, len(cat))
	}
}

// BenchmarkEvaluate measures evaluations per second of one prepared query
// on realistic nodes (issue 6's P3 compares it with conftest). It also
// reports process CPU time per evaluation, which stays meaningful on a
// shared, loaded machine where wall time does not.
func BenchmarkEvaluate(b *testing.B) {
	ctx := context.Background()
	e := newEngine(b, Options{})
	for _, c := range []struct {
		name string
		in   Input
	}{{"seed", seedNode()}, {"clean", cleanNode()}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := e.Evaluate(ctx, c.in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestInlinedRuleIDs: the engine puts each check rule's METADATA id where
// the rule reads rego.metadata.rule().custom.id, and leaves other metadata
// calls to OPA; two rules in one package keep their own ids.
func TestInlinedRuleIDs(t *testing.T) {
	src := `package esbake.rules.meta

# METADATA
# title: First rule
# custom:
#   id: META-001
#   severity: low
deny contains {"id": rego.metadata.rule().custom.id, "msg": rego.metadata.rule().title} if input.node.name == "a"

# METADATA
# title: Second rule
# custom:
#   id: META-002
#   severity: high
deny contains f if {
	input.node.name == "a"
	f := {"id": rego.metadata.rule().custom.id, "msg": "second"}
}
`
	for _, keep := range []bool{false, true} {
		e := newEngine(t, Options{FS: fstest.MapFS{"meta.rego": {Data: []byte(src)}}, keepMetadataCalls: keep})
		fs, err := e.Evaluate(context.Background(), Input{Node: NodeInfo{Name: "a"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 2 || fs[0].RuleID != "META-002" || fs[0].Message != "second" || fs[1].RuleID != "META-001" || fs[1].Message != "First rule" {
			t.Errorf("keepMetadataCalls %v: findings %+v", keep, fs)
		}
	}
	if !isMetadataRuleID(ast.MustParseTerm("rego.metadata.rule().custom.id").Value) ||
		isMetadataRuleID(ast.MustParseTerm("rego.metadata.rule().custom.severity").Value) ||
		isMetadataRuleID(ast.MustParseTerm("rego.metadata.chain().custom.id").Value) {
		t.Error("isMetadataRuleID matches the wrong references")
	}
}

// TestEvaluateStopsWhenCancelled: a context that ends stops a long
// evaluation with an error (the engine cancels OPA's query from a callback
// on the context).
func TestEvaluateStopsWhenCancelled(t *testing.T) {
	src := `package esbake.rules.slow

# METADATA
# title: Slow
# custom:
#   id: SLOW-001
#   severity: low
deny contains {"id": rego.metadata.rule().custom.id} if {
	some i in numbers.range(1, 4000)
	some j in numbers.range(1, 4000)
	i + j < 0
}
`
	e := newEngine(t, Options{FS: fstest.MapFS{"slow.rego": {Data: []byte(src)}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Evaluate(ctx, Input{}); err == nil || !strings.Contains(err.Error(), "cancel") {
		t.Errorf("cancelled context: err = %v; want the query cancelled", err)
	}
}
