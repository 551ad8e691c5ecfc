package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// sample is a small fleet: a drifted node with a waived finding and an
// expired waiver, a clean node, and an unreachable one.
func sample() *Result {
	start := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	r := &Result{
		SchemaVersion: SchemaVersion,
		Tool:          Tool{Name: "esaudit", Version: "0.1.0-test"},
		StartedAt:     start,
		FinishedAt:    start.Add(2500 * time.Millisecond),
		FailOn:        "high",
		Policies:      "embedded",
		Category:      "aardvark-cluster",
		Rules: []Rule{
			{ID: "ESA-HEAP-001", Title: "Heap Xms equals Xmx", Description: "The JVM heap must be fixed: -Xms and -Xmx set once, to the same value.", Severity: "high", Remediation: "Set -Xms and -Xmx to the same value in jvm.options.d/heap.options.", Package: "esaudit.heap"},
			{ID: "ESA-NET-001", Title: "network.host is not 0.0.0.0", Description: "Binding every interface exposes the node.", Severity: "critical", Remediation: "Set network.host to the node's private address.", Package: "esaudit.network"},
			{ID: "ESA-CORS-001", Title: "CORS does not allow every origin", Description: "http.cors.allow-origin '*' lets any web page query the cluster.", Severity: "medium", Remediation: "Remove http.cors.* or list the origins.", Package: "esaudit.cors"},
			{ID: "ESA-SYS-001", Title: "vm.max_map_count meets the bootstrap check", Description: "Elasticsearch needs vm.max_map_count >= 262144.", Severity: "low", Remediation: "Set vm.max_map_count=262144 in /etc/sysctl.d.", Package: "esaudit.system"},
		},
		Nodes: []Node{
			{
				Name: "es-data-1 (i-0123456789abcdef0)", Address: "10.0.0.5", InstanceID: "i-0123456789abcdef0", Transport: "ssh",
				Tags: map[string]string{"es_cluster": "aardvark-cluster", "Name": "es-data-1"}, Status: NodeOK, DurationMS: 812,
				Findings: []Finding{
					{RuleID: "ESA-HEAP-001", Title: "Heap Xms equals Xmx", Severity: "high", Message: "-Xms is set twice and -Xmx never (the seed's sed bug)", Remediation: "Set -Xms and -Xmx to the same value in jvm.options.d/heap.options.", Details: map[string]any{"file": "/etc/elasticsearch/jvm.options:4", "missing": []any{"xmx"}}, Status: StatusViolation},
					{RuleID: "ESA-CORS-001", Title: "CORS does not allow every origin", Severity: "medium", Message: "http.cors.allow-origin is \"*\"", Details: map[string]any{"file": "/etc/elasticsearch/elasticsearch.yml"}, Status: StatusWaived, Waiver: &Waiver{Rule: "ESA-CORS-001", Nodes: "es-data-*", Justification: "ElasticHQ needs it until CHG-42", Expires: "2026-12-31"}},
					{RuleID: "ESA-SYS-001", Title: "vm.max_map_count meets the bootstrap check", Severity: "low", Message: "vm.max_map_count is 65530", Status: StatusViolation, Waiver: &Waiver{Rule: "ESA-SYS-001", Nodes: "*", Justification: "kernel upgrade pending", Expires: "2026-10-01", Expired: true}, Note: "waiver expired on 2026-10-01 (kernel upgrade pending)"},
				},
				Probes: &Probes{ReachablePorts: []int{9200, 9300}, ESAPI: true},
			},
			{Name: "es-data-2", Address: "10.0.0.6", Transport: "ssh", Status: NodeOK, DurationMS: 640, Findings: []Finding{}, FactErrors: []string{"firewall: iptables-save: not found"}},
			{Name: "es-data-3", Address: "10.0.0.7", Transport: "ssh", Status: NodeError, ErrorKind: "unreachable", Error: "connect 10.0.0.7:22: connection refused", DurationMS: 3, Findings: []Finding{}},
		},
		Diff: &Diff{
			PreviousFile: "/var/lib/esaudit/esaudit-20261124T030000.000Z.json",
			PreviousAt:   start.Add(-24 * time.Hour),
			New:          []DiffEntry{{Node: "es-data-1 (i-0123456789abcdef0)", RuleID: "ESA-SYS-001", Severity: "low"}},
			Fixed:        []DiffEntry{{Node: "es-data-2", RuleID: "ESA-NET-001", Severity: "critical"}},
			StillFailing: []DiffEntry{{Node: "es-data-1 (i-0123456789abcdef0)", RuleID: "ESA-HEAP-001", Severity: "high"}},
		},
	}
	r.Summarize()
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./audit/report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run with -update after checking the change):\n%s", name, p, firstDiff(string(want), string(got)))
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + itoa(i+1) + ":\n  want: " + x + "\n  got:  " + y
		}
	}
	return ""
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func render(t *testing.T, format string, r *Result) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, format, r); err != nil {
		t.Fatalf("render %s: %v", format, err)
	}
	return b.Bytes()
}

