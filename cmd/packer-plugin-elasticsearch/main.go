// Command packer-plugin-elasticsearch is the Packer plugin: builder
// elasticsearch-ami and provisioner elasticsearch-node.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/esbake/packer-plugin-elasticsearch/audit/gate"
	"github.com/esbake/packer-plugin-elasticsearch/builder"
	"github.com/esbake/packer-plugin-elasticsearch/provisioner"
	"github.com/esbake/packer-plugin-elasticsearch/version"
)

func main() {
	pps := plugin.NewSet()
	b := new(builder.Builder)
	b.SetPolicyGate(gate.Builder{})
	pps.RegisterBuilder("ami", b)
	pps.RegisterProvisioner("node", new(provisioner.Provisioner))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}
