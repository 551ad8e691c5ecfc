package facts

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

func (c *collector) readManifest() (*spec.Manifest, error) {
	b, err := c.fs.ReadFile(spec.ManifestPath)
	if err != nil {
		return nil, err
	}
	return spec.ParseManifest(b)
}

// maxHashBytes bounds a managed file's checksum read.
const maxHashBytes = 256 << 20

func (c *collector) manifest() {
	mf := &c.f.Manifest
	mf.Path = spec.ManifestPath
	mf.Drift = []Drift{}
	if !c.fs.Exists(spec.ManifestPath) {
		return // not baked by esnode: a legacy node
	}
	m, err := c.readManifest()
	if err != nil {
		c.fail("manifest", fmt.Errorf("%s: %w", spec.ManifestPath, err))
		return
	}
	mf.Present = true
	mf.SpecHash, mf.ESVersion, mf.EsnodeVersion = m.SpecHash, m.Spec.Elasticsearch.Version, m.EsnodeVersion
	if !m.BakedAt.IsZero() {
		t := m.BakedAt
		mf.BakedAt = &t
	}
	n := m.Spec
	mf.Spec = &n
	mf.Security = m.Security
	// Boot-stage files are compared with what boot last wrote, when it
	// recorded that.
	bootFiles := map[string]BootFile{}
	if b := c.f.Host.Boot; b != nil {
		for _, f := range b.Files {
			bootFiles[f.Path] = f
		}
	}
	for _, want := range m.Files {
		if want.Stage == "boot" {
			if bf, ok := bootFiles[want.Path]; ok {
				want.SHA256 = bf.SHA256 // mode and owner stay the bake's
			} else {
				// Boot rewrites it and recorded no sum: the bake's sum would
				// flag every booted node, so check presence, mode, owner only.
				want.SHA256 = ""
			}
		}
		mf.FilesChecked++
		if d, drifted := c.checkFile(want); drifted {
			mf.Drift = append(mf.Drift, d)
		}
	}
}

func (c *collector) checkFile(want spec.ManagedFile) (Drift, bool) {
	d := Drift{Path: want.Path, Stage: want.Stage, ExpectedSHA256: want.SHA256, Changed: []string{}}
	fi, err := c.fs.Stat(want.Path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.fail("manifest.drift", err)
		}
		d.Missing = true
		d.Changed = append(d.Changed, "missing")
		return d, true
	}
	sum, err := c.sha256(want.Path)
	if err != nil {
		c.fail("manifest.drift", err)
	}
	d.ActualSHA256 = sum
	if want.SHA256 != "" && !strings.EqualFold(sum, want.SHA256) {
		d.Changed = append(d.Changed, "content")
	}
	mode, owner, group := c.modeOwner(fi)
	if want.Mode != "" {
		wm, err := strconv.ParseUint(want.Mode, 8, 32)
		am, _ := strconv.ParseUint(mode, 8, 32)
		if err != nil || wm != am {
			d.Changed = append(d.Changed, "mode")
			d.ExpectedMode, d.ActualMode = want.Mode, mode
		}
	}
	if want.Owner != "" && want.Owner != owner {
		d.Changed = append(d.Changed, "owner")
		d.ExpectedOwner, d.ActualOwner = want.Owner, owner
	}
	if want.Group != "" && want.Group != group {
		d.Changed = append(d.Changed, "group")
		d.ExpectedGroup, d.ActualGroup = want.Group, group
	}
	return d, len(d.Changed) > 0
}

func (c *collector) sha256(p string) (string, error) {
	f, err := c.fs.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, maxHashBytes+1))
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	if n > maxHashBytes {
		return "", fmt.Errorf("hash %s: larger than %d bytes; a managed file is never that large", p, maxHashBytes)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
