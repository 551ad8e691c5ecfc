package provisioner

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/esbake/packer-plugin-elasticsearch/audit/eval"
	"github.com/esbake/packer-plugin-elasticsearch/audit/gate"
)

// policyGate fails the build on bake-stage policy violations at or above
// fail_on, so a bad bake never becomes an image.
func (b *bake) policyGate(ctx context.Context) error {
	cmd, err := b.render(gate.EsnodePath + " facts")
	if err != nil {
		return err
	}
	findings, err := gate.Check(ctx, b.comm, cmd, b.cfg.PolicyGate.PoliciesDir)
	if err != nil {
		return fmt.Errorf("policy gate: %w", err)
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
		return fmt.Errorf("policy gate: %d violation(s) at or above %s; fix the node spec or the base image (remediation: docs/policies.md):\n  %s",
			len(failing), b.cfg.PolicyGate.FailOn, strings.Join(failing, "\n  "))
	}
	b.ui.Say(fmt.Sprintf("Policy gate passed (elasticsearch-node): nothing at or above %s (%d finding(s) below)", b.cfg.PolicyGate.FailOn, len(findings)))
	return nil
}

func (b *bake) render(command string) (string, error) {
	s, err := interpolate.Render(b.cfg.ExecuteCommand, &interpolate.Context{Data: map[string]string{"Command": command}})
	if err != nil {
		return "", fmt.Errorf("render execute_command: %w", err)
	}
	return s, nil
}
