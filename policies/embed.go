// Package policies holds esaudit's Rego v1 policies and their tests,
// embedded in the binary. Evaluation (audit/eval) loads every *.rego file
// except *_test.rego; the tests run with `go test ./policies/` and
// `opa test policies/`.
package policies

import "embed"

// FS holds the policy files (tests included) at its root.
//
//go:embed *.rego
var FS embed.FS
