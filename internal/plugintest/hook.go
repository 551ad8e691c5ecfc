package plugintest

import (
	"context"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// ProvisionHook is the hook a test hands to a builder's Run, standing in
// for Packer core's ProvisionHook: on packer_provision it calls Provision
// with the communicator the builder connected (over RPC, the one the
// builder plugin serves back). Other hook names are ignored, as in core.
type ProvisionHook struct {
	Provision func(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, data interface{}) error
}

var _ packersdk.Hook = (*ProvisionHook)(nil)

// Run implements packersdk.Hook.
func (h *ProvisionHook) Run(ctx context.Context, name string, ui packersdk.Ui, comm packersdk.Communicator, data interface{}) error {
	if name != packersdk.HookProvision || h.Provision == nil {
		return nil
	}
	return h.Provision(ctx, ui, comm, data)
}
