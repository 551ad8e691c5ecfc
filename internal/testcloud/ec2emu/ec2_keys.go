package ec2emu

import (
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// generateKey makes a key pair like EC2 does: RSA 2048 as a PKCS#1 PEM, ED25519 as an
// OpenSSH private key. Fingerprints follow AWS: RSA = SHA-1 of the PKCS#8 DER private key
// (colon hex), ED25519 = base64 SHA-256 of the public key blob.
func generateKey(keyType string) (material, fingerprint, authorized string, err error) {
	switch keyType {
	case "", "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return "", "", "", fmt.Errorf("generate rsa key: %w", err)
		}
		material = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return "", "", "", fmt.Errorf("marshal pkcs8: %w", err)
		}
		sum := sha1.Sum(der)
		fingerprint = colonHex(sum[:])
		pub, err := ssh.NewPublicKey(&k.PublicKey)
		if err != nil {
			return "", "", "", fmt.Errorf("ssh public key: %w", err)
		}
		authorized = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	case "ed25519":
		pubKey, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", "", "", fmt.Errorf("generate ed25519 key: %w", err)
		}
		blk, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			return "", "", "", fmt.Errorf("marshal openssh key: %w", err)
		}
		material = string(pem.EncodeToMemory(blk))
		pub, err := ssh.NewPublicKey(pubKey)
		if err != nil {
			return "", "", "", fmt.Errorf("ssh public key: %w", err)
		}
		sum := sha256.Sum256(pub.Marshal())
		fingerprint = base64.StdEncoding.EncodeToString(sum[:])
		authorized = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	default:
		return "", "", "", fmt.Errorf("unsupported key type %q", keyType)
	}
	return material, fingerprint, authorized, nil
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

func validKeyName(n string) bool { return n != "" && len(n) <= 255 }

func (s *Server) createKeyPair(req *request) (header, *apiError) {
	r := req.region
	name := req.p.str("KeyName")
	if !validKeyName(name) {
		return nil, errf("MissingParameter", "The request must contain the parameter KeyName")
	}
	if r.keys[name] != nil {
		return nil, errf("InvalidKeyPair.Duplicate", "The keypair '%s' already exists.", name)
	}
	kt := req.p.str("KeyType")
	if kt != "" && kt != "rsa" && kt != "ed25519" {
		return nil, errf("InvalidParameterValue", "Value (%s) for parameter keyType is invalid. Supported: rsa, ed25519.", kt)
	}
	if kt == "" {
		kt = "rsa"
	}
	if f := req.p.str("KeyFormat"); f != "" && f != "pem" {
		return nil, errf("InvalidParameterValue", "The emulator supports only KeyFormat pem, not %q", f)
	}
	if err := req.p.validTagSpecs("key-pair"); err != nil {
		return nil, err
	}
	material, fp, authorized, err := generateKey(kt)
	if err != nil {
		return nil, errf("InternalError", "%v", err)
	}
	k := &keyPair{id: s.newID("key"), name: name, keyType: kt, fingerprint: fp, publicKey: authorized,
		created: req.now, tags: req.p.tagSpecs("key-pair"), seq: s.nextSeq()}
	r.keys[name] = k
	return &struct {
		Envelope
		Name        string   `xml:"keyName"`
		Fingerprint string   `xml:"keyFingerprint"`
		Material    string   `xml:"keyMaterial"`
		ID          string   `xml:"keyPairId"`
		Tags        []tagXML `xml:"tagSet>item"`
	}{Name: name, Fingerprint: fp, Material: material, ID: k.id, Tags: tagList(k.tags)}, nil
}

