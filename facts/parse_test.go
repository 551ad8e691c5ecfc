package facts

import (
	"reflect"
	"strings"
	"testing"
)

func TestFlattenYAMLNormalizesDottedAndNested(t *testing.T) {
	in := `
cluster.name: aardvark-cluster
network.host: [10.0.0.5]
http.cors.enabled: true
http.cors.allow-origin: '*'
discovery:
  ec2:
    any_group: true
    tag.es_cluster: "aardvark-cluster"
path:
  data: /var/lib/elasticsearch
node.attr.rack: 3
bootstrap.memory_lock: false
empty:
`
	got, problems := FlattenYAML([]byte(in))
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	want := map[string]any{
		"cluster.name":                 "aardvark-cluster",
		"network.host":                 []any{"10.0.0.5"},
		"http.cors.enabled":            true,
		"http.cors.allow-origin":       "*",
		"discovery.ec2.any_group":      true,
		"discovery.ec2.tag.es_cluster": "aardvark-cluster",
		"path.data":                    "/var/lib/elasticsearch",
		"node.attr.rack":               3,
		"bootstrap.memory_lock":        false,
		"empty":                        nil,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
}

func TestFlattenYAMLReportsDuplicatesAcrossForms(t *testing.T) {
	got, problems := FlattenYAML([]byte("a.b: 1\na:\n  b: 2\n"))
	if got["a.b"] != 2 {
		t.Errorf("a.b = %v, want the last value 2", got["a.b"])
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "a.b is already set on line 1") {
		t.Errorf("problems = %v, want one duplicate of a.b", problems)
	}
}

func TestFlattenYAMLBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"broken":     "a: [1, 2\n",
		"not a map":  "- a\n- b\n",
		"binaryish":  "\x01\x02: \x03",
		"tab indent": "a:\n\tb: 1\n",
	} {
		_, problems := FlattenYAML([]byte(in))
		if len(problems) == 0 {
			t.Errorf("%s: no problem reported for %q", name, in)
		}
	}
	got, problems := FlattenYAML([]byte("# only comments\n"))
	if len(got) != 0 || len(problems) != 0 {
		t.Errorf("comments only: got %v %v, want nothing", got, problems)
	}
}

func TestFlattenYAMLAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString(strings.NewReplacer("N", string(rune('0'+i)), "P", string(rune('0'+i-1))).Replace(
			"aN: &aN [*aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP]\n"))
	}
	_, problems := FlattenYAML([]byte(b.String()))
	if len(problems) == 0 {
		t.Fatal("an alias bomb was expanded without a problem")
	}
}

func TestParseJVMOptionsVersionPrefixes(t *testing.T) {
	in := `# comment
-Xms1g
8:-Xmx2g
8-:-XX:+UseG1GC
9-:-Xmx3g
17-18:-Xmx4g
11-16:-Xmx5g
-9:-Xmx6g
not-an-option
20-10:-Xmx7g
`
	apply, skipped, invalid := ParseJVMOptions(in, 17)
	var a, s []string
	for _, o := range apply {
		a = append(a, o.Option)
	}
	for _, o := range skipped {
		s = append(s, o.Option)
	}
	if want := []string{"-Xms1g", "-XX:+UseG1GC", "-Xmx3g", "-Xmx4g"}; !reflect.DeepEqual(a, want) {
		t.Errorf("applied %v, want %v", a, want)
	}
	if want := []string{"-Xmx2g", "-Xmx5g"}; !reflect.DeepEqual(s, want) {
		t.Errorf("skipped %v, want %v", s, want)
	}
	if len(invalid) != 3 {
		t.Errorf("invalid = %v, want 3 (-9: prefix, not-an-option, 20-10 range)", invalid)
	}
	if apply[0].Line != 2 {
		t.Errorf("line of -Xms1g = %d, want 2", apply[0].Line)
	}
}

func TestParseJVMSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1g": 1 << 30, "512m": 512 << 20, "2G": 2 << 30, "1t": 1 << 40, "1024k": 1 << 20, "1048576": 1 << 20,
	} {
		got, err := ParseJVMSize(in)
		if err != nil || got != want {
			t.Errorf("ParseJVMSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "g", "1.5g", "-1g", "1gb", "99999999999999999999", "9999999999t"} {
		if _, err := ParseJVMSize(bad); err == nil {
			t.Errorf("ParseJVMSize(%q) succeeded", bad)
		}
	}
}

// The seed's bug: `sed s/-Xmx1g/-Xms${m}g/` turns the -Xmx line into a
// second -Xms, leaving no -Xmx at all.
func TestComputeHeapSeedBug(t *testing.T) {
	opts := "## JVM configuration\n-Xms2g\n-Xms2g\n-XX:+UseConcMarkSweepGC\n"
	h := computeHeap([]jvmFile{{"/etc/elasticsearch/jvm.options", opts}}, "", "/etc/default/elasticsearch", 8)
	if h.XmsBytes != 2<<30 || h.XmxBytes != 0 {
		t.Errorf("xms %d xmx %d, want 2g and 0", h.XmsBytes, h.XmxBytes)
	}
	if len(h.Duplicates) != 1 || h.Duplicates[0].Kind != "xms" || h.Duplicates[0].Count != 2 {
		t.Errorf("duplicates = %+v, want xms twice", h.Duplicates)
	}
	if !reflect.DeepEqual(h.Missing, []string{"xmx"}) {
		t.Errorf("missing = %v, want [xmx]", h.Missing)
	}
	if got := h.Duplicates[0].Sources; !reflect.DeepEqual(got, []string{"/etc/elasticsearch/jvm.options:2", "/etc/elasticsearch/jvm.options:3"}) {
		t.Errorf("duplicate sources = %v", got)
	}
}

func TestComputeHeapOrderAndESJavaOpts(t *testing.T) {
	files := []jvmFile{
		{"jvm.options", "-Xms1g\n-Xmx1g\n"},
		{"jvm.options.d/heap.options", "-Xms4g\n-Xmx4g\n"},
	}
	h := computeHeap(files, "-Xms6g -Xmx6g -Dfoo=bar", "/etc/default/elasticsearch", 17)
	if h.XmsBytes != 6<<30 || h.XmxBytes != 6<<30 {
		t.Errorf("effective %d/%d, want ES_JAVA_OPTS' 6g to win", h.XmsBytes, h.XmxBytes)
	}
	if len(h.Sources) != 6 || h.Sources[5].Source != "ES_JAVA_OPTS (/etc/default/elasticsearch)" {
		t.Errorf("sources = %+v", h.Sources)
	}
	h = computeHeap([]jvmFile{{"j", "-Xmsbig\n"}}, "", "", 17)
	if len(h.Invalid) != 1 || len(h.Missing) != 2 {
		t.Errorf("bad size: invalid %v missing %v", h.Invalid, h.Missing)
	}
}

func TestParseShellEnv(t *testing.T) {
	env := ParseShellEnv("# c\nES_PATH_CONF=/etc/elasticsearch\nexport ES_JAVA_OPTS=\"-Xms2g -Xmx2g\"\nA='x y'\nB=z # note\nbad line\n")
	want := map[string]string{"ES_PATH_CONF": "/etc/elasticsearch", "ES_JAVA_OPTS": "-Xms2g -Xmx2g", "A": "x y", "B": "z"}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("got %v want %v", env, want)
	}
}

