//go:generate ../internal/tools/packer-sdc.sh struct-markdown
//go:generate ../internal/tools/packer-sdc.sh mapstructure-to-hcl2 -type AccessConfig,AssumeRoleConfig,PollingConfig

package builder

import (
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// Defaults for the access settings. The SDK's standard retryer makes 3
// attempts in total; a build makes a few hundred calls and must survive
// throttling (RequestLimitExceeded), so we retry more by default.
const (
	DefaultMaxRetries         = 8
	DefaultPollDelaySeconds   = 15
	DefaultPollMaxAttempts    = 160
	DefaultAssumeRoleDuration = 3600
	DefaultAssumeRoleSession  = "packer-elasticsearch-ami"
	maxMaxRetries             = 50
	minAssumeRoleDurationSecs = 900
	maxAssumeRoleDurationSecs = 43200
)

var (
	reRegion      = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	reRoleARN     = regexp.MustCompile(`^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
	reSessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	reExternalID  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

// AssumeRoleConfig lets the builder assume an IAM role (STS AssumeRole) on
// top of the credentials found by the default chain.
//
// HCL2 example:
//
// ```hcl
//
//	assume_role {
//	  role_arn     = "arn:aws:iam::123456789012:role/esbake-builder"
//	  session_name = "esbake"
//	  external_id  = "ci-pipeline"
//	}
//
// ```
type AssumeRoleConfig struct {
	// The ARN of the role to assume, e.g.
	// `arn:aws:iam::123456789012:role/esbake-builder`. Required when the
	// `assume_role` block is present.
	RoleARN string `mapstructure:"role_arn" required:"true"`
	// The session name recorded in CloudTrail. 2 to 64 characters of
	// `[A-Za-z0-9_+=,.@-]`. Defaults to `packer-elasticsearch-ami`.
	SessionName string `mapstructure:"session_name" required:"false"`
	// The external ID the role's trust policy asks for, if any.
	ExternalID string `mapstructure:"external_id" required:"false"`
	// How long the assumed-role credentials live, in seconds, between 900
	// and 43200 (and no more than the role's maximum session duration).
	// Defaults to 3600. The SDK refreshes them before they expire.
	DurationSeconds int `mapstructure:"duration_seconds" required:"false"`
}

// PollingConfig tunes the waiters the builder uses while EC2 changes state
// (instance running/stopped, image available, snapshot completed).
type PollingConfig struct {
	// Seconds between two polls. Defaults to 15. At least 1.
	DelaySeconds int `mapstructure:"delay_seconds" required:"false"`
	// How many polls before giving up. Defaults to 160, i.e. 40 minutes with
	// the default delay, enough for a large image to become available.
	MaxAttempts int `mapstructure:"max_attempts" required:"false"`

	// delay, when set, replaces DelaySeconds (tests poll an emulator in
	// milliseconds).
	delay time.Duration
}

// AccessConfig says where and as whom the builder talks to AWS.
// Credentials come from the AWS SDK's default chain only: environment
// variables, the shared config and credentials files (optionally a named
// `profile`), web identity, container and instance (IMDS) roles. Access
// keys cannot be written into a template on purpose.
type AccessConfig struct {
	// The region to build in, e.g. `eu-west-2`. The source AMI, subnet and
	// key pair are looked up there and the AMI is created there first.
	Region string `mapstructure:"region" required:"true"`
	// A named profile from the shared AWS config/credentials files. Empty
	// means the default chain decides (`AWS_PROFILE`, then `default`).
	Profile string `mapstructure:"profile" required:"false"`
	// Assume this IAM role with the credentials from the default chain.
	AssumeRole AssumeRoleConfig `mapstructure:"assume_role" required:"false"`
	// A custom endpoint URL for the EC2 API (a VPC endpoint, a FIPS
	// endpoint or a local emulator), e.g. `https://ec2.eu-west-2.amazonaws.com`.
	// Must be an absolute http(s) URL.
	EC2Endpoint string `mapstructure:"ec2_endpoint" required:"false"`
	// A custom endpoint URL for the SSM API, used to publish the AMI id to
	// `ssm_parameter_name`.
	SSMEndpoint string `mapstructure:"ssm_endpoint" required:"false"`
	// A custom endpoint URL for the STS API, used to validate credentials
	// and to assume `assume_role`.
	STSEndpoint string `mapstructure:"sts_endpoint" required:"false"`
	// How many times an AWS call is retried after the first attempt when it
	// is throttled or fails transiently, with exponential back-off (the
	// SDK's standard retryer). Unset or `0` means the default, 8 retries
	// (the SDK's own 3 attempts in total are too few for a build of a few
	// hundred calls under throttling); `1` to `50` sets the number; `-1`
	// disables retries (one attempt per call).
	MaxRetries int `mapstructure:"max_retries" required:"false"`
	// Waiter settings for state changes.
	Polling PollingConfig `mapstructure:"polling" required:"false"`
	// Deprecated: amazon-ebs's name for `ec2_endpoint`, accepted with a
	// warning. Use `ec2_endpoint`.
	CustomEndpointEC2 string `mapstructure:"custom_endpoint_ec2" required:"false"`
	// Deprecated: amazon-ebs's name for the `polling` block (same
	// `delay_seconds` and `max_attempts`), accepted with a warning. Use
	// `polling`.
	AWSPolling PollingConfig `mapstructure:"aws_polling" required:"false"`
	// Skip the STS GetCallerIdentity call that checks the credentials at the
	// start of the build. Only useful against endpoints without STS.
	SkipCredentialValidation bool `mapstructure:"skip_credential_validation" required:"false"`

	// noRetries records that the user asked for no retries (-1).
	noRetries bool
}

// prepareAliases maps amazon-ebs's names for access settings onto ours,
// warning that they are deprecated; giving both names is an error.
func (c *AccessConfig) prepareAliases() (warns []string, errs []error) {
	if c.CustomEndpointEC2 != "" {
		switch {
		case c.EC2Endpoint == "":
			c.EC2Endpoint = c.CustomEndpointEC2
			warns = append(warns, "`custom_endpoint_ec2` is deprecated (amazon-ebs's name): it is used as `ec2_endpoint`; rename it to `ec2_endpoint`")
		case c.EC2Endpoint != c.CustomEndpointEC2:
			errs = append(errs, fmt.Errorf("both `ec2_endpoint` %q and its deprecated alias `custom_endpoint_ec2` %q are set: remove `custom_endpoint_ec2`", c.EC2Endpoint, c.CustomEndpointEC2))
		default:
			warns = append(warns, "`custom_endpoint_ec2` is deprecated (amazon-ebs's name) and repeats `ec2_endpoint`: remove it")
		}
	}
	if c.AWSPolling.DelaySeconds != 0 || c.AWSPolling.MaxAttempts != 0 {
		if c.Polling.DelaySeconds != 0 || c.Polling.MaxAttempts != 0 {
			errs = append(errs, fmt.Errorf("both the `polling` block and its deprecated alias `aws_polling` are set: keep only `polling`"))
		} else {
			c.Polling.DelaySeconds, c.Polling.MaxAttempts = c.AWSPolling.DelaySeconds, c.AWSPolling.MaxAttempts
			warns = append(warns, "the `aws_polling` block is deprecated (amazon-ebs's name): it is used as `polling`; rename it to `polling`")
		}
	}
	return warns, errs
}

// Prepare applies defaults and validates the access settings.
func (c *AccessConfig) Prepare() []error {
	var errs []error
	if c.Region == "" {
		errs = append(errs, fmt.Errorf("`region` is required: set it to the AWS region to build in, e.g. \"eu-west-2\""))
	} else if !reRegion.MatchString(c.Region) {
		errs = append(errs, fmt.Errorf("`region` %q is not an AWS region name: use a code such as \"eu-west-2\" or \"us-east-1\"", c.Region))
	}

	for _, ep := range []struct{ field, value string }{
		{"ec2_endpoint", c.EC2Endpoint}, {"ssm_endpoint", c.SSMEndpoint}, {"sts_endpoint", c.STSEndpoint},
	} {
		if ep.value == "" {
			continue
		}
		if err := validateEndpoint(ep.value); err != nil {
			errs = append(errs, fmt.Errorf("`%s` %q is invalid: %w; give an absolute URL such as \"https://host:port\"", ep.field, ep.value, err))
		}
	}

	switch {
	case c.MaxRetries == -1:
		c.noRetries = true
		c.MaxRetries = 0
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < -1 || c.MaxRetries > maxMaxRetries:
		errs = append(errs, fmt.Errorf("`max_retries` %d is out of range: use 0 to %d (or -1 to disable retries)", c.MaxRetries, maxMaxRetries))
	}

	errs = append(errs, c.AssumeRole.prepare()...)
	errs = append(errs, c.Polling.prepare()...)
	return errs
}

// MaxAttempts is the total attempts per call for the SDK retryer (first try
// included).
func (c *AccessConfig) MaxAttempts() int {
	if c.noRetries {
		return 1
	}
	return c.MaxRetries + 1
}

// Enabled reports whether the assume_role block was given.
func (a *AssumeRoleConfig) Enabled() bool {
	return a.RoleARN != "" || a.SessionName != "" || a.ExternalID != "" || a.DurationSeconds != 0
}

func (a *AssumeRoleConfig) prepare() []error {
	if !a.Enabled() {
		return nil
	}
	var errs []error
	if a.RoleARN == "" {
		errs = append(errs, fmt.Errorf("`assume_role.role_arn` is required when the assume_role block is set: give the role ARN, e.g. \"arn:aws:iam::123456789012:role/esbake-builder\", or remove the block"))
	} else if !reRoleARN.MatchString(a.RoleARN) {
		errs = append(errs, fmt.Errorf("`assume_role.role_arn` %q is not an IAM role ARN: use the form \"arn:aws:iam::<12-digit account>:role/<name>\"", a.RoleARN))
	}
	if a.SessionName == "" {
		a.SessionName = DefaultAssumeRoleSession
	} else if !reSessionName.MatchString(a.SessionName) {
		errs = append(errs, fmt.Errorf("`assume_role.session_name` %q is invalid: use 2 to 64 characters of letters, digits and _+=,.@-", a.SessionName))
	}
	if a.ExternalID != "" && (len(a.ExternalID) < 2 || len(a.ExternalID) > 1224 || !reExternalID.MatchString(a.ExternalID)) {
		errs = append(errs, fmt.Errorf("`assume_role.external_id` %q is invalid: use 2 to 1224 characters of letters, digits and _+=,.@:/-", a.ExternalID))
	}
	if a.DurationSeconds == 0 {
		a.DurationSeconds = DefaultAssumeRoleDuration
	} else if a.DurationSeconds < minAssumeRoleDurationSecs || a.DurationSeconds > maxAssumeRoleDurationSecs {
		errs = append(errs, fmt.Errorf("`assume_role.duration_seconds` %d is out of range: STS accepts %d to %d seconds", a.DurationSeconds, minAssumeRoleDurationSecs, maxAssumeRoleDurationSecs))
	}
	return errs
}

// Duration is the assumed-role session length.
func (a *AssumeRoleConfig) Duration() time.Duration {
	return time.Duration(a.DurationSeconds) * time.Second
}

func (p *PollingConfig) prepare() []error {
	var errs []error
	switch {
	case p.DelaySeconds == 0:
		p.DelaySeconds = DefaultPollDelaySeconds
	case p.DelaySeconds < 0:
		errs = append(errs, fmt.Errorf("`polling.delay_seconds` %d must be at least 1", p.DelaySeconds))
	}
	switch {
	case p.MaxAttempts == 0:
		p.MaxAttempts = DefaultPollMaxAttempts
	case p.MaxAttempts < 0:
		errs = append(errs, fmt.Errorf("`polling.max_attempts` %d must be at least 1", p.MaxAttempts))
	}
	return errs
}

// Delay is the time between two polls.
func (p *PollingConfig) Delay() time.Duration {
	if p.delay > 0 {
		return p.delay
	}
	return time.Duration(p.DelaySeconds) * time.Second
}

// MaxWait is the longest a waiter waits.
func (p *PollingConfig) MaxWait() time.Duration {
	return p.Delay() * time.Duration(p.MaxAttempts)
}

func validateEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("parse URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme must be http or https")
	}
	if u.Host == "" {
		return fmt.Errorf("no host")
	}
	return nil
}
