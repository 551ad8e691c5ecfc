//go:generate ../internal/tools/packer-sdc.sh struct-markdown
//go:generate ../internal/tools/packer-sdc.sh mapstructure-to-hcl2 -type RunConfig,SubnetFilterOptions,VpcFilterOptions,MetadataOptions

package builder

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/template/config"
)

// Defaults and allowed values for the run settings.
const (
	DefaultShutdownBehavior     = "terminate"
	DefaultSelfTerminateAfter   = "2h"
	DefaultHTTPTokens           = "required"
	DefaultHopLimit             = 1
	DefaultInstanceMetadataTags = "enabled"
	DefaultSSHInterface         = "public_ip"
	DefaultKeyPairType          = "ed25519"
	SSHInterfaceSessionManager  = "session_manager"
	minSelfTerminateAfter       = 10 * time.Minute
	maxSelfTerminateAfter       = 7 * 24 * time.Hour
)

var (
	reInstanceType = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)
	reSubnetID     = regexp.MustCompile(`^subnet-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reVpcID        = regexp.MustCompile(`^vpc-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reSGID         = regexp.MustCompile(`^sg-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reProfileName  = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
	reProfileARN   = regexp.MustCompile(`^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:instance-profile/[\w+=,.@/-]{1,128}$`)
	sshInterfaces  = []string{"public_ip", "private_ip", "public_dns", "private_dns", SSHInterfaceSessionManager}
)

// SubnetFilterOptions selects the subnet with DescribeSubnets.
type SubnetFilterOptions struct {
	// DescribeSubnets filters, name to value, e.g. `"tag:Tier" = "build"`.
	Filters map[string]string `mapstructure:"filters" required:"true"`
	// When several subnets match, take the one with the most free IPv4
	// addresses.
	MostFree bool `mapstructure:"most_free" required:"false"`
	// When several subnets match, take one at random.
	Random bool `mapstructure:"random" required:"false"`
}

// VpcFilterOptions selects the VPC with DescribeVpcs; it must match exactly
// one VPC.
type VpcFilterOptions struct {
	// DescribeVpcs filters, name to value, e.g. `"tag:Name" = "build"`.
	Filters map[string]string `mapstructure:"filters" required:"true"`
}

// MetadataOptions are the build instance's instance metadata (IMDS)
// settings. IMDSv2 is mandatory: the CIS baseline requires it and esnode
// only speaks IMDSv2.
type MetadataOptions struct {
	// Must be `required` (the default): session tokens (IMDSv2) only.
	// `optional` would re-enable IMDSv1 and is refused.
	HttpTokens string `mapstructure:"http_tokens" required:"false"`
	// The PUT response hop limit: 1 (default) keeps tokens on the instance;
	// 2 lets a container on the instance reach IMDS. Nothing else is allowed.
	HttpPutResponseHopLimit int64 `mapstructure:"http_put_response_hop_limit" required:"false"`
	// `enabled` (default) or `disabled`: whether instance tags are readable
	// from IMDS. esnode's boot reads the cluster tags there.
	InstanceMetadataTags string `mapstructure:"instance_metadata_tags" required:"false"`
}

// RunConfig describes the temporary build instance and how to reach it.
type RunConfig struct {
	// The EC2 instance type of the build instance, e.g. `m6i.large`.
	InstanceType string `mapstructure:"instance_type" required:"true"`
	// The subnet to launch in, e.g. `subnet-0123456789abcdef0`. Without it
	// (and without `subnet_filter`) the default VPC's subnet is used.
	SubnetID string `mapstructure:"subnet_id" required:"false"`
	// Find the subnet with filters instead of an id.
	SubnetFilter SubnetFilterOptions `mapstructure:"subnet_filter" required:"false"`
	// The VPC to launch in, e.g. `vpc-0123456789abcdef0`; the subnet is then
	// picked in it. Also where the temporary security group is created.
	VpcID string `mapstructure:"vpc_id" required:"false"`
	// Find the VPC with filters instead of an id.
	VpcFilter VpcFilterOptions `mapstructure:"vpc_filter" required:"false"`
	// Give the instance a public IPv4 address. Unset keeps the subnet's
	// setting.
	AssociatePublicIpAddress config.Trilean `mapstructure:"associate_public_ip_address" required:"false"`
	// The IAM instance profile (name or ARN) for the build instance.
	// Required with `ssh_interface = "session_manager"`.
	IamInstanceProfile string `mapstructure:"iam_instance_profile" required:"false"`
	// Instance metadata settings; IMDSv2 is required.
	Metadata MetadataOptions `mapstructure:"metadata_options" required:"false"`
	// Existing security groups (ids) to use instead of a temporary one. They
	// must let the builder reach the SSH port.
	SecurityGroupIDs []string `mapstructure:"security_group_ids" required:"false"`
	// The CIDR blocks allowed to reach SSH on the temporary security group.
	// Required when the builder creates that group (no
	// `security_group_ids`, `ssh_interface` not `session_manager`). There is
	// deliberately no default: amazon-ebs opens `0.0.0.0/0`, we make you
	// write down where the builder connects from (e.g. `["203.0.113.7/32"]`).
	TemporarySGSourceCidrs []string `mapstructure:"temporary_security_group_source_cidrs" required:"false"`
	// How the builder reaches the instance: `public_ip` (default),
	// `private_ip`, `public_dns`, `private_dns` or `session_manager` (SSH
	// through an SSM session; no inbound rule, needs `iam_instance_profile`
	// with the SSM managed policy, SSM Agent in the source AMI and the
	// Session Manager plugin where Packer runs, see
	// `session_manager_plugin_path`).
	SSHInterface string `mapstructure:"ssh_interface" required:"false"`
	// With `ssh_interface = "session_manager"`: the local port the SSH
	// tunnel listens on (127.0.0.1). 0, the default, picks a free port.
	SessionManagerPort int `mapstructure:"session_manager_port" required:"false"`
	// With `ssh_interface = "session_manager"`: the Session Manager plugin
	// binary that runs the tunnel. By default `session-manager-plugin` is
	// looked up on PATH; install it as the AWS documentation page "Install
	// the Session Manager plugin for the AWS CLI" describes.
	SessionManagerPluginPath string `mapstructure:"session_manager_plugin_path" required:"false"`
	// What EC2 does when the instance shuts itself down. Only `terminate`
	// (the default) is accepted: with the self-terminate deadline this is
	// what guarantees a build instance cannot outlive a crashed builder.
	InstanceInitiatedShutdownBehavior string `mapstructure:"shutdown_behavior" required:"false"`
	// A Go duration after which the instance powers itself off (and, with
	// `shutdown_behavior = "terminate"`, is deleted) even if the builder
	// died, e.g. `90m`. Defaults to `2h`; 10m to 168h.
	SelfTerminateAfter string `mapstructure:"self_terminate_after" required:"false"`
	// Tags for the instance, key pair, security group and network
	// interfaces while the build runs. Template values such as
	// `{{ .SourceAMIName }}` are rendered at build time.
	RunTags map[string]string `mapstructure:"run_tags" required:"false"`
	// Tags for the volumes of the build instance while the build runs.
	RunVolumeTags map[string]string `mapstructure:"run_volume_tags" required:"false"`
	// Extra user data, run after the builder's self-terminate script (as a
	// second MIME part: a shell script or cloud-config).
	UserData string `mapstructure:"user_data" required:"false"`
	// A file whose content is used as `user_data`.
	UserDataFile string `mapstructure:"user_data_file" required:"false"`

	selfTerminateAfter time.Duration
}

// SelfTerminateDuration is the parsed `self_terminate_after`.
func (c *RunConfig) SelfTerminateDuration() time.Duration { return c.selfTerminateAfter }

// UsesTemporarySG reports whether the builder creates a security group.
func (c *RunConfig) UsesTemporarySG() bool {
	return len(c.SecurityGroupIDs) == 0 && c.SSHInterface != SSHInterfaceSessionManager
}

// Prepare applies defaults and validates the run settings.
func (c *RunConfig) Prepare() []error {
	var errs []error
	if c.InstanceType == "" {
		errs = append(errs, fmt.Errorf("`instance_type` is required: give an EC2 instance type, e.g. \"m6i.large\""))
	} else if !reInstanceType.MatchString(c.InstanceType) {
		errs = append(errs, fmt.Errorf("`instance_type` %q is not an instance type: use the form \"m6i.large\"", c.InstanceType))
	}

	hasSubnetFilter := len(c.SubnetFilter.Filters) > 0 || c.SubnetFilter.MostFree || c.SubnetFilter.Random
	if c.SubnetID != "" && hasSubnetFilter {
		errs = append(errs, fmt.Errorf("`subnet_id` and `subnet_filter` are both set: keep one"))
	}
	if c.SubnetID != "" && !reSubnetID.MatchString(c.SubnetID) {
		errs = append(errs, fmt.Errorf("`subnet_id` %q is not a subnet id: use the form \"subnet-0123456789abcdef0\"", c.SubnetID))
	}
	if hasSubnetFilter {
		if len(c.SubnetFilter.Filters) == 0 {
			errs = append(errs, fmt.Errorf("`subnet_filter.filters` is empty: give at least one DescribeSubnets filter"))
		}
		if c.SubnetFilter.MostFree && c.SubnetFilter.Random {
			errs = append(errs, fmt.Errorf("`subnet_filter.most_free` and `subnet_filter.random` are both true: pick one"))
		}
	}
	hasVpcFilter := len(c.VpcFilter.Filters) > 0
	if c.VpcID != "" && hasVpcFilter {
		errs = append(errs, fmt.Errorf("`vpc_id` and `vpc_filter` are both set: keep one"))
	}
	if c.VpcID != "" && !reVpcID.MatchString(c.VpcID) {
		errs = append(errs, fmt.Errorf("`vpc_id` %q is not a VPC id: use the form \"vpc-0123456789abcdef0\"", c.VpcID))
	}

	if p := c.IamInstanceProfile; p != "" && !reProfileName.MatchString(p) && !reProfileARN.MatchString(p) {
		errs = append(errs, fmt.Errorf("`iam_instance_profile` %q is neither an instance profile name nor its ARN", p))
	}

	errs = append(errs, c.Metadata.prepare()...)

	for i, id := range c.SecurityGroupIDs {
		if !reSGID.MatchString(id) {
			errs = append(errs, fmt.Errorf("`security_group_ids[%d]` %q is not a security group id: use the form \"sg-0123456789abcdef0\"", i, id))
		}
	}

	if c.SSHInterface == "" {
		c.SSHInterface = DefaultSSHInterface
	}
	if !contains(sshInterfaces, c.SSHInterface) {
		errs = append(errs, fmt.Errorf("`ssh_interface` %q is unknown: use one of %v", c.SSHInterface, sshInterfaces))
	}
	if c.SSHInterface != SSHInterfaceSessionManager {
		if c.SessionManagerPort != 0 {
			errs = append(errs, fmt.Errorf("`session_manager_port` is set but ssh_interface is %q: it is only used with ssh_interface = \"session_manager\"; remove it", c.SSHInterface))
		}
		if c.SessionManagerPluginPath != "" {
			errs = append(errs, fmt.Errorf("`session_manager_plugin_path` is set but ssh_interface is %q: it is only used with ssh_interface = \"session_manager\"; remove it", c.SSHInterface))
		}
	}
	if c.SessionManagerPort < 0 || c.SessionManagerPort > 65535 {
		errs = append(errs, fmt.Errorf("`session_manager_port` %d is not a port: use 1 to 65535, or 0 to pick a free one", c.SessionManagerPort))
	}
	if c.SSHInterface == SSHInterfaceSessionManager && c.IamInstanceProfile == "" {
		errs = append(errs, fmt.Errorf("`iam_instance_profile` is required with ssh_interface = \"session_manager\": give a profile whose role has the AmazonSSMManagedInstanceCore policy"))
	}

	switch {
	case len(c.TemporarySGSourceCidrs) > 0 && len(c.SecurityGroupIDs) > 0:
		errs = append(errs, fmt.Errorf("`temporary_security_group_source_cidrs` is set but `security_group_ids` replaces the temporary group: remove one of them"))
	case len(c.TemporarySGSourceCidrs) > 0 && c.SSHInterface == SSHInterfaceSessionManager:
		errs = append(errs, fmt.Errorf("`temporary_security_group_source_cidrs` is set but ssh_interface = \"session_manager\" opens no inbound port: remove it"))
	case len(c.TemporarySGSourceCidrs) == 0 && c.UsesTemporarySG():
		errs = append(errs, fmt.Errorf("`temporary_security_group_source_cidrs` is required when the builder creates the temporary security group: list where it connects from, e.g. [\"203.0.113.7/32\"] (use [\"0.0.0.0/0\"] only if you mean it), or set security_group_ids, or use ssh_interface = \"session_manager\""))
	}
	for i, cidr := range c.TemporarySGSourceCidrs {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			errs = append(errs, fmt.Errorf("`temporary_security_group_source_cidrs[%d]` %q is not a CIDR block: use the form \"203.0.113.0/24\" (%w)", i, cidr, err))
		}
	}

	if c.InstanceInitiatedShutdownBehavior == "" {
		c.InstanceInitiatedShutdownBehavior = DefaultShutdownBehavior
	}
	if c.InstanceInitiatedShutdownBehavior != DefaultShutdownBehavior {
		errs = append(errs, fmt.Errorf("`shutdown_behavior` %q is not allowed: only \"terminate\" is, so an instance that powers off at its self-terminate deadline is deleted rather than left stopped and billed for its volumes", c.InstanceInitiatedShutdownBehavior))
	}

	if c.SelfTerminateAfter == "" {
		c.SelfTerminateAfter = DefaultSelfTerminateAfter
	}
	if d, err := time.ParseDuration(c.SelfTerminateAfter); err != nil {
		errs = append(errs, fmt.Errorf("`self_terminate_after` %q is not a duration: use a Go duration such as \"2h\" or \"90m\" (%w)", c.SelfTerminateAfter, err))
	} else if d < minSelfTerminateAfter || d > maxSelfTerminateAfter {
		errs = append(errs, fmt.Errorf("`self_terminate_after` %s is out of range: use %s to %s, longer than the build takes", d, minSelfTerminateAfter, maxSelfTerminateAfter))
	} else {
		c.selfTerminateAfter = d
	}

	errs = append(errs, validateTags("run_tags", c.RunTags)...)
	errs = append(errs, validateTags("run_volume_tags", c.RunVolumeTags)...)

	if c.UserData != "" {
		if _, err := userDataContentType(c.UserData); err != nil {
			errs = append(errs, fmt.Errorf("`user_data` is invalid: %w", err))
		}
	}
	if c.UserData != "" && c.UserDataFile != "" {
		errs = append(errs, fmt.Errorf("`user_data` and `user_data_file` are both set: keep one"))
	}
	if c.UserDataFile != "" {
		if st, err := os.Stat(c.UserDataFile); err != nil {
			errs = append(errs, fmt.Errorf("`user_data_file` %q cannot be read: %w", c.UserDataFile, err))
		} else if st.IsDir() {
			errs = append(errs, fmt.Errorf("`user_data_file` %q is a directory: give a file", c.UserDataFile))
		}
	}
	return errs
}

func (m *MetadataOptions) prepare() []error {
	var errs []error
	switch m.HttpTokens {
	case "":
		m.HttpTokens = DefaultHTTPTokens
	case "required":
	case "optional":
		errs = append(errs, fmt.Errorf("`metadata_options.http_tokens` \"optional\" is refused: IMDSv2 is required (CIS baseline, and esnode only speaks IMDSv2); remove the setting or set \"required\""))
	default:
		errs = append(errs, fmt.Errorf("`metadata_options.http_tokens` %q is invalid: the only accepted value is \"required\"", m.HttpTokens))
	}
	switch m.HttpPutResponseHopLimit {
	case 0:
		m.HttpPutResponseHopLimit = DefaultHopLimit
	case 1, 2:
	default:
		errs = append(errs, fmt.Errorf("`metadata_options.http_put_response_hop_limit` %d is not allowed: use 1 (default) or 2 (containers on the instance); more hops let tokens leave the host", m.HttpPutResponseHopLimit))
	}
	switch m.InstanceMetadataTags {
	case "":
		m.InstanceMetadataTags = DefaultInstanceMetadataTags
	case "enabled", "disabled":
	default:
		errs = append(errs, fmt.Errorf("`metadata_options.instance_metadata_tags` %q is invalid: use \"enabled\" or \"disabled\"", m.InstanceMetadataTags))
	}
	return errs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
