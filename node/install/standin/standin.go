// Package standin builds stand-ins for the artifacts a bake downloads:
// Elasticsearch, its discovery-ec2 plugin, ElasticHQ and the CloudWatch
// agent cannot be fetched offline, so guest tests install these instead.
// Each is a stand-in, not the real package, and says so in its description
// and content. The Elasticsearch stand-in has the real package's layout
// (paths, owners and modes after its postinst, a systemd unit running as
// elasticsearch, the 8.x security auto-configuration at install) and its
// "server" is a python3 program that enforces Elastic's contracts: registered
// settings, bootstrap checks, discovery and cluster formation (README.md);
// -Xms/-Xmx from jvm.options appear on its command line as on a JVM's.
package standin

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
	"github.com/esbake/packer-plugin-elasticsearch/spec/essettings"
)

//go:embed files
var files embed.FS

// Versions of the stand-ins that are not tied to Elasticsearch's.
const (
	HQVersion      = spec.DefaultHQVersion
	CWAgentVersion = "1.300000.0-1"
	CWAgentPackage = "amazon-cloudwatch-agent"
)

// Artifact is one built stand-in file.
type Artifact struct {
	Path     string // absolute path of the file
	FileName string
	SHA512   string
}

// Artifacts are the stand-ins of one bake.
type Artifacts struct {
	Elasticsearch Artifact
	PluginEC2     Artifact
	ElasticHQ     Artifact
	CWAgent       Artifact
	// Arch is the Debian architecture of the arch-specific .debs.
	Arch string
}

// Build writes stand-in artifacts for an Elasticsearch version into dir,
// named as the official files are (so a mirror base URL finds them). The
// .debs are built with dpkg-deb, which must be installed.
func Build(dir, version string) (*Artifacts, error) {
	return BuildArch(dir, version, runtime.GOARCH)
}

// BuildArch is Build for another guest architecture (amd64 or arm64).
func BuildArch(dir, version, arch string) (*Artifacts, error) {
	return BuildWith(dir, version, Options{Arch: arch})
}

// Options tunes what BuildWith makes.
type Options struct {
	// Arch is the guest's Debian architecture; default the host's.
	Arch string
	// EC2Endpoint, when set, is where the Elasticsearch stand-in's EC2
	// discovery sends DescribeInstances whatever discovery.ec2.endpoint says
	// (ES_STANDIN_EC2_ENDPOINT in /etc/default/elasticsearch): guests cannot
	// resolve AWS's hostnames, the emulator is on the host.
	EC2Endpoint string
}

// BuildWith is Build with options.
func BuildWith(dir, version string, o Options) (*Artifacts, error) {
	arch := o.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	v, err := spec.ParseVersion(version)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		return nil, fmt.Errorf("stand-in .debs need dpkg-deb (apt-get install dpkg): %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	a := &Artifacts{Arch: arch}
	esName := fmt.Sprintf("elasticsearch-%s-%s.deb", version, arch)
	debArch := arch
	if v.Major < 7 {
		esName, debArch = fmt.Sprintf("elasticsearch-%s.deb", version), "all"
	}
	tree, err := esTree(v, debArch, o)
	if err != nil {
		return nil, err
	}
	if a.Elasticsearch, err = buildDeb(dir, esName, tree); err != nil {
		return nil, err
	}
	under := ""
	if v.Major < 7 {
		under = "elasticsearch/" // 6.x plugin zips keep their files there
	}
	if a.PluginEC2, err = write(dir, fmt.Sprintf("discovery-ec2-%s.zip", version), pluginZip("discovery-ec2", version, under)); err != nil {
		return nil, err
	}
	tgz, err := hqTarball()
	if err != nil {
		return nil, err
	}
	if a.ElasticHQ, err = write(dir, "elasticsearch-HQ-"+HQVersion+".tar.gz", tgz); err != nil {
		return nil, err
	}
	if a.CWAgent, err = buildDeb(dir, "amazon-cloudwatch-agent.deb", cwTree(arch)); err != nil {
		return nil, err
	}
	return a, nil
}

func sum(b []byte) string {
	s := sha512.Sum512(b)
	return hex.EncodeToString(s[:])
}

func write(dir, name string, data []byte) (Artifact, error) {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return Artifact{}, err
	}
	if err := os.WriteFile(p+".sha512", []byte(sum(data)+"  "+name+"\n"), 0o644); err != nil {
		return Artifact{}, err
	}
	return Artifact{Path: p, FileName: name, SHA512: sum(data)}, nil
}

