package provisioner

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Provisioner is elasticsearch-node: it bakes a node with esnode install.
type Provisioner struct {
	config Config
}

var _ packersdk.Provisioner = (*Provisioner)(nil)

// ConfigSpec is the HCL2 schema Packer decodes the provisioner block with.
func (p *Provisioner) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Prepare decodes, defaults and validates the configuration; every problem is
// reported at once.
func (p *Provisioner) Prepare(raws ...interface{}) error {
	err := config.Decode(&p.config, &config.DecodeOpts{
		PluginType:         "elasticsearch-node",
		Interpolate:        true,
		InterpolateContext: &p.config.ctx,
		InterpolateFilter:  &interpolate.RenderFilter{Exclude: []string{"execute_command"}},
	}, raws...)
	if err != nil {
		return err
	}
	return p.config.prepare()
}

func (c *Config) prepare() error {
	c.Node.SetDefaults()
	if c.ExecuteCommand == "" {
		c.ExecuteCommand = "sudo -n {{.Command}}"
	}
	if c.RemoteDir == "" {
		c.RemoteDir = ".esnode-bake"
	}
	if c.WaitForCloudInit == nil {
		t := true
		c.WaitForCloudInit = &t
	}
	if c.CloudInitTimeout == "" {
		c.CloudInitTimeout = "10m"
	}
	if c.RebootTimeout == "" {
		c.RebootTimeout = "5m"
	}
	if c.PolicyGate.Enabled == nil {
		t := true
		c.PolicyGate.Enabled = &t
	}
	if c.PolicyGate.FailOn == "" {
		c.PolicyGate.FailOn = "high"
	}

	var errs *packersdk.MultiError
	if err := c.Node.Validate(); err != nil {
		for _, e := range unjoin(err) {
			errs = packersdk.MultiErrorAppend(errs, e)
		}
	}
	if !strings.Contains(c.ExecuteCommand, "{{.Command}}") {
		errs = packersdk.MultiErrorAppend(errs, &spec.FieldError{Field: "execute_command", Problem: "must contain {{.Command}}, where the esnode command line goes"})
	} else if _, err := interpolate.Render(c.ExecuteCommand, &interpolate.Context{Data: map[string]string{"Command": "esnode"}}); err != nil {
		errs = packersdk.MultiErrorAppend(errs, &spec.FieldError{Field: "execute_command", Problem: fmt.Sprintf("is not a valid template: %v", err)})
	}
	if strings.HasPrefix(path.Clean(c.RemoteDir), "/tmp") || strings.HasPrefix(path.Clean(c.RemoteDir), "/var/tmp") || strings.HasPrefix(path.Clean(c.RemoteDir), "/dev/shm") {
		errs = packersdk.MultiErrorAppend(errs, &spec.FieldError{Field: "remote_dir", Problem: fmt.Sprintf("%q is mounted noexec on CIS-hardened images, so esnode could not run from it; use a directory in the user's home (default .esnode-bake)", c.RemoteDir)})
	}
	for _, d := range []struct{ field, value string }{{"cloud_init_timeout", c.CloudInitTimeout}, {"reboot_timeout", c.RebootTimeout}} {
		if v, err := time.ParseDuration(d.value); err != nil || v <= 0 {
			errs = packersdk.MultiErrorAppend(errs, &spec.FieldError{Field: d.field, Problem: fmt.Sprintf("%q is not a positive duration such as 10m", d.value)})
		}
	}
	if !validSeverity(c.PolicyGate.FailOn) {
		errs = packersdk.MultiErrorAppend(errs, &spec.FieldError{Field: "policy_gate.fail_on", Problem: fmt.Sprintf("%q is not one of low, medium, high, critical", c.PolicyGate.FailOn)})
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

func validSeverity(s string) bool {
	switch s {
	case "low", "medium", "high", "critical":
		return true
	}
	return false
}

// unjoin flattens errors.Join so each problem is its own line in Packer's output.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{errors.Unwrap(err)}
}

// Provision bakes the node: upload esnode and the spec, run esnode install.
func (p *Provisioner) Provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, generatedData map[string]interface{}) error {
	return (&bake{cfg: &p.config, ui: ui, comm: comm}).run(ctx)
}
