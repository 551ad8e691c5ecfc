package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	// The test binary doubles as esaudit for the subprocess tests.
	if os.Getenv("ESAUDIT_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// esaudit runs the real main in a subprocess, with env added.
func esaudit(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "ESAUDIT_TEST_MAIN=1"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func TestCLIHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"run", "--help"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:") || errs != "" {
			t.Errorf("%v: exit %d, help must go to stdout (stdout %d bytes, stderr %q)", args, code, len(out), errs)
		}
	}
	for cmd, want := range map[string]string{"policies": "esaudit policies [--format table|markdown|json]", "diff": "esaudit diff", "verify": "*_test.rego", "completion": "bash|zsh|fish"} {
		code, out, _ := runCLI(t, cmd, "--help")
		if code != 0 || !strings.Contains(out, want) || strings.Contains(out, "Targets (combine freely)") {
			t.Errorf("%s --help: exit %d, want its own help:\n%s", cmd, code, out)
		}
		if _, out2, _ := runCLI(t, "help", cmd); out2 != out {
			t.Errorf("help %s differs from %s --help", cmd, cmd)
		}
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if code, out, _ := runCLI(t, args...); code != 0 || !strings.HasPrefix(out, "esaudit ") {
			t.Errorf("%v: exit %d %q", args, code, out)
		}
	}
}

func TestCLIUsageErrors(t *testing.T) {
	dir := t.TempDir()
	f := factsFile(t, dir, "n1", map[string]any{})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--paralel", "4"}, "unknown flag --paralel; did you mean --parallel?"},
		{[]string{"--formt", "json"}, "did you mean --format?"},
		{[]string{"--facts", f, "--parallel", "-5"}, "--parallel: -5 is below 1"},
		{[]string{"--facts", f, "--parallel", "many"}, `--parallel: "many" is not a whole number`},
		{[]string{"--facts", f, "--node-timeout", "-1s"}, "--node-timeout: -1s is not positive"},
		{[]string{"--facts", f, "--node-timeout", "5"}, `--node-timeout: "5" has no unit: write 5s (seconds) or 5m (minutes)`},
		{[]string{"--facts", f, "--history-keep", "-1"}, "--history-keep: -1 is below 0"},
		{[]string{"--facts"}, "--facts needs a value"},
		{[]string{"polices"}, `unknown command "polices"; did you mean "policies"?`},
		{[]string{"policies", "--formt", "json"}, "did you mean --format?"},
		{[]string{"--facts", f, "--rule", "ES-NOPE-*"}, `--rule "ES-NOPE-*" matches no rule id`},
		{[]string{"--facts", f, "--no-builtin"}, "--no-builtin without --policies"},
	} {
		code, out, errs := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errs, c.want)
		}
		if strings.Count(errs, "\n") > 3 || out != "" {
			t.Errorf("%v: a usage mistake gets a short message, not a usage dump (%d lines)", c.args, strings.Count(errs, "\n"))
		}
	}
}

// TestCLISummaryLineAndQuiet: one summary line on stderr in every mode,
// and --quiet never drops a report.
func TestCLISummaryLineAndQuiet(t *testing.T) {
	dir := t.TempDir()
	f := factsFile(t, dir, "n1", map[string]any{"http.cors.enabled": true, "http.cors.allow-origin": "*"})
	for _, args := range [][]string{
		{"--format", "json"},
		{"--format", "json", "--quiet"},
		{"--format", "sarif,html", "--out", filepath.Join(dir, "o1")},
		{"--format", "table", "--out", filepath.Join(dir, "o2"), "--quiet"},
	} {
		code, out, errs := runCLI(t, append([]string{"--facts", f}, args...)...)
		if code != 1 {
			t.Errorf("%v: exit %d", args, code)
		}
		if n := strings.Count(errs, "esaudit: 1 nodes (1 ok, 0 errors)"); n != 1 {
			t.Errorf("%v: %d summary lines on stderr:\n%s", args, n, errs)
		}
		if args[len(args)-1] == "--quiet" && args[0] == "--format" && args[1] == "json" && !json.Valid([]byte(out)) {
			t.Errorf("--quiet --format json dropped the report: %q", out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "o2", "report.txt")); err != nil {
		t.Errorf("--quiet --out must still write the file: %v", err)
	}
}

// TestCLIMissingCredentials: no credentials is a configuration error
// (exit 2) with a message saying what to set, and no SDK log noise such as
// "falling back to IMDSv1".
func TestCLIMissingCredentials(t *testing.T) {
	env := []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_REGION=eu-west-2",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent", "AWS_CONTAINER_CREDENTIALS_FULL_URI=", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
		"AWS_WEB_IDENTITY_TOKEN_FILE=", "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9", "AWS_EC2_METADATA_DISABLED=false", "HOME=" + t.TempDir()}
	code, _, errs := esaudit(t, env, "--ec2-tag", "es_cluster=aardvark")
	if code != 2 || !strings.Contains(errs, "no AWS credentials") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if strings.Contains(errs, "IMDSv1") || strings.Contains(errs, "SDK") {
		t.Errorf("SDK log noise on stderr: %q", errs)
	}
}

func TestCLICompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, _ := runCLI(t, "completion", sh)
		if code != 0 || !strings.Contains(out, "node-timeout") || !strings.Contains(out, "policies") {
			t.Errorf("%s completion: exit %d\n%s", sh, code, out)
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	_, script, _ := runCLI(t, "completion", "bash")
	// Complete "esaudit --node-t" and "esaudit --format s" in a real bash.
	prog := script + `
COMP_WORDS=(esaudit --node-t); COMP_CWORD=1; _esaudit; echo "A:${COMPREPLY[*]}"
COMP_WORDS=(esaudit --format s); COMP_CWORD=2; _esaudit; echo "B:${COMPREPLY[*]}"
COMP_WORDS=(esaudit pol); COMP_CWORD=1; _esaudit; echo "C:${COMPREPLY[*]}"
`
	out, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	for _, want := range []string{"A:--node-timeout", "B:sarif", "C:policies"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bash completion lacks %q:\n%s", want, out)
		}
	}
}

// TestCLIWaiversPoliciesDiffVerify covers waiver validation, policy
// merging and selection, `policies --format json`, `diff` and `verify`.
func TestCLIWaiversPoliciesDiffVerify(t *testing.T) {
	dir := t.TempDir()
	f := factsFile(t, dir, "es-1", map[string]any{"http.cors.enabled": true, "http.cors.allow-origin": "*"})
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknown := write("w1.yaml", "- rule: ES-NOPE-001\n  nodes: es-*\n  justification: x\n  expires: 2026-12-31\n")
	if code, _, errs := runCLI(t, "--facts", f, "--waivers", unknown); code != 2 || !strings.Contains(errs, `no loaded rule has id "ES-NOPE-001"`) {
		t.Errorf("unknown waiver rule: exit %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "--facts", f, "--waivers", unknown, "--lenient-waivers", "--fail-on", "critical"); code != 0 || !strings.Contains(errs, "warning: waiver for ES-NOPE-001") {
		t.Errorf("--lenient-waivers: exit %d %s", code, errs)
	}
	nomatch := write("w2.yaml", "- rule: ES-NET-005\n  nodes: db-*\n  justification: x\n  expires: 2026-12-31\n")
	if code, _, errs := runCLI(t, "--facts", f, "--waivers", nomatch); code != 2 || !strings.Contains(errs, `nodes "db-*" matches none`) {
		t.Errorf("unmatched glob: exit %d %s", code, errs)
	}
	unused := write("w3.yaml", "- rule: ES-SEC-003\n  nodes: es-*\n  justification: x\n  expires: 2026-12-31\n- rule: ES-NET-005\n  justification: fleet\n  expires: 2999-01-01\n")
	code, out, errs := runCLI(t, "--facts", f, "--waivers", unused, "--format", "json", "--fail-on", "critical")
	var doc struct {
		Unused   []struct{ Rule string } `json:"unused_waivers"`
		Warnings []string                `json:"warnings"`
		Digest   string                  `json:"policies_digest"`
		Tool     struct{ Version string }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 {
		t.Fatalf("exit %d %v %s", code, err, errs)
	}
	if len(doc.Unused) != 1 || doc.Unused[0].Rule != "ES-SEC-003" {
		t.Errorf("unused waivers = %+v", doc.Unused)
	}
	joined := strings.Join(doc.Warnings, "\n")
	if !strings.Contains(joined, "waives the rule on every node") || !strings.Contains(joined, "more than 180 days ahead") {
		t.Errorf("warnings = %v", doc.Warnings)
	}
	if !strings.HasPrefix(doc.Digest, "sha256:") || len(doc.Digest) != 71 || doc.Tool.Version == "" {
		t.Errorf("digest %q, version %q", doc.Digest, doc.Tool.Version)
	}

	// A custom policy directory merges with the built-ins.
	pol := filepath.Join(dir, "pol")
	os.MkdirAll(pol, 0o755)
	write("pol/custom.rego", `package esbake.rules.custom

# METADATA
# title: Node name must start with es-
# custom:
#   id: ACME-001
#   severity: low
#   remediation: rename the node
deny contains finding if {
	not startswith(input.node.name, "es-")
	finding := {"id": rego.metadata.rule().custom.id, "msg": "bad name", "resource": "name"}
}
`)
	write("pol/custom_test.rego", `package esbake.rules.custom_test

import data.esbake.rules.custom

test_bad_name if {
	count(custom.deny) == 1 with input as {"node": {"name": "db-1"}}
}

test_fails_on_purpose if {
	count(custom.deny) == 5 with input as {"node": {"name": "db-1"}}
}
`)
	_, cat, _ := runCLI(t, "policies", "--format", "json", "--policies", pol)
	var c struct {
		Rules []struct {
			ID      string `json:"id"`
			HelpURI string `json:"help_uri"`
		}
	}
	if err := json.Unmarshal([]byte(cat), &c); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, r := range c.Rules {
		ids[r.ID] = r.HelpURI
	}
	if _, ok := ids["ACME-001"]; !ok || len(ids) < 20 || !strings.HasSuffix(ids["ES-NET-005"], "policies.md#es-net-005") || ids["ACME-001"] != "" {
		t.Errorf("merged catalogue (%d rules): %v", len(ids), ids)
	}
	_, only, _ := runCLI(t, "policies", "--format", "json", "--policies", pol, "--no-builtin")
	if strings.Count(only, `"id"`) != 1 {
		t.Errorf("--no-builtin: %s", only)
	}
	code, _, errs = runCLI(t, "--facts", f, "--policies", pol, "--rule", "ACME-*", "--format", "json", "--fail-on", "low")
	if code != 0 || !strings.Contains(errs, "0 violations") {
		t.Errorf("--rule ACME-*: exit %d %s", code, errs)
	}
	code, _, errs = runCLI(t, "--facts", f, "--skip-package", "esbake.rules.network", "--fail-on", "high")
	if code != 0 {
		t.Errorf("--skip-package network (CORS is high): exit %d %s", code, errs)
	}

	// verify: the built-in tests pass, the custom failing one is reported.
	code, vout, errs := runCLI(t, "verify")
	if code != 0 || !strings.Contains(errs, "0 failed, 0 errors") {
		t.Errorf("verify built-ins: exit %d %s %s", code, vout, errs)
	}
	code, vout, _ = runCLI(t, "verify", "--policies", pol)
	if code != 1 || !strings.Contains(vout, "FAIL  data.esbake.rules.custom_test.test_fails_on_purpose") {
		t.Errorf("verify custom: exit %d\n%s", code, vout)
	}

	// diff: two saved reports.
	oldR := filepath.Join(dir, "old.json")
	newR := filepath.Join(dir, "new.json")
	_, o1, _ := runCLI(t, "--facts", f, "--format", "json")
	f2 := factsFile(t, dir, "es-1", map[string]any{"network.host": "0.0.0.0"})
	_, o2, _ := runCLI(t, "--facts", f2, "--format", "json")
	os.WriteFile(oldR, []byte(o1), 0o644)
	os.WriteFile(newR, []byte(o2), 0o644)
	code, d, errs := runCLI(t, "diff", oldR, newR)
	if code != 1 || !strings.Contains(d, "+ new       es-1 ES-NET-004") || !strings.Contains(d, "- fixed     es-1 ES-NET-005") {
		t.Errorf("diff: exit %d\n%s%s", code, d, errs)
	}
	if code, _, _ := runCLI(t, "diff", oldR); code != 2 {
		t.Errorf("diff with one file: exit %d", code)
	}
}

// TestProgressBarConcurrent is the regression test for issue 18 item 9's
// progress bar: updates from several workers at once must not race (run
// under -race) and the bar ends at total.
func TestProgressBarConcurrent(t *testing.T) {
	var buf bytes.Buffer
	p := &progressBar{w: &buf}
	done := make(chan bool)
	for w := 0; w < 8; w++ {
		go func(w int) {
			for i := 0; i < 50; i++ {
				p.update(w*50+i+1, 400)
			}
			done <- true
		}(w)
	}
	for w := 0; w < 8; w++ {
		<-done
	}
	p.update(400, 400)
	p.clear()
	if !strings.Contains(buf.String(), "400/400 nodes") || !strings.HasSuffix(buf.String(), "\r\033[K") {
		t.Errorf("bar output %q", buf.String()[max(0, buf.Len()-80):])
	}
}