// entry is one file of a package tree.
type entry struct {
	body string
	mode os.FileMode
	dir  bool
}

func embedded(name, version string) string {
	b, err := files.ReadFile("files/" + name)
	if err != nil {
		panic(err) // the files are embedded at build time
	}
	return strings.ReplaceAll(string(b), "@VERSION@", version)
}

func esTree(v spec.Version, arch string, o Options) (map[string]entry, error) {
	ver := v.String()
	table, err := essettings.For(v)
	if err != nil {
		return nil, err
	}
	settingsJSON, err := table.JSON()
	if err != nil {
		return nil, err
	}
	defaults := "# stand-in, not the real package's file\nES_PATH_CONF=/etc/elasticsearch\n"
	// 8.x packages configure security on a fresh install ($2 is the
	// version upgraded from): see files/standin-autoconfig.py.
	autoconfigure, depends := "", "python3, passwd, procps"
	if v.Major >= 8 {
		depends += ", openssl"
		autoconfigure = `	if [ -z "$2" ]; then
		ES_PATH_CONF=/etc/elasticsearch ES_HOME=/usr/share/elasticsearch python3 /usr/share/elasticsearch/lib/standin-autoconfig.py
		chown -R root:elasticsearch /etc/elasticsearch
		find /etc/elasticsearch -type f -exec chmod 0660 {} +
		find /etc/elasticsearch -mindepth 1 -type d -exec chmod 2750 {} +
	# As the real postinst: a fresh install gets an empty keystore.
	if [ ! -f /etc/elasticsearch/elasticsearch.keystore ]; then
		ES_PATH_CONF=/etc/elasticsearch /usr/share/elasticsearch/bin/elasticsearch-keystore create
		chown root:elasticsearch /etc/elasticsearch/elasticsearch.keystore
		chmod 660 /etc/elasticsearch/elasticsearch.keystore
		md5sum /etc/elasticsearch/elasticsearch.keystore > /etc/elasticsearch/.elasticsearch.keystore.initial_md5sum
	fi
	fi
`
	}
	if o.EC2Endpoint != "" {
		defaults += "# stand-in only: where EC2 discovery calls DescribeInstances\nES_STANDIN_EC2_ENDPOINT=" + o.EC2Endpoint + "\n"
	}
	heap := "## -Xms4g\n## -Xmx4g\n" // 8.x and later size the heap automatically
	if v.Major < 8 {
		heap = "-Xms1g\n-Xmx1g\n"
	}
	t := map[string]entry{
		"DEBIAN/control": {body: fmt.Sprintf(`Package: elasticsearch
Version: %s
Architecture: %s
Maintainer: esbake tests <tests@example.com>
Depends: %s
Section: web
Priority: optional
Description: Elasticsearch stand-in, not the real package
 A stand-in with the layout of the Elasticsearch package, built by esbake's
 tests. Its server is a small python3 program, not Elasticsearch.
`, ver, arch, depends)},
		"DEBIAN/conffiles": {body: "/etc/elasticsearch/elasticsearch.yml\n/etc/elasticsearch/jvm.options\n/etc/default/elasticsearch\n"},
		"DEBIAN/postinst": {mode: 0o755, body: `#!/bin/sh
# Stand-in, not the real package's postinst: creates the elasticsearch user
# and group, sets owners and modes and creates the keystore as the real one does.
set -e
if [ "$1" = configure ]; then
	getent group elasticsearch >/dev/null || groupadd --system elasticsearch
	id elasticsearch >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --gid elasticsearch --shell /bin/false --comment "elasticsearch user (stand-in)" elasticsearch
	mkdir -p /var/lib/elasticsearch /var/log/elasticsearch
	chown elasticsearch:elasticsearch /var/lib/elasticsearch /var/log/elasticsearch
	chmod 2750 /var/lib/elasticsearch /var/log/elasticsearch
	chown -R root:elasticsearch /etc/elasticsearch
	chmod 2750 /etc/elasticsearch
	find /etc/elasticsearch -type f -exec chmod 0660 {} +
	find /etc/elasticsearch -mindepth 1 -type d -exec chmod 2750 {} +
	# As the real postinst: a fresh install gets an empty keystore.
	if [ ! -f /etc/elasticsearch/elasticsearch.keystore ]; then
		ES_PATH_CONF=/etc/elasticsearch /usr/share/elasticsearch/bin/elasticsearch-keystore create
		chown root:elasticsearch /etc/elasticsearch/elasticsearch.keystore
		chmod 660 /etc/elasticsearch/elasticsearch.keystore
		md5sum /etc/elasticsearch/elasticsearch.keystore > /etc/elasticsearch/.elasticsearch.keystore.initial_md5sum
	fi
	if [ "${ES_SKIP_SET_KERNEL_PARAMETERS:-false}" = true ]; then
		echo "stand-in elasticsearch: ES_SKIP_SET_KERNEL_PARAMETERS=true, kernel parameters left alone"
	else
		sysctl -q -w vm.max_map_count=262144 || true
	fi
` + autoconfigure + `	echo "stand-in elasticsearch ` + ver + ` installed (not the real package)"
fi
`},
		"DEBIAN/postrm": {mode: 0o755, body: `#!/bin/sh
# Stand-in, not the real package's postrm.
set -e
if [ "$1" = purge ]; then
	rm -rf /var/lib/elasticsearch /var/log/elasticsearch /etc/elasticsearch
fi
`},
		"usr/share/elasticsearch/bin/elasticsearch":          {mode: 0o755, body: embedded("elasticsearch", ver)},
		"usr/share/elasticsearch/bin/elasticsearch-plugin":   {mode: 0o755, body: embedded("elasticsearch-plugin", ver)},
		"usr/share/elasticsearch/bin/elasticsearch-keystore": {mode: 0o755, body: embedded("elasticsearch-keystore", ver)},
		"usr/share/elasticsearch/lib/standin-es.py":          {mode: 0o644, body: embedded("standin-es.py", ver)},
		"usr/share/elasticsearch/lib/standin-settings.json":  {mode: 0o644, body: string(settingsJSON)},
		"usr/share/elasticsearch/lib/standin-autoconfig.py":  {mode: 0o644, body: embedded("standin-autoconfig.py", ver)},
		"usr/share/elasticsearch/lib/standin_keystore.py":    {mode: 0o644, body: embedded("standin_keystore.py", ver)},
		"usr/share/elasticsearch/lib/standin_shards.py":      {mode: 0o644, body: embedded("standin_shards.py", ver)},
		"usr/share/elasticsearch/plugins":                    {dir: true},
		"usr/share/elasticsearch/modules":                    {dir: true},
		"usr/share/elasticsearch/README.standin":             {mode: 0o644, body: "Stand-in, not the real Elasticsearch " + ver + ".\n"},
		"etc/elasticsearch/elasticsearch.yml": {mode: 0o660, body: `# ======================== Elasticsearch Configuration =========================
# Stand-in, not the real package's file; the same defaults, commented.
#cluster.name: my-application
#node.name: node-1
path.data: /var/lib/elasticsearch
path.logs: /var/log/elasticsearch
#network.host: 192.168.0.1
#http.port: 9200
`},
		"etc/elasticsearch/jvm.options":       {mode: 0o660, body: "## JVM configuration (stand-in, not the real package's file)\n" + heap + "-XX:+HeapDumpOnOutOfMemoryError\n"},
		"etc/elasticsearch/log4j2.properties": {mode: 0o660, body: "# stand-in, not the real package's file\nstatus = error\n"},
		"etc/default/elasticsearch":           {mode: 0o644, body: defaults},
		"usr/lib/systemd/system/elasticsearch.service": {mode: 0o644, body: `[Unit]
Description=Elasticsearch (stand-in, not the real package)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
RuntimeDirectory=elasticsearch
Environment=ES_HOME=/usr/share/elasticsearch
Environment=ES_PATH_CONF=/etc/elasticsearch
EnvironmentFile=-/etc/default/elasticsearch
WorkingDirectory=/usr/share/elasticsearch
User=elasticsearch
Group=elasticsearch
ExecStart=/usr/share/elasticsearch/bin/elasticsearch
StandardOutput=journal
StandardError=inherit
LimitNOFILE=65535
LimitNPROC=4096
LimitAS=infinity
LimitFSIZE=infinity
TimeoutStopSec=0
KillSignal=SIGTERM
KillMode=process
SendSIGKILL=no
SuccessExitStatus=143

[Install]
WantedBy=multi-user.target
`},
	}
	if v.Major >= 7 {
		t["etc/elasticsearch/jvm.options.d"] = entry{dir: true}
	}
	return t, nil
}

