package eval

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is one Rego test (a test_ rule) run by Verify.
type TestResult struct {
	Name     string // package.rule
	Location string
	Passed   bool
	Failed   bool
	Skipped  bool
	Err      error
}

// Verify runs the policy tests (*_test.rego) of the sources with the
// embedded OPA, as `opa test` would; filter is a regular expression on
// test names ("" runs all). An error means the policies or tests do not
// compile.
func Verify(ctx context.Context, sources []Source, filter string) ([]TestResult, error) {
	mods := map[string]*ast.Module{}
	for _, src := range sources {
		ms, err := loadModules(src, true, nil)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			mods[m.Package.Location.File] = m
		}
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("no .rego files to test")
	}
	r := tester.NewRunner().SetModules(mods).RaiseBuiltinErrors(true)
	if filter != "" {
		r = r.Filter(filter)
	}
	ch, err := r.RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("compile policies with their tests: %w", err)
	}
	var out []TestResult
	for res := range ch {
		tr := TestResult{Name: res.Package + "." + res.Name, Location: fmt.Sprint(res.Location), Err: res.Error, Skipped: res.Skip, Failed: res.Fail}
		tr.Passed = res.Pass()
		out = append(out, tr)
	}
	return out, nil
}
