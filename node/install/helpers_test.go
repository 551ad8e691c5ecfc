package install

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

func sum512(b []byte) string {
	s := sha512.Sum512(b)
	return hex.EncodeToString(s[:])
}

// artifactServer serves stand-in artifacts over HTTPS (its Client trusts
// it) and records the paths asked for.
type artifactServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	asked []string
}

func newArtifactServer(t *testing.T) *artifactServer {
	s := &artifactServer{files: map[string][]byte{}}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.asked = append(s.asked, r.URL.Path)
		b, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *artifactServer) put(p string, b []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[p] = b
	return s.URL + p
}

func (s *artifactServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

// standinPluginZip is a stand-in plugin zip (not the real plugin).
func standinPluginZip(t *testing.T, name, esVersion string, under string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(under + "plugin-descriptor.properties")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "# stand-in, not the real plugin\ndescription=stand-in %s\nversion=%s\nname=%s\nclassname=org.example.StandIn\njava.version=1.8\nelasticsearch.version=%s\n", name, esVersion, name, esVersion)
	w, _ = zw.Create(under + "standin-" + name + ".jar")
	w.Write([]byte("stand-in jar"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type tarEntry struct {
	name, body, link string
	mode             int64
	dir              bool
}

// hashedRequirements pins its one requirement by hash (a stand-in hash:
// the fake pip installs nothing).
const hashedRequirements = "# stand-in requirements\nFlask==1.0.2 \\\n    --hash=sha256:2271c0070dbcb5275fad4a82e29f23ab92682dc45f9dfbc22c02ba9b9322ce48\n"

// standinHQTarball is a stand-in ElasticHQ release tarball.
func standinHQTarball(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	if entries == nil {
		entries = []tarEntry{
			{name: "elasticsearch-HQ-3.5.12/", dir: true},
			{name: "elasticsearch-HQ-3.5.12/application.py", body: "# stand-in, not the real ElasticHQ\n", mode: 0o755},
			{name: "elasticsearch-HQ-3.5.12/requirements.txt", body: hashedRequirements, mode: 0o600},
			{name: "elasticsearch-HQ-3.5.12/elastichq/__init__.py", body: "", mode: 0o666},
		}
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		switch {
		case e.dir:
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o775, 0
		case e.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// fakeSystem is a recording runner that behaves like a Debian target for
// the commands install runs: dpkg, apt-get, elasticsearch-plugin, useradd,
// python3 -m venv. The .debs it "installs" are stand-in bytes.
type fakeSystem struct {
	RecordingRunner
	t         *testing.T
	root      string
	mu        sync.Mutex
	debs      map[string]debInfo // file name -> fields
	installed map[string]string
	// postinst, when set, runs after the elasticsearch package is
	// "installed" (the real package's maintainer script).
	postinst func()
	// keystoreTool is the stand-in elasticsearch-keystore the fake runs
	// for KeystoreTool; unset, the command is only recorded.
	keystoreTool string
}

func newFakeSystem(t *testing.T, root string) *fakeSystem {
	f := &fakeSystem{t: t, root: root, debs: map[string]debInfo{}, installed: map[string]string{"python3": "3.11.2-1+b1"}}
	f.Respond = f.respond
	return f
}

func (f *fakeSystem) host(p string) string { return filepath.Join(f.root, p) }

func (f *fakeSystem) write(p, body string, mode os.FileMode) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(f.host(p)), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.host(p), []byte(body), mode); err != nil {
		f.t.Fatal(err)
	}
}

// fields answers for the stand-in .debs of a test: from the test's table,
// else from the file itself with the host's dpkg-deb (read-only).
func (f *fakeSystem) fields(file string) (debInfo, bool) {
	if d, ok := f.debs[path.Base(file)]; ok {
		return d, true
	}
	out, err := exec.Command("dpkg-deb", "--field", f.host(file), "Package", "Version").Output()
	if err != nil {
		return debInfo{}, false
	}
	var d debInfo
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Package: "); ok {
			d.Package = v
		}
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			d.Version = v
		}
	}
	return d, d.Package != ""
}

func (f *fakeSystem) installDeb(file string) {
	d, ok := f.fields(file)
	if !ok {
		f.t.Errorf("dpkg -i of an unknown stand-in %s", file)
		return
	}
	f.installed[d.Package] = d.Version
	if d.Package == "elasticsearch" && f.postinst != nil {
		f.postinst()
	}
	if d.Package == "elasticsearch" {
		f.write("/usr/lib/systemd/system/elasticsearch.service", "[Unit]\nDescription=stand-in\n[Service]\nUser=elasticsearch\n[Install]\nWantedBy=multi-user.target\n", 0o644)
	}
	if d.Package == "amazon-cloudwatch-agent" {
		f.write("/etc/systemd/system/amazon-cloudwatch-agent.service", "[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n", 0o644)
	}
}

func (f *fakeSystem) respond(c Command) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c.Name {
	case "dpkg-deb":
		d, ok := f.fields(c.Args[1])
		if !ok {
			return []byte("dpkg-deb: error: not a Debian format archive"), fmt.Errorf("exit status 2")
		}
		return []byte("Package: " + d.Package + "\nVersion: " + d.Version + "\n"), nil
	case "dpkg-query":
		var out strings.Builder
		missing := false
		for _, p := range c.Args[2:] {
			if v, ok := f.installed[p]; ok {
				fmt.Fprintf(&out, "%s\tinstalled\t%s\n", p, v)
			} else {
				missing = true
			}
		}
		if missing {
			return []byte(out.String()), fmt.Errorf("exit status 1")
		}
		return []byte(out.String()), nil
	case "dpkg":
		f.installDeb(c.Args[1])
	case "apt-get":
		seen := false
		for _, a := range c.Args {
			switch {
			case a == "install":
				seen = true
			case !seen || strings.HasPrefix(a, "-"):
			case strings.HasSuffix(a, ".deb"):
				f.installDeb(a)
			default:
				f.installed[a] = "1.0-stand-in"
			}
		}
	case ESPluginTool:
		if c.Args[0] == "install" {
			d, err := zipDescriptor(f.host(strings.TrimPrefix(c.Args[2], "file://")))
			if err != nil {
				return nil, err
			}
			f.write(path.Join(ESPluginsDir, d.Name, "plugin-descriptor.properties"), "name="+d.Name+"\nelasticsearch.version="+d.ElasticsearchVersion+"\n", 0o644)
		}
	case KeystoreTool:
		// The stand-in keystore tool, on the target's config dir.
		if _, err := os.Stat(f.host(ESConfigDir)); err != nil || f.keystoreTool == "" {
			return nil, nil
		}
		cmd := exec.Command(f.keystoreTool, c.Args...)
		cmd.Env = append(os.Environ(), "ES_PATH_CONF="+f.host(ESConfigDir))
		cmd.Stdin = bytes.NewReader(c.Stdin)
		out, err := cmd.CombinedOutput()
		return out, err
	case "useradd":
		name := c.Args[len(c.Args)-1]
		b, _ := os.ReadFile(f.host("/etc/passwd"))
		f.write("/etc/passwd", string(b)+name+":x:998:998::/var/lib/elastichq:/usr/sbin/nologin\n", 0o644)
	case "python3":
		if len(c.Args) == 3 && c.Args[1] == "venv" {
			// umask 027, as on a CIS image
			f.write(path.Join(c.Args[2], "bin/python"), "#!stand-in python\n", 0o750)
			f.write(path.Join(c.Args[2], "pyvenv.cfg"), "home = /usr/bin\n", 0o640)
		}
	}
	return nil, nil
}

