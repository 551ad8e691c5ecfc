package boot

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	gopkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/esbake/packer-plugin-elasticsearch/audit/eval"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
	"github.com/esbake/packer-plugin-elasticsearch/spec"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testpki"
)

// memSecrets is a SecretStore from a map (reference string -> value).
type memSecrets map[string]string

func (m memSecrets) GetSecret(_ context.Context, ref spec.SecretRef) ([]byte, error) {
	v, ok := m[ref.String()]
	if !ok {
		return nil, fmt.Errorf("read SSM parameter %s: ParameterNotFound", ref)
	}
	return []byte(v), nil
}

var securitySpec = spec.Security{
	TransportKey: "/es/{cluster}/transport/key", TransportCertificate: "/es/{cluster}/transport/cert", TransportCA: "/es/{cluster}/transport/ca",
	HTTPPKCS12: "secretsmanager:es/{cluster}/http.p12", HTTPPKCS12Password: "/es/{cluster}/http/p12-password",
	ElasticPassword: "/es/{cluster}/elastic-password",
}

func securityRoot(t *testing.T) string {
	t.Helper()
	root := testRoot(t, spec.Node{Elasticsearch: spec.Elasticsearch{Version: "8.15.3"}, Cluster: spec.Cluster{Name: "prod"}, Security: securitySpec}, 8*1024*1024)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte(fmt.Sprintf("root:x:0:\nelasticsearch:x:%d:\n", os.Getgid())), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestBootSecurityFromEmulator: material in Parameter Store (SecureString)
// and Secrets Manager (a base64 PKCS#12) reaches the node through the real
// AWS clients: files root:elasticsearch 0640, the xpack.security settings,
// keystore passwords on stdin, bootstrap.password on the first boot only;
// a rotated certificate is picked up by the next boot; when AWS stops
// answering the last good material stays; no secret appears in any output,
// boot.json or error.
func TestBootSecurityFromEmulator(t *testing.T) {
	srv := ec2emu.New(ec2emu.Options{Regions: []string{"cn-north-1"}})
	url := srv.Start()
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDIN")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "stand-in")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("cn-north-1"))
	if err != nil {
		t.Fatal(err)
	}
	ssmc := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(url) })
	smc := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(url) })
	put := func(name, value string) {
		t.Helper()
		if _, err := ssmc.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value), Type: "SecureString", Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	pki := testpki.NewCA(t, "prod transport CA")
	keyPEM, certPEM, _, _ := pki.Issue(t, "node.prod", time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	httpKeyPEM, httpCertPEM, httpKey, httpCert := pki.Issue(t, "es.prod.example.com", time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	p12pw := "p12-Stand-In-Password-7f3a"
	p12, err := gopkcs12.Modern.Encode(httpKey, httpCert, []*x509.Certificate{pki.Cert}, p12pw)
	if err != nil {
		t.Fatal(err)
	}
	elasticPW := "elastic-Stand-In-Password-91c2"
	put("/es/prod/transport/key", string(keyPEM))
	put("/es/prod/transport/cert", string(certPEM))
	put("/es/prod/transport/ca", string(pki.PEM))
	put("/es/prod/http/p12-password", p12pw)
	put("/es/prod/elastic-password", elasticPW)
	if _, err := smc.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("es/prod/http.p12"), SecretString: aws.String(base64.StdEncoding.EncodeToString(p12))}); err != nil {
		t.Fatal(err)
	}
	secrets := []string{elasticPW, p12pw, strings.Split(string(keyPEM), "\n")[1], strings.Split(string(httpKeyPEM), "\n")[1]}
	_ = httpCertPEM

	root := securityRoot(t)
	var out bytes.Buffer
	boot := func() (*Result, *RecordingRunner, error) {
		rr := &RecordingRunner{Output: map[string][]byte{KeystoreTool + " list": []byte("keystore.seed\n")}}
		res, err := Run(ctx, Options{Root: root, IMDSEndpoint: fakeIMDSv2(t, baseMetadata("")), IMDSTimeout: 20 * time.Second,
			Out: &out, Runner: rr, Firewall: &RecordingFirewall{}, SSMEndpoint: url, SecretsManagerEndpoint: url})
		return res, rr, err
	}
	noSecrets := func(where string, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("a secret value appears in %s", where)
			}
		}
	}
	// What the keystore got, read as the tool reads it: one value a line
	// on stdin for each setting named.
	stdin := func(rr *RecordingRunner) map[string]string {
		m := map[string]string{}
		for _, c := range rr.Commands {
			if c.Name == KeystoreTool && c.Args[0] == "add" {
				names := c.Args[3:]
				values := strings.Split(string(c.Stdin), "\n")
				if len(values) != len(names) {
					t.Errorf("keystore add of %d settings with %d values on stdin", len(names), len(values))
					continue
				}
				for i, n := range names {
					m[n] = values[i]
				}
			}
		}
		return m
	}

	// First boot.
	res, rr, err := boot()
	if err != nil {
		t.Fatalf("boot: %v\n%s", err, out.String())
	}
	for name, want := range map[string][]byte{"transport.key": keyPEM, "transport.crt": certPEM, "transport-ca.crt": pki.PEM, "http.p12": p12} {
		p := filepath.Join(root, SecurityCertsDir, name)
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("%s: %v (content equal: %v)", name, err, bytes.Equal(b, want))
			continue
		}
		st, _ := os.Stat(p)
		if st.Mode().Perm() != 0o640 || st.Sys().(*syscall.Stat_t).Gid != uint32(os.Getgid()) {
			t.Errorf("%s: mode %v gid %d, want 0640 group elasticsearch", name, st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid)
		}
	}
	yml, _ := os.ReadFile(filepath.Join(root, ElasticsearchYML))
	for _, want := range []string{"xpack.security.enabled: true", "xpack.security.transport.ssl.enabled: true",
		"xpack.security.transport.ssl.key: certs/esnode/transport.key", "xpack.security.transport.ssl.certificate: certs/esnode/transport.crt",
		"xpack.security.transport.ssl.certificate_authorities: [certs/esnode/transport-ca.crt]",
		"xpack.security.transport.ssl.verification_mode: certificate", "xpack.security.transport.ssl.client_authentication: required",
		"xpack.security.http.ssl.enabled: true", "xpack.security.http.ssl.keystore.path: certs/esnode/http.p12"} {
		if !strings.Contains(string(yml), want+"\n") {
			t.Errorf("elasticsearch.yml lacks %q:\n%s", want, yml)
		}
	}
	ks := stdin(rr)
	if ks["bootstrap.password"] != elasticPW || ks["xpack.security.http.ssl.keystore.secure_password"] != p12pw {
		t.Errorf("keystore additions %v", keysOf(ks))
	}
	// 8.x's tool takes every setting in one run (one JVM start).
	adds := 0
	for _, c := range rr.Commands {
		if c.Name == KeystoreTool && c.Args[0] == "add" {
			adds++
		}
	}
	if adds != 1 {
		t.Errorf("%d keystore add commands, want one for all %d settings", adds, len(ks))
	}
	st, _ := ReadState(root)
	if st.Security == nil || !st.Security.ElasticPasswordSet || !st.Security.Transport || !st.Security.HTTP || st.Security.References["transport_key"] != "/es/prod/transport/key" {
		t.Errorf("boot.json security %+v", st.Security)
	}
	stateBytes, _ := os.ReadFile(filepath.Join(root, StatePath))
	noSecrets("boot.json", string(stateBytes))
	noSecrets("Result.Ran", strings.Join(res.Ran, "\n"))

	// Second boot: no bootstrap.password; nothing rewritten.
	if _, rr, err = boot(); err != nil {
		t.Fatal(err)
	}
	if _, ok := stdin(rr)["bootstrap.password"]; ok {
		t.Error("bootstrap.password added again after the first boot")
	}

	// Rotation: a new transport certificate in Parameter Store (a new
	// version) reaches the node on the next boot.
	key2, cert2, _, _ := pki.Issue(t, "node.prod", time.Now().Add(-time.Hour), time.Now().Add(180*24*time.Hour))
	put("/es/prod/transport/key", string(key2))
	put("/es/prod/transport/cert", string(cert2))
	secrets = append(secrets, strings.Split(string(key2), "\n")[1])
	if _, _, err = boot(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, SecurityCertsDir, "transport.crt")); !bytes.Equal(b, cert2) {
		t.Error("the rotated certificate did not reach the node")
	}

	// Rotation without a reboot: esnode security-refresh.
	key3, cert3, _, _ := pki.Issue(t, "node.prod", time.Now().Add(-time.Hour), time.Now().Add(200*24*time.Hour))
	put("/es/prod/transport/key", string(key3))
	put("/es/prod/transport/cert", string(cert3))
	secrets = append(secrets, strings.Split(string(key3), "\n")[1])
	rr = &RecordingRunner{}
	ref, err := RefreshSecurity(ctx, Options{Root: root, IMDSEndpoint: fakeIMDSv2(t, baseMetadata("")), IMDSTimeout: 20 * time.Second,
		Out: &out, Runner: rr, SSMEndpoint: url, SecretsManagerEndpoint: url})
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, SecurityCertsDir, "transport.crt")); !bytes.Equal(b, cert3) || len(ref.Written) != 2 || ref.NeedsBoot {
		t.Errorf("refresh: written %v, needs boot %v, certificate replaced %v", ref.Written, ref.NeedsBoot, bytes.Equal(b, cert3))
	}
	if _, ok := stdin(rr)["bootstrap.password"]; ok {
		t.Error("refresh added bootstrap.password")
	}
	noSecrets("refresh's commands", strings.Join(ref.Ran, "\n"))
	cert2 = cert3

	// AWS stops answering: the last good material and settings stay.
	srv.InjectFault(ec2emu.Fault{Action: "GetParameter", Code: "InternalServerError", Count: 1000})
	if _, _, err = boot(); err != nil {
		t.Fatalf("boot with AWS down: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, SecurityCertsDir, "transport.crt")); !bytes.Equal(b, cert2) {
		t.Error("the last good certificate was not kept")
	}
	if !strings.Contains(out.String(), "keeping the last good TLS material") {
		t.Errorf("no warning about keeping the last good material:\n%s", out.String())
	}
	if y2, _ := os.ReadFile(filepath.Join(root, ElasticsearchYML)); !strings.Contains(string(y2), "xpack.security.transport.ssl.key: certs/esnode/transport.key\n") {
		t.Errorf("settings lost while AWS was down:\n%s", y2)
	}
	// A first boot with AWS down fails closed.
	fresh := securityRoot(t)
	_, err = Run(ctx, Options{Root: fresh, IMDSEndpoint: fakeIMDSv2(t, baseMetadata("")), IMDSTimeout: 20 * time.Second,
		Out: &out, Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{}, SSMEndpoint: url, SecretsManagerEndpoint: url})
	if err == nil || !strings.Contains(err.Error(), "/es/prod/") {
		t.Errorf("first boot with AWS down: %v", err)
	} else {
		noSecrets("an error", err.Error())
	}
	noSecrets("boot's output", out.String())
}

