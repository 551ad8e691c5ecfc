//go:generate ../internal/tools/packer-sdc.sh struct-markdown
//go:generate ../internal/tools/packer-sdc.sh mapstructure-to-hcl2 -type PolicyGateConfig

package builder

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/template/config"
)

// DefaultFailOn is the lowest severity that fails the build.
const DefaultFailOn = "high"

// Severities in increasing order.
var severities = []string{"low", "medium", "high", "critical"}

// PolicyGateConfig is the bake-time policy gate: after provisioning the
// builder runs `esnode facts` on the instance and evaluates the bake
// policies against them; a violation at or above `fail_on` fails the build
// before any image exists.
//
// HCL2 example:
//
// ```hcl
//
//	policy_gate {
//	  fail_on = "medium"
//	}
//
// ```
type PolicyGateConfig struct {
	// Run the gate. Defaults to `true`.
	Enabled config.Trilean `mapstructure:"enabled" required:"false"`
	// A directory of Rego v1 policies to use instead of the ones embedded in
	// the plugin.
	PoliciesDir string `mapstructure:"policies_dir" required:"false"`
	// The lowest severity that fails the build: `low`, `medium`, `high`
	// (default) or `critical`. Lower ones are reported as warnings.
	FailOn string `mapstructure:"fail_on" required:"false"`
}

// On reports whether the gate runs.
func (p *PolicyGateConfig) On() bool { return !p.Enabled.False() }

// Prepare applies defaults and validates the gate settings.
func (p *PolicyGateConfig) Prepare() []error {
	var errs []error
	if p.Enabled == config.TriUnset {
		p.Enabled = config.TriTrue
	}
	if p.FailOn == "" {
		p.FailOn = DefaultFailOn
	}
	if !contains(severities, p.FailOn) {
		errs = append(errs, fmt.Errorf("`policy_gate.fail_on` %q is unknown: use one of %v", p.FailOn, severities))
	}
	if p.PoliciesDir != "" {
		st, err := os.Stat(p.PoliciesDir)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("`policy_gate.policies_dir` %q cannot be read: %w; give a directory of .rego files or remove it to use the embedded policies", p.PoliciesDir, err))
		case !st.IsDir():
			errs = append(errs, fmt.Errorf("`policy_gate.policies_dir` %q is not a directory", p.PoliciesDir))
		}
	}
	return errs
}

// FailsOn reports whether a finding of the given severity fails the build.
func (p *PolicyGateConfig) FailsOn(severity string) bool {
	rank := func(s string) int {
		for i, v := range severities {
			if v == s {
				return i
			}
		}
		return len(severities) // unknown severities fail: safer
	}
	return rank(severity) >= rank(p.FailOn)
}
