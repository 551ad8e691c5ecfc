package boot

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
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

// batchKeystoreAdds merges the keystore additions into one command where
// the tool takes several settings, one value a line on stdin (7.8 and
// later; 7.6's `add` takes one setting): the real tool is a JVM that
// decrypts and re-encrypts the keystore each run, a second or more on a
// small instance. Values holding a line break keep their own command.
func batchKeystoreAdds(cmds []Command, ver spec.Version) []Command {
	if ver.Major < 7 || ver.Major == 7 && ver.Minor < 8 {
		return cmds
	}
	var out []Command
	batch := -1 // index in out of the merged command
	for _, c := range cmds {
		name, value, ok := singleKeystoreAdd(c)
		if !ok || strings.ContainsAny(value, "\r\n") {
			out = append(out, c)
			continue
		}
		if batch < 0 {
			batch = len(out)
			out = append(out, keystoreAdd(name, value))
			continue
		}
		b := &out[batch]
		b.Args = append(b.Args, name)
		b.Stdin = append(append(b.Stdin, '\n'), value...)
	}
	return out
}

// singleKeystoreAdd reads a keystoreAdd command back.
func singleKeystoreAdd(c Command) (name, value string, ok bool) {
	if c.Name != KeystoreTool || len(c.Args) != 4 || c.Args[0] != "add" || c.Args[1] != "--stdin" || c.Args[2] != "--force" {
		return "", "", false
	}
	return c.Args[3], string(c.Stdin), true
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