const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0500000A:23F0 00000000:0000 0A 00000000:00000000 00:00000000 00000000   112        0 21345 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1388 0500000A:C350 01 00000000:00000000 00:00000000 00000000  1001        0 2222 1 0000000000000000 100 0 0 10 0
`

func TestParseProcNetTCP(t *testing.T) {
	got, problems := ParseProcNetTCP(procNetTCP, false)
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	want := []TCPSocket{
		{Address: "10.0.0.5", Port: 9200, State: 0x0A, UID: 112, Inode: 21345},
		{Address: "0.0.0.0", Port: 22, State: 0x0A, UID: 0, Inode: 1111},
		{Address: "127.0.0.1", Port: 5000, State: 0x01, UID: 1001, Inode: 2222},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseProcNetTCP6(t *testing.T) {
	in := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:2454 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   112        0 3333 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0CEA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000500000A:23F0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   112        0 5555 1 0000000000000000 100 0 0 10 0
   3: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6666 1 0000000000000000 100 0 0 10 0
`
	got, problems := ParseProcNetTCP(in, true)
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	var addrs []string
	for _, s := range got {
		addrs = append(addrs, s.Address)
	}
	if want := []string{"::", "::1", "::ffff:10.0.0.5", "2001:db8::1"}; !reflect.DeepEqual(addrs, want) {
		t.Errorf("addresses %v, want %v", addrs, want)
	}
	if got[0].Port != 9300 || got[1].Port != 3306 {
		t.Errorf("ports %d %d", got[0].Port, got[1].Port)
	}
}

func TestParseProcNetTCPBadRows(t *testing.T) {
	in := "sl local\n 0: ZZ:0016 0:0 0A 0 0 0 0 0 1\n 1: 0100007F 00000000:0000 0A a b c 0 0 1\n 2: short\n"
	got, problems := ParseProcNetTCP(in, false)
	if len(got) != 0 || len(problems) != 3 {
		t.Errorf("got %v problems %v, want 0 rows and 3 problems", got, problems)
	}
}

