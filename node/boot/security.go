package boot

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Where boot writes each cluster's TLS material: under the config dir, so
// elasticsearch.yml names them relative to it, root:elasticsearch 0640
// (Elasticsearch reads them; only root changes them).
const (
	SecurityCertsDir = "/etc/elasticsearch/certs/esnode"
	securityRelDir   = "certs/esnode"
	securityFileMode = 0o640
	securityDirMode  = 0o750
)

// securityFile is one piece of TLS material boot writes. Its content is a
// secret: never diffed, printed or logged.
type securityFile struct {
	Path  string // node path
	Param string // the reference it came from, for messages
	Data  []byte
}

// securityPlan is the TLS material, settings and keystore entries of this
// boot.
type securityPlan struct {
	files    []securityFile
	settings []setting
	// keystore entries: setting -> value (passwords, on stdin only).
	keystore     map[string]string
	keystoreKeys []string // the ones boot owns (removed when no longer configured)
	// elasticPassword is set only on the boot that puts bootstrap.password.
	elasticPassword string
	// kept is true when AWS did not answer and the last good material stays.
	kept bool
	// record is what boot.json keeps (references and fingerprints, never values).
	record *SecurityState
}

// SecurityState is what boot.json records of the security material:
// references and certificate fingerprints, never values.
type SecurityState struct {
	Transport          bool              `json:"transport_tls"`
	HTTP               bool              `json:"http_tls"`
	Files              []string          `json:"files"`
	References         map[string]string `json:"references"`
	CertificateSHA256  map[string]string `json:"certificate_sha256,omitempty"`
	ElasticPasswordSet bool              `json:"elastic_password_set"`
	KeptLastGood       bool              `json:"kept_last_good,omitempty"`
}

// SecretStore reads a parameter or secret's plaintext.
type SecretStore interface {
	GetSecret(ctx context.Context, ref spec.SecretRef) ([]byte, error)
}

// errAWSUnavailable marks a fetch that failed because AWS did not answer
// (network, throttling, 5xx), as opposed to a parameter that is missing or
// refused.
var errAWSUnavailable = errors.New("AWS did not answer")

// effectiveSecurity is the spec's security section with userdata's
// overrides: a layer (transport, http) named in userdata replaces the
// spec's whole layer, so PEM and PKCS#12 never mix.
func effectiveSecurity(n spec.Security, ud spec.Security) spec.Security {
	out := n
	for _, layer := range []string{"transport_", "http_"} {
		named := false
		for _, f := range spec.SecurityFields {
			if strings.HasPrefix(f, layer) && *ud.Field(f) != "" {
				named = true
			}
		}
		if !named {
			continue
		}
		for _, f := range spec.SecurityFields {
			if strings.HasPrefix(f, layer) {
				*out.Field(f) = *ud.Field(f)
			}
		}
	}
	if ud.ElasticPassword != "" {
		out.ElasticPassword = ud.ElasticPassword
	}
	return out
}