func TestSummarize(t *testing.T) {
	r := sample()
	s := r.Summary
	if s.Nodes != 3 || s.NodesOK != 2 || s.NodeErrors != 1 || s.Violations != 2 || s.Waived != 1 {
		t.Errorf("summary = %+v", s)
	}
	if s.FailingViolations != 1 || s.Compliant {
		t.Errorf("one high violation at fail-on high must fail: %+v", s)
	}
	if s.BySeverity["high"] != 1 || s.BySeverity["low"] != 1 || s.BySeverity["medium"] != 0 {
		t.Errorf("by severity = %v (waived findings must not count)", s.BySeverity)
	}
	if r.Nodes[0].Findings[0].Severity != "high" {
		t.Errorf("findings not sorted by severity: %+v", r.Nodes[0].Findings)
	}
	r.FailOn = "critical"
	r.AllowNodeErrors = true
	r.Summarize()
	if !r.Summary.Compliant || r.Summary.FailingViolations != 0 {
		t.Errorf("fail-on critical with node errors allowed must pass: %+v", r.Summary)
	}
}

func TestTableGolden(t *testing.T) {
	got := render(t, "table", sample())
	golden(t, "table", got)
	for _, want := range []string{"es-data-3", "unreachable", "FAIL", "1 new, 1 fixed, 0 waived, 0 unwaived, 1 still failing", "waiver expired"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("table lacks %q", want)
		}
	}
}

func TestJSONGolden(t *testing.T) {
	got := render(t, "json", sample())
	golden(t, "json", got)
	var back Result
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if back.SchemaVersion != "esbake.report/v1" || len(back.Nodes) != 3 || back.Diff == nil {
		t.Errorf("round trip lost data: %+v", back)
	}
}

func TestJUnitGolden(t *testing.T) {
	got := render(t, "junit", sample())
	golden(t, "junit", got)
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
				Skipped *struct{} `xml:"skipped"`
				Error   *struct{} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(got, &doc); err != nil {
		t.Fatalf("JUnit is not XML: %v", err)
	}
	if len(doc.Suites) != 3 {
		t.Fatalf("want a suite per node, got %d", len(doc.Suites))
	}
	// 4 rules on each audited node + 1 error case for the unreachable one;
	// the low violation is below fail-on high: no failure.
	if doc.Tests != 9 || doc.Failures != 1 || doc.Skipped != 1 || doc.Errors != 1 {
		t.Errorf("totals tests=%d failures=%d skipped=%d errors=%d", doc.Tests, doc.Failures, doc.Skipped, doc.Errors)
	}
	if c := doc.Suites[2].Cases; len(c) != 1 || c[0].Error == nil {
		t.Errorf("unreachable node must have one error case: %+v", c)
	}
}

func TestWriteFilesAndFormats(t *testing.T) {
	fs, err := ParseFormats([]string{"table,json", "sarif", "json", "junit,html"})
	if err != nil || strings.Join(fs, ",") != "table,json,sarif,junit,html" {
		t.Fatalf("ParseFormats = %v, %v", fs, err)
	}
	if _, err := ParseFormats([]string{"pdf"}); err == nil || !strings.Contains(err.Error(), "pdf") {
		t.Errorf("unknown format must be refused by name, got %v", err)
	}
	dir := t.TempDir()
	paths, err := WriteFiles(dir, fs, sample())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"report.txt", "report.json", "report.sarif", "report.xml", "report.html"}
	for i, p := range paths {
		if filepath.Base(p) != want[i] {
			t.Errorf("file %d = %s, want %s", i, p, want[i])
		}
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s empty or missing: %v", p, err)
		}
	}
}

// TestTableSanitizesControlCharacters is the regression test for issue 18
// item 3: a node's stderr (the node error), a facts value quoted in a policy
// message, and an EC2 Name tag (the node name) carry terminal escapes that
// set the window title, clear the screen and rewrite the verdict; the table
// must print them inert.
func TestTableSanitizesControlCharacters(t *testing.T) {
	const (
		title = "\x1b]0;pwned\x07"
		clear = "\x1b[2J\x1b[H"
		fake  = "\rALL NODES PASS\x1b[K"
		c1    = "\u009b31m"
		bidi  = "\u202e"
	)
	r := &Result{SchemaVersion: SchemaVersion, FailOn: "high", StartedAt: time.Unix(0, 0), FinishedAt: time.Unix(1, 0),
		Nodes: []Node{
			// EC2 Name tag -> node name.
			{Name: "es-1" + title + clear, Status: NodeOK, Transport: "ssh", Findings: []Finding{{
				// facts value -> policy message; also resource and note.
				RuleID: "ES-NET-004", Severity: "medium", Status: StatusViolation,
				Message: "network.host is " + clear + fake, Details: map[string]any{"resource": "elasticsearch.yml:" + c1},
				Note: bidi + "evil",
			}}, NotEvaluated: []NotEvaluated{{RuleID: "ES-NET-002", Reason: "firewall: " + title, Missing: []string{"firewall"}}},
				FactErrors: []string{"sysctl: " + clear}},
			// node stderr -> node error.
			{Name: "es-2", Status: NodeError, ErrorKind: "command-failed", Error: "esnode failed: " + title + fake, Transport: "ssh"},
		},
		UnusedWaivers: []UnusedWaiver{{Rule: "X" + clear, Nodes: "*" + title}},
		Warnings:      []string{"w" + fake},
		Diff:          &Diff{New: []DiffEntry{{Node: "es-1" + title, RuleID: "R" + clear, Resource: c1}}, VanishedNodes: []string{"gone" + title}},
	}
	r.Summarize()
	out := render(t, "table", r)
	for i, b := range out {
		if (b < 0x20 && b != '\n') || b == 0x7f {
			t.Fatalf("control byte %#x at %d in the table:\n%q", b, i, out)
		}
	}
	for _, bad := range []string{"\u009b", "\u202e"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Errorf("table holds %q", bad)
		}
	}
	for _, want := range []string{`es-1\x1b]0;pwned\x07`, `\x1b[2J`, `\u202eevil`, `\x9b31m`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("table lacks the escaped form %q:\n%s", want, out)
		}
	}
	if got := SummaryLine(r); strings.ContainsAny(got, "\x1b\r") {
		t.Errorf("summary line: %q", got)
	}
}