const procLimits = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max processes             4096                 4096                 processes 
Max open files            65535                65535                files     
Max locked memory         65536                65536                bytes     
Max address space         unlimited            unlimited            bytes     
Max realtime timeout      unlimited            unlimited            us        
`

func TestParseLimits(t *testing.T) {
	got, problems := ParseLimits(procLimits)
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	if got["nofile"] != (Limit{65535, 65535, "files"}) || got["nproc"].Soft != 4096 || got["memlock"].Hard != 65536 {
		t.Errorf("limits %+v", got)
	}
	if got["as"].Soft != -1 || got["rttime"].Units != "us" {
		t.Errorf("unlimited/us: %+v %+v", got["as"], got["rttime"])
	}
	_, problems = ParseLimits("Max widgets 1 2\nMax open files  x y files\n")
	if len(problems) != 2 {
		t.Errorf("problems %v, want 2", problems)
	}
}

func TestCmdline(t *testing.T) {
	args := ParseCmdline([]byte("/usr/share/elasticsearch/jdk/bin/java\x00-Xms1g\x00-Xmx1g\x00-Xms4g\x00-Xmx4g\x00org.elasticsearch.bootstrap.Elasticsearch\x00"))
	if len(args) != 6 || args[5] != esMainClass {
		t.Fatalf("args %q", args)
	}
	if xms, xmx := CmdlineHeap(args); xms != 4<<30 || xmx != 4<<30 {
		t.Errorf("heap %d %d, want the last values (4g)", xms, xmx)
	}
	if ParseCmdline(nil) != nil {
		t.Error("empty cmdline should be nil (kernel thread)")
	}
}

func TestParseStatus(t *testing.T) {
	name, uid, err := ParseStatus("Name:\tjava\nUmask:\t0022\nUid:\t112\t113\t112\t112\nGid:\t0\t0\t0\t0\n")
	if err != nil || name != "java" || uid != 113 {
		t.Errorf("got %q %d %v, want java and effective uid 113", name, uid, err)
	}
	if _, _, err := ParseStatus("Name: x\n"); err == nil {
		t.Error("no Uid line accepted")
	}
}

func TestParseMeminfo(t *testing.T) {
	n, err := ParseMeminfo("MemTotal:        8039444 kB\nMemFree: 1 kB\n")
	if err != nil || n != 8039444*1024 {
		t.Errorf("got %d %v", n, err)
	}
	if _, err := ParseMeminfo("MemFree: 1 kB\n"); err == nil {
		t.Error("no MemTotal accepted")
	}
}

// The seed's rules, saved by `iptables-save > /etc/iptables/rules.v4`.
const seedIPTables = `# Generated by iptables-save v1.6.1 on Fri Jul 19 10:00:00 2019
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [12:1234]
-A INPUT -i lo -j ACCEPT
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -s 10.0.0.0/24 -p tcp -m tcp --dport 5000 -m state --state NEW -j ACCEPT
-A INPUT -s 10.0.0.0/24 -p tcp -m tcp --dport 9200 -m state --state NEW -j ACCEPT
-A INPUT -s 10.0.0.0/24 -p tcp -m tcp --dport 9300 -m state --state NEW -j ACCEPT
COMMIT
# Completed on Fri Jul 19 10:00:00 2019
`

func TestParseIPTablesSaveSeed(t *testing.T) {
	rs, problems := ParseIPTablesSave(seedIPTables, "ipv4")
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	if len(rs.Chains) != 3 || rs.Chains[0] != (Chain{Backend: "iptables", Family: "ipv4", Table: "filter", Name: "INPUT", Hook: "input", Policy: "DROP"}) {
		t.Errorf("chains %+v", rs.Chains)
	}
	if len(rs.Rules) != 6 {
		t.Fatalf("%d rules, want 6", len(rs.Rules))
	}
	r := rs.Rules[4]
	want := FirewallRule{Backend: "iptables", Family: "ipv4", Table: "filter", Chain: "INPUT", Hook: "input", Proto: "tcp",
		DPorts: []PortRange{{9200, 9200}}, Sources: []string{"10.0.0.0/24"}, CTState: []string{"new"}, Target: "ACCEPT",
		Raw: "-A INPUT -s 10.0.0.0/24 -p tcp -m tcp --dport 9200 -m state --state NEW -j ACCEPT"}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("rule\n got %+v\nwant %+v", r, want)
	}
	if rs.Rules[0].InInterface != "lo" || !reflect.DeepEqual(rs.Rules[1].CTState, []string{"related", "established"}) {
		t.Errorf("lo/state rules %+v %+v", rs.Rules[0], rs.Rules[1])
	}
}

func TestParseIPTablesSaveVariants(t *testing.T) {
	in := `*filter
