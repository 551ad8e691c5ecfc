//go:generate ../internal/tools/packer-sdc.sh struct-markdown

package spec

import (
	"fmt"
	"regexp"
	"strings"
)

// Security says where each cluster's TLS material and the `elastic`
// bootstrap password live in AWS. Nothing secret is baked: `esnode boot`
// fetches them with the instance's role on every boot (and `esnode
// security-refresh` without a reboot). Each value is a reference to a
// SecureString parameter or a secret: a Parameter Store name (`/es/{cluster}/transport/key`
// or `ssm:/es/...`), a Secrets Manager name (`secretsmanager:es/{cluster}/http.p12`),
// or the ARN of either. `{cluster}` is replaced by the node's cluster name,
// so one image serves many clusters. Userdata may override each field with
// the key `security_<field>` (such as `security_transport_key`).
//
// Transport TLS (PEM key, certificate and CA, or one PKCS#12) is what
// Elasticsearch 8 needs to start with security on and a non-loopback
// address; HTTP TLS is on when HTTP material is given.
type Security struct {
	// PEM private key of the node's transport certificate (PKCS#8 or
	// PKCS#1/SEC 1, unencrypted).
	TransportKey string `mapstructure:"transport_key" json:"transport_key,omitempty"`
	// PEM transport certificate (optionally followed by its chain); must
	// match `transport_key`, be valid now and be signed by `transport_ca`.
	TransportCertificate string `mapstructure:"transport_certificate" json:"transport_certificate,omitempty"`
	// PEM CA certificate(s) transport peers must be signed by. Nodes of
	// another cluster (another CA) cannot join.
	TransportCA string `mapstructure:"transport_ca" json:"transport_ca,omitempty"`
	// PKCS#12 (base64, as Parameter Store and Secrets Manager hold text)
	// with the transport key, certificate and CA, instead of the three PEM
	// fields. Secrets Manager holds up to 64 KB; a standard parameter 4 KB,
	// an advanced one 8 KB.
	TransportPKCS12 string `mapstructure:"transport_pkcs12" json:"transport_pkcs12,omitempty"`
	// Password of `transport_pkcs12`; put in the keystore as
	// `xpack.security.transport.ssl.{keystore,truststore}.secure_password`.
	TransportPKCS12Password string `mapstructure:"transport_pkcs12_password" json:"transport_pkcs12_password,omitempty"`
	// PEM private key of the node's HTTP certificate. HTTP TLS is on when
	// HTTP material is given.
	HTTPKey string `mapstructure:"http_key" json:"http_key,omitempty"`
	// PEM HTTP certificate (optionally with its chain).
	HTTPCertificate string `mapstructure:"http_certificate" json:"http_certificate,omitempty"`
	// PEM CA that signed the HTTP certificate (optional; checked when given).
	HTTPCA string `mapstructure:"http_ca" json:"http_ca,omitempty"`
	// PKCS#12 (base64) with the HTTP key and certificate, instead of the PEM
	// fields.
	HTTPPKCS12 string `mapstructure:"http_pkcs12" json:"http_pkcs12,omitempty"`
	// Password of `http_pkcs12`.
	HTTPPKCS12Password string `mapstructure:"http_pkcs12_password" json:"http_pkcs12_password,omitempty"`
	// The `elastic` user's password, put in the keystore as
	// `bootstrap.password` on the node's first boot only (Elasticsearch
	// hashes it into the security index when the cluster first forms).
	// `esnode drain` reads it too, to call the cluster settings APIs on
	// scale-in.
	ElasticPassword string `mapstructure:"elastic_password" json:"elastic_password,omitempty"`
}

// SecurityFields are the Security fields, in the order they are fetched,
// by their spec (and, prefixed `security_`, userdata) names.
var SecurityFields = []string{
	"transport_key", "transport_certificate", "transport_ca", "transport_pkcs12", "transport_pkcs12_password",
	"http_key", "http_certificate", "http_ca", "http_pkcs12", "http_pkcs12_password",
	"elastic_password",
}

// Field returns a field by its SecurityFields name.
func (s *Security) Field(name string) *string {
	switch name {
	case "transport_key":
		return &s.TransportKey
	case "transport_certificate":
		return &s.TransportCertificate
	case "transport_ca":
		return &s.TransportCA
	case "transport_pkcs12":
		return &s.TransportPKCS12
	case "transport_pkcs12_password":
		return &s.TransportPKCS12Password
	case "http_key":
		return &s.HTTPKey
	case "http_certificate":
		return &s.HTTPCertificate
	case "http_ca":
		return &s.HTTPCA
	case "http_pkcs12":
		return &s.HTTPPKCS12
	case "http_pkcs12_password":
		return &s.HTTPPKCS12Password
	case "elastic_password":
		return &s.ElasticPassword
	}
	return nil
}

// Transport reports whether transport material is configured.
func (s Security) Transport() bool {
	return s.TransportKey != "" || s.TransportCertificate != "" || s.TransportCA != "" || s.TransportPKCS12 != ""
}

// HTTP reports whether HTTP material is configured.
func (s Security) HTTP() bool {
	return s.HTTPKey != "" || s.HTTPCertificate != "" || s.HTTPCA != "" || s.HTTPPKCS12 != ""
}

