package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// MarshalJSON writes the node with its api_version, so a reader knows the
// schema it holds.
func (n Node) MarshalJSON() ([]byte, error) {
	type plain Node
	return json.Marshal(struct {
		APIVersion string `json:"api_version"`
		plain
	}{APIVersion, plain(n)})
}

// Parse reads a node spec document, refusing unknown fields and other schema
// versions, then defaults and validates it.
func Parse(data []byte) (*Node, error) {
	type plain Node
	var doc struct {
		APIVersion string `json:"api_version"`
		plain
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("node spec is not valid JSON for %s: %w", APIVersion, err)
	}
	if doc.APIVersion != APIVersion {
		return nil, fmt.Errorf("node spec api_version is %q; this esnode reads %q: bake with a matching plugin and esnode", doc.APIVersion, APIVersion)
	}
	n := Node(doc.plain)
	n.SetDefaults()
	if err := n.Validate(); err != nil {
		return nil, fmt.Errorf("node spec is invalid:\n%w", err)
	}
	return &n, nil
}

// Hash is a stable digest of the defaulted spec; it names a bake in image
// tags and the manifest. The mirror is left out: it says where the
// artifacts came from, and with a mirror every artifact's SHA-512 is
// explicit and part of the hash, so the same node baked from two mirrors
// has one hash.
func (n Node) Hash() string {
	n.SetDefaults()
	n.MirrorURL = ""
	b, err := json.Marshal(n)
	if err != nil {
		// A Node holds only strings, numbers, bools and slices of them.
		panic(fmt.Sprintf("spec: marshal node: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
