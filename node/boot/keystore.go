package boot

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
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
	cfg, err := NodeAWSConfig(ctx, region, imdsEndpoint, "Parameter Store")
	if err != nil {
		return nil, err
	}
	return newSSMParams(cfg, endpoint), nil
}

func newSSMParams(cfg aws.Config, endpoint string) *SSMParams {
	c := ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return &SSMParams{client: c}
}

// ssmParams is boot's Parameter Store client, on the boot's shared AWS
// configuration.
func (e *bootEnv) ssmParams(ctx context.Context, region string) (*SSMParams, error) {
	cfg, err := e.aws.config(ctx, region, "Parameter Store")
	if err != nil {
		return nil, err
	}
	return newSSMParams(cfg, e.o.SSMEndpoint), nil
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

// discoveryKeystoreKeys are the secure settings boot puts in the keystore
// when userdata names the discovery keys' SSM parameters.
var discoveryKeystoreKeys = []string{"discovery.ec2.access_key", "discovery.ec2.secret_key"}

// keystoreKeysFor lists the secure settings this boot manages.
func keystoreKeysFor(ud *Userdata) []string {
	if ud != nil && ud.DiscoveryAccessKeyParam != "" {
		return append([]string(nil), discoveryKeystoreKeys...)
	}
	return nil
}

// staleKeystoreKeys are the keys an earlier boot put in the keystore that
// this boot no longer manages: once userdata stops naming the SSM
// parameters (a move to the instance profile), the old long-lived keys
// must go, or discovery keeps using them. Only keys esnode recorded as
// its own are listed; a key added by hand is never one. A state written
// before keystore_keys existed counts the keys its userdata named.
func staleKeystoreKeys(prev *State, want []string) []string {
	if prev == nil {
		return nil
	}
	had := prev.KeystoreKeys
	if had == nil {
		had = keystoreKeysFor(prev.Userdata)
	}
	keep := map[string]bool{}
	for _, k := range want {
		keep[k] = true
	}
	var out []string
	for _, k := range had {
		if !keep[k] {
			out = append(out, k)
		}
	}
	return out
}

// keystoreList lists the keystore's settings, one a line.
func keystoreList() Command {
	return Command{Name: KeystoreTool, Args: []string{"list"}, Env: []string{"ES_PATH_CONF=/etc/elasticsearch"}}
}

// keystoreRemoveCommand removes the stale keys the keystore still holds
// (list is its output); nil when none is there (a user may have removed
// them already, and remove fails on a missing setting).
func keystoreRemoveCommand(stale []string, list []byte) *Command {
	present := map[string]bool{}
	for _, l := range strings.Split(string(list), "\n") {
		present[strings.TrimSpace(l)] = true
	}
	var rm []string
	for _, k := range stale {
		if present[k] {
			rm = append(rm, k)
		}
	}
	if len(rm) == 0 {
		return nil
	}
	return &Command{Name: KeystoreTool, Args: append([]string{"remove"}, rm...), Env: []string{"ES_PATH_CONF=/etc/elasticsearch"}}
}
