package install

import (
	"context"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Paths of the 8.x package's security auto-configuration (AutoConfigureNode:
// the certs directory it creates under the config dir).
const (
	ESConfigDir  = "/etc/elasticsearch"
	ESCertsDir   = ESConfigDir + "/certs"
	KeystoreTool = ESHome + "/bin/elasticsearch-keystore"
)

// autoConfiguredCerts are the files AutoConfigureNode writes to certs/: the
// HTTP CA certificate, http.p12 (node key and certificate plus the CA's
// key) and transport.p12. Identical in every copy of the image.
var autoConfiguredCerts = []string{"http_ca.crt", "http.p12", "transport.p12"}

// autoConfiguredSecureSettings are the keystore entries it adds: the
// PKCS#12 passwords and the elastic user's password hash.
var autoConfiguredSecureSettings = []string{
	"xpack.security.http.ssl.keystore.secure_password",
	"xpack.security.transport.ssl.keystore.secure_password",
	"xpack.security.transport.ssl.truststore.secure_password",
	"autoconfiguration.password_hash",
}

// autoConfiguredSecurityKeys are its elasticsearch.yml settings that name
// the removed files (nested `xpack.security.http.ssl:` blocks or flat
// `xpack.security.http.ssl.*` keys) and enrollment, which needs the HTTP
// CA's key; esnode boot writes the node's own xpack.security.* settings.
var autoConfiguredSecurityKeys = []string{"xpack.security.http.ssl", "xpack.security.transport.ssl", "xpack.security.enrollment.enabled"}

// removeImageSecrets removes the TLS material, keystore passwords and
// password hash the package's security auto-configuration generated, then
// scans what is left. It returns the record for the manifest.
func (in *installer) removeImageSecrets(ctx context.Context) (*spec.ImageSecurity, error) {
	rec := &spec.ImageSecurity{TLSKeys: []string{}, CAKeys: []string{}, KeystorePasswords: []string{}, Removed: []string{}, ImageCertificates: []string{}}
	// Fingerprints first, so an audit recognises these certificates on a
	// node that got them back from somewhere.
	before := in.scanTLS()
	for _, f := range before {
		for _, c := range f.Certificates {
			rec.ImageCertificates = append(rec.ImageCertificates, c.SHA256)
		}
	}
	for _, name := range autoConfiguredCerts {
		p := path.Join(ESCertsDir, name)
		if err := os.Remove(in.fs.host(p)); err == nil {
			rec.Removed = append(rec.Removed, p)
		} else if !os.IsNotExist(err) {
			return nil, fmt.Errorf("remove the auto-configured %s: %w", p, err)
		}
	}
	if err := os.Remove(in.fs.host(ESCertsDir)); err == nil { // only when empty
		rec.Removed = append(rec.Removed, ESCertsDir+"/")
	}
	if in.fs.exists(ESConfigDir + "/elasticsearch.keystore") {
		present, err := in.keystoreEntries(ctx)
		if err != nil {
			return nil, err
		}
		var rm []string
		for _, k := range autoConfiguredSecureSettings {
			if present[k] {
				rm = append(rm, k)
			}
		}
		if len(rm) > 0 {
			if out, err := in.exec(ctx, Command{Name: KeystoreTool, Args: append([]string{"remove"}, rm...)}); err != nil {
				return nil, fmt.Errorf("remove the auto-configured keystore entries %s: %w: %s", strings.Join(rm, ", "), err, strings.TrimSpace(string(out)))
			}
			for _, k := range rm {
				rec.Removed = append(rec.Removed, "keystore:"+k)
			}
		}
		if present, err = in.keystoreEntries(ctx); err != nil {
			return nil, err
		}
		for k := range present {
			switch {
			case k == "autoconfiguration.password_hash":
				rec.PasswordHash = true
			case strings.HasPrefix(k, "xpack.security.") && strings.HasSuffix(k, "secure_password"):
				rec.KeystorePasswords = append(rec.KeystorePasswords, k)
			}
		}
		sort.Strings(rec.KeystorePasswords)
	}
	disabled, err := disableSecurityAutoConfig(in.fs.host(ESConfigPath))
	if err != nil {
		return nil, err
	}
	for _, k := range disabled {
		rec.Removed = append(rec.Removed, "elasticsearch.yml:"+k)
	}
	for _, f := range in.scanTLS() {
		if f.PrivateKeys > 0 || f.KeysUnknown {
			rec.TLSKeys = append(rec.TLSKeys, f.Path)
		}
		if f.CAKey {
			rec.CAKeys = append(rec.CAKeys, f.Path)
		}
	}
	return rec, nil
}

// scanTLS describes the TLS files under the config dir (two levels).
func (in *installer) scanTLS() []facts.TLSFile {
	var out []facts.TLSFile
	var walk func(dir string, depth int)
	walk = func(dir string, depth int) {
		ents, err := os.ReadDir(in.fs.host(dir))
		if err != nil {
			return
		}
		for _, e := range ents {
			p := path.Join(dir, e.Name())
			if e.IsDir() {
				if depth < 2 {
					walk(p, depth+1)
				}
				continue
			}
			lower := strings.ToLower(e.Name())
			if !e.Type().IsRegular() || !(strings.HasSuffix(lower, ".crt") || strings.HasSuffix(lower, ".pem") || strings.HasSuffix(lower, ".key") ||
				strings.HasSuffix(lower, ".p12") || strings.HasSuffix(lower, ".pfx") || strings.HasSuffix(lower, ".cer")) {
				continue
			}
			b, err := os.ReadFile(in.fs.host(p))
			if err != nil {
				continue
			}
			out = append(out, facts.InspectTLS(p, b))
		}
	}
	walk(ESConfigDir, 0)
	return out
}

// keystoreEntries lists the keystore's entry names (never values).
func (in *installer) keystoreEntries(ctx context.Context) (map[string]bool, error) {
	out, err := in.exec(ctx, Command{Name: KeystoreTool, Args: []string{"list"}})
	if err != nil {
		return nil, fmt.Errorf("list the Elasticsearch keystore: %w", err)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, " ") {
			m[l] = true
		}
	}
	return m, nil
}

// disableSecurityAutoConfig comments out the auto-configured TLS and
// enrollment settings, keeping the file's owner and mode.
func disableSecurityAutoConfig(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", ESConfigPath, err)
	}
	nb, keys := disableKeyFamilies(string(b), autoConfiguredSecurityKeys)
	if len(keys) == 0 {
		return nil, nil
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	return keys, replaceKeepingOwner(p, []byte(nb), st)
}

// disableKeyFamilies is disableKeys for keys and their flat sub-keys
// (`xpack.security.http.ssl.enabled: true` under `xpack.security.http.ssl`).
func disableKeyFamilies(text string, families []string) (string, []string) {
	var keys []string
	for _, l := range strings.Split(text, "\n") {
		k, _, ok := strings.Cut(l, ":")
		if !ok || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "#") {
			continue
		}
		for _, f := range families {
			if k == f || strings.HasPrefix(k, f+".") {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return text, nil
	}
	nb, disabled := disableKeys(text, keys)
	return nb, uniq(disabled)
}
