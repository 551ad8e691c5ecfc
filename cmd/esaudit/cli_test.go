package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func factsFile(t *testing.T, dir, name string, yml map[string]any) string {
	t.Helper()
	f := &facts.Facts{SchemaVersion: facts.SchemaVersion, Host: facts.Host{Hostname: name, MemTotalBytes: 8 << 30},
		Elasticsearch: facts.Elasticsearch{YML: yml, Version: "8.15.3"}}
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

func TestCLIExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := factsFile(t, dir, "open-node", map[string]any{"network.host": "0.0.0.0", "http.cors.enabled": true, "http.cors.allow-origin": "*"})

	if code, _, errs := runCLI(t, "run"); code != 2 || !strings.Contains(errs, "no nodes to audit") {
		t.Errorf("no targets: exit %d, %s", code, errs)
	}
	if code, _, _ := runCLI(t, "--bogus"); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	if code, _, _ := runCLI(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	if code, _, errs := runCLI(t, "--facts", bad, "--fail-on", "severe"); code != 2 || !strings.Contains(errs, "fail-on") {
		t.Errorf("bad fail-on: exit %d, %s", code, errs)
	}
	if code, _, errs := runCLI(t, "--facts", bad, "--policies", filepath.Join(dir, "nope")); code != 2 || !strings.Contains(errs, "nope") {
		t.Errorf("missing policies dir: exit %d, %s", code, errs)
	}

	out := filepath.Join(dir, "out")
	code, stdout, errs := runCLI(t, "run", "--facts", bad, "--format", "table,json,html", "--out", out, "--fail-on", "low")
	if code != 1 {
		t.Fatalf("violations at/above low: exit %d\n%s\n%s", code, stdout, errs)
	}
	if !strings.Contains(stdout, "open-node") || !strings.Contains(stdout, "FAIL") {
		t.Errorf("table on stdout:\n%s", stdout)
	}
	for _, f := range []string{"report.txt", "report.json", "report.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	var doc struct {
		SchemaVersion string `json:"schema_version"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "report.json"))
	if err := json.Unmarshal(b, &doc); err != nil || doc.SchemaVersion != "esbake.report/v1" {
		t.Errorf("report.json: %v %q", err, doc.SchemaVersion)
	}

	// Waive everything found, quietly: compliant.
	var rep struct {
		Nodes []struct {
			Findings []struct {
				RuleID string `json:"rule_id"`
			} `json:"findings"`
		} `json:"nodes"`
	}
	json.Unmarshal(b, &rep)
	var w strings.Builder
	for _, f := range rep.Nodes[0].Findings {
		w.WriteString("- rule: " + f.RuleID + "\n  nodes: open-*\n  justification: lab node\n  expires: 2999-12-31\n")
	}
	wf := filepath.Join(dir, "waivers.yaml")
	os.WriteFile(wf, []byte(w.String()), 0o644)
	// --quiet without --out still writes the report: it is the output.
	if code, stdout, errs := runCLI(t, "--facts", bad, "--waivers", wf, "--fail-on", "low", "--quiet"); code != 0 || !strings.Contains(stdout, "PASS") {
		t.Errorf("all waived: exit %d, stdout %q, %s", code, stdout, errs)
	}
}

func TestCLIPolicies(t *testing.T) {
	code, out, errs := runCLI(t, "policies")
	if code != 0 || !strings.HasPrefix(out, "ID") || !strings.Contains(out, "SEVERITY") {
		t.Fatalf("policies table: exit %d\n%s%s", code, out, errs)
	}
	if strings.Count(out, "\n") < 5 {
		t.Errorf("catalogue looks empty:\n%s", out)
	}
	code, md, _ := runCLI(t, "policies", "--format", "markdown")
	if code != 0 || !strings.Contains(md, "| ID |") {
		t.Errorf("markdown: exit %d\n%s", code, md)
	}
	if code, _, _ := runCLI(t, "policies", "--format", "pdf"); code != 2 {
		t.Errorf("bad format: exit %d", code)
	}
	if code, out, _ := runCLI(t, "help"); code != 0 || !strings.Contains(out, "Exit codes:") {
		t.Errorf("help: exit %d", code)
	}
}

func TestCLISingleFormatToStdout(t *testing.T) {
	dir := t.TempDir()
	f := factsFile(t, dir, "n1", map[string]any{})
	code, out, errs := runCLI(t, "--facts", f, "--format", "sarif", "--fail-on", "critical")
	if code > 1 || !strings.Contains(out, `"version": "2.1.0"`) {
		t.Errorf("sarif to stdout: exit %d\n%.300s\n%s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "--facts", f, "--format", "json,html"); code != 2 || !strings.Contains(errs, "--out") {
		t.Errorf("several formats without --out: exit %d, %s", code, errs)
	}
}
