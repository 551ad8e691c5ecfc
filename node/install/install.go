package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Options configure one install.
type Options struct {
	// Spec is the node to bake; it is defaulted and validated again here.
	Spec *spec.Node
	// Root is the target's filesystem root; "" means "/". With another root
	// commands run chrooted into it and services are enabled by symlinks.
	Root string
	// Mirror overrides the spec's mirror_url.
	Mirror string
	// Arch is the target's Debian architecture; default runtime.GOARCH.
	Arch string
	// WaitCloudInit bounds `cloud-init status --wait`; zero does not wait.
	WaitCloudInit time.Duration
	// LockTimeout bounds the wait for apt and dpkg locks; default
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// Generalize removes SSH host keys, authorized_keys, shell history,
	// cloud-init instance state and the machine id at the end.
	Generalize bool
	// Out receives one line per step; nil discards.
	Out io.Writer
	// Runner runs commands on the target; default ExecRunner{Root}.
	Runner CommandRunner
	// HTTPClient downloads artifacts; default an http.Client that honours
	// the proxy environment.
	HTTPClient *http.Client
	// EsnodeBinary is the esnode to install as /usr/local/bin/esnode;
	// default the running executable.
	EsnodeBinary string
	// Now stamps the manifest; default time.Now.
	Now func() time.Time
}

// StepResult is what one step did.
type StepResult struct {
	Name    string
	Changed bool
	Detail  string
}

// Result says what an install did.
type Result struct {
	Changed bool
	Steps   []StepResult
}

// Step names, in order.
const (
	StepWait       = "wait"
	StepDownload   = "download"
	StepJava       = "java"
	StepES         = "elasticsearch"
	StepSystem     = "system"
	StepHQ         = "elastichq"
	StepCWAgent    = "cloudwatch-agent"
	StepEsnode     = "esnode"
	StepServices   = "services"
	StepManifest   = "manifest"
	StepCleanup    = "cleanup"
	StepGeneralize = "generalize"
)

type installer struct {
	o        Options
	fs       fsys
	r        CommandRunner
	out      io.Writer
	node     spec.Node // defaulted, as recorded
	hash     string
	ver      spec.Version
	arch     string
	arts     []spec.Artifact
	sums     map[string]string // artifact name -> expected SHA-512
	got      map[string]*fetched
	debs     map[string]debInfo // artifact name -> package fields
	esnode   []byte
	res      Result
	workHost string // host path of the download dir while it exists
	created  []string
	aptUsed  bool
	aptFresh bool
	unitsNew bool
	pkgs     []string // packages this install owns, for the manifest
	imageSec *spec.ImageSecurity
}

type debInfo struct{ Package, Version string }

// Run bakes the node into the target. It downloads and verifies every
// artifact before it installs anything, so a bad download leaves the
// target as it was.
func Run(ctx context.Context, o Options) (Result, error) {
	in, err := newInstaller(o)
	if err != nil {
		return Result{}, err
	}
	err = in.run(ctx)
	if in.workHost != "" {
		if cerr := in.removeWorkDir(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return in.res, fmt.Errorf("esnode install: %w", err)
	}
	return in.res, nil
}

func newInstaller(o Options) (*installer, error) {
	if o.Spec == nil {
		return nil, errors.New("esnode install: no node spec; pass --spec FILE")
	}
	root := o.Root
	if root == "" {
		root = "/"
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("esnode install: root: %w", err)
	}
	in := &installer{o: o, fs: fsys{root: root}, out: o.Out, sums: map[string]string{}, got: map[string]*fetched{}, debs: map[string]debInfo{}}
	if in.out == nil {
		in.out = io.Discard
	}
	in.r = o.Runner
	if in.r == nil {
		in.r = ExecRunner{Root: root}
	}
	in.node = *o.Spec
	in.node.SetDefaults()
	if err := in.node.Validate(); err != nil {
		return nil, fmt.Errorf("esnode install: node spec is invalid:\n%w", err)
	}
	in.hash = in.node.Hash()
	if in.ver, err = spec.ParseVersion(in.node.Elasticsearch.Version); err != nil {
		return nil, fmt.Errorf("esnode install: %w", err)
	}
	in.arch = o.Arch
	if in.arch == "" {
		in.arch = runtime.GOARCH // Go and Debian agree on amd64 and arm64
	}
	resolve := in.node
	if o.Mirror != "" {
		resolve.MirrorURL = o.Mirror
	}
	if in.arts, err = resolve.Artifacts(in.arch); err != nil {
		return nil, fmt.Errorf("esnode install: %w", err)
	}
	seen := map[string]string{}
	for _, a := range in.arts {
		if other, ok := seen[a.FileName]; ok {
			return nil, fmt.Errorf("esnode install: artifacts %s and %s are both named %s; give one a URL with another file name", other, a.Name, a.FileName)
		}
		seen[a.FileName] = a.Name
	}
	bin := o.EsnodeBinary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("esnode install: find the running esnode: %w", err)
		}
	}
	if in.esnode, err = os.ReadFile(bin); err != nil {
		return nil, fmt.Errorf("esnode install: read the esnode binary to install: %w", err)
	}
	return in, nil
}

