package spec

import (
	"strings"
	"testing"
)

// TestSecurityValidation: each bad security section gets a message naming
// the field and what to do; good ones pass.
func TestSecurityValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Security
		want string // "" = valid
	}{
		{"pem", Security{TransportKey: "/es/{cluster}/tk", TransportCertificate: "/es/{cluster}/tc", TransportCA: "ssm:/es/{cluster}/ca", ElasticPassword: "secretsmanager:es/{cluster}/elastic"}, ""},
		{"pkcs12 arn", Security{TransportPKCS12: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:es/prod/t.p12-AbCdEf", TransportPKCS12Password: "arn:aws:ssm:eu-west-1:123456789012:parameter/es/prod/pw"}, ""},
		{"http only pem", Security{HTTPKey: "/k", HTTPCertificate: "/c"}, ""},
		{"no ca", Security{TransportKey: "/k", TransportCertificate: "/c"}, "security.transport_ca: is required with PEM transport material"},
		{"key alone", Security{TransportKey: "/k", TransportCA: "/ca"}, "security.transport_key: transport TLS needs both transport_key and transport_certificate"},
		{"both forms", Security{TransportKey: "/k", TransportCertificate: "/c", TransportPKCS12: "/p", TransportPKCS12Password: "/pw"}, "security.transport_pkcs12: give the transport material either as PEM"},
		{"p12 no password", Security{HTTPPKCS12: "/p"}, "security.http_pkcs12_password: is required with http_pkcs12"},
		{"bad name", Security{ElasticPassword: "/es/my cluster"}, `security.elastic_password: "/es/my cluster" is not a Parameter Store name`},
		{"bad arn", Security{ElasticPassword: "arn:aws:s3:::bucket/key"}, "is not the ARN of a Parameter Store parameter"},
		{"bad placeholder", Security{ElasticPassword: "/es/{name}/pw"}, "has a placeholder other than {cluster}"},
	} {
		n := Node{Elasticsearch: Elasticsearch{Version: "8.15.3"}, Security: tc.s}
		n.SetDefaults()
		err := n.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	r, err := ParseSecretRef("secretsmanager:es/{cluster}/http.p12", "prod")
	if err != nil || r.Store != StoreSecretsManager || r.Name != "es/prod/http.p12" {
		t.Errorf("ref %+v %v", r, err)
	}
	// A spec without security hashes as before the section existed.
	a := Node{Elasticsearch: Elasticsearch{Version: "8.15.3"}}
	if b, _ := a.MarshalJSON(); strings.Contains(string(b), "security") {
		t.Errorf("an empty security section is written: %s", b)
	}
}