// Secret stores a reference can name.
const (
	StoreSSM            = "ssm"
	StoreSecretsManager = "secretsmanager"
)

// SecretRef is a parsed reference to a parameter or secret.
type SecretRef struct {
	Store string // StoreSSM or StoreSecretsManager
	// Name is what GetParameter / GetSecretValue take: a name or an ARN,
	// with {cluster} replaced.
	Name string
}

var (
	ssmRefName = regexp.MustCompile(`^[A-Za-z0-9_.\-/{}]+$`)
	smRefName  = boundedChars(`[A-Za-z0-9/_+=.@\-{}]`, 1, 512)
	ssmARN     = regexp.MustCompile(`^arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter/.+$`)
	smARN      = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$`)
)

// ParseSecretRef reads a reference: `NAME` or `ssm:NAME` (Parameter Store),
// `secretsmanager:NAME`, or an ARN of either service. cluster replaces
// `{cluster}` ("" leaves it, for validation at bake).
func ParseSecretRef(ref, cluster string) (SecretRef, error) {
	r := strings.TrimSpace(ref)
	var out SecretRef
	switch {
	case strings.HasPrefix(r, "arn:"):
		switch {
		case ssmARN.MatchString(r):
			out = SecretRef{StoreSSM, r}
		case smARN.MatchString(r):
			out = SecretRef{StoreSecretsManager, r}
		default:
			return out, fmt.Errorf("%q is not the ARN of a Parameter Store parameter (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME) or a Secrets Manager secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)", ref)
		}
	case strings.HasPrefix(r, StoreSecretsManager+":"):
		out = SecretRef{StoreSecretsManager, strings.TrimPrefix(r, StoreSecretsManager+":")}
		if !smRefName.MatchString(out.Name) {
			return out, fmt.Errorf("%q is not a Secrets Manager secret name (letters, digits and /_+=.@-, at most 512)", ref)
		}
	default:
		out = SecretRef{StoreSSM, strings.TrimPrefix(r, StoreSSM+":")}
		if !ssmRefName.MatchString(out.Name) || len(out.Name) > 2048 {
			return out, fmt.Errorf("%q is not a Parameter Store name (letters, digits and _.-/, at most 2048; or prefix secretsmanager: for a secret)", ref)
		}
	}
	if rest := strings.ReplaceAll(out.Name, "{cluster}", ""); strings.ContainsAny(rest, "{}") {
		return out, fmt.Errorf("%q has a placeholder other than {cluster}", ref)
	}
	if cluster != "" {
		out.Name = strings.ReplaceAll(out.Name, "{cluster}", cluster)
	}
	return out, nil
}

// String is the reference as written, resolved.
func (r SecretRef) String() string {
	if r.Store == StoreSecretsManager && !strings.HasPrefix(r.Name, "arn:") {
		return StoreSecretsManager + ":" + r.Name
	}
	return r.Name
}

// CheckSecurity checks a Security whose references may still hold
// {cluster}; prefix names the fields in messages ("security." in a spec,
// "security_" in userdata). It returns one message per problem.
func CheckSecurity(s Security, prefix string) []*FieldError {
	var errs []*FieldError
	add := func(f, format string, a ...any) {
		errs = append(errs, &FieldError{Field: prefix + f, Problem: fmt.Sprintf(format, a...)})
	}
	for _, f := range SecurityFields {
		if v := *s.Field(f); v != "" {
			if _, err := ParseSecretRef(v, ""); err != nil {
				add(f, "%v", err)
			}
		}
	}
	for _, layer := range []struct {
		name                        string
		key, cert, ca, p12, p12Pass string
		caRequired                  bool
	}{
		{"transport", s.TransportKey, s.TransportCertificate, s.TransportCA, s.TransportPKCS12, s.TransportPKCS12Password, true},
		{"http", s.HTTPKey, s.HTTPCertificate, s.HTTPCA, s.HTTPPKCS12, s.HTTPPKCS12Password, false},
	} {
		pem := layer.key != "" || layer.cert != "" || (layer.ca != "" && layer.p12 == "")
		switch {
		case layer.p12 != "" && (layer.key != "" || layer.cert != ""):
			add(layer.name+"_pkcs12", "give the %s material either as PEM (%s_key, %s_certificate) or as one PKCS#12, not both", layer.name, layer.name, layer.name)
		case layer.p12 != "" && layer.p12Pass == "":
			add(layer.name+"_pkcs12_password", "is required with %s_pkcs12: name the parameter holding the PKCS#12 password", layer.name)
		case layer.p12 == "" && layer.p12Pass != "":
			add(layer.name+"_pkcs12_password", "is set without %s_pkcs12; remove it or name the PKCS#12", layer.name)
		case pem && (layer.key == "" || layer.cert == ""):
			add(layer.name+"_key", "%s TLS needs both %s_key and %s_certificate (PEM)", layer.name, layer.name, layer.name)
		case pem && layer.caRequired && layer.ca == "":
			add(layer.name+"_ca", "is required with PEM transport material: Elasticsearch verifies every peer against this CA (mutual TLS), so nodes of other clusters cannot join")
		}
	}
	return errs
}