func (in *installer) step(name string, changed bool, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	if !changed && detail == "" {
		detail = "unchanged"
	}
	in.res.Steps = append(in.res.Steps, StepResult{Name: name, Changed: changed, Detail: detail})
	if changed {
		in.res.Changed = true
	}
	fmt.Fprintf(in.out, "esnode install: %s: %s\n", name, detail)
}

func (in *installer) warn(format string, args ...any) {
	fmt.Fprintf(in.out, "esnode install: warning: "+format+"\n", args...)
}

func (in *installer) live() bool { return in.fs.root == "/" }

// run performs the steps: wait, resolve sums, then either confirm that the
// node matches its manifest or download, verify and install.
func (in *installer) run(ctx context.Context) error {
	if err := in.wait(ctx); err != nil {
		return err
	}
	f := &fetcher{client: in.o.HTTPClient, retryDelay: 2 * time.Second, allowHTTP: in.node.AllowInsecureHTTP}
	if f.client == nil {
		// Proxies from the environment; a server that never answers fails
		// instead of hanging the bake (bodies are bounded by ctx only).
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = time.Minute
		f.client = &http.Client{Transport: t}
	}
	for _, a := range in.arts {
		sum, err := f.expectedSum(ctx, a)
		if err != nil {
			return err
		}
		in.sums[a.Name] = sum
	}
	if ok, why := in.matchesManifest(ctx); ok {
		steps := []string{StepDownload, StepJava, StepES}
		for _, p := range in.node.Plugins {
			steps = append(steps, "plugin/"+p.Name)
		}
		for _, s := range append(steps, StepSystem, StepHQ, StepCWAgent, StepEsnode, StepServices, StepManifest) {
			in.step(s, false, "")
		}
		if err := in.cleanup(ctx, false); err != nil {
			return err
		}
		if err := in.generalize(ctx); err != nil {
			return err
		}
		if !in.res.Changed {
			fmt.Fprintf(in.out, "esnode install: nothing changed (the node matches %s, spec %s)\n", spec.ManifestPath, in.hash[:12])
		}
		return nil
	} else if why != "" {
		fmt.Fprintf(in.out, "esnode install: %s\n", why)
	}
	if err := in.download(ctx, f); err != nil {
		return err
	}
	for _, s := range []func(context.Context) error{in.java, in.elasticsearch, in.system, in.elasticHQ, in.cwAgent, in.self, in.services, in.manifest} {
		if err := s(ctx); err != nil {
			return err
		}
	}
	if err := in.cleanup(ctx, true); err != nil {
		return err
	}
	if err := in.generalize(ctx); err != nil {
		return err
	}
	n := 0
	for _, s := range in.res.Steps {
		if s.Changed {
			n++
		}
	}
	if n == 0 {
		fmt.Fprintf(in.out, "esnode install: nothing changed\n")
	} else {
		fmt.Fprintf(in.out, "esnode install: done, %d step(s) changed\n", n)
	}
	return nil
}

// exec runs a command on the target, with the private work dir as TMPDIR
// while it exists (/tmp and /var/tmp are noexec on CIS images).
func (in *installer) exec(ctx context.Context, c Command) ([]byte, error) {
	if in.workHost != "" {
		c.Env = append(c.Env, "TMPDIR="+DownloadDir)
	}
	return in.r.Run(ctx, c)
}

func (in *installer) wait(ctx context.Context) error {
	var parts []string
	switch {
	case in.o.WaitCloudInit <= 0:
	case !in.live():
		parts = append(parts, "cloud-init not waited for (--root)")
	case !in.fs.exists("/usr/bin/cloud-init"):
		parts = append(parts, "no cloud-init")
	default:
		st, err := waitCloudInit(ctx, in.r, in.o.WaitCloudInit, in.warn)
		if err != nil {
			return err
		}
		parts = append(parts, "cloud-init "+st)
	}
	timeout := in.o.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	waited, err := waitLocks(ctx, in.fs, timeout, 2*time.Second)
	if err != nil {
		return err
	}
	if waited {
		parts = append(parts, "apt/dpkg locks released")
	} else {
		parts = append(parts, "apt/dpkg locks free")
	}
	in.step(StepWait, false, "%s", strings.Join(parts, ", "))
	return nil
}

