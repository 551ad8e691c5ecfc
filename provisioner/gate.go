package provisioner

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/esbake/packer-plugin-elasticsearch/audit/eval"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

// policyGate collects the freshly baked guest's facts with esnode and fails
// the build on bake-stage policy violations at or above fail_on, so a bad
// bake never becomes an image.
func (b *bake) policyGate(ctx context.Context, esnode string) error {
	engine, err := eval.New(ctx, eval.Options{Dir: b.cfg.PolicyGate.PoliciesDir, Stage: "bake"})
	if err != nil {
		return fmt.Errorf("policy gate: load policies: %w", err)
	}
	cmd, err := b.render(esnode + " facts")
	if err != nil {
		return err
	}
	doc, err := b.output(ctx, cmd)
	if err != nil {
		return fmt.Errorf("policy gate: collect facts on the guest: %w", err)
	}
	f, err := facts.Parse([]byte(doc))
	if err != nil {
		return fmt.Errorf("policy gate: the guest's facts: %w", err)
	}
	findings, err := engine.Evaluate(ctx, eval.Input{Facts: f, Policy: eval.PolicyOptions{ExpectInstanceProfile: true, AutoScaled: true}})
	if err != nil {
		return fmt.Errorf("policy gate: evaluate: %w", err)
	}
	var failing []string
	for _, fd := range findings {
		line := fmt.Sprintf("%s [%s] %s: %s", fd.RuleID, fd.Severity, fd.Title, fd.Message)
		if eval.SeverityAtLeast(fd.Severity, b.cfg.PolicyGate.FailOn) {
			failing = append(failing, line)
			b.ui.Error("Policy violation: " + line)
		} else {
			b.ui.Say("Policy finding below fail_on: " + line)
		}
	}
	if len(failing) > 0 {
		sort.Strings(failing)
		return fmt.Errorf("policy gate: %d violation(s) at or above %s; fix the node spec or the base image (see remediation in the policy docs):\n  %s",
			len(failing), b.cfg.PolicyGate.FailOn, strings.Join(failing, "\n  "))
	}
	b.ui.Say(fmt.Sprintf("Policy gate passed (%d finding(s) below %s)", len(findings), b.cfg.PolicyGate.FailOn))
	return nil
}

func (b *bake) render(command string) (string, error) {
	s, err := interpolate.Render(b.cfg.ExecuteCommand, &interpolate.Context{Data: map[string]string{"Command": command}})
	if err != nil {
		return "", fmt.Errorf("render execute_command: %w", err)
	}
	return s, nil
}
