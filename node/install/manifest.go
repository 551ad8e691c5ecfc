package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
	"github.com/esbake/packer-plugin-elasticsearch/version"
)

func (in *installer) managedFiles() []string {
	files := []string{EsnodePath, BootUnitPath, JoinedUnitPath, DrainUnitPath, ESBootDropInPath, SysctlPath, LimitsDropInPath, TmpDropInPath}
	if in.node.ElasticHQ.Enabled {
		files = append(files, HQUnitPath, HQBootDropInPath)
	}
	sort.Strings(files)
	return files
}

func (in *installer) buildManifest(ctx context.Context, now time.Time) (*spec.Manifest, error) {
	m := &spec.Manifest{
		APIVersion:    spec.APIVersion,
		Spec:          in.node,
		SpecHash:      in.hash,
		EsnodeVersion: version.String(),
		Arch:          in.arch,
		BakedAt:       now.UTC(),
		Packages:      map[string]string{},
	}
	pkgs := uniq(in.pkgs)
	have := in.installedVersions(ctx, pkgs...)
	for _, p := range pkgs {
		v, ok := have[p]
		if !ok {
			return nil, fmt.Errorf("dpkg-query does not list %s as installed after the install; look at the dpkg output above", p)
		}
		m.Packages[p] = v
	}
	for _, a := range in.arts {
		m.Artifacts = append(m.Artifacts, spec.BakedArtifact{Name: a.Name, URL: a.URL, SHA512: in.sums[a.Name]})
	}
	m.Security = in.imageSec
	if old, err := in.readManifest(); err == nil && old.Security != nil && m.Security != nil {
		// A re-run finds nothing left to remove: keep what the first one did.
		sec := *m.Security
		sec.Removed = uniq(append(append([]string{}, old.Security.Removed...), sec.Removed...))
		sec.ImageCertificates = uniq(append(append([]string{}, old.Security.ImageCertificates...), sec.ImageCertificates...))
		if sec.Removed == nil {
			sec.Removed = []string{}
		}
		if sec.ImageCertificates == nil {
			sec.ImageCertificates = []string{}
		}
		m.Security = &sec
	}
	for _, p := range in.managedFiles() {
		mf, err := in.fs.describe(p, "install")
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, mf)
	}
	return m, nil
}

func (in *installer) manifest(ctx context.Context) error {
	now := time.Now
	if in.o.Now != nil {
		now = in.o.Now
	}
	m, err := in.buildManifest(ctx, now())
	if err != nil {
		return err
	}
	if old, err := in.readManifest(); err == nil {
		m2 := *m
		m2.BakedAt = old.BakedAt
		a, _ := json.Marshal(m2)
		b, _ := json.Marshal(old)
		if bytes.Equal(a, b) {
			in.step(StepManifest, false, "")
			return nil
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the manifest: %w", err)
	}
	if err := in.fs.mkdirAll(path.Dir(spec.ManifestPath), 0o755); err != nil {
		return err
	}
	if _, err := in.fs.writeFile(spec.ManifestPath, append(data, '\n'), 0o644); err != nil {
		return err
	}
	in.step(StepManifest, true, "wrote %s (spec %s, %d files, %d packages)", spec.ManifestPath, in.hash[:12], len(m.Files), len(m.Packages))
	return nil
}

func (in *installer) readManifest() (*spec.Manifest, error) {
	b, err := os.ReadFile(in.fs.host(spec.ManifestPath))
	if err != nil {
		return nil, err
	}
	return spec.ParseManifest(b)
}

// matchesManifest reports whether the target already is what this spec and
// these artifacts make: same spec hash, esnode and artifact sums, every
// recorded file unchanged, packages at their recorded versions, plugins,
// ElasticHQ and enabled units in place. why says what differs, when a
// manifest exists.
func (in *installer) matchesManifest(ctx context.Context) (bool, string) {
	m, err := in.readManifest()
	if errors.Is(err, fs.ErrNotExist) {
		return false, ""
	}
	if err != nil {
		return false, fmt.Sprintf("the existing manifest is unreadable (%v); installing", err)
	}
	differs := func(what string) (bool, string) {
		return false, "installing: " + what + " differs from " + spec.ManifestPath
	}
	switch {
	case m.SpecHash != in.hash:
		return differs("the spec")
	case m.Arch != in.arch:
		return differs("the architecture")
	case m.EsnodeVersion != version.String():
		return differs("the esnode version")
	case len(m.Artifacts) != len(in.arts):
		return differs("the artifact list")
	}
	for i, a := range in.arts {
		if m.Artifacts[i].Name != a.Name || m.Artifacts[i].SHA512 != in.sums[a.Name] {
			return differs("artifact " + a.Name)
		}
	}
	want := in.managedFiles()
	if len(m.Files) != len(want) {
		return differs("the file list")
	}
	binSum := sha256.Sum256(in.esnode)
	for i, rec := range m.Files {
		if rec.Path != want[i] {
			return differs("the file list")
		}
		cur, err := in.fs.describe(rec.Path, rec.Stage)
		if err != nil || cur != rec {
			return differs(rec.Path)
		}
		if rec.Path == EsnodePath && rec.SHA256 != hex.EncodeToString(binSum[:]) {
			return differs("the esnode binary")
		}
	}
	var pkgs []string
	for p := range m.Packages {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	have := in.installedVersions(ctx, pkgs...)
	for _, p := range pkgs {
		if have[p] != m.Packages[p] {
			return differs("package " + p)
		}
	}
	for _, p := range in.node.Plugins {
		if d, ok := in.fs.installedPlugin(p.Name); !ok || d.ElasticsearchVersion != in.ver.String() {
			return differs("plugin " + p.Name)
		}
	}
	if hq := in.node.ElasticHQ; hq.Enabled {
		if !in.fs.hqExtracted(hqDir(hq.Version), in.sums["elastichq"]) || !in.fs.exists(HQVenv+"/bin/python") || !in.fs.hasUser(hq.User) {
			return differs("ElasticHQ")
		}
	}
	for _, u := range in.units() {
		if !in.fs.isEnabled(u) {
			return differs("the enablement of " + u)
		}
	}
	return true, ""
}
