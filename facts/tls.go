package facts

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"time"
)

// TLS is the TLS material in Elasticsearch's configuration directory and
// the files elasticsearch.yml names: certificates are described, keys
// only counted. Never key material or passwords. Added within v1.
type TLS struct {
	Files []TLSFile `json:"files"`
}

// TLSFile is one certificate, key or PKCS#12 file.
type TLSFile struct {
	Path  string `json:"path"`
	Mode  string `json:"mode,omitempty"`
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
	// Format is pem, pkcs12 or der.
	Format string `json:"format"`
	// PrivateKeys counts the private keys seen: PEM key blocks, or PKCS#12
	// key bags outside encrypted contents.
	PrivateKeys int `json:"private_keys"`
	// KeysUnknown is true for a PKCS#12 whose contents are encrypted with
	// its password: it may hold keys.
	KeysUnknown bool `json:"keys_unknown,omitempty"`
	// CAKey is true when a PEM private key in the file belongs to a CA
	// certificate in the same file (as in a CA bundle with its key).
	CAKey        bool          `json:"ca_key,omitempty"`
	Certificates []Certificate `json:"certificates"`
	Error        string        `json:"error,omitempty"`
}

// Certificate describes one X.509 certificate, never its key.
type Certificate struct {
	SHA256      string    `json:"sha256"`
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	DNSNames    []string  `json:"dns_names"`
	IPAddresses []string  `json:"ip_addresses"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	IsCA        bool      `json:"is_ca"`
	SelfSigned  bool      `json:"self_signed"`
}

// DescribeCertificate is the facts' view of a certificate.
func DescribeCertificate(c *x509.Certificate) Certificate {
	sum := sha256.Sum256(c.Raw)
	out := Certificate{
		SHA256: hex.EncodeToString(sum[:]), Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		DNSNames: append([]string{}, c.DNSNames...), IPAddresses: []string{},
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), IsCA: c.IsCA,
		SelfSigned: bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil,
	}
	for _, ip := range c.IPAddresses {
		out.IPAddresses = append(out.IPAddresses, ip.String())
	}
	return out
}

// pkcs12 bag type OIDs (RFC 7292), DER-encoded with their tag and length:
// keyBag and pkcs8ShroudedKeyBag.
var (
	oidKeyBag         = []byte{0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x01}
	oidShroudedKeyBag = []byte{0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02}
	// encryptedData content type (PKCS#7): contents readable only with the
	// password.
	oidEncryptedData = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06}
)

// InspectTLS describes the TLS material in data (a file named name):
// certificates, and how many private keys it holds. It never returns key
// bytes.
func InspectTLS(name string, data []byte) TLSFile {
	f := TLSFile{Path: name, Certificates: []Certificate{}}
	lower := strings.ToLower(name)
	if bytes.Contains(data, []byte("-----BEGIN ")) {
		f.Format = "pem"
		var keys []any
		rest := data
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			switch {
			case b.Type == "CERTIFICATE":
				c, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					f.Error = "a CERTIFICATE block does not parse: " + err.Error()
					continue
				}
				f.Certificates = append(f.Certificates, DescribeCertificate(c))
			case strings.HasSuffix(b.Type, "PRIVATE KEY"):
				f.PrivateKeys++
				if k := parsePrivateKey(b.Bytes); k != nil {
					keys = append(keys, k)
				}
			}
		}
		// A key of a CA certificate in the same file.
		for _, k := range keys {
			for _, c := range f.Certificates {
				if c.IsCA && caKeyMatches(data, c.SHA256, k) {
					f.CAKey = true
				}
			}
		}
		return f
	}
	if strings.HasSuffix(lower, ".p12") || strings.HasSuffix(lower, ".pfx") || (len(data) > 0 && data[0] == 0x30 && bytes.Contains(data, oidEncryptedData)) {
		f.Format = "pkcs12"
		f.PrivateKeys = bytes.Count(data, oidKeyBag) + bytes.Count(data, oidShroudedKeyBag)
		f.KeysUnknown = bytes.Contains(data, oidEncryptedData) && f.PrivateKeys == 0
		return f
	}
	f.Format = "der"
	if c, err := x509.ParseCertificate(data); err == nil {
		f.Certificates = append(f.Certificates, DescribeCertificate(c))
	} else {
		f.Error = "neither PEM, PKCS#12 nor a DER certificate"
	}
	return f
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

type equaler interface{ Equal(crypto.PublicKey) bool }

func publicKeyMatches(c *x509.Certificate, key any) bool {
	pk, ok := key.(crypto.Signer)
	if !ok {
		return false
	}
	pub, ok := pk.Public().(equaler)
	return ok && pub.Equal(c.PublicKey)
}

func caKeyMatches(data []byte, fingerprint string, key any) bool {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		sum := sha256.Sum256(b.Bytes)
		if hex.EncodeToString(sum[:]) != fingerprint {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		return err == nil && publicKeyMatches(c, key)
	}
}