// planSecurity fetches, checks and lays out the cluster's TLS material and
// passwords. Nothing configured: nil (checkTransportTLS then decides
// whether Elasticsearch could start without).
func planSecurity(ctx context.Context, e *bootEnv, in *gathered) (*securityPlan, error) {
	sec := effectiveSecurity(in.node.Security, in.ud.Security)
	if !sec.Transport() && !sec.HTTP() && sec.ElasticPassword == "" {
		return nil, nil
	}
	if errs := spec.CheckSecurity(sec, "security "); len(errs) > 0 {
		var msgs []string
		for _, fe := range errs {
			msgs = append(msgs, fe.Error())
		}
		return nil, fmt.Errorf("the security settings (spec and userdata security_*) are invalid:\n  %s", strings.Join(msgs, "\n  "))
	}
	store := e.o.Secrets
	if store == nil {
		cfg, err := e.aws.config(ctx, in.md.Region, "Parameter Store and Secrets Manager")
		if err != nil {
			return nil, err
		}
		store = newAWSSecrets(cfg, e.o.SSMEndpoint, e.o.SecretsManagerEndpoint)
	}
	refs := map[string]spec.SecretRef{}
	var fields []string
	firstBoot := in.prev == nil || in.prev.Security == nil || !in.prev.Security.ElasticPasswordSet
	for _, f := range spec.SecurityFields {
		v := *sec.Field(f)
		if v == "" || (f == "elastic_password" && !firstBoot) {
			continue
		}
		ref, err := spec.ParseSecretRef(v, in.cluster)
		if err != nil {
			return nil, fmt.Errorf("security %s: %w", f, err)
		}
		refs[f] = ref
		fields = append(fields, f)
	}
	// All at once (one round trip's wait instead of one per reference);
	// errors are judged in the fields' order, as if read one by one.
	got := make([][]byte, len(fields))
	errs := make([]error, len(fields))
	var wg sync.WaitGroup
	for i, f := range fields {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = store.GetSecret(ctx, refs[f])
		}()
	}
	wg.Wait()
	vals := map[string][]byte{}
	for i, f := range fields {
		if err := errs[i]; err != nil {
			ref := refs[f]
			if errors.Is(err, errAWSUnavailable) && in.prev != nil && in.prev.Security != nil {
				e.warn("could not read %s (security %s): %v; keeping the last good TLS material and settings", ref, f, err)
				return keptSecurity(e, in.prev)
			}
			return nil, fmt.Errorf("security %s: %w; the last good configuration was left untouched", f, err)
		}
		vals[f] = got[i]
	}
	p := &securityPlan{keystore: map[string]string{}, record: &SecurityState{References: map[string]string{}, CertificateSHA256: map[string]string{}}}
	for f, r := range refs {
		p.record.References[f] = r.String()
	}
	now := e.now()
	for _, layer := range []string{"transport", "http"} {
		if err := p.layer(layer, sec, refs, vals, now); err != nil {
			return nil, err
		}
	}
	if pw, ok := vals["elastic_password"]; ok {
		p.elasticPassword = strings.TrimRight(string(pw), "\r\n")
		if len(p.elasticPassword) < 6 {
			return nil, fmt.Errorf("security elastic_password: the value of %s is shorter than 6 characters, which Elasticsearch refuses for the elastic user; store a longer password", refs["elastic_password"])
		}
		p.record.ElasticPasswordSet = true
	} else if in.prev != nil && in.prev.Security != nil {
		p.record.ElasticPasswordSet = in.prev.Security.ElasticPasswordSet
	}
	p.settings = append([]setting{{"xpack.security.enabled", "true"}}, p.settings...)
	return p, nil
}