// TestBootSecurityRefusals: a key that does not match its certificate, an
// expired certificate and one another CA signed are refused, each with a
// message naming the parameter; the node is left as it was.
func TestBootSecurityRefusals(t *testing.T) {
	pki, other := testpki.NewCA(t, "prod CA"), testpki.NewCA(t, "other cluster CA")
	_, cert, _, _ := pki.Issue(t, "n", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	key2, _, _, _ := pki.Issue(t, "n", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	expKey, expCert, _, _ := pki.Issue(t, "n", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	othKey, othCert, _, _ := other.Issue(t, "n", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	sec := spec.Security{TransportKey: "/es/{cluster}/transport/key", TransportCertificate: "/es/{cluster}/transport/cert", TransportCA: "/es/{cluster}/transport/ca"}
	for _, tc := range []struct {
		name      string
		key, cert string
		want      string
	}{
		{"mismatch", string(key2), string(cert), "the private key in security transport_key (/es/prod/transport/key) does not match the certificate in security transport_certificate (/es/prod/transport/cert)"},
		{"expired", string(expKey), string(expCert), "the certificate in security transport_certificate (/es/prod/transport/cert) (subject CN=n) expired on"},
		{"other CA", string(othKey), string(othCert), "is not signed by the CA in security transport_ca (/es/prod/transport/ca)"},
		{"not PEM", "not a key", string(cert), "security transport_key (/es/prod/transport/key): holds no PEM private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testRoot(t, spec.Node{Elasticsearch: spec.Elasticsearch{Version: "8.15.3"}, Cluster: spec.Cluster{Name: "prod"}, Security: sec}, 8*1024*1024)
			before, _ := os.ReadFile(filepath.Join(root, ElasticsearchYML))
			var out bytes.Buffer
			_, err := Run(context.Background(), Options{Root: root, IMDSEndpoint: fakeIMDSv2(t, baseMetadata("")), IMDSTimeout: 20 * time.Second,
				Out: &out, Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{},
				Secrets: memSecrets{"/es/prod/transport/key": tc.key, "/es/prod/transport/cert": tc.cert, "/es/prod/transport/ca": string(pki.PEM)}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
			if lines := strings.Split(tc.key, "\n"); len(lines) > 1 && strings.Contains(err.Error()+out.String(), lines[1]) {
				t.Error("the key appears in the error or output")
			}
			if after, _ := os.ReadFile(filepath.Join(root, ElasticsearchYML)); !bytes.Equal(before, after) {
				t.Error("elasticsearch.yml changed by a refused boot")
			}
			if _, err := os.Stat(filepath.Join(root, SecurityCertsDir)); err == nil {
				t.Error("material written by a refused boot")
			}
		})
	}
}

// TestUserdataSecurityOverrides: userdata security_* keys replace the
// spec's layer; bad references are refused with the key's line.
func TestUserdataSecurityOverrides(t *testing.T) {
	ud, err := ParseUserdata([]byte("security_transport_pkcs12=secretsmanager:es/{cluster}/t.p12\nsecurity_transport_pkcs12_password=/es/{cluster}/t-pw\n"))
	if err != nil {
		t.Fatal(err)
	}
	eff := effectiveSecurity(securitySpec, ud.Security)
	if eff.TransportKey != "" || eff.TransportPKCS12 != "secretsmanager:es/{cluster}/t.p12" || eff.HTTPPKCS12 != securitySpec.HTTPPKCS12 {
		t.Errorf("effective %+v", eff)
	}
	if errs := spec.CheckSecurity(eff, "security "); len(errs) != 0 {
		t.Errorf("valid override refused: %v", errs)
	}
	if _, err := ParseUserdata([]byte("security_elastic_password=arn:aws:s3:::b/k\n")); err == nil || !strings.Contains(err.Error(), "line 1: security_elastic_password") {
		t.Errorf("bad reference: %v", err)
	}
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestSecurityFactsAndAudit: after a boot with a certificate expiring in
// 10 days, the facts describe it (subject, fingerprint, expiry) without any
// key material, and the audit flags it (ES-SEC-012); with transport TLS
// then turned off by hand, ES-SEC-007.
func TestSecurityFactsAndAudit(t *testing.T) {
	pki := testpki.NewCA(t, "prod CA")
	key, cert, _, _ := pki.Issue(t, "node.prod", time.Now().Add(-time.Hour), time.Now().Add(10*24*time.Hour))
	sec := spec.Security{TransportKey: "/es/{cluster}/transport/key", TransportCertificate: "/es/{cluster}/transport/cert", TransportCA: "/es/{cluster}/transport/ca"}
	root := testRoot(t, spec.Node{Elasticsearch: spec.Elasticsearch{Version: "8.15.3"}, Cluster: spec.Cluster{Name: "prod"}, Security: sec}, 8*1024*1024)
	var out bytes.Buffer
	if _, err := Run(context.Background(), Options{Root: root, IMDSEndpoint: fakeIMDSv2(t, baseMetadata("")), IMDSTimeout: 20 * time.Second,
		Out: &out, Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{},
		Secrets: memSecrets{"/es/prod/transport/key": string(key), "/es/prod/transport/cert": string(cert), "/es/prod/transport/ca": string(pki.PEM)}}); err != nil {
		t.Fatalf("boot: %v\n%s", err, out.String())
	}
	audit := func() (string, map[string]bool) {
		t.Helper()
		f, err := facts.Collect(context.Background(), facts.Options{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := f.JSON()
		e, err := eval.New(context.Background(), eval.Options{Stage: eval.StageAudit})
		if err != nil {
			t.Fatal(err)
		}
		fs, err := e.Evaluate(context.Background(), eval.Input{Facts: f, Policy: eval.DefaultPolicyOptions()})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, x := range fs {
			ids[x.RuleID] = true
		}
		return string(doc), ids
	}
	doc, ids := audit()
	if !strings.Contains(doc, `"subject": "CN=node.prod"`) || !strings.Contains(doc, `"issuer": "CN=prod CA"`) || !strings.Contains(doc, `"dns_names": [`) {
		t.Errorf("facts lack the certificate's description:\n%s", doc)
	}
	if body := strings.Split(string(key), "\n")[1]; strings.Contains(doc, body) || strings.Contains(doc, "PRIVATE KEY") {
		t.Error("key material in the facts document")
	}
	if !ids["ES-SEC-012"] || ids["ES-SEC-011"] || ids["ES-SEC-007"] {
		t.Errorf("findings %v; want ES-SEC-012 (expires in 10 days) only among the TLS rules", ids)
	}
	// Transport TLS turned off by hand.
	yml := filepath.Join(root, ElasticsearchYML)
	b, _ := os.ReadFile(yml)
	os.WriteFile(yml, bytes.Replace(b, []byte("xpack.security.transport.ssl.enabled: true"), []byte("xpack.security.transport.ssl.enabled: false"), 1), 0o640)
	if _, ids = audit(); !ids["ES-SEC-007"] {
		t.Errorf("transport TLS off not flagged: %v", ids)
	}
}

// noSlots fails the test if boot touches a bootstrap slot.
type noSlots struct{ t *testing.T }

func (s noSlots) GetSlots(context.Context, []string) (map[string]string, error) {
	s.t.Error("a bootstrap slot was read")
	return nil, fmt.Errorf("no slots")
}

func (s noSlots) PutIfAbsent(context.Context, string, string) (bool, error) {
	s.t.Error("a bootstrap slot was claimed")
	return false, fmt.Errorf("no slots")
}

// TestBootRefusesSecurityWithoutTransportTLS: boot fails closed, before
// claiming a bootstrap slot and without changing a file, on a node
// Elasticsearch would refuse for its transport TLS bootstrap check (8.x:
// security on by default; 7.x: security explicitly on), and lets through
// what Elasticsearch accepts: transport TLS, security off in the image's
// elasticsearch.yml, single-node discovery, 7.x without security, 6.x.
func TestBootRefusesSecurityWithoutTransportTLS(t *testing.T) {
	pwOnly := spec.Security{ElasticPassword: "/es/{cluster}/elastic-password"}
	for _, tc := range []struct {
		name, version string
		sec           spec.Security
		yml           string // appended to the image's elasticsearch.yml
		want          []string
	}{
		{"8x-default", "8.15.3", spec.Security{}, "", []string{"Elasticsearch 8.15.3 would refuse to start: security is on (the 8.x default), transport TLS is off",
			"TransportTLSBootstrapCheck", "security section (transport_key, transport_certificate and transport_ca", "userdata (security_transport_key=",
			"xpack.security.enabled: false", "The last good configuration was left untouched"}},
		{"8x-explicit", "8.15.3", spec.Security{}, "xpack.security.enabled: true\n", []string{"elasticsearch.yml sets xpack.security.enabled: true"}},
		{"8x-password-only", "8.15.3", pwOnly, "", []string{"the security section names no transport material"}},
		{"8x-security-off", "8.15.3", spec.Security{}, "xpack.security.enabled: false\n", nil},
		{"8x-security-off-string", "8.15.3", spec.Security{}, "xpack.security.enabled: \"false\"\n", nil},
		{"8x-single-node", "8.15.3", spec.Security{}, "discovery.type: single-node\n", nil},
		{"8x-own-transport-tls", "8.15.3", spec.Security{}, "xpack.security.transport.ssl.enabled: true\n", nil},
		{"7x-password-only", "7.17.25", pwOnly, "", []string{"Elasticsearch 7.17.25 would refuse every restart", "TLSLicenseBootstrapCheck", "on a [basic] license"}},
		{"7x-default", "7.17.25", spec.Security{}, "", nil},
		{"6x-password-only", "6.8.23", pwOnly, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A refused node would bootstrap a three-master cluster: it must not claim a slot.
			n := spec.Node{Elasticsearch: spec.Elasticsearch{Version: tc.version}, Cluster: spec.Cluster{Name: "prod"}, Security: tc.sec}
			if tc.want != nil || tc.version < "7" { // 6.x: zen, no slots
				n.Cluster.MasterNodes = 3
			}
			root := testRoot(t, n, 8*1024*1024)
			yml := filepath.Join(root, ElasticsearchYML)
			f, err := os.OpenFile(yml, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(tc.yml)
			f.Close()
			before := snapshot(t, root)
			var out bytes.Buffer
			_, err = Run(context.Background(), Options{Root: root, IMDSEndpoint: fakeIMDSv2(t, baseMetadata("")), IMDSTimeout: 20 * time.Second,
				Out: &out, Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{}, Slots: noSlots{t},
				Secrets: memSecrets{"/es/prod/elastic-password": "stand-in-elastic-pw"}})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused what Elasticsearch %s accepts: %v", tc.version, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("boot accepted a node Elasticsearch %s refuses; output:\n%s", tc.version, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for k, v := range snapshot(t, root) {
				if before[k] != v {
					t.Errorf("the refused boot changed %s", k)
				}
			}
		})
	}
}

// TestRefreshSecurityKeystoreAddsPerVersion: from 7.8 `esnode
// security-refresh` adds every keystore setting in one run of the tool (one
// JVM start), values one a line on stdin; before 7.8 (6.8 of the supported
// lines) the tool's `add` takes one setting, so each gets its own run.
func TestRefreshSecurityKeystoreAddsPerVersion(t *testing.T) {
	pki := testpki.NewCA(t, "refresh CA")
	_, _, key, cert := pki.Issue(t, "node.prod", time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	const pw = "p12-Stand-In-Password-5d1e"
	p12, err := gopkcs12.Modern.Encode(key, cert, []*x509.Certificate{pki.Cert}, pw)
	if err != nil {
		t.Fatal(err)
	}
	sec := spec.Security{TransportPKCS12: "secretsmanager:es/{cluster}/transport.p12", TransportPKCS12Password: "/es/{cluster}/transport/p12-password"}
	secrets := memSecrets{"secretsmanager:es/prod/transport.p12": base64.StdEncoding.EncodeToString(p12), "/es/prod/transport/p12-password": pw}
	for version, wantAdds := range map[string]int{"8.15.3": 1, "7.17.25": 1, "6.8.23": 2} {
		n := spec.Node{Elasticsearch: spec.Elasticsearch{Version: version}, Cluster: spec.Cluster{Name: "prod"}, Security: sec}
		if strings.HasPrefix(version, "6.") {
			n.Cluster.MasterNodes = 3 // required on 6.x
		}
		root := testRoot(t, n, 8*1024*1024)
		os.WriteFile(filepath.Join(root, "etc/group"), []byte(fmt.Sprintf("root:x:0:\nelasticsearch:x:%d:\n", os.Getgid())), 0o644)
		var out bytes.Buffer
		opts := Options{Root: root, IMDSEndpoint: fakeIMDSv2(t, baseMetadata("")), IMDSTimeout: 20 * time.Second,
			Out: &out, Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{}, Secrets: secrets}
		if _, err := Run(context.Background(), opts); err != nil {
			t.Fatalf("%s: boot: %v\n%s", version, err, out.String())
		}
		rr := &RecordingRunner{}
		opts.Runner = rr
		ref, err := RefreshSecurity(context.Background(), opts)
		if err != nil {
			t.Fatalf("%s: refresh: %v\n%s", version, err, out.String())
		}
		var adds []Command
		got := map[string]string{}
		for _, c := range rr.Commands {
			if c.Name == KeystoreTool && c.Args[0] == "add" {
				adds = append(adds, c)
				names, values := c.Args[3:], strings.Split(string(c.Stdin), "\n")
				if len(names) != len(values) {
					t.Errorf("%s: %s with %d values on stdin", version, c, len(values))
					continue
				}
				for i, n := range names {
					got[n] = values[i]
				}
			}
		}
		if len(adds) != wantAdds || len(ref.Ran) != wantAdds {
			t.Errorf("%s: refresh ran %d keystore adds (%q), want %d", version, len(adds), ref.Ran, wantAdds)
		}
		if got["xpack.security.transport.ssl.keystore.secure_password"] != pw || got["xpack.security.transport.ssl.truststore.secure_password"] != pw || len(got) != 2 {
			t.Errorf("%s: refresh added %v", version, keysOf(got))
		}
	}
}
