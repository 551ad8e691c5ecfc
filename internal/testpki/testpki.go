// Package testpki makes the cluster CAs and node certificates tests hand to
// esnode and the Elasticsearch stand-in (ECDSA P-256: fast), in PEM as a
// user would store them in Parameter Store.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// CA is a self-signed certificate authority, valid for a year from an hour ago.
type CA struct {
	Key  *ecdsa.PrivateKey
	Cert *x509.Certificate
	PEM  []byte
}

// NewCA makes a CA named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	ca, err := New(cn)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// New makes a CA named cn, for callers outside tests (the demo).
func New(cn string) (*CA, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Key: k, Cert: c, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue signs a node certificate for cn (also its DNS SAN), valid from
// notBefore to notAfter for server and client use (transport TLS is mutual),
// and returns its PKCS#8 key and certificate in PEM and parsed.
func (ca *CA) Issue(t testing.TB, cn string, notBefore, notAfter time.Time) (keyPEM, certPEM []byte, key *ecdsa.PrivateKey, cert *x509.Certificate) {
	t.Helper()
	keyPEM, certPEM, key, cert, err := ca.Sign(cn, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return keyPEM, certPEM, key, cert
}

// Sign is Issue for callers outside tests.
func (ca *CA) Sign(cn string, notBefore, notAfter time.Time) (keyPEM, certPEM []byte, key *ecdsa.PrivateKey, cert *x509.Certificate, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		DNSNames: []string{cn}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), k, c, nil
}
