package standin

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing; CI must install it", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestBuildProducesValidStandIns(t *testing.T) {
	need(t, "dpkg-deb")
	for _, tc := range []struct{ version, esName, arch string }{
		{"8.15.3", "elasticsearch-8.15.3-amd64.deb", "amd64"},
		{"6.8.23", "elasticsearch-6.8.23.deb", "all"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			dir := t.TempDir()
			a, err := BuildArch(dir, tc.version, "amd64")
			if err != nil {
				t.Fatal(err)
			}
			if a.Elasticsearch.FileName != tc.esName {
				t.Errorf("file name %s, want %s", a.Elasticsearch.FileName, tc.esName)
			}
			info := run(t, "dpkg-deb", "--info", a.Elasticsearch.Path)
			for _, want := range []string{"Package: elasticsearch", "Version: " + tc.version, "Architecture: " + tc.arch, "stand-in, not the real package", "postinst"} {
				if !strings.Contains(info, want) {
					t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
				}
			}
			contents := run(t, "dpkg-deb", "--contents", a.Elasticsearch.Path)
			for _, want := range []string{
				"-rwxr-xr-x root/root", "./usr/share/elasticsearch/bin/elasticsearch\n",
				"./usr/share/elasticsearch/bin/elasticsearch-plugin\n", "./usr/share/elasticsearch/bin/elasticsearch-keystore\n",
				"./etc/elasticsearch/elasticsearch.yml\n", "./etc/elasticsearch/jvm.options\n",
				"./usr/lib/systemd/system/elasticsearch.service\n",
			} {
				if !strings.Contains(contents, want) {
					t.Errorf("dpkg-deb --contents lacks %q:\n%s", want, contents)
				}
			}
			if strings.Contains(contents, "jvm.options.d") != (tc.version[0] != '6') {
				t.Errorf("jvm.options.d presence wrong for %s", tc.version)
			}
			post := extract(t, a.Elasticsearch.Path)
			if b, _ := os.ReadFile(filepath.Join(post, "usr/lib/systemd/system/elasticsearch.service")); !strings.Contains(string(b), "User=elasticsearch") || !strings.Contains(string(b), "WantedBy=multi-user.target") {
				t.Errorf("unit:\n%s", b)
			}
			cw := run(t, "dpkg-deb", "--info", a.CWAgent.Path)
			if !strings.Contains(cw, "Package: amazon-cloudwatch-agent") || !strings.Contains(cw, "stand-in, not the real package") {
				t.Errorf("agent info:\n%s", cw)
			}
			if !strings.Contains(run(t, "dpkg-deb", "--contents", a.CWAgent.Path), "./opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl") {
				t.Error("agent .deb lacks the ctl script")
			}
			// Plugin zip descriptor.
			zr, err := zip.OpenReader(a.PluginEC2.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			prefix := ""
			if tc.version[0] == '6' {
				prefix = "elasticsearch/"
			}
			found := false
			for _, f := range zr.File {
				if f.Name == prefix+"plugin-descriptor.properties" {
					rc, _ := f.Open()
					b, _ := io.ReadAll(rc)
					rc.Close()
					found = strings.Contains(string(b), "elasticsearch.version="+tc.version+"\n") && strings.Contains(string(b), "stand-in")
				}
			}
			if !found {
				t.Error("plugin zip lacks a stand-in descriptor for the version")
			}
			// Sums and sha512sum files agree.
			for _, art := range []Artifact{a.Elasticsearch, a.PluginEC2, a.ElasticHQ, a.CWAgent} {
				b, _ := os.ReadFile(art.Path)
				s, _ := os.ReadFile(art.Path + ".sha512")
				if sum(b) != art.SHA512 || string(s) != art.SHA512+"  "+art.FileName+"\n" {
					t.Errorf("%s: sum or .sha512 file wrong", art.FileName)
				}
			}
		})
	}
}

func TestBuildIsReproducible(t *testing.T) {
	need(t, "dpkg-deb")
	a, err := BuildArch(t.TempDir(), "8.15.3", "arm64")
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildArch(t.TempDir(), "8.15.3", "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if a.Elasticsearch.SHA512 != b.Elasticsearch.SHA512 || a.PluginEC2.SHA512 != b.PluginEC2.SHA512 || a.ElasticHQ.SHA512 != b.ElasticHQ.SHA512 {
		t.Error("two builds differ; cached stand-ins would never match")
	}
}

