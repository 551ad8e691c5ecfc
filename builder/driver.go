package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// EC2API is the part of the EC2 client the steps use. *ec2.Client
// satisfies it; tests use fakes. It embeds the Describe* calls the SDK
// waiters need so waiters work on any implementation.
type EC2API interface {
	ec2.DescribeImagesAPIClient
	ec2.DescribeInstancesAPIClient
	ec2.DescribeSnapshotsAPIClient
	DescribeRegions(context.Context, *ec2.DescribeRegionsInput, ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	CreateKeyPair(context.Context, *ec2.CreateKeyPairInput, ...func(*ec2.Options)) (*ec2.CreateKeyPairOutput, error)
	DeleteKeyPair(context.Context, *ec2.DeleteKeyPairInput, ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error)
	CreateSecurityGroup(context.Context, *ec2.CreateSecurityGroupInput, ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error)
	AuthorizeSecurityGroupIngress(context.Context, *ec2.AuthorizeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	DeleteSecurityGroup(context.Context, *ec2.DeleteSecurityGroupInput, ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error)
	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	StopInstances(context.Context, *ec2.StopInstancesInput, ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	CreateImage(context.Context, *ec2.CreateImageInput, ...func(*ec2.Options)) (*ec2.CreateImageOutput, error)
	CopyImage(context.Context, *ec2.CopyImageInput, ...func(*ec2.Options)) (*ec2.CopyImageOutput, error)
	DeregisterImage(context.Context, *ec2.DeregisterImageInput, ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error)
	DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
	ModifyImageAttribute(context.Context, *ec2.ModifyImageAttributeInput, ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error)
	EnableImageDeprecation(context.Context, *ec2.EnableImageDeprecationInput, ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error)
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// SSMAPI is the part of the SSM client the steps use.
type SSMAPI interface {
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	PutParameter(context.Context, *ssm.PutParameterInput, ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	DeleteParameter(context.Context, *ssm.DeleteParameterInput, ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error)
	StartSession(context.Context, *ssm.StartSessionInput, ...func(*ssm.Options)) (*ssm.StartSessionOutput, error)
	TerminateSession(context.Context, *ssm.TerminateSessionInput, ...func(*ssm.Options)) (*ssm.TerminateSessionOutput, error)
}

// Driver hands out API clients per region. The build region's clients are
// the ones most steps use; copies and SSM publishing need the others.
type Driver interface {
	EC2(region string) EC2API
	SSM(region string) SSMAPI
}

// AWSDriver is the Driver backed by aws-sdk-go-v2.
type AWSDriver struct {
	cfg    aws.Config
	access *AccessConfig
}

var _ Driver = (*AWSDriver)(nil)

// eventualConsistencyCodes are retried on calls that follow a create: EC2
// may not know about a new resource yet.
var eventualConsistencyCodes = []string{
	"InvalidInstanceID.NotFound",
	"InvalidAMIID.NotFound",
	"InvalidGroup.NotFound",
	"InvalidKeyPair.NotFound",
	"InvalidSnapshot.NotFound",
}

// RetryNotFound is a per-call option that also retries "not found yet"
// answers; use it right after creating the resource, not in cleanups where
// NotFound means already gone.
func RetryNotFound(o *ec2.Options) {
	o.Retryer = retry.AddWithErrorCodes(o.Retryer, eventualConsistencyCodes...)
}

// NewDriver loads credentials from the default chain (env, shared files
// with `profile`, web identity, container/instance roles), optionally
// assumes `assume_role`, and configures the standard retryer with
// `max_retries`.
func NewDriver(ctx context.Context, ac *AccessConfig, opts ...DriverOption) (*AWSDriver, error) {
	var set driverSettings
	for _, o := range opts {
		o(&set)
	}
	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(ac.Region),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = ac.MaxAttempts()
				// The client-side retry quota would give up on a build
				// that is throttled for a while; the back-off is enough.
				o.RateLimiter = ratelimit.None
				if set.maxBackoff > 0 {
					o.MaxBackoff = set.maxBackoff
				}
			})
		}),
	}
	if ac.Profile != "" {
		loadOpts = append(loadOpts, awsconfig.WithSharedConfigProfile(ac.Profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration (region %s, profile %q): %w; check the shared config files and AWS_* environment", ac.Region, ac.Profile, err)
	}
	d := &AWSDriver{cfg: cfg, access: ac}
	if ac.AssumeRole.Enabled() {
		ar := ac.AssumeRole
		provider := stscreds.NewAssumeRoleProvider(d.sts(), ar.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = ar.SessionName
			o.Duration = ar.Duration()
			if ar.ExternalID != "" {
				o.ExternalID = aws.String(ar.ExternalID)
			}
		})
		d.cfg.Credentials = aws.NewCredentialsCache(provider)
	}
	return d, nil
}

// ValidateCredentials asks STS who we are, so a missing or expired
// credential fails before anything is created.
func (d *AWSDriver) ValidateCredentials(ctx context.Context) (string, error) {
	// Resolving the credentials first tells "none found" (the user's to
	// fix) apart from STS being unreachable.
	if d.cfg.Credentials == nil {
		return "", fmt.Errorf("validate AWS credentials: no credential provider is configured%s", credentialsHint)
	}
	if _, err := d.cfg.Credentials.Retrieve(ctx); err != nil {
		hint := credentialsHint
		if ctx.Err() != nil {
			hint = ""
		}
		return "", fmt.Errorf("validate AWS credentials: resolve them from the default chain (profile %q): %w%s", d.access.Profile, err, hint)
	}
	out, err := d.sts().GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("validate AWS credentials with STS GetCallerIdentity: %w%s", err, stsHint(err))
	}
	return aws.ToString(out.Arn), nil
}