func cwTree(arch string) map[string]entry {
	return map[string]entry{
		"DEBIAN/control": {body: fmt.Sprintf(`Package: %s
Version: %s
Architecture: %s
Maintainer: esbake tests <tests@example.com>
Section: admin
Priority: optional
Description: Amazon CloudWatch agent stand-in, not the real package
 Records the arguments of amazon-cloudwatch-agent-ctl for esbake's tests;
 at start, reads and checks the JSON configuration as the real agent does.
`, CWAgentPackage, CWAgentVersion, arch)},
		"opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl": {mode: 0o755, body: embedded("amazon-cloudwatch-agent-ctl", "")},
		"opt/aws/amazon-cloudwatch-agent/etc":                             {dir: true},
		"opt/aws/amazon-cloudwatch-agent/logs":                            {dir: true},
		"opt/aws/amazon-cloudwatch-agent/README.standin":                  {mode: 0o644, body: "Stand-in, not the real Amazon CloudWatch agent.\n"},
		// The real package ships its unit here (not enabled by postinst).
		// Its start translates the configuration as the real one does
		// (files/start-amazon-cloudwatch-agent), so esnode boot only writes
		// it when the agent starts after boot, and runs fetch-config and a
		// restart when the agent runs.
		"opt/aws/amazon-cloudwatch-agent/bin/start-amazon-cloudwatch-agent": {mode: 0o755, body: embedded("start-amazon-cloudwatch-agent", "")},
		"etc/systemd/system/amazon-cloudwatch-agent.service": {mode: 0o644, body: `[Unit]
Description=Amazon CloudWatch Agent (stand-in, not the real package)
After=network.target

[Service]
Type=simple
ExecStart=/opt/aws/amazon-cloudwatch-agent/bin/start-amazon-cloudwatch-agent
KillMode=process
Restart=on-failure
RestartSec=60s

[Install]
WantedBy=multi-user.target
`},
	}
}

