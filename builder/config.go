//go:generate ../internal/tools/packer-sdc.sh struct-markdown
//go:generate ../internal/tools/packer-sdc.sh mapstructure-to-hcl2 -type Config

package builder

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// Config is the whole `elasticsearch-ami` source block, split by concern
// like amazon-ebs: access, source AMI, run, image, policy gate, and the
// SDK's SSH communicator settings.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	AccessConfig        `mapstructure:",squash"`
	SourceAMIConfig     `mapstructure:",squash"`
	RunConfig           `mapstructure:",squash"`
	AMIConfig           `mapstructure:",squash"`
	// Extra EBS volumes for the build instance, or an override of its root
	// volume. Each is encrypted gp3 unless said otherwise. See the block
	// device settings for the fields.
	LaunchMappings []BlockDevice `mapstructure:"launch_block_device_mappings" required:"false"`
	// The bake-time policy gate. On by default.
	PolicyGate PolicyGateConfig `mapstructure:"policy_gate" required:"false"`
	// The SDK's communicator settings. Only `ssh` is supported:
	// `ssh_username` is required; the builder makes a temporary key pair
	// (`temporary_key_pair_type`, `ed25519` by default, or `rsa`) unless you
	// give `ssh_keypair_name`/`ssh_private_key_file`.
	Comm communicator.Config `mapstructure:",squash"`

	ctx interpolate.Context
}

// Prepare applies the defaults of every concern and validates them all,
// returning every problem at once.
func (c *Config) Prepare() (warns []string, errs []error) {
	warns, errs = c.AccessConfig.prepareAliases()
	errs = append(errs, c.AccessConfig.Prepare()...)
	errs = append(errs, c.SourceAMIConfig.Prepare()...)
	errs = append(errs, c.RunConfig.Prepare()...)
	errs = append(errs, c.AMIConfig.Prepare(c.Region)...)
	errs = append(errs, prepareBlockDevices("launch_block_device_mappings", c.LaunchMappings)...)
	errs = append(errs, c.PolicyGate.Prepare()...)
	w, e := c.prepareComm()
	warns = append(warns, w...)
	errs = append(errs, e...)

	if c.PackerForce {
		c.AMIForceDeregister = true
	}
	if c.Metadata.InstanceMetadataTags == "disabled" {
		warns = append(warns, "metadata_options.instance_metadata_tags is \"disabled\" on the build instance; esnode reads the cluster tags from IMDS at boot, so provisioning steps that call it will not see them")
	}
	for _, cidr := range c.TemporarySGSourceCidrs {
		if w := internetWide(cidr); w != "" {
			warns = append(warns, fmt.Sprintf("temporary_security_group_source_cidrs contains %s: the build instance's SSH port is open to %s while the build runs", cidr, w))
		}
	}
	if !c.PolicyGate.On() {
		warns = append(warns, "policy_gate.enabled is false: the image is created without checking the bake policies")
	}
	return warns, errs
}

func (c *Config) prepareComm() (warns []string, errs []error) {
	if c.Comm.Type == "" {
		c.Comm.Type = "ssh"
	}
	if c.Comm.Type != "ssh" {
		return nil, []error{fmt.Errorf("`communicator` %q is not supported: use \"ssh\" (the policy gate and the provisioner run commands over SSH)", c.Comm.Type)}
	}
	switch c.Comm.SSHTemporaryKeyPairType {
	case "":
		c.Comm.SSHTemporaryKeyPairType = DefaultKeyPairType
	case "ed25519", "rsa":
	default:
		errs = append(errs, fmt.Errorf("`temporary_key_pair_type` %q is not allowed: use \"ed25519\" (default) or \"rsa\"; EC2 key pairs support nothing else", c.Comm.SSHTemporaryKeyPairType))
	}
	if c.Comm.SSHTemporaryKeyPairType == "rsa" && c.Comm.SSHTemporaryKeyPairBits != 0 && c.Comm.SSHTemporaryKeyPairBits < 2048 {
		errs = append(errs, fmt.Errorf("`temporary_key_pair_bits` %d is too small for rsa: use at least 2048 (default 4096)", c.Comm.SSHTemporaryKeyPairBits))
	}
	if c.SSHInterface == SSHInterfaceSessionManager && c.Comm.SSHHost != "" {
		errs = append(errs, fmt.Errorf("`ssh_host` is set but ssh_interface = \"session_manager\" connects through SSM: remove ssh_host"))
	}
	if c.Comm.SSHKeyPairName != "" && c.Comm.SSHPrivateKeyFile == "" && !c.Comm.SSHAgentAuth {
		errs = append(errs, fmt.Errorf("`ssh_keypair_name` needs `ssh_private_key_file` (or ssh_agent_auth = true): the builder must hold the private key of the existing key pair"))
	}
	for _, e := range c.Comm.Prepare(&c.ctx) {
		errs = append(errs, e)
	}
	return warns, errs
}

var reCleanName = regexp.MustCompile(`[^a-zA-Z0-9()\[\] ./'@_-]`)

// TemplateFuncs are the extra template functions for ami_name and friends.
var TemplateFuncs = map[string]interface{}{
	// clean_resource_name replaces characters AMI names do not allow.
	"clean_resource_name": func(s string) string {
		return strings.TrimSpace(reCleanName.ReplaceAllString(s, "-"))
	},
}

// internetWide says how much of the internet a CIDR admits: "the whole
// internet" for any /0 (1.2.3.4/0 is 0.0.0.0/0 to AWS), "a large part of
// the internet" for a prefix shorter than /8 (IPv4) or /32 (IPv6) that
// holds public addresses, else "".
func internetWide(cidr string) string {
	ip, n, err := net.ParseCIDR(strings.TrimSpace(cidr))
	if err != nil {
		return ""
	}
	ones, bits := n.Mask.Size()
	switch {
	case ones == 0:
		return "the whole internet"
	case bits == 32 && ones < 8, bits == 128 && ones < 32:
		if !n.IP.IsPrivate() && !ip.IsLoopback() {
			return "a large part of the internet"
		}
	}
	return ""
}
