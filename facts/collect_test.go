package facts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// tree is a fake root: files (content), symlinks, modes.
type tree struct {
	files map[string]string
	links map[string]string
	modes map[string]os.FileMode
}

func (tr tree) build(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range tr.files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, "/") {
			continue // a directory
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range tr.links {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	for p, m := range tr.modes {
		if err := os.Chmod(filepath.Join(root, p), m); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const fixturePasswd = `root:x:0:0:root:/root:/bin/bash
sshd:x:105:65534::/run/sshd:/usr/sbin/nologin
elasticsearch:x:112:117::/nonexistent:/bin/false
elasticsearch-hq:x:1001:1001::/home/elasticsearch-hq:/bin/sh
`

const fixtureGroup = "root:x:0:\nelasticsearch:x:117:\nelasticsearch-hq:x:1001:\n"

// tcpRow renders a /proc/net/tcp LISTEN row.
func tcpRow(n int, hexAddr string, port, uid int, inode uint64) string {
	return fmt.Sprintf("  %2d: %s:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000 %5d        0 %d 1 0000000000000000 100 0 0 10 0\n", n, hexAddr, port, uid, inode)
}

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func addProc(tr tree, pid, uid int, comm, exe string, cmdline []string, limits string, sockets ...uint64) {
	base := fmt.Sprintf("proc/%d", pid)
	tr.files[base+"/status"] = fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t%d\t%d\t%d\t%d\n", comm, uid, uid, uid, uid)
	tr.files[base+"/cmdline"] = strings.Join(cmdline, "\x00") + "\x00"
	if limits != "" {
		tr.files[base+"/limits"] = limits
	}
	tr.links[base+"/exe"] = exe
	tr.links[base+"/fd/0"] = "/dev/null"
	for i, ino := range sockets {
		tr.links[fmt.Sprintf("%s/fd/%d", base, i+3)] = fmt.Sprintf("socket:[%d]", ino)
	}
}

// seedNode is a node as the blog post's bootstrap script leaves it.
func seedNode() tree {
	tr := tree{files: map[string]string{}, links: map[string]string{}, modes: map[string]os.FileMode{}}
	f := tr.files
	f["etc/passwd"] = fixturePasswd
	f["etc/group"] = fixtureGroup
	f["etc/hostname"] = "ip-10-0-0-5\n"
	f["etc/os-release"] = "NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"18.04\"\nPRETTY_NAME=\"Ubuntu 18.04.2 LTS\"\n"
	f["var/lib/cloud/data/instance-id"] = "i-0123456789abcdef0\n"
	f["var/lib/dpkg/status"] = "Package: elasticsearch\nStatus: install ok installed\nVersion: 6.4.2\n\n"
	f["usr/share/elasticsearch/lib/elasticsearch-6.4.2.jar"] = ""
	f["usr/share/elasticsearch/lib/elasticsearch-core-6.4.2.jar"] = ""
	f["etc/elasticsearch/elasticsearch.yml"] = `# ======================== Elasticsearch Configuration =========================
cluster.name: aardvark-cluster
#node.name: node-1
path.data: /var/lib/elasticsearch
path.logs: /var/log/elasticsearch
network.host: [10.0.0.5]
#http.port: 9200
http.cors.enabled: true
http.cors.allow-origin: '*'
discovery.zen.hosts_provider: ec2
discovery.ec2.any_group: true
discovery.ec2.host_type: private_ip
cloud.node.auto_attributes: true
cluster.routing.allocation.awareness.attributes: aws_availability_zone
discovery.ec2.tag.es_cluster: "aardvark-cluster"
discovery.ec2.endpoint: ec2.eu-west-2.amazonaws.com
reindex.remote.whitelist: "10.0.0.*:9200"
`
	// What `sed s/-Xms1g/-Xms4g/; s/-Xmx1g/-Xms4g/` makes of the stock file.
	f["etc/elasticsearch/jvm.options"] = "## JVM configuration\n\n-Xms4g\n-Xms4g\n\n-XX:+UseConcMarkSweepGC\n8:-XX:+PrintGCDetails\n9-:-Xlog:gc*\n"
	// The seed added the discovery user's access keys (format 3: ES 6.3+).
	f["etc/elasticsearch/elasticsearch.keystore"] = string(makeKeystore(3, "", "keystore.seed", "discovery.ec2.access_key", "discovery.ec2.secret_key"))
	f["etc/default/elasticsearch"] = "ES_PATH_CONF=/etc/elasticsearch\nES_STARTUP_SLEEP_TIME=5\n"
	f["etc/iptables/rules.v4"] = seedIPTables
	f["var/lib/elasticsearch/"] = ""
	f["var/log/elasticsearch/"] = ""
	f["usr/share/elasticsearch-hq/elasticsearch-HQ-3.5.0/application.py"] = "# stand-in for ElasticHQ\n"
	f["usr/lib/systemd/system/elasticsearch.service"] = "[Unit]\nDescription=Elasticsearch\n[Service]\nUser=elasticsearch\nGroup=elasticsearch\nExecStart=/usr/share/elasticsearch/bin/elasticsearch -p ${PID_DIR}/elasticsearch.pid --quiet\nLimitNOFILE=65536\nLimitNPROC=4096\n[Install]\nWantedBy=multi-user.target\n"
	f["etc/systemd/system/elastichq.service"] = "[Unit]\nDescription=ElasticSearchHQ instance\nAfter=network.target\n[Service]\nUser=elasticsearch-hq\nWorkingDirectory=/usr/share/elasticsearch-hq/elasticsearch-HQ-3.5.0\nExecStart=/usr/bin/python3 /usr/share/elasticsearch-hq/elasticsearch-HQ-3.5.0/application.py\n[Install]\nWantedBy=multi-user.target\n"
	f["opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"] = "{}"
	f["lib/systemd/system/amazon-cloudwatch-agent.service"] = "[Service]\nExecStart=/opt/aws/amazon-cloudwatch-agent/bin/start-amazon-cloudwatch-agent\n[Install]\nWantedBy=multi-user.target\n"
	tr.links["etc/systemd/system/multi-user.target.wants/elasticsearch.service"] = "/usr/lib/systemd/system/elasticsearch.service"
	tr.links["etc/systemd/system/multi-user.target.wants/elastichq.service"] = "/etc/systemd/system/elastichq.service"
	tr.modes["usr/share/elasticsearch-hq"] = 0o777
	tr.modes["etc/elasticsearch/elasticsearch.keystore"] = 0o660

	// /proc of the running node: ES on 9200/9300 at the host address, HQ on
	// 0.0.0.0:5000, sshd on 22.
	f["proc/meminfo"] = "MemTotal:        8039444 kB\nMemFree:         1000000 kB\n"
	f["proc/sys/kernel/hostname"] = "ip-10-0-0-5\n"
	f["proc/sys/kernel/osrelease"] = "4.15.0-1044-aws\n"
	f["proc/sys/vm/max_map_count"] = "65530\n"
	f["proc/sys/vm/swappiness"] = "60\n"
	f["proc/net/tcp"] = tcpHeader +
		tcpRow(0, "0500000A", 9200, 112, 1001) +
		tcpRow(1, "0500000A", 9300, 112, 1002) +
		tcpRow(2, "00000000", 5000, 1001, 1003) +
		tcpRow(3, "00000000", 22, 0, 1004)
	addProc(tr, 1, 0, "sshd", "/usr/sbin/sshd", []string{"/usr/sbin/sshd", "-D"}, "", 1004)
	addProc(tr, 812, 112, "java", "/usr/lib/jvm/java-1.8.0-amazon-corretto/jre/bin/java",
		[]string{"/usr/bin/java", "-Xms4g", "-Xms4g", "-XX:+UseConcMarkSweepGC", "-Des.path.home=/usr/share/elasticsearch", "-cp", "/usr/share/elasticsearch/lib/*", esMainClass, "-p", "/var/run/elasticsearch/elasticsearch.pid", "--quiet"},
		procLimits, 1001, 1002)
	addProc(tr, 930, 1001, "python3", "/usr/bin/python3.6", []string{"/usr/bin/python3", "/usr/share/elasticsearch-hq/elasticsearch-HQ-3.5.0/application.py"}, "", 1003)
	return tr
}

func collectRoot(t *testing.T, root string, opts Options) *Facts {
	t.Helper()
	opts.Root = root
	opts.Now = func() time.Time { return time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC) }
	f, err := Collect(context.Background(), opts)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	return f
}

func assertNoErrors(t *testing.T, f *Facts) {
	t.Helper()
	for _, e := range f.Errors {
		t.Errorf("fact error: %s: %s", e.Fact, e.Error)
	}
}

func findListener(f *Facts, port int) *Listener {
	for i := range f.Listeners {
		if f.Listeners[i].Port == port {
			return &f.Listeners[i]
		}
	}
	return nil
}

func findService(f *Facts, name string) *Service {
	for i := range f.Services {
		if f.Services[i].Name == name {
			return &f.Services[i]
		}
	}
	return nil
}

func findPath(f *Facts, p string) *PathInfo {
	for i := range f.Paths {
		if f.Paths[i].Path == p {
			return &f.Paths[i]
		}
	}
	return nil
}

func TestCollectSeedNode(t *testing.T) {
	tr := seedNode()
	root := tr.build(t)
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(root, "etc/elasticsearch/elasticsearch.keystore"), 0, 117); err != nil {
			t.Fatal(err)
		}
	}
	f := collectRoot(t, root, Options{})
	assertNoErrors(t, f)

	if f.SchemaVersion != SchemaVersion || f.Live {
		t.Errorf("schema %q live %v", f.SchemaVersion, f.Live)
	}
	h := f.Host
	if h.Hostname != "ip-10-0-0-5" || h.InstanceID != "i-0123456789abcdef0" || h.MemTotalBytes != 8039444*1024 ||
		h.Kernel != "4.15.0-1044-aws" || h.OSRelease.ID != "ubuntu" || h.Boot != nil {
		t.Errorf("host %+v", h)
	}

	es := f.Elasticsearch
	if es.Version != "6.4.2" || es.VersionSource != "/var/lib/dpkg/status" || es.ConfigDir != "/etc/elasticsearch" {
		t.Errorf("version %q from %q, config %q", es.Version, es.VersionSource, es.ConfigDir)
	}
	if es.YML["http.cors.allow-origin"] != "*" || es.YML["http.cors.enabled"] != true ||
		!reflect.DeepEqual(es.YML["network.host"], []any{"10.0.0.5"}) ||
		es.YML["reindex.remote.whitelist"] != "10.0.0.*:9200" || es.YML["cluster.name"] != "aardvark-cluster" {
		t.Errorf("yml %v", es.YML)
	}
	if len(es.YMLErrors) != 0 {
		t.Errorf("yml errors %v", es.YMLErrors)
	}
	hp := es.Heap
	if hp.JDKMajor != 8 || !strings.HasPrefix(hp.JDKMajorSource, "default for Elasticsearch 6.4.2") {
		t.Errorf("jdk %d from %q", hp.JDKMajor, hp.JDKMajorSource)
	}
	if hp.XmsBytes != 4<<30 || hp.XmxBytes != 0 || !reflect.DeepEqual(hp.Missing, []string{"xmx"}) ||
		len(hp.Duplicates) != 1 || hp.Duplicates[0].Kind != "xms" || hp.Duplicates[0].Count != 2 {
		t.Errorf("heap %+v", hp)
	}
	ks := es.Keystore
	if !ks.Present || !ks.EntriesKnown || ks.EntriesSource != "file" || ks.FormatVersion != 3 || ks.Mode != "0660" ||
		!reflect.DeepEqual(ks.Entries, []string{"keystore.seed", "discovery.ec2.access_key", "discovery.ec2.secret_key"}) {
		t.Errorf("keystore %+v", ks)
	}
	if os.Geteuid() == 0 && (ks.Owner != "root" || ks.Group != "elasticsearch") {
		t.Errorf("keystore owner %s:%s, want root:elasticsearch", ks.Owner, ks.Group)
	}
	p := es.Process
	if p == nil {
		t.Fatal("no Elasticsearch process found")
	}
	if p.PID != 812 || p.User != "elasticsearch" || p.XmsBytes != 4<<30 || p.XmxBytes != 0 || p.Limits["nofile"].Soft != 65535 {
		t.Errorf("process %+v", p)
	}

	if len(f.Listeners) != 4 {
		t.Fatalf("listeners %+v", f.Listeners)
	}
	if l := findListener(f, 9200); l == nil || l.Address != "10.0.0.5" || l.PID != 812 || l.User != "elasticsearch" || l.Process != "java" || l.AllInterfaces {
		t.Errorf("9200 %+v", l)
	}
	if l := findListener(f, 5000); l == nil || !l.AllInterfaces || l.User != "elasticsearch-hq" || l.Exe != "/usr/bin/python3.6" {
		t.Errorf("5000 %+v", l)
	}
	if l := findListener(f, 22); l == nil || l.User != "root" || l.PID != 1 {
		t.Errorf("22 %+v", l)
	}

	fw := f.Firewall
	if fw.Backend != "iptables" || fw.DefaultInputPolicy != "DROP" || fw.DefaultInputPolicy6 != "" ||
		!reflect.DeepEqual(fw.Source, []string{"/etc/iptables/rules.v4"}) || !strings.Contains(fw.Raw, "--dport 9200") {
		t.Errorf("firewall %+v", fw)
	}
	var es9200 *FirewallRule
	for i, r := range fw.Rules {
		if len(r.DPorts) == 1 && r.DPorts[0].From == 9200 {
			es9200 = &fw.Rules[i]
		}
	}
	if es9200 == nil || !reflect.DeepEqual(es9200.Sources, []string{"10.0.0.0/24"}) || es9200.Target != "ACCEPT" {
		t.Errorf("9200 rule %+v", es9200)
	}

	if f.Sysctl["vm.max_map_count"] != int64(65530) || len(f.SysctlConf) != 0 {
		t.Errorf("sysctl %v conf %v", f.Sysctl, f.SysctlConf)
	}
	if s := findService(f, "elasticsearch"); s == nil || !s.Present || !s.Enabled || s.User != "elasticsearch" || s.Active != "unknown" ||
		s.Limits["nofile"].Soft != 65536 || s.UnitFile != "/usr/lib/systemd/system/elasticsearch.service" {
		t.Errorf("elasticsearch service %+v", s)
	}
	if s := findService(f, "elastichq"); s == nil || !s.Enabled || s.User != "elasticsearch-hq" || s.UserDefault {
		t.Errorf("elastichq service %+v", s)
	}
	if s := findService(f, "amazon-cloudwatch-agent"); s == nil || !s.Present || s.Enabled || s.User != "root" || !s.UserDefault {
		t.Errorf("cloudwatch service %+v", s)
	}
	if s := findService(f, "esnode-boot"); s == nil || s.Present {
		t.Errorf("esnode-boot on a seed node %+v", s)
	}
	if p := findPath(f, "/usr/share/elasticsearch-hq"); p == nil || !p.WorldWritable || p.Mode != "0777" || p.Type != "dir" {
		t.Errorf("hq dir %+v", p)
	}
	if p := findPath(f, "/etc/esnode"); p == nil || p.Exists {
		t.Errorf("/etc/esnode %+v", p)
	}
	if f.Manifest.Present || len(f.Manifest.Drift) != 0 {
		t.Errorf("manifest %+v", f.Manifest)
	}
	var names []string
	for _, u := range f.Users {
		names = append(names, u.Name)
	}
	if !reflect.DeepEqual(names, []string{"root", "elasticsearch", "elasticsearch-hq"}) {
		t.Errorf("users %v", names)
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// cleanNode is a node baked by esnode and booted once.
func cleanNode(t *testing.T) tree {
	tr := tree{files: map[string]string{}, links: map[string]string{}, modes: map[string]os.FileMode{}}
	f := tr.files
	f["etc/passwd"] = fixturePasswd
	f["etc/group"] = fixtureGroup
	f["etc/hostname"] = "ip-10-0-1-23\n"
	f["etc/os-release"] = "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
	f["var/lib/dpkg/status"] = "Package: elasticsearch\nStatus: install ok installed\nVersion: 8.15.3\n\n"
	f["usr/share/elasticsearch/jdk/release"] = "IMPLEMENTOR=\"Oracle Corporation\"\nJAVA_VERSION=\"22.0.2\"\n"
	yml := "cluster.name: aardvark-cluster\nnode.name: i-0abc\nnetwork.host: 10.0.1.23\ndiscovery.seed_providers: ec2\nxpack:\n  security:\n    enabled: true\n"
	f["etc/elasticsearch/elasticsearch.yml"] = yml
	jvm := "################################################################\n-XX:+UseG1GC\n17-:--add-opens=java.base/java.lang=ALL-UNNAMED\n"
	f["etc/elasticsearch/jvm.options"] = jvm
	f["etc/elasticsearch/jvm.options.d/heap.options"] = "-Xms4g\n-Xmx4g\n"
	f["etc/elasticsearch/jvm.options.d/old.options"] = "17-18:-Xmx9g\n"
	f["etc/elasticsearch/jvm.options.d/README"] = "-Xmx99g is not in a .options file\n"
	f["etc/elasticsearch/log4j2.properties"] = "edited after the bake\n"
	// Format 5 (8.0-8.13): format 6's 210,000 KDF rounds would slow every
	// test that builds this node; TestParseKeystoreFormats covers 6.
	f["etc/elasticsearch/elasticsearch.keystore"] = string(makeKeystore(5, "", "keystore.seed"))
	f["etc/nftables.json"] = strings.ReplaceAll(nftRuleset, `"@ports"`, "443")
	f["etc/sysctl.d/60-elasticsearch.conf"] = "vm.max_map_count = 262144\n"
	f["usr/lib/sysctl.d/50-default.conf"] = "vm.max_map_count=65530\nkernel/sysrq = 0x01b6\n"
	f["usr/lib/systemd/system/elasticsearch.service"] = "[Service]\nUser=elasticsearch\nLimitNOFILE=65535\n[Install]\nWantedBy=multi-user.target\n"
	f["etc/systemd/system/elasticsearch.service.d/esnode.conf"] = "[Service]\nLimitNOFILE=65536\nLimitMEMLOCK=infinity\n"
	f["etc/systemd/system/esnode-boot.service"] = "[Unit]\nBefore=elasticsearch.service\n[Service]\nType=oneshot\nExecStart=/usr/local/bin/esnode boot\n[Install]\nWantedBy=multi-user.target\n"
	tr.links["etc/systemd/system/multi-user.target.wants/elasticsearch.service"] = "/usr/lib/systemd/system/elasticsearch.service"
	tr.links["etc/systemd/system/multi-user.target.wants/esnode-boot.service"] = "/etc/systemd/system/esnode-boot.service"
	tr.links["etc/systemd/system/elastichq.service"] = "/dev/null"
	tr.modes["etc/elasticsearch/elasticsearch.keystore"] = 0o660

	bootYML := yml
	boot := BootState{InstanceID: "i-0abc", LocalIPv4: "10.0.1.23", SubnetCIDR: "10.0.0.0/20", VPCCIDR: "10.0.0.0/16", AZ: "eu-west-2a",
		Region: "eu-west-2", ClusterName: "aardvark-cluster", Tags: map[string]string{"es_cluster": "aardvark-cluster", "aws:autoscaling:groupName": "es"},
		Files: []BootFile{{Path: "/etc/elasticsearch/elasticsearch.yml", SHA256: sha(bootYML)}}}
	b, err := json.Marshal(boot)
	if err != nil {
		t.Fatal(err)
	}
	f["etc/esnode/boot.json"] = string(b)
	node := spec.Node{Elasticsearch: spec.Elasticsearch{Version: "8.15.3"}}
	node.SetDefaults()
	m := spec.Manifest{APIVersion: spec.APIVersion, Spec: node, SpecHash: node.Hash(), EsnodeVersion: "0.1.0", Arch: "amd64",
		BakedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Files: []spec.ManagedFile{
			{Path: "/etc/elasticsearch/jvm.options", SHA256: sha(jvm), Mode: "0644", Stage: "install"},
			{Path: "/etc/elasticsearch/log4j2.properties", SHA256: sha("as baked\n"), Mode: "0644", Stage: "install"},
			{Path: "/etc/elasticsearch/elasticsearch.yml", SHA256: sha("as baked, before boot\n"), Stage: "boot"},
			{Path: "/etc/elasticsearch/role_mapping.yml", SHA256: sha(""), Stage: "install"},
		}}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	f["etc/esnode/manifest.json"] = string(mb)

	f["proc/meminfo"] = "MemTotal:        8039444 kB\n"
	f["proc/sys/kernel/hostname"] = "ip-10-0-1-23\n"
	f["proc/sys/kernel/osrelease"] = "6.1.0-27-cloud-amd64\n"
	f["proc/sys/vm/max_map_count"] = "262144\n"
	f["proc/net/tcp"] = tcpHeader + tcpRow(0, "00000000", 22, 0, 2001)
	f["proc/net/tcp6"] = tcpHeader +
		tcpRow(0, "00000000000000000000000000000000", 9200, 112, 2002) +
		tcpRow(1, "00000000000000000000000000000000", 9300, 112, 2003)
	cleanLimits := strings.ReplaceAll(procLimits, "Max locked memory         65536                65536", "Max locked memory         unlimited            unlimited")
	addProc(tr, 1, 0, "sshd", "/usr/sbin/sshd", []string{"sshd"}, "", 2001)
	addProc(tr, 700, 112, "java", "/usr/share/elasticsearch/jdk/bin/java", []string{"/usr/share/elasticsearch/jdk/bin/java", "-Xms4g", "-Xmx4g", esMainClass}, cleanLimits, 2002, 2003)
	addProc(tr, 690, 112, "java", "/usr/share/elasticsearch/jdk/bin/java", []string{"/usr/share/elasticsearch/jdk/bin/java", "org.elasticsearch.launcher.CliToolLauncher"}, "")
	return tr
}

func TestCollectCleanNode(t *testing.T) {
	root := cleanNode(t).build(t)
	f := collectRoot(t, root, Options{})
	assertNoErrors(t, f)

	if f.Host.InstanceID != "i-0abc" || f.Host.InstanceIDSrc != BootStatePath || f.Host.Boot == nil ||
		f.Host.Boot.SubnetCIDR != "10.0.0.0/20" || f.Host.Tags["es_cluster"] != "aardvark-cluster" {
		t.Errorf("host %+v", f.Host)
	}
	es := f.Elasticsearch
	if es.Version != "8.15.3" || es.YML["xpack.security.enabled"] != true || es.YML["network.host"] != "10.0.1.23" {
		t.Errorf("es %q yml %v", es.Version, es.YML)
	}
	hp := es.Heap
	if hp.JDKMajor != 22 || hp.JDKMajorSource != "/usr/share/elasticsearch/jdk/release" {
		t.Errorf("jdk %d from %q", hp.JDKMajor, hp.JDKMajorSource)
	}
	wantFiles := []string{"/etc/elasticsearch/jvm.options", "/etc/elasticsearch/jvm.options.d/heap.options", "/etc/elasticsearch/jvm.options.d/old.options"}
	if !reflect.DeepEqual(hp.Files, wantFiles) {
		t.Errorf("heap files %v", hp.Files)
	}
	if hp.XmsBytes != 4<<30 || hp.XmxBytes != 4<<30 || len(hp.Duplicates) != 0 || len(hp.Missing) != 0 ||
		len(hp.Skipped) != 1 || hp.Skipped[0].Bytes != 9<<30 || len(hp.Invalid) != 0 {
		t.Errorf("heap %+v", hp)
	}
	if ks := es.Keystore; !ks.EntriesKnown || ks.FormatVersion != 5 || !reflect.DeepEqual(ks.Entries, []string{"keystore.seed"}) {
		t.Errorf("keystore %+v", ks)
	}
	if p := es.Process; p == nil || p.PID != 700 || p.XmxBytes != 4<<30 || p.Limits["memlock"].Soft != -1 {
		t.Errorf("process %+v", p)
	}
	if l := findListener(f, 9200); l == nil || l.Proto != "tcp6" || !l.AllInterfaces || l.PID != 700 || l.User != "elasticsearch" {
		t.Errorf("9200 %+v", l)
	}
	fw := f.Firewall
	if fw.Backend != "nftables" || fw.DefaultInputPolicy != "DROP" || fw.DefaultInputPolicy6 != "DROP" || len(fw.Rules) != 5 {
		t.Errorf("firewall %+v", fw)
	}
	if f.Sysctl["vm.max_map_count"] != int64(262144) ||
		f.SysctlConf["vm.max_map_count"] != (SysctlSetting{"262144", "/etc/sysctl.d/60-elasticsearch.conf"}) ||
		f.SysctlConf["kernel.sysrq"].Value != "0x01b6" {
		t.Errorf("sysctl %v conf %v", f.Sysctl, f.SysctlConf)
	}
	s := findService(f, "elasticsearch")
	if s == nil || s.Limits["nofile"].Soft != 65536 || s.Limits["memlock"].Soft != -1 ||
		!reflect.DeepEqual(s.DropIns, []string{"/etc/systemd/system/elasticsearch.service.d/esnode.conf"}) {
		t.Errorf("elasticsearch service %+v", s)
	}
	if s := findService(f, "elastichq"); s == nil || !s.Masked || s.Present || s.Enabled {
		t.Errorf("masked elastichq %+v", s)
	}
	if s := findService(f, "esnode-boot"); s == nil || !s.Enabled || !s.UserDefault {
		t.Errorf("esnode-boot %+v", s)
	}

	mf := f.Manifest
	if !mf.Present || mf.ESVersion != "8.15.3" || mf.Spec == nil || mf.Spec.Elasticsearch.HTTPPort != 9200 || mf.FilesChecked != 4 || mf.BakedAt == nil {
		t.Errorf("manifest %+v", mf)
	}
	if len(mf.Drift) != 2 {
		t.Fatalf("drift %+v, want log4j2.properties and role_mapping.yml", mf.Drift)
	}
	if d := mf.Drift[0]; d.Path != "/etc/elasticsearch/log4j2.properties" || !reflect.DeepEqual(d.Changed, []string{"content"}) || d.ActualSHA256 != sha("edited after the bake\n") {
		t.Errorf("drift[0] %+v", d)
	}
	if d := mf.Drift[1]; d.Path != "/etc/elasticsearch/role_mapping.yml" || !d.Missing {
		t.Errorf("drift[1] %+v", d)
	}
}

func TestFactsJSONRoundTrip(t *testing.T) {
	root := cleanNode(t).build(t)
	f := collectRoot(t, root, Options{})
	b, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if g.Elasticsearch.Heap.XmxBytes != 4<<30 || g.Manifest.Spec == nil || g.Host.Boot.SubnetCIDR != "10.0.0.0/20" || len(g.Listeners) != len(f.Listeners) {
		t.Errorf("round trip lost data: %+v", g)
	}
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema_version", "collected_at", "host", "listeners", "firewall", "elasticsearch", "sysctl", "services", "paths", "manifest", "users", "errors"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("document has no %q", k)
		}
	}
	other := strings.Replace(string(b), SchemaVersion, "esbake.facts/v2", 1)
	if _, err := Parse([]byte(other)); err == nil || !strings.Contains(err.Error(), "esbake.facts/v2") {
		t.Errorf("Parse accepted another version: %v", err)
	}
	if _, err := Parse([]byte(`{"host":{}}`)); err == nil {
		t.Error("Parse accepted a document without schema_version")
	}
	if _, err := Parse([]byte("junk")); err == nil {
		t.Error("Parse accepted junk")
	}
	// Parse decodes once on the usual path; the odd documents still get
	// the schema probe's messages.
	if _, err := Parse(append(slices.Clone(b), " {}"...)); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("Parse of a document with trailing data: %v", err)
	}
	if _, err := Parse(append(slices.Clone(b), " \n"...)); err != nil {
		t.Errorf("Parse of a document with trailing white space: %v", err)
	}
	mistyped := `{"schema_version":"esbake.facts/v2","host":7}`
	if _, err := Parse([]byte(mistyped)); err == nil || !strings.Contains(err.Error(), `schema_version is "esbake.facts/v2"`) {
		t.Errorf("Parse of another version that does not decode: %v", err)
	}
	mistyped = `{"schema_version":"` + SchemaVersion + `","host":7}`
	if _, err := Parse([]byte(mistyped)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Parse of a document that does not decode: %v", err)
	}
}