:INPUT ACCEPT [0:0]
:es-in - [0:0]
-A INPUT ! -s 10.0.0.0/8 -p tcp -m multiport --dports 9200,9300:9400 -m comment --comment "es ports \"x\"" -j es-in
-A INPUT -p tcp -m conntrack --ctstate NEW -m recent --set -j LOG --log-prefix "x y"
-A es-in -j REJECT --reject-with icmp-port-unreachable
COMMIT
-A INPUT -j ACCEPT
garbage
`
	rs, problems := ParseIPTablesSave(in, "ipv4")
	if len(problems) != 2 {
		t.Errorf("problems %v, want rule-outside-table and garbage", problems)
	}
	if len(rs.Rules) != 3 {
		t.Fatalf("rules %+v", rs.Rules)
	}
	r := rs.Rules[0]
	if !r.SourcesNegated || r.Target != "es-in" || !reflect.DeepEqual(r.DPorts, []PortRange{{9200, 9200}, {9300, 9400}}) || r.Other {
		t.Errorf("multiport rule %+v", r)
	}
	if !rs.Rules[1].Other || rs.Rules[1].Target != "LOG" {
		t.Errorf("recent rule should be marked other: %+v", rs.Rules[1])
	}
	if rs.Chains[1].Policy != "" || rs.Chains[1].Hook != "" {
		t.Errorf("user chain %+v", rs.Chains[1])
	}
}

const nftRuleset = `{"nftables": [
 {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
 {"table": {"family": "inet", "name": "esnode", "handle": 1}},
 {"chain": {"family": "inet", "table": "esnode", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
 {"rule": {"family": "inet", "table": "esnode", "chain": "input", "handle": 2, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}}, {"accept": null}]}},
 {"rule": {"family": "inet", "table": "esnode", "chain": "input", "handle": 3, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
 {"rule": {"family": "inet", "table": "esnode", "chain": "input", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.16.0", "len": 20}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [9200, 9300, {"range": [5000, 5001]}]}}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
 {"rule": {"family": "inet", "table": "esnode", "chain": "input", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "192.0.2.1"}}, {"jump": {"target": "ssh"}}]}},
 {"rule": {"family": "inet", "table": "esnode", "chain": "input", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"drop": null}]}}
]}`

func TestParseNFTJSON(t *testing.T) {
	rs, problems := ParseNFTJSON([]byte(nftRuleset))
	if len(problems) != 1 || !strings.Contains(problems[0], "named sets") {
		t.Errorf("problems %v, want one about the named set", problems)
	}
	if len(rs.Chains) != 1 || rs.Chains[0].Policy != "DROP" || rs.Chains[0].Hook != "input" || rs.Chains[0].Family != "inet" {
		t.Errorf("chains %+v", rs.Chains)
	}
	if len(rs.Rules) != 5 {
		t.Fatalf("rules %d", len(rs.Rules))
	}
	r := rs.Rules[2]
	if r.Proto != "tcp" || !reflect.DeepEqual(r.Sources, []string{"10.0.16.0/20"}) || r.Target != "ACCEPT" ||
		!reflect.DeepEqual(r.DPorts, []PortRange{{9200, 9200}, {9300, 9300}, {5000, 5001}}) || r.Other || r.Hook != "input" {
		t.Errorf("es rule %+v", r)
	}
	if rs.Rules[0].InInterface != "lo" || !reflect.DeepEqual(rs.Rules[1].CTState, []string{"established", "related"}) {
		t.Errorf("lo/ct rules %+v %+v", rs.Rules[0], rs.Rules[1])
	}
	if !rs.Rules[3].SourcesNegated || rs.Rules[3].Target != "ssh" {
		t.Errorf("negated jump %+v", rs.Rules[3])
	}
	if !rs.Rules[4].Other || rs.Rules[4].Target != "DROP" {
		t.Errorf("named set rule %+v", rs.Rules[4])
	}
	if _, problems := ParseNFTJSON([]byte("not json")); len(problems) != 1 {
		t.Error("junk accepted")
	}
}

func TestParsePasswdAndGroup(t *testing.T) {
	users, problems := ParsePasswd("root:x:0:0:root:/root:/bin/bash\nelasticsearch:x:112:117::/nonexistent:/bin/false\nbad\nx:x:a:0:::\n")
	if len(users) != 2 || len(problems) != 2 {
		t.Fatalf("users %v problems %v", users, problems)
	}
	if users[1] != (User{Name: "elasticsearch", UID: 112, GID: 117, Home: "/nonexistent", Shell: "/bin/false"}) {
		t.Errorf("user %+v", users[1])
	}
	g := ParseGroup("root:x:0:\nelasticsearch:x:117:\n")
	if g[117] != "elasticsearch" {
		t.Errorf("groups %v", g)
	}
}

func TestParseUnit(t *testing.T) {
	u, problems := ParseUnit(nil, `[Unit]
Description=ElasticSearchHQ instance
[Service]
User=elasticsearch-hq
ExecStart=/usr/bin/python3 \
  /usr/share/elasticsearch-hq/application.py
