package builder

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// Finding is one policy violation reported by a PolicyGate.
type Finding struct {
	Rule     string
	Severity string // low, medium, high, critical
	Message  string
}

// PolicyGate evaluates the bake policies against the provisioned
// instance, reached through comm (it runs `esnode facts` there). The
// implementation lives with the policies; the builder only decides.
type PolicyGate interface {
	Evaluate(ctx context.Context, comm packersdk.Communicator, cfg PolicyGateConfig) ([]Finding, error)
}

// stepPolicyGate fails the build, before any image exists, when a finding
// reaches fail_on.
type stepPolicyGate struct {
	Config PolicyGateConfig
	Gate   PolicyGate
}

func (s *stepPolicyGate) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	if !s.Config.On() {
		say(state, "Policy gate disabled (policy_gate.enabled = false): skipping the bake policies")
		return multistep.ActionContinue
	}
	if s.Gate == nil {
		return halt(state, fmt.Errorf("policy gate: no policy evaluator is wired into this build of the plugin; set policy_gate { enabled = false } to build without the gate"))
	}
	comm, ok := state.GetOk("communicator")
	if !ok {
		return halt(state, fmt.Errorf("policy gate: no communicator in the build state"))
	}
	say(state, "Checking the instance against the bake policies...")
	findings, err := s.Gate.Evaluate(ctx, comm.(packersdk.Communicator), s.Config)
	if err != nil {
		return halt(state, fmt.Errorf("policy gate: %w", err))
	}
	var failing []string
	for _, f := range findings {
		line := fmt.Sprintf("[%s] %s: %s", f.Severity, f.Rule, f.Message)
		if s.Config.FailsOn(f.Severity) {
			failing = append(failing, line)
		} else {
			say(state, "policy warning "+line)
		}
	}
	if len(failing) > 0 {
		return halt(state, fmt.Errorf("policy gate: %d violation(s) at or above %q, no image was created:\n  %s", len(failing), s.Config.FailOn, strings.Join(failing, "\n  ")))
	}
	say(state, fmt.Sprintf("Policy gate passed (elasticsearch-ami): nothing at or above %s (%d finding(s) below)", s.Config.FailOn, len(findings)))
	return multistep.ActionContinue
}

func (s *stepPolicyGate) Cleanup(multistep.StateBag) {}
