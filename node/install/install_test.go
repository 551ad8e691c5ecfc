package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/node/install/standin"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
	"github.com/esbake/packer-plugin-elasticsearch/version"
)

func readManifest(t *testing.T, root string) *spec.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, spec.ManifestPath))
	if err != nil {
		t.Fatal(err)
	}
	m, err := spec.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestInstall8xFullNode(t *testing.T) {
	fx := newFixture(t, esVersion8, true, true)
	res, err := fx.run()
	if err != nil {
		t.Fatalf("install: %v\n%s", err, fx.out.String())
	}
	if !res.Changed {
		t.Error("a fresh install reports no change")
	}
	if c := fx.sys.ran("apt-get"); c != nil && slices.Contains(c.Args, "default-jre-headless") {
		t.Error("Java installed for Elasticsearch 8")
	}
	es := fx.sys.ran("dpkg -i " + DownloadDir + "/elasticsearch-8.15.3-amd64.deb")
	if es == nil {
		t.Fatalf("no dpkg -i of the Elasticsearch package; ran %q", fx.sys.Lines())
	}
	if !slices.Contains(es.Env, "ES_SKIP_SET_KERNEL_PARAMETERS=true") || !slices.Contains(es.Env, "TMPDIR="+DownloadDir) {
		t.Errorf("dpkg -i env = %q, want ES_SKIP_SET_KERNEL_PARAMETERS=true and the private TMPDIR", es.Env)
	}
	if fx.sys.ran(ESPluginTool+" install --batch file://"+DownloadDir+"/discovery-ec2-8.15.3.zip") == nil {
		t.Errorf("plugin not installed offline; ran %q", fx.sys.Lines())
	}
	if fx.sys.ran("dpkg -i "+DownloadDir+"/amazon-cloudwatch-agent.deb") == nil {
		t.Error("CloudWatch agent not installed")
	}
	if fx.sys.ran("useradd --system --user-group --no-create-home --home-dir /var/lib/elastichq --shell /usr/sbin/nologin elastichq") == nil {
		t.Errorf("no ElasticHQ system user; ran %q", fx.sys.Lines())
	}
	if fx.sys.ran("python3 -m venv "+HQVenv) == nil {
		t.Error("no ElasticHQ venv")
	}
	pip := fx.sys.ran(HQVenv + "/bin/pip install")
	if pip == nil || slices.Contains(pip.Args, "--no-index") || !slices.Contains(pip.Args, "--require-hashes") || !slices.Contains(pip.Args, HQBase+"/3.5.12/requirements.txt") {
		t.Errorf("pip = %v, want an online install of the tarball's requirements (no wheels/ in it)", pip)
	}
	for _, c := range fx.sys.Commands {
		if c.Name == "systemctl" || strings.Contains(c.String(), "start") {
			t.Errorf("under --root nothing runs systemctl or starts anything; ran %q", c)
		}
	}
	// Files, modes, units.
	for p, want := range map[string]os.FileMode{
		EsnodePath: 0o755, BootUnitPath: 0o644, HQUnitPath: 0o644, SysctlPath: 0o644,
		LimitsDropInPath: 0o644, TmpDropInPath: 0o644, spec.ManifestPath: 0o644,
		HQBase + "/3.5.12/application.py": 0o755, HQBase + "/3.5.12/requirements.txt": 0o644,
		HQBase + "/3.5.12/elastichq/__init__.py": 0o644, HQBase + "/3.5.12": 0o755,
		HQVenv + "/bin/python": 0o755, HQVenv + "/pyvenv.cfg": 0o644,
	} {
		if got := mode(t, filepath.Join(fx.root, p)); got != want {
			t.Errorf("%s mode %04o, want %04o", p, got, want)
		}
	}
	filepath.WalkDir(fx.root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSymlink == 0 && mode(t, p)&0o002 != 0 {
			t.Errorf("%s is world-writable", p)
		}
		return nil
	})
	for _, u := range []string{BootUnit, ESUnit, HQUnit, CWAgentUnit, JoinedUnit, DrainUnit} {
		if _, err := os.Lstat(filepath.Join(fx.root, "/etc/systemd/system/multi-user.target.wants", u)); err != nil {
			t.Errorf("%s not enabled: %v", u, err)
		}
	}
	// Fail closed: Elasticsearch and ElasticHQ start only after a
	// successful esnode boot, which stays "active" (RemainAfterExit).
	for _, p := range []string{ESBootDropInPath, HQBootDropInPath} {
		b, _ := os.ReadFile(filepath.Join(fx.root, p))
		if !strings.Contains(string(b), "\n[Unit]\nRequires=esnode-boot.service\nAfter=esnode-boot.service\n") {
			t.Errorf("%s does not require esnode boot:\n%s", p, b)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(fx.root, JoinedUnitPath)); !strings.Contains(string(b), "ExecStart=/usr/local/bin/esnode joined\n") || !strings.Contains(string(b), "Type=simple\n") {
		t.Errorf("esnode-joined.service:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(fx.root, DrainUnitPath)); !strings.Contains(string(b), "ExecStart=/usr/local/bin/esnode drain\n") || !strings.Contains(string(b), "Requires=esnode-boot.service\n") {
		t.Errorf("esnode-drain.service:\n%s", b)
	}
	boot, _ := os.ReadFile(filepath.Join(fx.root, BootUnitPath))
	for _, want := range []string{"Type=oneshot", "RemainAfterExit=yes", "ExecStart=/usr/local/bin/esnode boot", "Before=elasticsearch.service elastichq.service amazon-cloudwatch-agent.service", "After=network-online.target", "Wants=network-online.target", "WantedBy=multi-user.target"} {
		if !strings.Contains(string(boot), want) {
			t.Errorf("esnode-boot.service lacks %q", want)
		}
	}
	hq, _ := os.ReadFile(filepath.Join(fx.root, HQUnitPath))
	for _, want := range []string{"User=elastichq", "ExecStart=" + HQVenv + "/bin/python " + HQBase + "/3.5.12/application.py --host 0.0.0.0 --port 5000", "After=network-online.target esnode-boot.service elasticsearch.service", "NoNewPrivileges=yes", "ProtectSystem=full"} {
		if !strings.Contains(string(hq), want) {
			t.Errorf("elastichq.service lacks %q:\n%s", want, hq)
		}
	}
	if s, _ := os.ReadFile(filepath.Join(fx.root, SysctlPath)); !strings.Contains(string(s), "vm.max_map_count = 262144\n") {
		t.Errorf("sysctl file:\n%s", s)
	}
	if s, _ := os.ReadFile(filepath.Join(fx.root, LimitsDropInPath)); !strings.Contains(string(s), "LimitNOFILE=65535\nLimitNPROC=4096\n") || strings.Contains(string(s), "MEMLOCK") {
		t.Errorf("limits drop-in:\n%s", s)
	}
	// The bake's scratch space is gone.
	if _, err := os.Stat(filepath.Join(fx.root, "/var/cache/esnode")); !os.IsNotExist(err) {
		t.Errorf("download dir left behind: %v", err)
	}
	// Manifest.
	m := readManifest(t, fx.root)
	if m.SpecHash != fx.node.Hash() || m.Arch != "amd64" || m.EsnodeVersion != version.String() {
		t.Errorf("manifest header = %s %s %s", m.SpecHash, m.Arch, m.EsnodeVersion)
	}
	if m.Spec.ElasticHQ.Port != 5000 || m.Spec.System.MaxMapCount != 262144 {
		t.Error("manifest spec is not the defaulted spec")
	}
	wantPkgs := map[string]string{"elasticsearch": esVersion8, "amazon-cloudwatch-agent": "1.300000.0-1", "python3": "3.11.2-1+b1", "python3-venv": "1.0-stand-in"}
	if len(m.Packages) != len(wantPkgs) {
		t.Errorf("packages = %v, want %v", m.Packages, wantPkgs)
	}
	for k, v := range wantPkgs {
		if m.Packages[k] != v {
			t.Errorf("package %s = %q, want %q", k, m.Packages[k], v)
		}
	}
	var names []string
	for _, a := range m.Artifacts {
		names = append(names, a.Name)
		if len(a.SHA512) != 128 || strings.HasPrefix(a.SHA512, "file:") {
			t.Errorf("artifact %s recorded sum %q, want the verified hex sum", a.Name, a.SHA512)
		}
	}
	if strings.Join(names, ",") != "elasticsearch,plugin/discovery-ec2,elastichq,cloudwatch-agent" {
		t.Errorf("artifacts = %v", names)
	}
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
		b, err := os.ReadFile(filepath.Join(fx.root, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		if f.SHA256 != hex.EncodeToString(s[:]) || f.Stage != "install" || f.Owner == "" || f.Group == "" {
			t.Errorf("manifest file %+v does not describe the file on disk", f)
		}
	}
	want := []string{EsnodePath, HQUnitPath, HQBootDropInPath, BootUnitPath, JoinedUnitPath, DrainUnitPath, ESBootDropInPath, LimitsDropInPath, TmpDropInPath, SysctlPath}
	slices.Sort(want)
	if !slices.Equal(paths, want) {
		t.Errorf("manifest files = %v, want %v", paths, want)
	}
	// One line per step.
	for _, s := range []string{StepWait, StepDownload, StepJava, StepES, "plugin/discovery-ec2", StepSystem, StepHQ, StepCWAgent, StepEsnode, StepServices, StepManifest, StepCleanup} {
		if !strings.Contains(fx.out.String(), "esnode install: "+s+": ") {
			t.Errorf("no output line for step %s:\n%s", s, fx.out.String())
		}
	}
}

func TestSecondRunChangesNothing(t *testing.T) {
	fx := newFixture(t, esVersion8, true, true)
	if _, err := fx.run(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(fx.root, spec.ManifestPath))
	asked := len(fx.srv.requests())
	res, err := fx.run()
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed {
		t.Errorf("second run changed something: %+v", res.Steps)
	}
	if m := fx.sys.mutating(); len(m) > 0 {
		t.Errorf("second run ran mutating commands %q", m)
	}
	for _, s := range res.Steps {
		if s.Changed {
			t.Errorf("step %s changed: %s", s.Name, s.Detail)
		}
	}
	if !strings.Contains(fx.out.String(), "nothing changed") || !strings.Contains(fx.out.String(), "esnode install: elasticsearch: unchanged") || !strings.Contains(fx.out.String(), "esnode install: plugin/discovery-ec2: unchanged") {
		t.Errorf("second run does not say nothing changed:\n%s", fx.out.String())
	}
	after, _ := os.ReadFile(filepath.Join(fx.root, spec.ManifestPath))
	if string(before) != string(after) {
		t.Error("second run rewrote the manifest")
	}
	// Only the checksum file is fetched again, no artifact.
	for _, p := range fx.srv.requests()[asked:] {
		if !strings.HasSuffix(p, ".sha512") {
			t.Errorf("second run downloaded %s", p)
		}
	}
}

func TestRerunRepairsDriftOnly(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	if _, err := fx.run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fx.root, SysctlPath), []byte("vm.max_map_count = 65530\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := fx.run()
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed {
		t.Fatal("drifted sysctl file not repaired")
	}
	if m := fx.sys.mutating(); len(m) > 0 {
		t.Errorf("repairing one file ran %q (packages were already at their versions)", m)
	}
	for _, s := range res.Steps {
		if s.Changed != (s.Name == StepSystem) {
			t.Errorf("step %s changed=%v (%s)", s.Name, s.Changed, s.Detail)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(fx.root, SysctlPath)); !strings.Contains(string(b), "262144") {
		t.Error("sysctl file not restored")
	}
}

func TestTamperedArtifactIsRefusedAndNothingInstalled(t *testing.T) {
	for _, name := range []string{"elasticsearch", "plugin", "elastichq", "cloudwatch-agent"} {
		t.Run(name, func(t *testing.T) {
			fx := newFixture(t, esVersion8, true, true)
			var p string
			switch name {
			case "elasticsearch":
				p = "/es/elasticsearch-8.15.3-amd64.deb"
			case "plugin":
				p = "/plugins/discovery-ec2-8.15.3.zip"
			case "elastichq":
				p = "/hq/elasticsearch-HQ-3.5.12.tar.gz"
			default:
				p = "/cw/amazon-cloudwatch-agent.deb"
			}
			orig := fx.srv.files[p]
			tampered := append([]byte("tampered stand-in "), orig...)
			fx.srv.put(p, tampered)
			_, err := fx.run()
			if err == nil {
				t.Fatal("tampered artifact accepted")
			}
			for _, want := range []string{sum512(orig), sum512(tampered), "SHA-512", "nothing was installed"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if !strings.Contains(err.Error(), "artifact "+map[string]string{"plugin": "plugin/discovery-ec2"}[name]) && !strings.Contains(err.Error(), "artifact "+name) {
				t.Errorf("error does not name the artifact: %v", err)
			}
			if len(fx.sys.Commands) > 0 {
				t.Errorf("commands ran: %q", fx.sys.Lines())
			}
			if files := treeFiles(t, fx.root); len(files) > 0 {
				t.Errorf("files left under root: %v", files)
			}
		})
	}
}

func TestPluginForAnotherVersionIsRefusedBeforeInstall(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	z := standinPluginZip(t, "discovery-ec2", "8.15.2", "")
	fx.node.Plugins[0].URL = fx.srv.put("/plugins/discovery-ec2-8.15.2.zip", z)
	fx.node.Plugins[0].SHA512 = sum512(z)
	_, err := fx.run()
	if err == nil || !strings.Contains(err.Error(), `built for Elasticsearch "8.15.2", not 8.15.3`) {
		t.Fatalf("err = %v", err)
	}
	if m := fx.sys.mutating(); len(m) > 0 {
		t.Errorf("ran %q", m)
	}
	if files := treeFiles(t, fx.root); len(files) > 0 {
		t.Errorf("files left under root: %v", files)
	}
}

func TestWrongElasticsearchPackageIsRefused(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	fx.sys.debs["elasticsearch-8.15.3-amd64.deb"] = debInfo{"elasticsearch", "8.15.2"}
	_, err := fx.run()
	if err == nil || !strings.Contains(err.Error(), "is the package elasticsearch 8.15.2, not elasticsearch 8.15.3") {
		t.Fatalf("err = %v", err)
	}
	if m := fx.sys.mutating(); len(m) > 0 {
		t.Errorf("ran %q", m)
	}
}

func TestElasticsearch6InstallsJavaFirst(t *testing.T) {
	fx := newFixture(t, esVersion6, false, false)
	if _, err := fx.run(); err != nil {
		t.Fatalf("%v\n%s", err, fx.out.String())
	}
	lines := fx.sys.mutating()
	java := slices.Index(lines, "apt-get -q -y --no-install-recommends install openjdk-11-jre-headless")
	es := slices.Index(lines, "dpkg -i "+DownloadDir+"/elasticsearch-6.8.23.deb")
	if java < 0 || es < 0 || java > es {
		t.Errorf("want Java before Elasticsearch; ran %q", lines)
	}
	if slices.Index(lines, "apt-get -q update") > java {
		t.Error("apt-get update not run before the Java install")
	}
	if !slices.Contains(lines, "apt-get clean") {
		t.Error("apt caches not cleaned after apt was used")
	}
	if m := readManifest(t, fx.root); m.Packages["openjdk-11-jre-headless"] == "" {
		t.Errorf("manifest packages %v lack Java", m.Packages)
	}
	// 6.x plugin zips keep their descriptor under elasticsearch/.
	if fx.sys.ran(ESPluginTool+" install --batch file://"+DownloadDir+"/discovery-ec2-6.8.23.zip") == nil {
		t.Error("6.x plugin not installed")
	}
}

func TestElasticsearch6JavaFromURL(t *testing.T) {
	fx := newFixture(t, esVersion6, false, false)
	deb := []byte("stand-in JDK .deb, not a real JDK")
	fx.sys.debs["standin-jdk_8.0-1_amd64.deb"] = debInfo{"standin-jdk", "8.0-1"}
	fx.node.Java.URL = fx.srv.put("/java/standin-jdk_8.0-1_amd64.deb", deb)
	fx.node.Java.SHA512 = sum512(deb)
	if _, err := fx.run(); err != nil {
		t.Fatal(err)
	}
	if fx.sys.ran("apt-get -q -y --no-install-recommends install "+DownloadDir+"/standin-jdk_8.0-1_amd64.deb") == nil {
		t.Errorf("JDK .deb not installed; ran %q", fx.sys.Lines())
	}
	if m := readManifest(t, fx.root); m.Packages["standin-jdk"] != "8.0-1" || m.Artifacts[0].Name != "java" {
		t.Errorf("manifest = %v %v", m.Packages, m.Artifacts)
	}
}

func TestElasticHQOff(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	if _, err := fx.run(); err != nil {
		t.Fatal(err)
	}
	for _, c := range fx.sys.Commands {
		if c.Name == "useradd" || c.Name == "python3" || strings.Contains(c.Name, "pip") {
			t.Errorf("ElasticHQ off, yet ran %q", c)
		}
	}
	for _, p := range []string{HQUnitPath, HQBase, "/etc/systemd/system/multi-user.target.wants/" + HQUnit} {
		if _, err := os.Lstat(filepath.Join(fx.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists with ElasticHQ off", p)
		}
	}
	for _, f := range readManifest(t, fx.root).Files {
		if f.Path == HQUnitPath {
			t.Error("manifest lists the HQ unit")
		}
	}
	if !strings.Contains(fx.out.String(), "esnode install: elastichq: not enabled") {
		t.Errorf("output:\n%s", fx.out.String())
	}
}

func TestElasticHQOfflineWheels(t *testing.T) {
	fx := newFixture(t, esVersion8, true, false)
	tgz := standinHQTarball(t,
		tarEntry{name: "elasticsearch-HQ-3.5.12/application.py", body: "# stand-in\n", mode: 0o644},
		tarEntry{name: "elasticsearch-HQ-3.5.12/requirements.txt", body: "Flask==1.0.2\n", mode: 0o644},
		tarEntry{name: "elasticsearch-HQ-3.5.12/wheels/Flask-1.0.2-py3-none-any.whl", body: "stand-in wheel", mode: 0o644},
	)
	fx.node.ElasticHQ.URL = fx.srv.put("/hq/hq-wheels.tar.gz", tgz)
	fx.node.ElasticHQ.SHA512 = sum512(tgz)
	if _, err := fx.run(); err != nil {
		t.Fatal(err)
	}
	pip := fx.sys.ran(HQVenv + "/bin/pip install")
	if pip == nil || !strings.Contains(pip.String(), "--no-index --find-links "+HQBase+"/3.5.12/wheels") {
		t.Errorf("pip = %v, want an offline install from wheels/", pip)
	}
}

func TestElasticHQUnhashedRequirementsRefused(t *testing.T) {
	fx := newFixture(t, esVersion8, true, false)
	tgz := standinHQTarball(t,
		tarEntry{name: "elasticsearch-HQ-3.5.12/application.py", body: "#\n", mode: 0o755},
		tarEntry{name: "elasticsearch-HQ-3.5.12/requirements.txt", body: "# pinned, not hashed\nFlask==1.0.2 --hash=sha256:00\nrequests==2.20.0  # no hash\n", mode: 0o644},
	)
	fx.node.ElasticHQ.URL = fx.srv.put("/hq/unhashed.tar.gz", tgz)
	fx.node.ElasticHQ.SHA512 = sum512(tgz)
	_, err := fx.run()
	if err == nil || !strings.Contains(err.Error(), `"requests==2.20.0"`) || !strings.Contains(err.Error(), "--generate-hashes") {
		t.Fatalf("err = %v, want the unhashed requirement named with the fix", err)
	}
	if fx.sys.ran(HQVenv+"/bin/pip install") != nil {
		t.Error("pip ran on unhashed requirements")
	}
}

func TestElasticHQTarballEscapeRefused(t *testing.T) {
	for name, e := range map[string]tarEntry{
		"dotdot":  {name: "elasticsearch-HQ-3.5.12/../../etc/cron.d/x", body: "x", mode: 0o644},
		"symlink": {name: "elasticsearch-HQ-3.5.12/evil", link: "../../../etc/shadow"},
	} {
		t.Run(name, func(t *testing.T) {
			fx := newFixture(t, esVersion8, true, false)
			tgz := standinHQTarball(t, tarEntry{name: "elasticsearch-HQ-3.5.12/application.py", body: "#\n", mode: 0o644}, e)
			fx.node.ElasticHQ.URL = fx.srv.put("/hq/bad.tar.gz", tgz)
			fx.node.ElasticHQ.SHA512 = sum512(tgz)
			_, err := fx.run()
			if err == nil || !strings.Contains(err.Error(), "refusing the tarball") {
				t.Fatalf("err = %v", err)
			}
			if m := fx.sys.mutating(); len(m) > 0 {
				t.Errorf("ran %q", m)
			}
			if files := treeFiles(t, fx.root); len(files) > 0 {
				t.Errorf("files left under root: %v", files)
			}
		})
	}
}

func TestMirrorBaseURL(t *testing.T) {
	fx := newFixture(t, esVersion8, true, false)
	// The mirror holds the same files under their file names.
	for _, p := range []string{"/es/elasticsearch-8.15.3-amd64.deb", "/plugins/discovery-ec2-8.15.3.zip", "/hq/elasticsearch-HQ-3.5.12.tar.gz"} {
		fx.srv.put("/mirror/"+filepath.Base(p), fx.srv.files[p])
	}
	// A mirror publishes no trusted sums: the spec pins them.
	fx.node.Plugins[0].SHA512 = sum512(fx.srv.files["/plugins/discovery-ec2-8.15.3.zip"])
	o := fx.options()
	o.Mirror = fx.srv.URL + "/mirror/"
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatalf("%v\n%s", err, fx.out.String())
	}
	reqs := fx.srv.requests()
	if len(reqs) != 3 {
		t.Errorf("requests = %v, want the 3 artifacts", reqs)
	}
	for _, r := range reqs {
		if !strings.HasPrefix(r, "/mirror/") {
			t.Errorf("fetched %s, not from the mirror", r)
		}
	}
	for _, a := range readManifest(t, fx.root).Artifacts {
		if !strings.HasPrefix(a.URL, fx.srv.URL+"/mirror/") {
			t.Errorf("manifest artifact URL %s", a.URL)
		}
	}
}

func TestMirrorWithoutPinnedSumIsRefused(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	fx.node.Plugins[0].SHA512 = ""
	fx.node.Plugins[0].URL = ""
	o := fx.options()
	o.Mirror = fx.srv.URL + "/mirror"
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "plugin/discovery-ec2") || !strings.Contains(err.Error(), "no SHA-512") {
		t.Fatalf("err = %v", err)
	}
	if len(fx.srv.requests()) > 0 {
		t.Errorf("downloaded %v without a pinned sum", fx.srv.requests())
	}
}

func TestFileURLArtifacts(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	dir := t.TempDir()
	z := fx.srv.files["/plugins/discovery-ec2-8.15.3.zip"]
	zp := filepath.Join(dir, "discovery-ec2-8.15.3.zip")
	os.WriteFile(zp, z, 0o644)
	os.WriteFile(zp+".sha512", []byte(sum512(z)+" *discovery-ec2-8.15.3.zip\n"), 0o644)
	fx.node.Plugins[0].URL = "file://" + zp
	fx.node.Plugins[0].SHA512 = "file:file://" + zp + ".sha512"
	if _, err := fx.run(); err != nil {
		t.Fatal(err)
	}
	for _, r := range fx.srv.requests() {
		if strings.Contains(r, "discovery") {
			t.Errorf("plugin fetched over HTTP: %s", r)
		}
	}
}

func TestGeneralize(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	keep := map[string]string{
		"/etc/passwd":                    "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000::/home/admin:/bin/bash\nsvc:x:1001:1001::/srv/svc:/bin/sh\n",
		"/etc/ssh/sshd_config":           "PermitRootLogin no\n",
		"/home/admin/.bashrc":            "# keep\n",
		"/var/lib/cloud/seed/nocloud/md": "keep\n",
	}
	gone := []string{
		"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_rsa_key",
		"/root/.ssh/authorized_keys", "/home/admin/.ssh/authorized_keys", "/srv/svc/.ssh/authorized_keys",
		"/root/.bash_history", "/home/admin/.bash_history", "/home/admin/.python_history",
		"/var/lib/cloud/instances/i-0123/obj.pkl", "/var/lib/cloud/data/instance-id", "/var/log/cloud-init.log",
	}
	for p, body := range keep {
		fx.sys.write(p, body, 0o644)
	}
	for _, p := range gone {
		fx.sys.write(p, "bake-instance state\n", 0o600)
	}
	if err := os.Symlink("/var/lib/cloud/instances/i-0123", filepath.Join(fx.root, "/var/lib/cloud/instance")); err != nil {
		t.Fatal(err)
	}
	fx.sys.write("/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)
	o := fx.options()
	o.Generalize = true
	fx.sys.Commands = nil
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(gone, "/var/lib/cloud/instance") {
		if _, err := os.Lstat(filepath.Join(fx.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s survived generalize", p)
		}
	}
	for p := range keep {
		if _, err := os.Stat(filepath.Join(fx.root, p)); err != nil {
			t.Errorf("generalize removed %s", p)
		}
	}
	st, err := os.Stat(filepath.Join(fx.root, "/etc/machine-id"))
	if err != nil || st.Size() != 0 || st.Mode().Perm() != 0o444 {
		t.Errorf("machine-id = %v %v, want an empty file that keeps its mode", st, err)
	}
	last := res.Steps[len(res.Steps)-1]
	if last.Name != StepGeneralize || !last.Changed {
		t.Errorf("last step %+v", last)
	}
	// Nothing left to remove: generalize is unchanged.
	res, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed {
		t.Errorf("generalized node changed again: %+v", res.Steps)
	}
}

func TestGeneralizeUsesCloudInitClean(t *testing.T) {
	root := t.TempDir()
	sys := newFakeSystem(t, root)
	sys.write("/usr/bin/cloud-init", "#!stand-in\n", 0o755)
	sys.write("/var/lib/cloud/instances/i-1/x", "x", 0o600)
	os.Symlink("/var/lib/cloud/instances/i-1", filepath.Join(root, "/var/lib/cloud/instance"))
	if _, err := (fsys{root}).generalize(context.Background(), sys); err != nil {
		t.Fatal(err)
	}
	if sys.ran("cloud-init clean --logs") == nil {
		t.Errorf("cloud-init clean not run; ran %q", sys.Lines())
	}
}

func TestMemoryLockLimit(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	fx.node.System.MemoryLock = true
	fx.node.System.MaxMapCount = 300000
	if _, err := fx.run(); err != nil {
		t.Fatal(err)
	}
	if s, _ := os.ReadFile(filepath.Join(fx.root, LimitsDropInPath)); !strings.Contains(string(s), "LimitMEMLOCK=infinity\n") {
		t.Errorf("limits drop-in:\n%s", s)
	}
	if s, _ := os.ReadFile(filepath.Join(fx.root, SysctlPath)); !strings.Contains(string(s), "vm.max_map_count = 300000\n") {
		t.Errorf("sysctl:\n%s", s)
	}
}

func TestNewEsnodeBinaryReinstalls(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	if _, err := fx.run(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(fx.esnode, []byte("stand-in esnode, newer build\n"), 0o755)
	res, err := fx.run()
	if err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, s := range res.Steps {
		if s.Changed {
			changed = append(changed, s.Name)
		}
	}
	if !slices.Equal(changed, []string{StepEsnode, StepManifest}) {
		t.Errorf("changed steps = %v, want esnode and manifest", changed)
	}
	if b, _ := os.ReadFile(filepath.Join(fx.root, EsnodePath)); string(b) != "stand-in esnode, newer build\n" {
		t.Error("esnode not replaced")
	}
}

// TestInstallBuiltStandIns bakes the stand-ins of package standin (real
// .debs, zip and tarball, served over HTTP with sha512sum files beside them)
// with the recording runner; the .debs' fields are read by the host's
// dpkg-deb.
func TestInstallBuiltStandIns(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dpkg-deb is missing; CI must install dpkg")
		}
		t.Skip("dpkg-deb is not installed")
	}
	a, err := standin.BuildArch(t.TempDir(), esVersion8, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	fx := newFixture(t, esVersion8, false, false)
	fx.sys.debs = map[string]debInfo{}
	url := func(art standin.Artifact) (string, string) {
		b, _ := os.ReadFile(art.Path)
		s, _ := os.ReadFile(art.Path + ".sha512")
		return fx.srv.put("/standin/"+art.FileName, b), "file:" + fx.srv.put("/standin/"+art.FileName+".sha512", s)
	}
	n := &spec.Node{}
	n.Elasticsearch.Version = esVersion8
	n.Elasticsearch.URL, n.Elasticsearch.SHA512 = url(a.Elasticsearch)
	p := spec.Plugin{Name: "discovery-ec2"}
	p.URL, p.SHA512 = url(a.PluginEC2)
	n.Plugins = []spec.Plugin{p}
	n.ElasticHQ.Enabled = true
	n.ElasticHQ.URL, n.ElasticHQ.SHA512 = url(a.ElasticHQ)
	n.CloudWatchAgent.Enabled = true
	n.CloudWatchAgent.Version = "1.300000.0"
	n.CloudWatchAgent.URL, n.CloudWatchAgent.SHA512 = url(a.CWAgent)
	fx.node = n
	if _, err := fx.run(); err != nil {
		t.Fatalf("%v\n%s", err, fx.out.String())
	}
	m := readManifest(t, fx.root)
	if m.Packages["elasticsearch"] != esVersion8 || m.Packages[standin.CWAgentPackage] != standin.CWAgentVersion {
		t.Errorf("packages = %v", m.Packages)
	}
	if b, err := os.ReadFile(filepath.Join(fx.root, HQBase, standin.HQVersion, "application.py")); err != nil || !strings.Contains(string(b), "stand-in") {
		t.Errorf("stand-in HQ not extracted: %v", err)
	}
	if fx.sys.ran(HQVenv+"/bin/pip") != nil {
		t.Error("pip ran for an empty requirements.txt")
	}
	res, err := fx.run()
	if err != nil || res.Changed {
		t.Errorf("second run: changed=%v err=%v", res.Changed, err)
	}
}