// layer checks one layer's material and plans its files and settings.
func (p *securityPlan) layer(name string, sec spec.Security, refs map[string]spec.SecretRef, vals map[string][]byte, now time.Time) error {
	pre := "xpack.security." + name + ".ssl."
	field := func(f string) string { return name + "_" + f }
	param := func(f string) string { return fmt.Sprintf("security %s (%s)", field(f), refs[field(f)]) }
	if _, ok := vals[field("pkcs12")]; ok {
		raw := strings.TrimSpace(string(vals[field("pkcs12")]))
		der, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			der = vals[field("pkcs12")] // a binary secret
		}
		pw := strings.TrimRight(string(vals[field("pkcs12_password")]), "\r\n")
		key, cert, cas, err := pkcs12.DecodeChain(der, pw)
		if err != nil {
			return fmt.Errorf("%s is not a PKCS#12 that %s opens: %v; store the file base64-encoded and its password", param("pkcs12"), param("pkcs12_password"), err)
		}
		if err := checkMaterial(key, cert, cas, now, param("pkcs12"), param("pkcs12"), param("pkcs12"), name == "transport"); err != nil {
			return err
		}
		file := path.Join(SecurityCertsDir, name+".p12")
		p.files = append(p.files, securityFile{Path: file, Param: refs[field("pkcs12")].String(), Data: der})
		rel := path.Join(securityRelDir, name+".p12")
		p.settings = append(p.settings, setting{pre + "enabled", "true"}, setting{pre + "keystore.path", rel})
		p.keystore[pre+"keystore.secure_password"] = pw
		if name == "transport" {
			p.settings = append(p.settings, setting{pre + "truststore.path", rel})
			p.keystore[pre+"truststore.secure_password"] = pw
		}
		p.record.CertificateSHA256[name] = fingerprint(cert)
		p.setTLS(name, file)
	} else if _, ok := vals[field("key")]; ok {
		key, err := parseKeyPEM(vals[field("key")])
		if err != nil {
			return fmt.Errorf("%s: %v", param("key"), err)
		}
		chain, err := parseCertsPEM(vals[field("certificate")])
		if err != nil {
			return fmt.Errorf("%s: %v", param("certificate"), err)
		}
		var cas []*x509.Certificate
		if b, ok := vals[field("ca")]; ok {
			if cas, err = parseCertsPEM(b); err != nil {
				return fmt.Errorf("%s: %v", param("ca"), err)
			}
		}
		if err := checkMaterial(key, chain[0], append(chain[1:], cas...), now, param("key"), param("certificate"), param("ca"), len(cas) > 0); err != nil {
			return err
		}
		for _, f := range []struct{ f, file string }{{"key", name + ".key"}, {"certificate", name + ".crt"}, {"ca", name + "-ca.crt"}} {
			if b, ok := vals[field(f.f)]; ok {
				p.files = append(p.files, securityFile{Path: path.Join(SecurityCertsDir, f.file), Param: refs[field(f.f)].String(), Data: b})
			}
		}
		p.settings = append(p.settings, setting{pre + "enabled", "true"},
			setting{pre + "key", path.Join(securityRelDir, name+".key")},
			setting{pre + "certificate", path.Join(securityRelDir, name+".crt")})
		if len(cas) > 0 {
			p.settings = append(p.settings, setting{pre + "certificate_authorities", "[" + path.Join(securityRelDir, name+"-ca.crt") + "]"})
		}
		p.record.CertificateSHA256[name] = fingerprint(chain[0])
		p.setTLS(name, path.Join(SecurityCertsDir, name+".crt"))
	} else {
		if name == "http" {
			p.settings = append(p.settings, setting{pre + "enabled", "false"})
		}
		return nil
	}
	if name == "transport" {
		// One certificate per cluster, shared by auto-scaled nodes whose
		// names and addresses are not known in advance: verify the chain
		// (the cluster's CA), not the hostname, as Elastic's own
		// auto-configuration does; and require client certificates (mutual
		// TLS, the default, written down).
		p.settings = append(p.settings, setting{pre + "verification_mode", "certificate"}, setting{pre + "client_authentication", "required"})
	}
	for k := range p.keystore {
		if strings.HasPrefix(k, pre) {
			p.keystoreKeys = append(p.keystoreKeys, k)
		}
	}
	return nil
}

func (p *securityPlan) setTLS(layer, file string) {
	if layer == "transport" {
		p.record.Transport = true
	} else {
		p.record.HTTP = true
	}
	p.record.Files = append(p.record.Files, file)
}

// checkMaterial refuses a key that does not match its certificate, a
// certificate outside its validity, and one its CA does not sign.
func checkMaterial(key any, cert *x509.Certificate, cas []*x509.Certificate, now time.Time, keyParam, certParam, caParam string, verify bool) error {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("%s: unsupported private key type %T", keyParam, key)
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("the private key in %s does not match the certificate in %s (subject %s); store the key the certificate was issued for", keyParam, certParam, cert.Subject)
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("the certificate in %s (subject %s) expired on %s; store a renewed certificate", certParam, cert.Subject, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("the certificate in %s (subject %s) is not valid before %s; check the clock or the certificate", certParam, cert.Subject, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if !verify {
		return nil
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range cas {
		if c.IsCA && string(c.RawIssuer) == string(c.RawSubject) {
			pool.AddCert(c)
		} else {
			inter.AddCert(c)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("the certificate in %s (subject %s, issuer %s) is not signed by the CA in %s (%v); store the certificate this cluster's CA issued, or the CA that issued it", certParam, cert.Subject, cert.Issuer, caParam, err)
	}
	return nil
}

func parseKeyPEM(b []byte) (any, error) {
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
		}
		if !strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			continue
		}
		if strings.Contains(blk.Type, "ENCRYPTED") {
			return nil, errors.New("holds an encrypted private key; store it unencrypted (Parameter Store encrypts SecureStrings with KMS)")
		}
		if k := parsePrivateKey(blk.Bytes); k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("its %s block does not parse as PKCS#8, PKCS#1 or SEC 1", blk.Type)
	}
}

func parsePrivateKey(der []byte) any {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k
	}
	return nil
}

