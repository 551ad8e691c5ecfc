package spec

import (
	"encoding/json"
	"fmt"
	"time"
)

// ManifestPath is where esnode install records a bake on the node.
const ManifestPath = "/etc/esnode/manifest.json"

// Manifest is what a bake recorded: the spec, what was installed, and the
// sums of every file it laid down (the audit's drift baseline).
type Manifest struct {
	APIVersion    string            `json:"api_version"`
	Spec          Node              `json:"spec"`
	SpecHash      string            `json:"spec_hash"`
	EsnodeVersion string            `json:"esnode_version"`
	Arch          string            `json:"arch"`
	BakedAt       time.Time         `json:"baked_at"`
	Packages      map[string]string `json:"packages"`
	Artifacts     []BakedArtifact   `json:"artifacts"`
	Files         []ManagedFile     `json:"files"`
	// Security is what the bake left of TLS material and passwords in the
	// image (added within v1; absent in older manifests).
	Security *ImageSecurity `json:"security,omitempty"`
}

// ImageSecurity records, after esnode install removed the package's
// security auto-configuration, what TLS material and passwords the image
// still holds: all empty/false on a good bake.
type ImageSecurity struct {
	// TLSKeys are files in the configuration directory holding a private
	// key (PEM), or a PKCS#12 file that may.
	TLSKeys []string `json:"tls_keys"`
	// CAKeys are those whose key belongs to a CA certificate.
	CAKeys []string `json:"ca_keys"`
	// KeystorePasswords are keystore entries holding TLS passwords
	// (xpack.security.*.secure_password).
	KeystorePasswords []string `json:"keystore_passwords"`
	// PasswordHash is true when the keystore still holds
	// autoconfiguration.password_hash (the elastic user's hash).
	PasswordHash bool `json:"password_hash"`
	// Removed lists what install removed (files, keystore entries and
	// elasticsearch.yml settings), by name, never value.
	Removed []string `json:"removed"`
	// ImageCertificates are the SHA-256 fingerprints of the certificates
	// found in the image at bake (removed or not): a node presenting one
	// runs on material every copy of the image shares.
	ImageCertificates []string `json:"image_certificates"`
}

// Clean reports whether the image holds no TLS key, CA key, keystore
// password or password hash.
func (s *ImageSecurity) Clean() bool {
	return s != nil && len(s.TLSKeys) == 0 && len(s.CAKeys) == 0 && len(s.KeystorePasswords) == 0 && !s.PasswordHash
}

// BakedArtifact is a verified download.
type BakedArtifact struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	SHA512 string `json:"sha512"`
}

// ManagedFile is a file esnode owns. Stage "install" files must never change
// after the bake; stage "boot" files are rewritten by every boot and are
// compared with what boot last wrote.
type ManagedFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Mode   string `json:"mode"`
	Owner  string `json:"owner"`
	Group  string `json:"group"`
	Stage  string `json:"stage"`
}

// ParseManifest reads a manifest document of this schema version.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest is not valid JSON: %w", err)
	}
	if m.APIVersion != APIVersion {
		return nil, fmt.Errorf("manifest api_version is %q; this tool reads %q", m.APIVersion, APIVersion)
	}
	return &m, nil
}
