// Command packer-plugin-elasticsearch is the Packer plugin: builder
// elasticsearch-ami and provisioner elasticsearch-node.
package main

import (
	"context"
	"fmt"
	"os"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/esbake/packer-plugin-elasticsearch/audit/gate"
	"github.com/esbake/packer-plugin-elasticsearch/builder"
	"github.com/esbake/packer-plugin-elasticsearch/provisioner"
	"github.com/esbake/packer-plugin-elasticsearch/version"
)

func main() {
	pps := plugin.NewSet()
	b := new(builder.Builder)
	b.SetPolicyGate(builderGate{})
	pps.RegisterBuilder("ami", b)
	pps.RegisterProvisioner("node", new(provisioner.Provisioner))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}

// builderGate adapts the shared bake-time gate to the builder's PolicyGate,
// here so that neither package depends on the other.
type builderGate struct{}

// Evaluate runs esnode facts with sudo on the builder's instance.
func (builderGate) Evaluate(ctx context.Context, comm packersdk.Communicator, cfg builder.PolicyGateConfig) ([]builder.Finding, error) {
	findings, err := gate.Check(ctx, comm, "sudo -n "+gate.EsnodePath+" facts", cfg.PoliciesDir)
	if err != nil {
		return nil, err
	}
	out := make([]builder.Finding, 0, len(findings))
	for _, f := range findings {
		out = append(out, builder.Finding{Rule: f.RuleID + " " + f.Title, Severity: f.Severity, Message: f.Message})
	}
	return out, nil
}