LimitNOFILE=65535
[Install]
WantedBy=multi-user.target
junk
`)
	if len(problems) != 1 {
		t.Errorf("problems %v, want 1 (junk)", problems)
	}
	u, _ = ParseUnit(u, "[Service]\nUser=\nUser=elastichq\n[Install]\nWantedBy=graphical.target\n")
	if u.Last("Service", "User") != "elastichq" {
		t.Errorf("drop-in user %q", u.Last("Service", "User"))
	}
	if got := u.All("Install", "WantedBy"); !reflect.DeepEqual(got, []string{"multi-user.target", "graphical.target"}) {
		t.Errorf("WantedBy %v", got)
	}
	if got := u.Last("Service", "ExecStart"); got != "/usr/bin/python3  /usr/share/elasticsearch-hq/application.py" {
		t.Errorf("continuation %q", got)
	}
	if l, err := unitLimit("1024:65535"); err != nil || l != (Limit{Soft: 1024, Hard: 65535}) {
		t.Errorf("limit %v %v", l, err)
	}
	if l, err := unitLimit("infinity"); err != nil || l.Soft != -1 {
		t.Errorf("infinity %v %v", l, err)
	}
}

func TestDpkgVersionAndOSRelease(t *testing.T) {
	status := "Package: foo\nStatus: install ok installed\nVersion: 1\n\nPackage: elasticsearch\nStatus: install ok installed\nPriority: optional\nVersion: 6.4.2\nDescription: x\n y\n"
	if v := DpkgVersion(status, "elasticsearch"); v != "6.4.2" {
		t.Errorf("version %q", v)
	}
	if v := DpkgVersion("Package: elasticsearch\nStatus: deinstall ok config-files\nVersion: 7.1.0\n", "elasticsearch"); v != "" {
		t.Errorf("removed package reported as %q", v)
	}
	os := ParseOSRelease("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n")
	if os != (OSRelease{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"}) {
		t.Errorf("os-release %+v", os)
	}
	if javaMajor(`"1.8.0_212"`) != 8 || javaMajor("17.0.2") != 17 || javaMajor("21") != 21 {
		t.Error("javaMajor")
	}
}

const nftConf = `#!/usr/sbin/nft -f
flush ruleset

