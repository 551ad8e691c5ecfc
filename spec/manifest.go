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