// mutating lists the recorded commands that change a target.
func (f *fakeSystem) mutating() []string {
	var out []string
	for _, c := range f.Commands {
		switch c.Name {
		case "dpkg-deb", "dpkg-query":
			continue
		}
		out = append(out, c.String())
	}
	return out
}

func (f *fakeSystem) ran(prefix string) *Command {
	for i, c := range f.Commands {
		if strings.HasPrefix(c.String(), prefix) {
			return &f.Commands[i]
		}
	}
	return nil
}

// fixture is a full stand-in bake: server, spec, root, runner.
type fixture struct {
	t      *testing.T
	srv    *artifactServer
	root   string
	sys    *fakeSystem
	node   *spec.Node
	esnode string
	out    bytes.Buffer
}

const (
	esVersion8 = "8.15.3"
	esVersion6 = "6.8.23"
)

func newFixture(t *testing.T, esVersion string, hq, cw bool) *fixture {
	t.Helper()
	fx := &fixture{t: t, srv: newArtifactServer(t), root: t.TempDir()}
	fx.sys = newFakeSystem(t, fx.root)
	esFile := "elasticsearch-" + esVersion + "-amd64.deb"
	if strings.HasPrefix(esVersion, "6.") {
		esFile = "elasticsearch-" + esVersion + ".deb"
	}
	esDeb := []byte("stand-in elasticsearch " + esVersion + " .deb, not the real package")
	fx.sys.debs[esFile] = debInfo{"elasticsearch", esVersion}
	n := &spec.Node{}
	n.Elasticsearch.Version = esVersion
	n.Cluster.MasterNodes = 3
	n.Elasticsearch.URL = fx.srv.put("/es/"+esFile, esDeb)
	n.Elasticsearch.SHA512 = sum512(esDeb)
	zipFile := "discovery-ec2-" + esVersion + ".zip"
	under := ""
	if strings.HasPrefix(esVersion, "6.") {
		under = "elasticsearch/"
	}
	z := standinPluginZip(t, "discovery-ec2", esVersion, under)
	n.Plugins = []spec.Plugin{{
		Name:   "discovery-ec2",
		URL:    fx.srv.put("/plugins/"+zipFile, z),
		SHA512: "file:" + fx.srv.put("/plugins/"+zipFile+".sha512", []byte(sum512(z)+"  "+zipFile+"\n")),
	}}
	if hq {
		tgz := standinHQTarball(t)
		n.ElasticHQ.Enabled = true
		n.ElasticHQ.URL = fx.srv.put("/hq/elasticsearch-HQ-3.5.12.tar.gz", tgz)
		n.ElasticHQ.SHA512 = sum512(tgz)
	}
	if cw {
		deb := []byte("stand-in amazon-cloudwatch-agent .deb, not the real package")
		fx.sys.debs["amazon-cloudwatch-agent.deb"] = debInfo{"amazon-cloudwatch-agent", "1.300000.0-1"}
		n.CloudWatchAgent.Enabled = true
		n.CloudWatchAgent.Version = "1.300000.0"
		n.CloudWatchAgent.URL = fx.srv.put("/cw/amazon-cloudwatch-agent.deb", deb)
		n.CloudWatchAgent.SHA512 = sum512(deb)
	}
	fx.node = n
	fx.esnode = filepath.Join(t.TempDir(), "esnode")
	if err := os.WriteFile(fx.esnode, []byte("stand-in esnode binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return fx
}

func (fx *fixture) options() Options {
	return Options{Spec: fx.node, Root: fx.root, Arch: "amd64", Out: &fx.out, Runner: fx.sys, HTTPClient: fx.srv.Client(), EsnodeBinary: fx.esnode}
}

func (fx *fixture) run() (Result, error) {
	fx.sys.Commands = nil
	fx.out.Reset()
	return Run(context.Background(), fx.options())
}

// treeFiles lists every path under root.
func treeFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			out = append(out, "/"+rel)
		}
		return nil
	})
	return out
}

func writeFileForTest(p string, b []byte) error { return os.WriteFile(p, b, 0o644) }