// download fetches and verifies every artifact, and checks what each one is,
// before anything is installed.
func (in *installer) download(ctx context.Context, f *fetcher) error {
	if err := in.makeWorkDir(); err != nil {
		return err
	}
	var names []string
	for _, a := range in.arts {
		got, err := f.download(ctx, a, in.sums[a.Name], in.workHost, DownloadDir)
		if err != nil {
			return err
		}
		in.got[a.Name] = got
		names = append(names, a.FileName)
	}
	for _, a := range in.arts {
		got := in.got[a.Name]
		switch {
		case a.Name == "java" || a.Name == "elasticsearch" || a.Name == "cloudwatch-agent":
			d, err := in.debFields(ctx, got.NodePath)
			if err != nil {
				return fmt.Errorf("artifact %s: %w", a.Name, err)
			}
			if a.Name == "elasticsearch" && (d.Package != ESPackage || d.Version != in.ver.String()) {
				return fmt.Errorf("artifact elasticsearch (%s) is the package %s %s, not elasticsearch %s; point elasticsearch.url at the %s package", a.FileName, d.Package, d.Version, in.ver, in.ver)
			}
			in.debs[a.Name] = d
		case strings.HasPrefix(a.Name, "plugin/"):
			if _, err := checkPlugin(strings.TrimPrefix(a.Name, "plugin/"), in.ver.String(), got.HostPath); err != nil {
				return err
			}
		case a.Name == "elastichq":
			if err := checkHQTarball(got.HostPath, in.workHost); err != nil {
				return err
			}
		}
	}
	in.step(StepDownload, false, "verified the SHA-512 of %d artifact(s): %s", len(names), strings.Join(names, ", "))
	return nil
}

// makeWorkDir creates the private download dir (0700) on the target's disk,
// remembering which parents it created so that cleanup removes them too.
func (in *installer) makeWorkDir() error {
	var missing []string
	for p := DownloadDir; p != "/"; p = path.Dir(p) {
		if in.fs.exists(p) {
			break
		}
		missing = append(missing, p)
	}
	host := in.fs.host(DownloadDir)
	if err := os.RemoveAll(host); err != nil { // leftovers of an interrupted run
		return fmt.Errorf("clear %s: %w", DownloadDir, err)
	}
	if err := in.fs.mkdirAll(path.Dir(DownloadDir), 0o755); err != nil {
		return err
	}
	if err := in.fs.mkdirAll(DownloadDir, 0o700); err != nil {
		return err
	}
	in.created = missing
	in.workHost = host
	return nil
}

func (in *installer) removeWorkDir() error {
	if err := os.RemoveAll(in.workHost); err != nil {
		return fmt.Errorf("remove %s: %w", DownloadDir, err)
	}
	in.workHost = ""
	for _, p := range in.created { // deepest first; DownloadDir is gone already
		if p == DownloadDir {
			continue
		}
		if err := os.Remove(in.fs.host(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			break // not empty: something else lives there now
		}
	}
	in.created = nil
	return nil
}

func (in *installer) debFields(ctx context.Context, nodePath string) (debInfo, error) {
	out, err := in.exec(ctx, Command{Name: "dpkg-deb", Args: []string{"--field", nodePath, "Package", "Version"}})
	if err != nil {
		return debInfo{}, fmt.Errorf("read the package fields of %s: %w", path.Base(nodePath), err)
	}
	var d debInfo
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch strings.TrimSpace(k) {
		case "Package":
			d.Package = strings.TrimSpace(v)
		case "Version":
			d.Version = strings.TrimSpace(v)
		}
	}
	if d.Package == "" || d.Version == "" {
		return d, fmt.Errorf("%s is not a Debian package (no Package/Version fields)", path.Base(nodePath))
	}
	return d, nil
}

// installedVersions asks dpkg which of pkgs are installed, and at which
// version; packages that are not installed are missing from the map.
func (in *installer) installedVersions(ctx context.Context, pkgs ...string) map[string]string {
	out := map[string]string{}
	if len(pkgs) == 0 {
		return out
	}
	res, _ := in.exec(ctx, Command{Name: "dpkg-query", Args: append([]string{"-W", "-f=${Package}\\t${db:Status-Status}\\t${Version}\\n"}, pkgs...)})
	for _, line := range strings.Split(string(res), "\n") {
		f := strings.Split(strings.TrimSpace(line), "\t")
		if len(f) == 3 && f[1] == "installed" {
			out[f[0]] = f[2]
		}
	}
	return out
}

// cleanup removes what only the bake needed.
func (in *installer) cleanup(ctx context.Context, full bool) error {
	var did []string
	if in.workHost != "" || in.fs.exists(DownloadDir) {
		if in.workHost == "" {
			in.workHost = in.fs.host(DownloadDir)
		}
		if err := in.removeWorkDir(); err != nil {
			return err
		}
		did = append(did, "removed "+DownloadDir)
	}
	if full && in.aptUsed {
		if _, err := in.exec(ctx, Command{Name: "apt-get", Args: []string{"clean"}}); err != nil {
			in.warn("apt-get clean: %v", err)
		} else {
			did = append(did, "apt-get clean")
		}
	}
	// Downloads are scratch space, not a change to the node.
	in.step(StepCleanup, false, "%s", strings.Join(did, ", "))
	return nil
}

func (in *installer) generalize(ctx context.Context) error {
	if !in.o.Generalize {
		return nil
	}
	done, err := in.fs.generalize(ctx, in.r)
	if err != nil {
		return err
	}
	if len(done) == 0 {
		in.step(StepGeneralize, false, "")
		return nil
	}
	in.step(StepGeneralize, true, "removed %s", strings.Join(done, ", "))
	return nil
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