func extract(t *testing.T, deb string) string {
	t.Helper()
	dir := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, dir)
	return dir
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ { // the stand-in needs a moment to listen
		if resp, err = http.Get(url); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestStandInElasticsearchServesAndPluginInstalls(t *testing.T) {
	need(t, "dpkg-deb", "python3")
	dir := t.TempDir()
	a, err := Build(dir, "7.17.25")
	if err != nil {
		t.Fatal(err)
	}
	root := extract(t, a.Elasticsearch.Path)
	home := filepath.Join(root, "usr/share/elasticsearch")
	conf := filepath.Join(root, "etc/elasticsearch")
	httpPort, transportPort := freePort(t), freePort(t)
	yml := fmt.Sprintf("cluster.name: standin-test\nnode.name: n1\nnetwork.host: 127.0.0.1\nhttp.port: %d\ntransport.port: %d\n", httpPort, transportPort)
	os.WriteFile(filepath.Join(conf, "elasticsearch.yml"), []byte(yml), 0o644)
	os.WriteFile(filepath.Join(conf, "jvm.options.d/heap.options"), []byte("-Xms512m\n-Xmx512m\n"), 0o644)

	// Plugin tool: installs the zip for this version, refuses another.
	cmd := exec.Command(filepath.Join(home, "bin/elasticsearch-plugin"), "install", "--batch", "file://"+a.PluginEC2.Path)
	cmd.Env = append(os.Environ(), "ES_HOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plugin install: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(home, "plugins/discovery-ec2/plugin-descriptor.properties")); err != nil {
		t.Errorf("plugin not installed: %v", err)
	}
	other, err := Build(t.TempDir(), "7.17.24")
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(home, "plugins/discovery-ec2"))
	cmd = exec.Command(filepath.Join(home, "bin/elasticsearch-plugin"), "install", "--batch", "file://"+other.PluginEC2.Path)
	cmd.Env = append(os.Environ(), "ES_HOME="+home)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "7.17.24") {
		t.Errorf("plugin for another version accepted: %v\n%s", err, out)
	}

	srv := exec.Command(filepath.Join(home, "bin/elasticsearch"))
	srv.Env = append(os.Environ(), "ES_PATH_CONF="+conf, "ES_HOME="+home)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	var root200 struct {
		ClusterName string `json:"cluster_name"`
		Version     struct{ Number string }
		Tagline     string
	}
	getJSON(t, fmt.Sprintf("http://127.0.0.1:%d/", httpPort), &root200)
	if root200.ClusterName != "standin-test" || root200.Version.Number != "7.17.25" || !strings.Contains(root200.Tagline, "stand-in") {
		t.Errorf("/ = %+v", root200)
	}
	var nodes struct {
		Nodes map[string]struct {
			Settings map[string]any
			JVM      struct {
				InputArguments []string `json:"input_arguments"`
				Mem            struct {
					HeapMax int64 `json:"heap_max_in_bytes"`
				}
			}
		}
	}
	getJSON(t, fmt.Sprintf("http://127.0.0.1:%d/_nodes/_local/settings,jvm", httpPort), &nodes)
	for _, n := range nodes.Nodes {
		if n.JVM.Mem.HeapMax != 512<<20 || !strings.Contains(strings.Join(n.JVM.InputArguments, " "), "-Xmx512m") {
			t.Errorf("jvm = %+v", n.JVM)
		}
		if c, _ := n.Settings["cluster"].(map[string]any); c["name"] != "standin-test" {
			t.Errorf("settings = %v", n.Settings)
		}
	}
	if len(nodes.Nodes) != 1 {
		t.Errorf("nodes = %v", nodes.Nodes)
	}
	// -Xmx shows on the command line, as a JVM's would.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", srv.Process.Pid))
	if !strings.Contains(string(cmdline), "-Xmx512m") {
		t.Errorf("cmdline %q lacks -Xmx512m", cmdline)
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", transportPort)); err != nil {
		t.Errorf("transport port not listening: %v", err)
	} else {
		c.Close()
	}
}

func TestStandInHQServes(t *testing.T) {
	need(t, "python3")
	tgz, err := hqTarball()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gz, err := gzip.NewReader(strings.NewReader(string(tgz)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var app string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(h.Name, "/application.py") {
			b, _ := io.ReadAll(tr)
			app = filepath.Join(dir, "application.py")
			os.WriteFile(app, b, 0o755)
		}
	}
	if app == "" {
		t.Fatal("no application.py in the stand-in tarball")
	}
	port := freePort(t)
	srv := exec.Command("python3", app, "--host", "127.0.0.1", "--port", fmt.Sprint(port))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "stand-in ElasticHQ") {
		t.Errorf("HQ page = %q", b)
	}
}