func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("a CERTIFICATE block does not parse: %v", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	return out, nil
}

func fingerprint(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return sha256Hex(c.Raw)
}

// keptSecurity re-plans the settings of the last good material, which
// stays on disk untouched.
func keptSecurity(e *bootEnv, st *State) (*securityPlan, error) {
	prev := st.Security
	p := &securityPlan{kept: true, keystore: map[string]string{}}
	for _, k := range st.KeystoreKeys {
		if strings.HasPrefix(k, "xpack.security.") {
			p.keystoreKeys = append(p.keystoreKeys, k) // left in place, still owned
		}
	}
	rec := *prev
	rec.KeptLastGood = true
	p.record = &rec
	for _, f := range prev.Files {
		if _, err := os.Stat(filepath.Join(e.root, f)); err != nil {
			return nil, fmt.Errorf("AWS did not answer and the last good TLS material %s is gone (%v); restore access to Parameter Store / Secrets Manager", f, err)
		}
	}
	p.settings = append(p.settings, setting{"xpack.security.enabled", "true"})
	for _, layer := range []string{"transport", "http"} {
		pre := "xpack.security." + layer + ".ssl."
		on := (layer == "transport" && prev.Transport) || (layer == "http" && prev.HTTP)
		if !on {
			if layer == "http" {
				p.settings = append(p.settings, setting{pre + "enabled", "false"})
			}
			continue
		}
		p.settings = append(p.settings, setting{pre + "enabled", "true"})
		if _, err := os.Stat(filepath.Join(e.root, SecurityCertsDir, layer+".p12")); err == nil {
			rel := path.Join(securityRelDir, layer+".p12")
			p.settings = append(p.settings, setting{pre + "keystore.path", rel})
			if layer == "transport" {
				p.settings = append(p.settings, setting{pre + "truststore.path", rel})
			}
		} else {
			p.settings = append(p.settings, setting{pre + "key", path.Join(securityRelDir, layer+".key")}, setting{pre + "certificate", path.Join(securityRelDir, layer+".crt")})
			if _, err := os.Stat(filepath.Join(e.root, SecurityCertsDir, layer+"-ca.crt")); err == nil {
				p.settings = append(p.settings, setting{pre + "certificate_authorities", "[" + path.Join(securityRelDir, layer+"-ca.crt") + "]"})
			}
		}
		if layer == "transport" {
			p.settings = append(p.settings, setting{pre + "verification_mode", "certificate"}, setting{pre + "client_authentication", "required"})
		}
	}
	return p, nil
}

// keystoreCommands are the keystore additions of the plan; values go on
// stdin only.
func (p *securityPlan) keystoreCommands() []Command {
	if p == nil {
		return nil
	}
	var cmds []Command
	for _, k := range sortedStrings(p.keystore) {
		cmds = append(cmds, keystoreAdd(k, p.keystore[k]))
	}
	if p.elasticPassword != "" {
		cmds = append(cmds, keystoreAdd("bootstrap.password", p.elasticPassword))
	}
	return cmds
}