// buildDeb lays out a package tree and builds it with dpkg-deb, every file
// owned by root as in a real package.
func buildDeb(dir, name string, tree map[string]entry) (Artifact, error) {
	root, err := os.MkdirTemp(dir, ".standin-deb-")
	if err != nil {
		return Artifact{}, err
	}
	defer os.RemoveAll(root)
	if err := os.Chmod(root, 0o755); err != nil {
		return Artifact{}, err
	}
	for p, e := range tree {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return Artifact{}, err
		}
		if e.dir {
			if err := os.MkdirAll(full, 0o755); err != nil {
				return Artifact{}, err
			}
			continue
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(full, []byte(e.body), mode); err != nil {
			return Artifact{}, err
		}
		if err := os.Chmod(full, mode); err != nil { // not the umask's
			return Artifact{}, err
		}
	}
	// dpkg-deb wants 0755 directories whatever the umask.
	if err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = os.Chmod(p, 0o755)
		}
		return err
	}); err != nil {
		return Artifact{}, err
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, out)
	// A fixed timestamp keeps the .deb (and its sum) stable across builds.
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if b, err := cmd.CombinedOutput(); err != nil {
		return Artifact{}, fmt.Errorf("dpkg-deb --build %s: %w\n%s", name, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return Artifact{}, err
	}
	if err := os.WriteFile(out+".sha512", []byte(sum(data)+"  "+name+"\n"), 0o644); err != nil {
		return Artifact{}, err
	}
	return Artifact{Path: out, FileName: name, SHA512: sum(data)}, nil
}

func pluginZip(name, version, under string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(p, body string) {
		w, err := zw.Create(under + p)
		if err != nil {
			panic(err) // writing to memory
		}
		w.Write([]byte(body))
	}
	add("plugin-descriptor.properties", fmt.Sprintf(`# Stand-in, not the real %[1]s plugin.
description=stand-in %[1]s plugin, not the real one
version=%[2]s
name=%[1]s
classname=org.example.standin.StandInPlugin
java.version=1.8
elasticsearch.version=%[2]s
`, name, version))
	add("README.standin", "Stand-in, not the real "+name+" plugin.\n")
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func hqTarball() ([]byte, error) {
	top := "elasticsearch-HQ-" + HQVersion + "/"
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name, body string
		mode       int64
	}{
		{top, "", 0o755},
		{top + "application.py", embedded("application.py", ""), 0o755},
		{top + "requirements.txt", "# stand-in, not the real ElasticHQ: no requirements\n", 0o644},
		{top + "README.standin", "Stand-in, not the real ElasticHQ " + HQVersion + ".\n", 0o644},
	} {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg, Uname: "root", Gname: "root"}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
