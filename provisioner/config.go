//go:generate ../internal/tools/packer-sdc.sh struct-markdown
//go:generate ../internal/tools/packer-sdc.sh mapstructure-to-hcl2 -type Config,PolicyGate

package provisioner

import (
	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Config is the elasticsearch-node provisioner's configuration: the node
// spec, written as blocks at the top level, and how to run the bake.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	spec.Node           `mapstructure:",squash"`

	// Command that runs esnode as root. `{{.Command}}` is the esnode command
	// line. Default `sudo -n {{.Command}}`; use `{{.Command}}` when the
	// communicator already logs in as root.
	ExecuteCommand string `mapstructure:"execute_command"`
	// Directory on the guest that receives esnode and the spec. Relative
	// paths are under the SSH user's home. Default `.esnode-bake`; it must
	// not be on a noexec mount, which rules out /tmp on CIS-hardened images.
	RemoteDir string `mapstructure:"remote_dir"`
	// Wait for cloud-init and apt/dpkg locks to settle before installing.
	// Default true.
	WaitForCloudInit *bool `mapstructure:"wait_for_cloud_init"`
	// How long to wait for cloud-init and package locks. Default `10m`.
	CloudInitTimeout string `mapstructure:"cloud_init_timeout"`
	// Reboot the guest after the install and check that Elasticsearch's
	// units come back enabled and esnode-boot ran. Default false.
	RebootCheck bool `mapstructure:"reboot_check"`
	// How long a reboot may take before the check fails. Default `5m`.
	RebootTimeout string `mapstructure:"reboot_timeout"`
	// Remove what makes the guest unique (SSH host keys, authorized_keys,
	// shell history, cloud-init instance state, machine-id) as the last
	// step, after the install and after `reboot_check` (a reboot after it
	// would write a new machine-id every clone shares). The
	// elasticsearch-ami builder does this itself; set it when baking with
	// another builder, and run no provisioner after this one. Default false.
	Generalize bool `mapstructure:"generalize"`
	// Local path of an esnode binary to upload instead of the one built
	// into this plugin for the guest's architecture.
	EsnodePath string `mapstructure:"esnode_path"`
	// Bake-time policy gate: after the install, collect the guest's facts
	// and fail the build on policy violations.
	PolicyGate PolicyGate `mapstructure:"policy_gate"`

	ctx interpolate.Context
}

// PolicyGate configures the bake-time policy check.
type PolicyGate struct {
	// Run the gate. Default true.
	Enabled *bool `mapstructure:"enabled"`
	// Directory of Rego policies to use instead of the embedded ones.
	PoliciesDir string `mapstructure:"policies_dir"`
	// Lowest severity that fails the build: `low`, `medium`, `high` or
	// `critical`. Default `high`.
	FailOn string `mapstructure:"fail_on"`
}