func sortedStrings(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// writeSecurityFiles writes the material root:elasticsearch 0640 in a
// root:elasticsearch 0750 directory, atomically; it says which files
// changed, never their content.
func writeSecurityFiles(e *bootEnv, p *securityPlan) error {
	files, err := stageSecurityFiles(e, p)
	if err != nil {
		return err
	}
	return writeAllAtomic(files, e.printWritten)
}

// stageSecurityFiles prepares the material's directory and lists the
// files whose content or mode differs, for writeAllAtomic.
func stageSecurityFiles(e *bootEnv, p *securityPlan) ([]stagedFile, error) {
	if p == nil || p.kept {
		return nil, nil
	}
	gid := groupID(e.root, "elasticsearch")
	dir := filepath.Join(e.root, SecurityCertsDir)
	if err := os.MkdirAll(dir, securityDirMode); err != nil {
		return nil, fmt.Errorf("create %s: %w", SecurityCertsDir, err)
	}
	if err := os.Chmod(dir, securityDirMode); err != nil {
		return nil, err
	}
	if gid >= 0 {
		if err := os.Lchown(dir, 0, gid); err != nil && os.Geteuid() == 0 {
			return nil, fmt.Errorf("chown %s root:elasticsearch: %w", SecurityCertsDir, err)
		}
	}
	var files []stagedFile
	for _, f := range p.files {
		host := filepath.Join(e.root, f.Path)
		if old, err := os.ReadFile(host); err == nil && string(old) == string(f.Data) {
			if st, err := os.Stat(host); err == nil && st.Mode().Perm() == securityFileMode {
				continue
			}
		}
		files = append(files, stagedFile{Path: host, Data: f.Data, Exact: &fileOwner{UID: 0, GID: gid, Mode: securityFileMode}, Label: "from " + f.Param})
	}
	return files, nil
}

// groupID looks a group up in root's /etc/group; -1 when absent.
func groupID(root, name string) int {
	b, err := os.ReadFile(filepath.Join(root, "/etc/group"))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 3 && f[0] == name {
			if n, err := strconv.Atoi(f[2]); err == nil {
				return n
			}
		}
	}
	return -1
}

// managedKeystoreKeys are the secure settings this boot owns: the
// discovery keys and the TLS passwords (bootstrap.password is not one: it
// stays after the first boot, as Elasticsearch leaves it).
func managedKeystoreKeys(ud *Userdata, p *bootPlan) []string {
	keys := keystoreKeysFor(ud)
	if p != nil && p.security != nil {
		keys = append(keys, p.security.keystoreKeys...)
	}
	return keys
}

// checkTransportTLS refuses a configuration Elasticsearch would refuse to
// start with: boot always binds the node's private address, so the
// bootstrap checks are enforced (BootstrapChecks.enforceLimits; not with
// discovery.type single-node), and with them x-pack's transport TLS check:
// 8.x with security on, its default, and transport TLS off
// (x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/ssl/TransportTLSBootstrapCheck.java);
// 7.x with security explicitly on, as boot writes it with any security
// material, once the cluster holds its basic license, that is from the
// first restart on (TLSLicenseBootstrapCheck). yml is the elasticsearch.yml
// this boot would write, flattened; 6.x is not checked.
func checkTransportTLS(ver spec.Version, yml map[string]any, sec *securityPlan) error {
	if ver.Major < 7 || ymlTrue(yml["xpack.security.transport.ssl.enabled"]) || fmt.Sprint(yml["discovery.type"]) == "single-node" {
		return nil
	}
	v, set := yml["xpack.security.enabled"]
	if set && !ymlTrue(v) || !set && ver.Major < 8 {
		return nil
	}
	if ver.Major == 7 && fmt.Sprint(yml["xpack.license.self_generated.type"]) == "trial" {
		return nil
	}
	why := "security is on (the 8.x default)"
	if set {
		why = "elasticsearch.yml sets xpack.security.enabled: true"
	}
	if sec != nil {
		why = "security is on but the security section names no transport material"
	}
	refusal := `would refuse to start: %s, transport TLS is off and the node binds its private address, so TransportTLSBootstrapCheck fails ("Transport SSL must be enabled if security is enabled")`
	if ver.Major == 7 {
		refusal = `would refuse every restart: %s and transport TLS is off, so once the cluster holds its basic license TLSLicenseBootstrapCheck fails ("Transport SSL must be enabled if security is enabled on a [basic] license")`
	}
	return fmt.Errorf("Elasticsearch %s "+refusal+". Store the cluster's transport TLS material in Parameter Store or Secrets Manager and name it "+
		"in the node spec's security section (transport_key, transport_certificate and transport_ca, or transport_pkcs12 and transport_pkcs12_password) "+
		"or per cluster in userdata (security_transport_key=... and the others); see docs/esnode.md, Security. The spec cannot turn security off: "+
		"only an image whose elasticsearch.yml sets xpack.security.enabled: false runs without transport TLS (esaudit flags it, ES-SEC-003). "+
		"The last good configuration was left untouched", ver, why)
}

// ymlTrue reads a boolean setting as Elasticsearch does (true, or "true").
func ymlTrue(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}