func (d *AWSDriver) sts() *sts.Client {
	return sts.NewFromConfig(d.cfg, func(o *sts.Options) {
		if d.access.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(d.access.STSEndpoint)
		}
	})
}

// EC2 returns a client for region, honouring ec2_endpoint.
func (d *AWSDriver) EC2(region string) EC2API {
	return ec2.NewFromConfig(d.cfg, func(o *ec2.Options) {
		o.Region = region
		if d.access.EC2Endpoint != "" {
			o.BaseEndpoint = aws.String(d.access.EC2Endpoint)
		}
	})
}

// SSM returns a client for region, honouring ssm_endpoint.
func (d *AWSDriver) SSM(region string) SSMAPI {
	return ssm.NewFromConfig(d.cfg, func(o *ssm.Options) {
		o.Region = region
		if d.access.SSMEndpoint != "" {
			o.BaseEndpoint = aws.String(d.access.SSMEndpoint)
		}
	})
}

// SessionPluginEnv is the environment for the session-manager-plugin
// process: the credentials the builder resolved (profile, assume_role and
// all), so the plugin signs its calls as the builder does without having
// to repeat that resolution. The plugin gets them in its own environment
// only.
func (d *AWSDriver) SessionPluginEnv(ctx context.Context) ([]string, error) {
	creds, err := d.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("retrieve AWS credentials for the session-manager-plugin: %w", err)
	}
	return []string{
		"AWS_ACCESS_KEY_ID=" + creds.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey,
		"AWS_SESSION_TOKEN=" + creds.SessionToken,
		// The credentials above replace any profile.
		"AWS_PROFILE=",
	}, nil
}

// DriverOption adjusts NewDriver.
type DriverOption func(*driverSettings)

type driverSettings struct {
	maxBackoff time.Duration
}

// WithMaxBackoff caps the retry back-off (tests against an emulator; the
// SDK's default cap is 20s).
func WithMaxBackoff(d time.Duration) DriverOption {
	return func(s *driverSettings) { s.maxBackoff = d }
}

const credentialsHint = "; configure credentials (environment, profile, or an instance role) or set skip_credential_validation"

// credentialErrorCodes are the AWS error codes that mean the credentials
// themselves are missing, wrong or expired.
var credentialErrorCodes = map[string]bool{
	"InvalidClientTokenId":        true,
	"UnrecognizedClientException": true,
	"SignatureDoesNotMatch":       true,
	"IncompleteSignature":         true,
	"ExpiredToken":                true,
	"ExpiredTokenException":       true,
	"RequestExpired":              true,
	"AuthFailure":                 true,
	"InvalidAccessKeyId":          true,
	"MissingAuthenticationToken":  true,
	"AccessDenied":                true,
	"AccessDeniedException":       true,
}

// stsHint says what to do about a failed credential check: configure
// credentials only when the credentials are the problem (none found,
// rejected or expired); check the endpoint when it could not be reached;
// nothing when the build was interrupted.
func stsHint(err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ""
	}
	var signing *v4.SigningError
	if errors.As(err, &signing) {
		return credentialsHint
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && credentialErrorCodes[apiErr.ErrorCode()] {
		return credentialsHint
	}
	var netErr net.Error // refused, reset, DNS, timeouts
	if errors.As(err, &netErr) {
		return "; STS could not be reached: check `sts_endpoint`, the network and proxy settings, or set skip_credential_validation for endpoints without STS"
	}
	return ""
}
