package boot

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// KeystoreTool is Elasticsearch's keystore command, as its package installs it.
const KeystoreTool = "/usr/share/elasticsearch/bin/elasticsearch-keystore"

// ParamStore reads SecureString parameters.
type ParamStore interface {
	GetParameter(ctx context.Context, name string) (string, error)
}

// SSMParams reads parameters from AWS Systems Manager Parameter Store.
type SSMParams struct{ client *ssm.Client }

// NewSSMParams builds a Parameter Store client for region, using the
// default credential chain (the instance profile on EC2). endpoint, when
// set, overrides the service endpoint; AWS_ENDPOINT_URL_SSM is honoured too.
// imdsEndpoint points the instance-profile credential provider at the same
// metadata service boot reads.
func NewSSMParams(ctx context.Context, region, endpoint, imdsEndpoint string) (*SSMParams, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if imdsEndpoint != "" {
		opts = append(opts, config.WithEC2IMDSEndpoint(imdsEndpoint))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration for Parameter Store: %w", err)
	}
	c := ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return &SSMParams{client: c}, nil
}

// GetParameter returns the decrypted value of a parameter.
func (p *SSMParams) GetParameter(ctx context.Context, name string) (string, error) {
	out, err := p.client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("read SSM parameter %s (the instance profile needs ssm:GetParameter on it, and kms:Decrypt for a SecureString): %w", name, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil || *out.Parameter.Value == "" {
		return "", fmt.Errorf("SSM parameter %s is empty; store the discovery key in it", name)
	}
	return *out.Parameter.Value, nil
}

// keystoreAdd adds one secure setting; the value goes on stdin only.
func keystoreAdd(setting, value string) Command {
	return Command{
		Name:  KeystoreTool,
		Args:  []string{"add", "--stdin", "--force", setting},
		Env:   []string{"ES_PATH_CONF=/etc/elasticsearch"},
		Stdin: []byte(value),
	}
}
