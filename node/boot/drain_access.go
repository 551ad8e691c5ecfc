package boot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
	"software.sslmate.com/src/go-pkcs12"
)

// DrainAccess is how `esnode drain` reaches its own node's API with
// security on: the elastic user's password and, with HTTP TLS, the CAs the
// node's HTTP certificate chains to. Both are read from AWS with the
// instance role, as boot read them; nothing secret is kept on disk for it.
type DrainAccess struct {
	Username, Password string
	// TLS is nil for plain HTTP.
	TLS *tls.Config
}

// Access fetches what the drain needs from store. Without an
// elastic_password reference it returns no credentials: the drain then
// works only where security is off.
func (t *DrainTarget) Access(ctx context.Context, store SecretStore) (*DrainAccess, error) {
	get := func(field, v string) ([]byte, error) {
		ref, err := spec.ParseSecretRef(v, t.Cluster)
		if err != nil {
			return nil, fmt.Errorf("security %s: %w", field, err)
		}
		b, err := store.GetSecret(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("security %s: %w", field, err)
		}
		return b, nil
	}
	a := &DrainAccess{}
	if v := t.Security.ElasticPassword; v != "" {
		pw, err := get("elastic_password", v)
		if err != nil {
			return nil, err
		}
		a.Username, a.Password = "elastic", strings.TrimRight(string(pw), "\r\n")
	}
	if !strings.HasPrefix(t.URL, "https://") {
		return a, nil
	}
	roots, err := t.httpRoots(get)
	if err != nil {
		return nil, err
	}
	a.TLS = chainOnlyTLS(roots)
	return a, nil
}

// httpRoots are the certificates the node's HTTP certificate must chain
// to: the http_ca, else the CAs in the PKCS#12, else the certificate
// itself (self-signed).
func (t *DrainTarget) httpRoots(get func(field, v string) ([]byte, error)) (*x509.CertPool, error) {
	s := t.Security
	var certs []*x509.Certificate
	switch {
	case s.HTTPCA != "":
		b, err := get("http_ca", s.HTTPCA)
		if err != nil {
			return nil, err
		}
		if certs, err = parseCertsPEM(b); err != nil {
			return nil, fmt.Errorf("security http_ca: %w", err)
		}
	case s.HTTPPKCS12 != "":
		raw, err := get("http_pkcs12", s.HTTPPKCS12)
		if err != nil {
			return nil, err
		}
		pw, err := get("http_pkcs12_password", s.HTTPPKCS12Password)
		if err != nil {
			return nil, err
		}
		der, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		if derr != nil {
			der = raw
		}
		_, cert, cas, err := pkcs12.DecodeChain(der, strings.TrimRight(string(pw), "\r\n"))
		if err != nil {
			return nil, fmt.Errorf("security http_pkcs12: %w", err)
		}
		certs = append(cas, cert)
	case s.HTTPCertificate != "":
		b, err := get("http_certificate", s.HTTPCertificate)
		if err != nil {
			return nil, err
		}
		if certs, err = parseCertsPEM(b); err != nil {
			return nil, fmt.Errorf("security http_certificate: %w", err)
		}
	default:
		return nil, errors.New("boot.json says HTTP TLS is on but the spec and userdata name no HTTP material: run esnode boot again")
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// chainOnlyTLS verifies the server's chain against roots but not its name:
// one HTTP certificate serves the whole cluster and cannot name every
// auto-scaled node's IP (Elastic's verification_mode: certificate).
func chainOnlyTLS(roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // the chain is verified below; the name cannot be
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the node presented no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			if err != nil {
				return fmt.Errorf("the node's HTTP certificate does not chain to the cluster's HTTP CA: %w", err)
			}
			return nil
		},
	}
}
