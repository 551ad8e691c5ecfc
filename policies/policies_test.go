package policies

import (
	"context"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/tester"
)

// modules parses every embedded .rego file, tests included.
func modules(t *testing.T) map[string]*ast.Module {
	t.Helper()
	names, err := fs.Glob(FS, "*.rego")
	if err != nil || len(names) == 0 {
		t.Fatalf("no embedded policies (%v)", err)
	}
	mods := map[string]*ast.Module{}
	for _, n := range names {
		src, err := fs.ReadFile(FS, n)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ast.ParseModuleWithOpts(n, string(src), ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("parse %s: %v", n, err)
		}
		mods[n] = m
	}
	return mods
}

// TestRegoTests runs every test_ rule through OPA's tester, as `opa test`.
func TestRegoTests(t *testing.T) {
	ctx := context.Background()
	ch, err := tester.NewRunner().SetModules(modules(t)).RaiseBuiltinErrors(true).RunTests(ctx, nil)
	if err != nil {
		t.Fatalf("compile policies with tests: %v", err)
	}
	passed := 0
	for r := range ch {
		name := r.Package + "." + r.Name
		switch {
		case r.Error != nil:
			t.Errorf("%s (%s): error: %v", name, r.Location, r.Error)
		case r.Skip:
			t.Errorf("%s (%s): skipped; rego tests must not be skipped", name, r.Location)
		case r.Fail:
			t.Errorf("%s (%s): FAIL", name, r.Location)
		default:
			passed++
		}
	}
	// Far fewer would mean tests were lost (a file not embedded, a package
	// typo that makes tests vanish).
	if passed < 60 {
		t.Errorf("only %d rego tests passed; expected at least 60", passed)
	}
	t.Logf("%d rego tests passed", passed)
}

// TestStrictCheck compiles like `opa check --strict`.
func TestStrictCheck(t *testing.T) {
	c := ast.NewCompiler().WithStrict(true)
	if c.Compile(modules(t)); c.Failed() {
		t.Fatalf("strict compile: %v", c.Errors)
	}
}

// TestFormatted checks every file is as `opa fmt` writes it.
func TestFormatted(t *testing.T) {
	names, _ := fs.Glob(FS, "*.rego")
	for _, n := range names {
		src, _ := fs.ReadFile(FS, n)
		out, err := format.Source(n, src)
		if err != nil {
			t.Errorf("format %s: %v", n, err)
			continue
		}
		if string(out) != string(src) {
			t.Errorf("%s is not formatted: run `opa fmt -w policies/`", n)
		}
	}
}

var (
	idRe   = regexp.MustCompile(`(?m)^#\s+id:\s*(\S+)\s*$`)
	testRe = regexp.MustCompile(`(?m)^test_\w+`)
)

// TestEveryRuleHasTests checks that each policy file has a sibling
// _test.rego that names each of its rule ids and has at least two tests
// per rule (a case that flags and one that does not).
func TestEveryRuleHasTests(t *testing.T) {
	names, _ := fs.Glob(FS, "*.rego")
	sort.Strings(names)
	rules := 0
	for _, n := range names {
		if strings.HasSuffix(n, "_test.rego") {
			continue
		}
		src, _ := fs.ReadFile(FS, n)
		ids := idRe.FindAllStringSubmatch(string(src), -1)
		if len(ids) == 0 {
			continue
		}
		testName := strings.TrimSuffix(n, ".rego") + "_test.rego"
		tsrc, err := fs.ReadFile(FS, testName)
		if err != nil {
			t.Errorf("%s has rules but no %s", n, testName)
			continue
		}
		for _, id := range ids {
			rules++
			if !strings.Contains(string(tsrc), `"`+id[1]+`"`) {
				t.Errorf("%s does not name rule %s", testName, id[1])
			}
		}
		if n, want := len(testRe.FindAllString(string(tsrc), -1)), 2*len(ids); n < want {
			t.Errorf("%s has %d tests for %d rules; want at least %d (a flagging and a passing case each)", testName, n, len(ids), want)
		}
	}
	if rules < 20 {
		t.Errorf("found %d rules with ids; expected at least 20", rules)
	}
}
