package boot

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// AWSSecrets reads SecureString parameters (decrypted) and Secrets Manager
// secrets with the default credential chain (the instance profile on EC2).
type AWSSecrets struct {
	ssm *ssm.Client
	sm  *secretsmanager.Client
}

// NewAWSSecrets builds the clients for region. ssmEndpoint and smEndpoint,
// when set, override the service endpoints (AWS_ENDPOINT_URL_SSM and
// AWS_ENDPOINT_URL_SECRETS_MANAGER are honoured too); imdsEndpoint points
// the instance-profile credential provider at the metadata service boot
// reads.
func NewAWSSecrets(ctx context.Context, region, ssmEndpoint, smEndpoint, imdsEndpoint string) (*AWSSecrets, error) {
	cfg, err := NodeAWSConfig(ctx, region, imdsEndpoint, "Parameter Store and Secrets Manager")
	if err != nil {
		return nil, err
	}
	return newAWSSecrets(cfg, ssmEndpoint, smEndpoint), nil
}

func newAWSSecrets(cfg aws.Config, ssmEndpoint, smEndpoint string) *AWSSecrets {
	return &AWSSecrets{
		ssm: ssm.NewFromConfig(cfg, func(o *ssm.Options) {
			if ssmEndpoint != "" {
				o.BaseEndpoint = aws.String(ssmEndpoint)
			}
		}),
		sm: secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
			if smEndpoint != "" {
				o.BaseEndpoint = aws.String(smEndpoint)
			}
		}),
	}
}

// GetSecret returns the plaintext of a parameter or secret. Errors name
// the reference and the permission needed, never a value; an AWS that does
// not answer (network, throttling, server errors after the SDK's retries)
// wraps errAWSUnavailable.
func (a *AWSSecrets) GetSecret(ctx context.Context, ref spec.SecretRef) ([]byte, error) {
	switch ref.Store {
	case spec.StoreSecretsManager:
		out, err := a.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(ref.Name)})
		if err != nil {
			return nil, classify(fmt.Errorf("read secret %s (the instance profile needs secretsmanager:GetSecretValue on it, and kms:Decrypt with a customer managed key): %w", ref, err), err)
		}
		if out.SecretString != nil && *out.SecretString != "" {
			return []byte(*out.SecretString), nil
		}
		if len(out.SecretBinary) > 0 {
			return out.SecretBinary, nil
		}
		return nil, fmt.Errorf("secret %s is empty; store the material in it", ref)
	default:
		out, err := a.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(ref.Name), WithDecryption: aws.Bool(true)})
		if err != nil {
			return nil, classify(fmt.Errorf("read SSM parameter %s (the instance profile needs ssm:GetParameter on it, and kms:Decrypt for a SecureString): %w", ref, err), err)
		}
		if out.Parameter == nil || out.Parameter.Value == nil || *out.Parameter.Value == "" {
			return nil, fmt.Errorf("SSM parameter %s is empty; store the material in it", ref)
		}
		if out.Parameter.Type != "SecureString" {
			return nil, fmt.Errorf("SSM parameter %s is a %s, not a SecureString: anyone allowed ssm:GetParameter or DescribeParameters reads it in clear; re-create it with --type SecureString", ref, out.Parameter.Type)
		}
		return []byte(*out.Parameter.Value), nil
	}
}

// classify marks errors where AWS did not answer, so boot keeps the last
// good material instead of failing.
func classify(wrapped, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ThrottlingException", "RequestLimitExceeded", "TooManyUpdates", "InternalServerError", "InternalServiceError", "InternalFailure", "ServiceUnavailable":
			return fmt.Errorf("%w (%w)", wrapped, errAWSUnavailable)
		}
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() >= http.StatusInternalServerError {
			return fmt.Errorf("%w (%w)", wrapped, errAWSUnavailable)
		}
		return wrapped
	}
	return fmt.Errorf("%w (%w)", wrapped, errAWSUnavailable)
}
