// Package esnodebin carries esnode for every guest architecture, built into
// this folder by make and embedded here, so the plugin and esaudit can upload
// it to guests and legacy nodes without depending on each other.
package esnodebin

import (
	"embed"
	"fmt"
)

// The pattern must match a committed file (README.md) so that a checkout
// without built binaries still compiles; Binary then says how to build them.
//
//go:embed *
var files embed.FS

// Binary returns esnode for a guest architecture (Debian names: amd64, arm64).
func Binary(arch string) ([]byte, error) {
	b, err := files.ReadFile("esnode-linux-" + arch)
	if err != nil {
		return nil, fmt.Errorf("this build carries no esnode for linux/%s: rebuild with `make build` (which embeds esnode for amd64 and arm64), or point at an esnode built for that architecture (esnode_path in the provisioner, --esnode-dir in esaudit)", arch)
	}
	return b, nil
}
