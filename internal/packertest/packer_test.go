package packertest

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/internal/packerrun"
)

const pluginSource = "github.com/esbake/elasticsearch"

// repoRoot is the checkout this package is in.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// missing skips outside CI and fails in CI: a CI job must run these tests.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (skipped outside CI)", args...)
}

// packerBinary is $PACKER, or the Packer `make deps` builds.
func packerBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("PACKER")
	if p == "" {
		cache := os.Getenv("ESBAKE_CACHE")
		if cache == "" {
			cache = "/var/cache/esbake"
		}
		p = filepath.Join(cache, "bin", "packer")
	}
	if _, err := os.Stat(p); err != nil {
		missing(t, "no Packer at %s: run make deps (it builds Packer 1.16.0) or set PACKER", p)
	}
	return p
}

// release is the host's binary from the release in dist/, checked against
// the release's _SHA256SUMS.
type release struct {
	version, api, zip, binary string
}

var reSums = regexp.MustCompile(`^packer-plugin-elasticsearch_v([0-9]+\.[0-9]+\.[0-9]+)_SHA256SUMS$`)

func releaseBuild(t testing.TB) release {
	t.Helper()
	dist := os.Getenv("ESBAKE_RELEASE_DIR")
	if dist == "" {
		dist = filepath.Join(repoRoot(t), "dist")
	}
	entries, _ := os.ReadDir(dist)
	var sums string
	var r release
	for _, e := range entries {
		if m := reSums.FindStringSubmatch(e.Name()); m != nil {
			sums, r.version = filepath.Join(dist, e.Name()), m[1]
		}
	}
	if sums == "" {
		missing(t, "no release in %s (packer-plugin-elasticsearch_v*_SHA256SUMS): run make release", dist)
	}
	data, err := os.ReadFile(sums)
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf("_%s_%s.zip", runtime.GOOS, runtime.GOARCH)
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("%s: malformed line %q", sums, line)
		}
		want[f[1]] = f[0]
		if strings.HasSuffix(f[1], suffix) {
			r.zip = filepath.Join(dist, f[1])
		}
	}
	if r.zip == "" {
		t.Fatalf("%s lists no zip for %s/%s", sums, runtime.GOOS, runtime.GOARCH)
	}
	name := filepath.Base(r.zip)
	m := regexp.MustCompile(`^packer-plugin-elasticsearch_v` + regexp.QuoteMeta(r.version) + `_(x[0-9]+\.[0-9]+)_` + runtime.GOOS + `_` + runtime.GOARCH + `\.zip$`).FindStringSubmatch(name)
	if m == nil {
		t.Fatalf("release zip %s is not named packer-plugin-elasticsearch_v{version}_x{api}_{os}_{arch}.zip", name)
	}
	r.api = m[1]
	z, err := os.ReadFile(r.zip)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(z)
	if got := hex.EncodeToString(sum[:]); got != want[name] {
		t.Fatalf("%s has SHA-256 %s, _SHA256SUMS says %s", name, got, want[name])
	}
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	binName := strings.TrimSuffix(name, ".zip")
	if len(zr.File) != 1 || zr.File[0].Name != binName {
		var names []string
		for _, f := range zr.File {
			names = append(names, f.Name)
		}
		t.Fatalf("%s holds %v, want only %s (the binary name Packer expects)", name, names, binName)
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r.binary = filepath.Join(t.TempDir(), binName)
	out, err := os.OpenFile(r.binary, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, rc); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return r
}

// packerEnv is a Packer with its own plugin and config dirs in a temp dir,
// and a work dir holding the example and the sample var-file.
type packerEnv struct {
	bin, dir, plugins string
	env               []string
}