func (s *Server) importKeyPair(req *request) (header, *apiError) {
	r := req.region
	name := req.p.str("KeyName")
	if !validKeyName(name) {
		return nil, errf("MissingParameter", "The request must contain the parameter KeyName")
	}
	if r.keys[name] != nil {
		return nil, errf("InvalidKeyPair.Duplicate", "The keypair '%s' already exists.", name)
	}
	raw, err := base64.StdEncoding.DecodeString(req.p.str("PublicKeyMaterial"))
	if err != nil {
		return nil, errf("InvalidParameterValue", "PublicKeyMaterial must be base64: %v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
	if err != nil {
		return nil, errf("InvalidKey.Format", "Key is not in valid OpenSSH public key format")
	}
	kt := "rsa"
	if pub.Type() == ssh.KeyAlgoED25519 {
		kt = "ed25519"
	}
	sum := md5.Sum(pub.Marshal())
	k := &keyPair{id: s.newID("key"), name: name, keyType: kt, fingerprint: colonHex(sum[:]),
		publicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), created: req.now,
		tags: req.p.tagSpecs("key-pair"), seq: s.nextSeq()}
	r.keys[name] = k
	return &struct {
		Envelope
		Name        string `xml:"keyName"`
		Fingerprint string `xml:"keyFingerprint"`
		ID          string `xml:"keyPairId"`
	}{Name: name, Fingerprint: k.fingerprint, ID: k.id}, nil
}

func (s *Server) deleteKeyPair(req *request) (header, *apiError) {
	r := req.region
	name, id := req.p.str("KeyName"), req.p.str("KeyPairId")
	if name == "" && id == "" {
		return nil, errf("MissingParameter", "The request must contain the parameter KeyName or KeyPairId")
	}
	var found *keyPair
	for _, k := range r.keys {
		if (name != "" && k.name == name) || (id != "" && k.id == id) {
			found = k
		}
	}
	// Deleting an absent key by name succeeds on AWS; by id it does not.
	if found == nil && id != "" {
		return nil, errf("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", id)
	}
	out := &struct {
		Envelope
		Return bool   `xml:"return"`
		ID     string `xml:"keyPairId,omitempty"`
	}{Return: true}
	if found != nil {
		delete(r.keys, found.name)
		out.ID = found.id
	}
	return out, nil
}

type keyPairXML struct {
	ID          string   `xml:"keyPairId"`
	Name        string   `xml:"keyName"`
	Fingerprint string   `xml:"keyFingerprint"`
	Type        string   `xml:"keyType"`
	PublicKey   string   `xml:"publicKey,omitempty"`
	Created     string   `xml:"createTime"`
	Tags        []tagXML `xml:"tagSet>item"`
}

func (s *Server) describeKeyPairs(req *request) (header, *apiError) {
	r := req.region
	names, ids := req.p.list("KeyName"), req.p.list("KeyPairId")
	for _, n := range names {
		if r.keys[n] == nil {
			return nil, errf("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", n)
		}
	}
	for _, id := range ids {
		found := false
		for _, k := range r.keys {
			found = found || k.id == id
		}
		if !found {
			return nil, errf("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", id)
		}
	}
	withPub := req.p.boolean("IncludePublicKey")
	out := &struct {
		Envelope
		Keys []keyPairXML `xml:"keySet>item"`
	}{}
	for _, k := range sortedBySeq(r.keys, func(k *keyPair) int64 { return k.seq }) {
		if len(names) > 0 && !contains(names, k.name) || len(ids) > 0 && !contains(ids, k.id) {
			continue
		}
		ok, err := matchFilters(req.p.filters(), k.tags, func(f string) ([]string, bool) {
			switch f {
			case "key-name":
				return one(k.name), true
			case "key-pair-id":
				return one(k.id), true
			case "fingerprint":
				return one(k.fingerprint), true
			case "key-type":
				return one(k.keyType), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			x := keyPairXML{ID: k.id, Name: k.name, Fingerprint: k.fingerprint, Type: k.keyType,
				Created: fmtTime(k.created), Tags: tagList(k.tags)}
			if withPub {
				x.PublicKey = k.publicKey
			}
			out.Keys = append(out.Keys, x)
		}
	}
	return out, nil
}