// TestJUnitFailOnFindingsAndClassnames: only violations at/above fail-on
// fail, one test case per finding (two listeners under one rule are two
// cases), not-evaluated rules are skipped with the missing fact, and a
// dotted node name stays one Jenkins class.
func TestJUnitFailOnFindingsAndClassnames(t *testing.T) {
	r := &Result{FailOn: "high", Rules: []Rule{{ID: "ES-NET-001", Title: "port", Severity: "medium"}, {ID: "ES-NET-002", Title: "fw", Severity: "high"}, {ID: "ES-NET-003", Title: "sg", Severity: "critical"}},
		Nodes: []Node{{Name: "es-1.eu-west-2.compute.internal", Status: NodeOK, Findings: []Finding{
			{RuleID: "ES-NET-001", Severity: "medium", Status: StatusViolation, Message: "8080 open", Details: map[string]any{"resource": "tcp/8080"}},
			{RuleID: "ES-NET-001", Severity: "medium", Status: StatusViolation, Message: "8081 open", Details: map[string]any{"resource": "tcp/8081"}},
			{RuleID: "ES-NET-002", Severity: "high", Status: StatusViolation, Message: "9200 open to all", Details: map[string]any{"resource": "tcp/9200"}},
		}, NotEvaluated: []NotEvaluated{{RuleID: "ES-NET-003", Missing: []string{"node.security_groups"}, Reason: "no security groups for the node"}}}}}
	r.Summarize()
	got := string(render(t, "junit", r))
	var doc struct {
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Tests    int `xml:"tests,attr"`
		Suites   []struct {
			Cases []struct {
				Name      string    `xml:"name,attr"`
				Classname string    `xml:"classname,attr"`
				Failure   *struct{} `xml:"failure"`
				Skipped   *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
				SystemOut string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 4 || doc.Failures != 1 || doc.Skipped != 1 {
		t.Errorf("tests=%d failures=%d skipped=%d:\n%s", doc.Tests, doc.Failures, doc.Skipped, got)
	}
	for _, c := range doc.Suites[0].Cases {
		if c.Classname != "esaudit.es-1_eu-west-2_compute_internal" {
			t.Errorf("classname %q splits into Jenkins packages", c.Classname)
		}
		if strings.HasPrefix(c.Name, "ES-NET-001") && (c.Failure != nil || !strings.Contains(c.SystemOut, "below --fail-on high")) {
			t.Errorf("medium finding below fail-on high: %+v", c)
		}
		if strings.HasPrefix(c.Name, "ES-NET-003") && (c.Skipped == nil || !strings.Contains(c.Skipped.Message, "not evaluated: no security groups")) {
			t.Errorf("not evaluated rule: %+v", c)
		}
	}
}

// TestJSONStreamedMatchesEncoder: the streamed JSON report is byte for byte
// what json.Encoder gives for the whole document, for the sample, a fleet
// of generated nodes, and empty and missing node lists.
func TestJSONStreamedMatchesEncoder(t *testing.T) {
	big := sample()
	for i := range 500 {
		n := big.Nodes[i%len(big.Nodes)]
		n.Name = fmt.Sprintf("node-%03d <&> \u2028", i)
		big.Nodes = append(big.Nodes, n)
	}
	empty := sample()
	empty.Nodes = []Node{}
	empty.Diff = nil
	missing := sample()
	missing.Nodes = nil
	missing.Warnings = []string{"w"}
	for name, r := range map[string]*Result{"sample": sample(), "big": big, "empty": empty, "nil": missing} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := WriteJSON(&got, r); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%s: streamed JSON differs from json.Encoder's (%d vs %d bytes)\n%.600s", name, got.Len(), want.Len(), got.String())
		}
	}
}