func newPackerEnv(t testing.TB) *packerEnv {
	t.Helper()
	bin := packerBinary(t)
	tmp := t.TempDir()
	e := &packerEnv{bin: bin, dir: filepath.Join(tmp, "work"), plugins: filepath.Join(tmp, "plugins")}
	for _, d := range []string{e.dir, e.plugins, filepath.Join(tmp, "config")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	e.env = append(os.Environ(),
		"PACKER_PLUGIN_PATH="+e.plugins,
		"PACKER_CONFIG_DIR="+filepath.Join(tmp, "config"),
		"CHECKPOINT_DISABLE=1",
		"PACKER_NO_COLOR=1",
	)
	root := repoRoot(t)
	copyFile(t, filepath.Join(root, "example.pkr.hcl"), filepath.Join(e.dir, "example.pkr.hcl"))
	// Packer reads var-files named *.pkrvars.hcl.
	copyFile(t, filepath.Join(root, "checksums.pkrvars.hcl.example"), filepath.Join(e.dir, "checksums.pkrvars.hcl"))
	return e
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs Packer in the work dir and returns its combined output.
func (e *packerEnv) run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Dir, cmd.Env = e.dir, e.env
	out, err := cmd.CombinedOutput()
	t.Logf("packer %s:\n%s", strings.Join(args, " "), out)
	return string(out), err
}

func (e *packerEnv) mustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := e.run(t, args...)
	if err != nil {
		t.Fatalf("packer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// install installs the release binary with `packer plugins install --path`
// and returns where Packer put it.
func (e *packerEnv) install(t testing.TB, r release) string {
	t.Helper()
	e.mustRun(t, "plugins", "install", "--path", r.binary, pluginSource)
	installed := filepath.Join(e.plugins, "github.com", "esbake", "elasticsearch",
		fmt.Sprintf("packer-plugin-elasticsearch_v%s_%s_%s_%s", r.version, r.api, runtime.GOOS, runtime.GOARCH))
	if _, err := os.Stat(installed); err != nil {
		t.Fatalf("packer plugins install put no %s: %v", installed, err)
	}
	if _, err := os.Stat(installed + "_SHA256SUM"); err != nil {
		t.Fatalf("packer plugins install wrote no checksum beside %s: %v", installed, err)
	}
	return installed
}

// TestPackerInstallsReleaseAndValidatesExample is what a user does with a
// release: install it, `packer init` the example (which must resolve to
// the installed release, offline), `fmt -check`, `validate` with the
// shipped sample var-file, and see a bad checksum refused by the example's
// validation.
func TestPackerInstallsReleaseAndValidatesExample(t *testing.T) {
	r := releaseBuild(t)
	e := newPackerEnv(t)
	if strings.Contains(r.version, "-") {
		t.Fatalf("release version %q is a pre-release: packer init ignores those", r.version)
	}
	installed := e.install(t, r)

	out := e.mustRun(t, "plugins", "installed")
	if !strings.Contains(out, installed) {
		t.Errorf("packer plugins installed does not list %s:\n%s", installed, out)
	}
	// init finds the installed release satisfies "~> 0.1" and installs
	// nothing (nothing could be downloaded here anyway).
	out = e.mustRun(t, "init", "example.pkr.hcl")
	if strings.Contains(out, "Installed plugin") {
		t.Errorf("packer init installed something instead of using %s:\n%s", installed, out)
	}
	e.mustRun(t, "fmt", "-check", "-diff", "example.pkr.hcl")
	out = e.mustRun(t, "validate", "-var-file=checksums.pkrvars.hcl", "example.pkr.hcl")
	if !strings.Contains(out, "The configuration is valid.") {
		t.Errorf("packer validate did not say the configuration is valid:\n%s", out)
	}
	// The example's own validation and the plugin's Prepare, through Packer.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-var", "elastichq_sha512=abc"}, "elastichq_sha512 must be a SHA-512"},
		{[]string{"-var", "elasticsearch_version=v8"}, "must look like 8.15.3"},
		{[]string{"-var", "region=Europe"}, "AWS region code"},
	} {
		args := append(append([]string{"validate", "-var-file=checksums.pkrvars.hcl"}, tc.args...), "example.pkr.hcl")
		out, err := e.run(t, args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("packer %v: err %v, want a failure saying %q:\n%s", args, err, tc.want, out)
		}
	}
	out = e.mustRun(t, "inspect", "example.pkr.hcl")
	for _, want := range []string{"elasticsearch-ami.node", "elasticsearch-node", "manifest"} {
		if !strings.Contains(out, want) {
			t.Errorf("packer inspect lacks %q:\n%s", want, out)
		}
	}
}

// TestPackerDescribeOfRelease: the release binary reports the release's
// version (no -dev) and the API version its file name carries.
func TestPackerDescribeOfRelease(t *testing.T) {
	r := releaseBuild(t)
	out, err := exec.Command(r.binary, "describe").Output()
	if err != nil {
		t.Fatalf("%s describe: %v", r.binary, err)
	}
	for _, want := range []string{`"version":"` + r.version + `"`, `"api_version":"` + r.api + `"`, `"ami"`, `"node"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("describe lacks %s: %s", want, out)
		}
	}
}

// machineLines reads `-machine-readable` output, calling each(l) per line.
func machineLines(r io.Reader, each func(packerrun.Line, string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		l, _ := packerrun.ParseLine(sc.Text())
		each(l, sc.Text())
	}
	return sc.Err()
}
