package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/esbake/packer-plugin-elasticsearch/internal/plugintest"
)

// provisionHook is what Packer core does at the builder's provision hook
// (plugintest.ProvisionHook calls provision): start the provisioner plugin,
// decode its block from the template, Prepare and Provision over the
// builder's communicator.
type provisionHook struct {
	bin       string
	body      hcl.Body
	ctx       *hcl.EvalContext
	overrides []override
}

func (h *provisionHook) provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, data interface{}) error {
	client, stop, err := plugintest.StartPlugin(h.bin, "provisioner", "node")
	if err != nil {
		return err
	}
	defer stop()
	p := client.Provisioner()
	val, diags := hcldec.Decode(h.body, hcldec.ObjectSpec(p.ConfigSpec()), h.ctx)
	if diags.HasErrors() {
		return diags
	}
	fmt.Println("    provisioner elasticsearch-node: the example's block as written, except:")
	if val, err = apply("provisioner", val, h.overrides); err != nil {
		return err
	}
	if err := p.Prepare(val, plugintest.PackerVars("elasticsearch-ami")); err != nil {
		return fmt.Errorf("provisioner Prepare: %w", err)
	}
	gen, _ := data.(map[string]interface{})
	if gen == nil {
		gen = map[string]interface{}{}
	}
	if err := p.Provision(ctx, ui, comm, gen); err != nil {
		return fmt.Errorf("provisioner elasticsearch-node: %w", err)
	}
	return nil
}