table inet esnode {
	set blocked { type ipv4_addr; elements = { 192.0.2.66 } }
	chain input {
		type filter hook input priority filter; policy drop;
		iif lo accept comment "loopback"
		ct state established,related accept
		ct state { established, related } counter packets 0 bytes 0 accept
		ip saddr @blocked drop
		ip saddr 10.0.16.0/20 tcp dport { 9200, 9300, 5000-5001 } ct state new accept
		tcp dport 22 ip saddr != 192.0.2.1 jump ssh # trailing comment
		ip6 saddr fd00::/8 tcp dport 9200 \
			accept
		tcp dport https limit rate 10/second log prefix "x y" accept
		reject with icmpx type admin-prohibited
	}
	chain ssh {
		accept
	}
}
table ip nat {
	chain prerouting { type nat hook prerouting priority dstnat; }
}
define ES = 9200
`

func TestParseNFTText(t *testing.T) {
	rs, problems := ParseNFTText(nftConf)
	// The set block, the named set, the service name and the define.
	if len(problems) != 4 {
		t.Errorf("problems %q, want 4", problems)
	}
	wantChains := []Chain{
		{Backend: "nftables", Family: "inet", Table: "esnode", Name: "input", Hook: "input", Policy: "DROP"},
		{Backend: "nftables", Family: "inet", Table: "esnode", Name: "ssh"},
		{Backend: "nftables", Family: "ipv4", Table: "nat", Name: "prerouting", Hook: "prerouting", Policy: "ACCEPT"},
	}
	if !reflect.DeepEqual(rs.Chains, wantChains) {
		t.Errorf("chains\n got %+v\nwant %+v", rs.Chains, wantChains)
	}
	if len(rs.Rules) != 10 {
		for _, r := range rs.Rules {
			t.Logf("%+v", r)
		}
		t.Fatalf("%d rules, want 10", len(rs.Rules))
	}
	if r := rs.Rules[0]; r.InInterface != "lo" || r.Target != "ACCEPT" || r.Other {
		t.Errorf("lo rule %+v", r)
	}
	if r := rs.Rules[2]; !reflect.DeepEqual(r.CTState, []string{"established", "related"}) || r.Target != "ACCEPT" || r.Other {
		t.Errorf("ct set rule %+v", r)
	}
	if r := rs.Rules[3]; !r.Other || r.Target != "DROP" {
		t.Errorf("named set rule %+v", r)
	}
	r := rs.Rules[4]
	if !reflect.DeepEqual(r.Sources, []string{"10.0.16.0/20"}) || r.Proto != "tcp" || r.Target != "ACCEPT" || r.Other || r.Hook != "input" ||
		!reflect.DeepEqual(r.DPorts, []PortRange{{9200, 9200}, {9300, 9300}, {5000, 5001}}) || !reflect.DeepEqual(r.CTState, []string{"new"}) {
		t.Errorf("es rule %+v", r)
	}
	if r := rs.Rules[5]; !r.SourcesNegated || r.Target != "ssh" || r.DPorts[0].From != 22 {
		t.Errorf("jump rule %+v", r)
	}
	if r := rs.Rules[6]; r.Sources[0] != "fd00::/8" || r.Target != "ACCEPT" {
		t.Errorf("continued rule %+v", r)
	}
	if r := rs.Rules[7]; !r.Other || r.Target != "ACCEPT" {
		t.Errorf("https/limit rule %+v", r)
	}
	if r := rs.Rules[8]; r.Target != "REJECT" || r.Other {
		t.Errorf("reject rule %+v", r)
	}
	if r := rs.Rules[9]; r.Chain != "ssh" || r.Target != "ACCEPT" {
		t.Errorf("ssh chain rule %+v", r)
	}
}

func TestParseNFTTextBroken(t *testing.T) {
	for _, in := range []string{"table inet x {\n chain input {\n", "}\n}\n", "table inet {\n", "table inet x { chain c { tcp dport \"unterminated } }"} {
		if _, problems := ParseNFTText(in); len(problems) == 0 {
			t.Errorf("no problem for %q", in)
		}
	}
}

func TestSplitSystemdWords(t *testing.T) {
	got := splitSystemdWords(`"ES_JAVA_OPTS=-Xms2g -Xmx2g" FOO=bar 'A=b c' "Q=\"x\""`)
	want := []string{"ES_JAVA_OPTS=-Xms2g -Xmx2g", "FOO=bar", "A=b c", `Q="x"`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q want %q", got, want)
	}
}

// What esnode boot writes to /etc/nftables.d/esnode.nft (node/boot NFTScript).
const esnodeNFT = `# Managed by esnode boot: rewritten on every boot.
table inet esnode
delete table inet esnode
table inet esnode {
	chain input {
		type filter hook input priority 0; policy drop;
		iif "lo" accept
		ct state established,related accept
		ip saddr 10.0.0.0/20 tcp dport 9200 accept comment "http"
		ip saddr 10.0.0.0/20 tcp dport 9300 accept comment "transport"
		ip saddr 10.0.0.0/16 tcp dport 22 accept comment "ssh"
	}
}
`

func TestParseNFTTextEsnodeScript(t *testing.T) {
	rs, problems := ParseNFTText(esnodeNFT)
	if len(problems) != 0 {
		t.Errorf("problems %v", problems)
	}
	if len(rs.Chains) != 1 || rs.Chains[0].Policy != "DROP" || len(rs.Rules) != 5 {
		t.Fatalf("ruleset %+v", rs)
	}
	if r := rs.Rules[2]; r.Sources[0] != "10.0.0.0/20" || r.DPorts[0] != (PortRange{9200, 9200}) || r.Target != "ACCEPT" || r.Other {
		t.Errorf("rule %+v", r)
	}
}