// Hostile inputs end as fact errors, never a crash or a hang.
func TestCollectHostileRoot(t *testing.T) {
	tr := seedNode()
	tr.files["etc/elasticsearch/elasticsearch.yml"] = strings.Repeat("a: b\n", 1000)
	tr.files["etc/elasticsearch/jvm.options"] = "-Xms1g\x00\x01\x02"
	tr.files["etc/iptables/rules.v4"] = "*filter\n-A INPUT -p\n"
	tr.files["proc/net/tcp"] = "junk line\n"
	tr.files["etc/esnode/manifest.json"] = "{not json"
	tr.files["etc/elasticsearch/elasticsearch.keystore"] = "stand-in junk, not a keystore"
	delete(tr.files, "etc/passwd")
	tr.links["etc/passwd"] = "/../../../../../../etc/shadow-does-not-exist"
	root := tr.build(t)
	if err := syscall.Mkfifo(filepath.Join(root, "etc/default/elasticsearch.fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "etc/default/elasticsearch")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "etc/default/elasticsearch.fifo"), filepath.Join(root, "etc/default/elasticsearch")); err != nil {
		t.Fatal(err)
	}
	f := collectRoot(t, root, Options{MaxFileBytes: 1000})
	got := map[string]string{}
	for _, e := range f.Errors {
		got[e.Fact] += e.Error + "\n"
	}
	for fact, want := range map[string]string{
		"elasticsearch.yml":      "larger than 1000 bytes",
		"elasticsearch.heap":     "binary data",
		"elasticsearch.env":      "not a regular file",
		"firewall":               "-p needs a value",
		"listeners":              "fields",
		"manifest":               "not valid JSON",
		"users":                  "no such file",
		"elasticsearch.keystore": "no Lucene footer",
	} {
		if !strings.Contains(got[fact], want) {
			t.Errorf("errors for %s = %q, want %q", fact, got[fact], want)
		}
	}
	if l := findListener(f, 9200); l != nil {
		t.Errorf("listener from junk: %+v", l)
	}
}

func TestCollectOptions(t *testing.T) {
	if _, err := Collect(context.Background(), Options{Root: t.TempDir(), Live: true}); err == nil {
		t.Error("live with a root other than / accepted")
	}
	if _, err := Collect(context.Background(), Options{Root: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("missing root accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, err := Collect(ctx, Options{Root: t.TempDir()})
	if err != nil || len(f.Errors) == 0 || !strings.Contains(f.Errors[0].Error, "context canceled") {
		t.Errorf("cancelled collect: %v %+v", err, f)
	}
}

// The live path with its commands replaced: what each answers is parsed.
func TestCollectLiveCommands(t *testing.T) {
	var ran []string
	run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		ran = append(ran, strings.TrimSpace(name+" "+strings.Join(args, " ")))
		switch name {
		case "iptables-save":
			return []byte(seedIPTables), nil
		case "ip6tables-save":
			return nil, fmt.Errorf("ip6tables-save: %w", exec.ErrNotFound)
		case "nft":
			// iptables-nft's own tables seen through nft are not a second ruleset.
			return []byte(`{"nftables":[{"chain":{"family":"ip","table":"filter","name":"INPUT","hook":"input","policy":"drop"}}]}`), nil
		case "systemctl":
			if args[1] == "elasticsearch.service" {
				return []byte("active\n"), nil
			}
			return []byte("inactive\n"), errors.New("exit status 3")
		case esHome + "/bin/elasticsearch-keystore":
			return []byte("keystore.seed\ndiscovery.ec2.access_key\ndiscovery.ec2.secret_key\n"), nil
		}
		return nil, fmt.Errorf("unexpected command %s", name)
	}
	tr := seedNode()
	// A password-protected keystore: only the tool can list it.
	tr.files["etc/elasticsearch/elasticsearch.keystore"] = string(makeKeystore(4, "s3cret", "keystore.seed"))
	c := &collector{ctx: context.Background(), opts: Options{Live: true, Run: run, CommandTimeout: time.Second, Services: []string{"elasticsearch", "elastichq"}},
		fs: rootFS{root: tr.build(t)}, uids: map[int]string{}, gids: map[int]string{},
		f: &Facts{Sysctl: map[string]any{}, SysctlConf: map[string]SysctlSetting{}}}
	c.firewall()
	c.services()
	c.f.Elasticsearch.ConfigDir = "/etc/elasticsearch"
	c.keystore()
	for _, e := range c.f.Errors {
		t.Errorf("fact error: %s: %s", e.Fact, e.Error)
	}
	if fw := c.f.Firewall; fw.Backend != "iptables" || fw.DefaultInputPolicy != "DROP" || len(fw.Rules) != 6 || len(fw.Chains) != 3 {
		t.Errorf("firewall %+v", fw)
	}
	if a, b := c.f.Services[0].Active, c.f.Services[1].Active; a != "active" || b != "inactive" {
		t.Errorf("active %q %q", a, b)
	}
	ks := c.f.Elasticsearch.Keystore
	if !ks.EntriesKnown || ks.EntriesSource != "elasticsearch-keystore list" || !ks.HasPassword ||
		!reflect.DeepEqual(ks.Entries, []string{"keystore.seed", "discovery.ec2.access_key", "discovery.ec2.secret_key"}) {
		t.Errorf("keystore %+v", ks)
	}
	if len(ran) != 6 {
		t.Errorf("ran %v", ran)
	}
}

// Collect on this very machine: a socket this test opens is found in
// /proc/net and mapped back to this process.
func TestCollectThisMachine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	f, err := Collect(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mine *Listener
	for i, l := range f.Listeners {
		if l.Port == port && l.Address == "127.0.0.1" {
			mine = &f.Listeners[i]
		}
	}
	if mine == nil {
		t.Fatalf("listener on 127.0.0.1:%d not found in %+v (errors %+v)", port, f.Listeners, f.Errors)
	}
	if mine.PID != os.Getpid() || !mine.Loopback || mine.UID != os.Geteuid() {
		t.Errorf("listener %+v, want pid %d uid %d", mine, os.Getpid(), os.Geteuid())
	}
	if f.Host.MemTotalBytes <= 0 || f.Host.Kernel == "" {
		t.Errorf("host %+v", f.Host)
	}
	if _, err := f.JSON(); err != nil {
		t.Error(err)
	}
}

// An image whose firewall is /etc/nftables.conf in nft text form.
func TestCollectNFTablesConf(t *testing.T) {
	tr := cleanNode(t)
	delete(tr.files, "etc/nftables.json")
	tr.files["etc/nftables.conf"] = nftConf
	f := collectRoot(t, tr.build(t), Options{})
	fw := f.Firewall
	if fw.Backend != "nftables" || fw.DefaultInputPolicy != "DROP" || len(fw.Rules) != 10 ||
		!reflect.DeepEqual(fw.Source, []string{"/etc/nftables.conf"}) {
		t.Errorf("firewall %+v", fw)
	}
	n := 0
	for _, e := range f.Errors {
		if e.Fact != "firewall" || !strings.HasPrefix(e.Error, "/etc/nftables.conf line ") {
			t.Errorf("unexpected error %+v", e)
		}
		n++
	}
	if n != 4 {
		t.Errorf("%d firewall errors, want 4 (what the text parser does not evaluate)", n)
	}
}

// Without boot's record, a boot-stage file's content is not compared with
// the bake's sum (boot rewrote it), but its presence still is.
func TestCollectBootStageWithoutRecord(t *testing.T) {
	tr := cleanNode(t)
	var boot BootState
	if err := json.Unmarshal([]byte(tr.files["etc/esnode/boot.json"]), &boot); err != nil {
		t.Fatal(err)
	}
	boot.Files = nil
	b, _ := json.Marshal(boot)
	tr.files["etc/esnode/boot.json"] = string(b)
	f := collectRoot(t, tr.build(t), Options{})
	for _, d := range f.Manifest.Drift {
		if d.Stage == "boot" {
			t.Errorf("boot-stage file flagged without a boot record: %+v", d)
		}
	}
	if len(f.Manifest.Drift) != 2 {
		t.Errorf("drift %+v", f.Manifest.Drift)
	}
	tr.files["etc/elasticsearch/elasticsearch.yml"] = "" // still there, then removed
	root := tr.build(t)
	if err := os.Remove(filepath.Join(root, "etc/elasticsearch/elasticsearch.yml")); err != nil {
		t.Fatal(err)
	}
	f = collectRoot(t, root, Options{})
	missing := false
	for _, d := range f.Manifest.Drift {
		missing = missing || (d.Stage == "boot" && d.Missing)
	}
	if !missing {
		t.Errorf("a missing boot-stage file is not drift: %+v", f.Manifest.Drift)
	}
}

// Live on this machine: the real iptables-save/nft and systemctl answer, or
// their failure is one clear error. Needs root to read the ruleset.
func TestCollectLiveThisMachine(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run as root: reading the live firewall needs it")
		}
		t.Skip("needs root to run iptables-save")
	}
	f, err := Collect(context.Background(), Options{Live: true, Services: []string{"esbake-facts-test-no-such-unit"}})
	if err != nil {
		t.Fatal(err)
	}
	_, iptErr := exec.LookPath("iptables-save")
	_, nftErr := exec.LookPath("nft")
	for _, e := range f.Errors {
		if e.Fact == "firewall" && (iptErr == nil || nftErr == nil) {
			t.Errorf("firewall error with a firewall tool installed: %s", e.Error)
		}
		if strings.HasPrefix(e.Fact, "services") {
			t.Errorf("a unit that does not exist needs no systemctl call: %+v", e)
		}
	}
	if s := f.Services[0]; s.Present || s.Active != "inactive" {
		t.Errorf("absent unit %+v", s)
	}
	if f.Firewall.Backend == "" || f.Firewall.DefaultInputPolicy == "" {
		t.Errorf("firewall %+v", f.Firewall)
	}
	if !f.Live {
		t.Error("live not recorded")
	}
}

func TestCollectNotInstalled(t *testing.T) {
	root := tree{files: map[string]string{"etc/passwd": fixturePasswd, "etc/group": fixtureGroup}, links: map[string]string{}}.build(t)
	f := collectRoot(t, root, Options{})
	n := 0
	for _, e := range f.Errors {
		if strings.HasPrefix(e.Fact, "elasticsearch") {
			n++
			if !strings.Contains(e.Error, "not installed") {
				t.Errorf("error %+v", e)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d elasticsearch errors, want one saying it is not installed", n)
	}
	if b, err := f.JSON(); err != nil || strings.Contains(string(b), `"files": null`) || strings.Contains(string(b), `"sources": null`) {
		t.Errorf("document has nulls for lists: %v\n%s", err, b)
	}
}

// ES_JAVA_OPTS from a drop-in's Environment= counts, unless
// /etc/default/elasticsearch (EnvironmentFile=, which wins) sets it too.
func TestCollectHeapFromUnitEnvironment(t *testing.T) {
	tr := cleanNode(t)
	tr.files["etc/systemd/system/elasticsearch.service.d/heap.conf"] = "[Service]\nEnvironment=\"ES_JAVA_OPTS=-Xms2g -Xmx2g\" OTHER=1\n"
	f := collectRoot(t, tr.build(t), Options{})
	hp := f.Elasticsearch.Heap
	if hp.XmsBytes != 2<<30 || hp.XmxBytes != 2<<30 || hp.Sources[len(hp.Sources)-1].Source != "ES_JAVA_OPTS (Environment= of elasticsearch.service)" {
		t.Errorf("heap %+v", hp)
	}
	tr.files["etc/default/elasticsearch"] = "ES_JAVA_OPTS=\"-Xms3g -Xmx3g\"\n"
	f = collectRoot(t, tr.build(t), Options{})
	if hp := f.Elasticsearch.Heap; hp.XmxBytes != 3<<30 {
		t.Errorf("/etc/default should win: %+v", hp)
	}
}

func TestCollectorPanicIsAFactError(t *testing.T) {
	c := &collector{f: &Facts{}}
	c.step("boom", func() { panic("stand-in bug") })
	if len(c.f.Errors) != 1 || c.f.Errors[0].Fact != "boom" || !strings.Contains(c.f.Errors[0].Error, "stand-in bug") {
		t.Errorf("errors %+v", c.f.Errors)
	}
}

// The layout esnode boot leaves with nftables: the distribution's
// /etc/nftables.conf plus an include of its own table.
func TestCollectNFTablesInclude(t *testing.T) {
	tr := cleanNode(t)
	delete(tr.files, "etc/nftables.json")
	tr.files["etc/nftables.conf"] = "#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n}\ninclude \"/etc/nftables.d/esnode.nft\"\ninclude \"/etc/nftables.d/*.missing\"\n"
	tr.files["etc/nftables.d/esnode.nft"] = esnodeNFT
	f := collectRoot(t, tr.build(t), Options{})
	assertNoErrors(t, f)
	fw := f.Firewall
	if fw.Backend != "nftables" || fw.DefaultInputPolicy != "DROP" || len(fw.Chains) != 2 || len(fw.Rules) != 5 {
		t.Fatalf("firewall %+v", fw)
	}
	if r := fw.Rules[2]; r.Table != "esnode" || r.Hook != "input" || r.Sources[0] != "10.0.0.0/20" || r.DPorts[0].From != 9200 {
		t.Errorf("rule %+v", r)
	}
	if !strings.Contains(fw.Raw, "comment \"transport\"") {
		t.Error("raw lacks the included file")
	}
}

// The layout esnode boot leaves with iptables: INPUT drops and jumps to
// the esnode chain, whose rules an input packet therefore meets.
func TestCollectIPTablesJumpChain(t *testing.T) {
	tr := cleanNode(t)
	delete(tr.files, "etc/nftables.json")
	tr.files["etc/iptables/rules.v4"] = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:esnode - [0:0]\n" +
		"-A INPUT -j esnode\n-A esnode -i lo -j ACCEPT\n-A esnode -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n" +
		"-A esnode -s 10.0.0.0/20 -p tcp -m tcp --dport 9200 -j ACCEPT\nCOMMIT\n"
	f := collectRoot(t, tr.build(t), Options{})
	assertNoErrors(t, f)
	fw := f.Firewall
	if fw.Backend != "iptables" || len(fw.Rules) != 4 {
		t.Fatalf("firewall %+v", fw)
	}
	for _, r := range fw.Rules {
		if r.Hook != "input" {
			t.Errorf("rule in %s not reached from input: %+v", r.Chain, r)
		}
	}
	for _, ch := range fw.Chains {
		if ch.Name == "esnode" && ch.Hook != "" {
			t.Errorf("a regular chain got a hook: %+v", ch)
		}
	}
}

func TestPropagateHooksCycle(t *testing.T) {
	chains := []Chain{{Backend: "iptables", Family: "ipv4", Table: "filter", Name: "INPUT", Hook: "input"}}
	rules := []FirewallRule{
		{Backend: "iptables", Family: "ipv4", Table: "filter", Chain: "INPUT", Target: "a"},
		{Backend: "iptables", Family: "ipv4", Table: "filter", Chain: "a", Target: "b"},
		{Backend: "iptables", Family: "ipv4", Table: "filter", Chain: "b", Target: "a"},
		{Backend: "iptables", Family: "ipv4", Table: "filter", Chain: "c", Target: "ACCEPT"},
	}
	propagateHooks(chains, rules)
	if rules[1].Hook != "input" || rules[2].Hook != "input" || rules[3].Hook != "" {
		t.Errorf("hooks %q %q %q", rules[1].Hook, rules[2].Hook, rules[3].Hook)
	}
}

// TestCollectUnknownSettings: facts carry the elasticsearch.yml keys the
// node's version refuses, with Elastic's message; a clean node has none.
func TestCollectUnknownSettings(t *testing.T) {
	f := collectRoot(t, cleanNode(t).build(t), Options{})
	if len(f.Elasticsearch.UnknownSettings) != 0 || f.Elasticsearch.SettingsTable == "" {
		t.Errorf("clean 8.x node: unknown %v, table %q", f.Elasticsearch.UnknownSettings, f.Elasticsearch.SettingsTable)
	}
	tr := cleanNode(t)
	tr.files["etc/elasticsearch/elasticsearch.yml"] += "discovery.zen.minimum_master_nodes: 2\nnode.attr.rack: r1\nnetwork.hots: 10.0.1.23\n"
	f = collectRoot(t, tr.build(t), Options{})
	var keys []string
	for _, u := range f.Elasticsearch.UnknownSettings {
		keys = append(keys, u.Key)
		if !strings.HasPrefix(u.Message, "unknown setting ["+u.Key+"]") {
			t.Errorf("message for %s: %q", u.Key, u.Message)
		}
	}
	if strings.Join(keys, ",") != "discovery.zen.minimum_master_nodes,network.hots" {
		t.Errorf("unknown settings %v, want the 6.x key and the typo (node.attr.* is registered)", keys)
	}
}
