package boot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

func testYMLConfig(version string) ymlConfig {
	v, err := spec.ParseVersion(version)
	if err != nil {
		panic(err)
	}
	return ymlConfig{
		Version: v, ClusterName: "logs-prod", TagKey: "es_cluster",
		InstanceID: "i-0abc", LocalIPv4: "10.0.1.23", Region: "eu-west-2", SubnetCIDR: "10.0.1.0/24",
		VPCCIDRs: []string{"10.0.0.0/16"}, AvailabilityZone: "eu-west-2a",
		HTTPPort: 9200, TransportPort: 9300,
	}
}

// flatYML parses a yml the way Elasticsearch does (duplicate keys are an
// error) and flattens nested keys to dotted ones.
func flatYML(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("rendered yml does not parse (duplicate key?): %v\n%s", err, b)
	}
	out := map[string]any{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok {
			for k, x := range m {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, x)
			}
			return
		}
		if _, dup := out[prefix]; dup {
			t.Fatalf("key %s set twice (nested and flat)", prefix)
		}
		out[prefix] = v
	}
	walk("", doc)
	return out
}

// withoutBoot undoes what boot does to a yml: drops the managed block and
// the disabled-line prefixes.
func withoutBoot(s string) string {
	var b strings.Builder
	in := false
	for _, l := range splitLines(s) {
		switch {
		case strings.HasPrefix(l, beginPrefix):
			in = true
			continue
		case strings.HasPrefix(l, endPrefix):
			in = false
			continue
		}
		if !in {
			b.WriteString(strings.TrimPrefix(l, DisabledPrefix))
		}
	}
	return b.String()
}

func TestRenderElasticsearchYMLSeed(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed-elasticsearch.yml")
	if err != nil {
		t.Fatal(err)
	}
	c := testYMLConfig("7.17.25")
	c.Roles = []string{"master", "data"}
	c.CORSAllowOrigin = "https://app.example.com"
	s, err := c.settings()
	if err != nil {
		t.Fatal(err)
	}
	out, err := renderElasticsearchYML(seed, s)
	if err != nil {
		t.Fatal(err)
	}
	flat := flatYML(t, out)
	want := map[string]any{
		"cluster.name":                    "logs-prod",
		"node.name":                       "i-0abc",
		"network.host":                    "10.0.1.23",
		"http.port":                       9200,
		"transport.port":                  9300,
		"node.roles":                      []any{"master", "data"},
		"discovery.seed_providers":        "ec2",
		"discovery.ec2.tag.es_cluster":    "logs-prod",
		"discovery.ec2.any_group":         true,
		"discovery.ec2.host_type":         "private_ip",
		"discovery.ec2.endpoint":          "https://ec2.eu-west-2.amazonaws.com",
		"node.attr.aws_availability_zone": "eu-west-2a",
		"cluster.routing.allocation.awareness.attributes": "aws_availability_zone",
		"reindex.remote.whitelist":                        "10.0.*:9200",
		"http.cors.enabled":                               true,
		"http.cors.allow-origin":                          "https://app.example.com",
		"path.data":                                       "/var/lib/elasticsearch",
		"path.logs":                                       "/var/log/elasticsearch",
	}
	if !reflect.DeepEqual(flat, want) {
		t.Errorf("flattened yml:\n got %v\nwant %v\n%s", flat, want, out)
	}
	if _, ok := flat["discovery.zen.hosts_provider"]; ok {
		t.Error("the seed's 6.x discovery.zen.hosts_provider survived on 7.x")
	}
	if !strings.Contains(string(out), DisabledPrefix+"http.cors.allow-origin: '*'\n") {
		t.Errorf("seed CORS '*' line not disabled:\n%s", out)
	}
	// Everything outside the block is the input, byte for byte.
	if got := withoutBoot(string(out)); got != string(seed) {
		t.Errorf("lines outside the managed block changed:\n%s", UnifiedDiff("/seed", seed, []byte(got)))
	}
	again, err := renderElasticsearchYML(out, s)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(out) {
		t.Errorf("second pass changed the file:\n%s", UnifiedDiff("/yml", out, again))
	}
	// A changed setting replaces the block in place.
	c.ClusterName = "other"
	c.CORSAllowOrigin = ""
	s2, _ := c.settings()
	third, err := renderElasticsearchYML(out, s2)
	if err != nil {
		t.Fatal(err)
	}
	f3 := flatYML(t, third)
	if f3["cluster.name"] != "other" || f3["http.cors.enabled"] != nil {
		t.Errorf("re-render: cluster.name=%v cors=%v", f3["cluster.name"], f3["http.cors.enabled"])
	}
	if strings.Count(string(third), BeginMarker) != 1 {
		t.Errorf("want one managed block:\n%s", third)
	}
}

func TestRenderElasticsearchYML8AutoConfig(t *testing.T) {
	in, err := os.ReadFile("testdata/es8-autoconfig.yml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := testYMLConfig("8.15.3").settings()
	if err != nil {
		t.Fatal(err)
	}
	out, err := renderElasticsearchYML(in, s)
	if err != nil {
		t.Fatal(err)
	}
	flat := flatYML(t, out)
	if _, ok := flat["cluster.initial_master_nodes"]; ok {
		t.Errorf("auto-configured cluster.initial_master_nodes survived:\n%s", out)
	}
	if flat["xpack.security.http.ssl.enabled"] != true {
		t.Errorf("unmanaged settings lost: %v", flat)
	}
	// The package's http.host: 0.0.0.0 would bind HTTP on every interface
	// whatever network.host says.
	if _, ok := flat["http.host"]; ok || !strings.Contains(string(out), DisabledPrefix+"http.host: 0.0.0.0\n") {
		t.Errorf("auto-configured http.host survived:\n%s", out)
	}
	if !strings.Contains(string(out), DisabledPrefix+"  - debian\n") {
		t.Errorf("continuation line of the disabled key not disabled:\n%s", out)
	}
	if got := withoutBoot(string(out)); got != string(in) {
		t.Errorf("lines outside the managed block changed:\n%s", UnifiedDiff("/in", in, []byte(got)))
	}
}

func TestRenderElasticsearchYMLVersions(t *testing.T) {
	c := testYMLConfig("6.8.23")
	c.Roles = []string{"data", "ingest"}
	s, err := c.settings()
	if err != nil {
		t.Fatal(err)
	}
	out, err := renderElasticsearchYML([]byte("path.data: /d\n"), s)
	if err != nil {
		t.Fatal(err)
	}
	f := flatYML(t, out)
	for k, v := range map[string]any{
		"discovery.zen.hosts_provider": "ec2", "node.master": false, "node.data": true, "node.ingest": true,
		"transport.tcp.port": 9300,
	} {
		if !reflect.DeepEqual(f[k], v) {
			t.Errorf("6.8: %s = %v, want %v", k, f[k], v)
		}
	}
	for _, k := range []string{"discovery.seed_providers", "node.roles", "transport.port"} {
		if _, ok := f[k]; ok {
			t.Errorf("6.8: %s must not be set", k)
		}
	}
	c.Roles = []string{"ml"}
	if _, err := c.settings(); err == nil {
		t.Error("6.8 with role ml: want an error")
	}
	c.Roles = nil
	c.InitialMasterNodes = []string{"i-1"}
	if _, err := c.settings(); err == nil || !strings.Contains(err.Error(), "initial_master_nodes") {
		t.Errorf("6.8 with initial_master_nodes: got %v", err)
	}

	c = testYMLConfig("8.15.3")
	c.Region = "cn-north-1"
	c.InitialMasterNodes = []string{"i-1", "i-2"}
	c.MemoryLock = true
	s, err = c.settings()
	if err != nil {
		t.Fatal(err)
	}
	out, _ = renderElasticsearchYML(nil, s)
	f = flatYML(t, out)
	if f["discovery.ec2.endpoint"] != "https://ec2.cn-north-1.amazonaws.com.cn" {
		t.Errorf("China endpoint: %v", f["discovery.ec2.endpoint"])
	}
	if !reflect.DeepEqual(f["cluster.initial_master_nodes"], []any{"i-1", "i-2"}) || f["bootstrap.memory_lock"] != true {
		t.Errorf("asked-for settings missing: %v", f)
	}
	c.InitialMasterNodes = nil
	s, _ = c.settings()
	out, _ = renderElasticsearchYML(nil, s)
	if strings.Contains(string(out), "initial_master_nodes") {
		t.Error("cluster.initial_master_nodes written without being asked")
	}
	c.CORSAllowOrigin = "*"
	if _, err := c.settings(); err == nil {
		t.Error("CORS '*' accepted")
	}
}

func TestRenderElasticsearchYMLRefusals(t *testing.T) {
	s, _ := testYMLConfig("8.15.3").settings()
	for name, in := range map[string]string{
		"nested owned key": "cluster:\n  name: x\n",
		"nested discovery": "discovery.ec2:\n  any_group: false\n",
		"unclosed block":   "a: 1\n" + BeginMarker + "\ncluster.name: x\n",
		"stray end":        EndMarker + "\n",
		"two blocks":       BeginMarker + "\n" + EndMarker + "\n" + BeginMarker + "\n" + EndMarker + "\n",
	} {
		if _, err := renderElasticsearchYML([]byte(in), s); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	// Unowned nested settings and block scalars are left alone.
	in := "cluster:\n  routing.rebalance.enable: all\nnote: |\n  cluster.name: not a key\n"
	out, err := renderElasticsearchYML([]byte(in), s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), in) {
		t.Errorf("unowned lines changed:\n%s", out)
	}
}

func TestReindexWhitelist(t *testing.T) {
	tests := []struct {
		cidr string
		n    int
		some []string
	}{
		{"10.0.1.0/24", 1, []string{"10.0.1.*:9200"}},
		{"10.0.0.0/16", 1, []string{"10.0.*:9200"}},
		{"10.0.16.0/20", 16, []string{"10.0.16.*:9200", "10.0.31.*:9200"}},
		{"10.0.1.16/28", 16, []string{"10.0.1.16:9200", "10.0.1.31:9200"}},
		{"10.0.1.128/25", 128, []string{"10.0.1.128:9200", "10.0.1.255:9200"}},
		{"10.0.1.5/32", 1, []string{"10.0.1.5:9200"}},
		{"10.0.1.77/24", 1, []string{"10.0.1.*:9200"}}, // host bits ignored
	}
	for _, tt := range tests {
		got, err := ReindexWhitelist(tt.cidr, 9200)
		if err != nil {
			t.Fatalf("%s: %v", tt.cidr, err)
		}
		if len(got) != tt.n {
			t.Errorf("%s: %d patterns, want %d: %v", tt.cidr, len(got), tt.n, got)
		}
		for _, w := range tt.some {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				t.Errorf("%s: %q missing from %v", tt.cidr, w, got)
			}
		}
	}
	// /20 must not cover the neighbouring /24s.
	got, _ := ReindexWhitelist("10.0.16.0/20", 9200)
	for _, g := range got {
		if g == "10.0.15.*:9200" || g == "10.0.32.*:9200" {
			t.Errorf("pattern %s is outside 10.0.16.0/20", g)
		}
	}
	if _, err := ReindexWhitelist("fd00::/64", 9200); err == nil {
		t.Error("IPv6 subnet accepted")
	}
}

// FuzzRenderElasticsearchYML: never a panic; on success the result parses
// as Elasticsearch reads it with every managed key holding the block's
// value, the lines outside the block are the input's, and a second pass
// changes nothing.
func FuzzRenderElasticsearchYML(f *testing.F) {
	seed, _ := os.ReadFile("testdata/seed-elasticsearch.yml")
	auto, _ := os.ReadFile("testdata/es8-autoconfig.yml")
	for _, s := range []string{string(seed), string(auto), "", "a: 1", "cluster:\n  name: x\n", "x: |\n  cluster.name: y\n", "node.roles:\n- master\n- data\nz: 1\n",
		"cluster.initial_master_nodes: [\n  a,\n  b\n]\n", "  path.data: /d\n", "a: 1\n...\n", "node.roles: [master,\n  data]\n"} {
		f.Add(s)
	}
	s, err := testYMLConfig("8.15.3").settings()
	if err != nil {
		f.Fatal(err)
	}
	managed := flatYML(&testing.T{}, []byte(strings.Join(renderBlock(s), "\n")+"\n"))
	f.Fuzz(func(t *testing.T, in string) {
		if strings.Contains(in, "esnode") || strings.Contains(in, "\r") {
			t.Skip("markers and CR are the renderer's own vocabulary")
		}
		out, err := renderElasticsearchYML([]byte(in), s)
		if err != nil {
			return
		}
		got := flatYML(t, out)
		for k, v := range managed {
			if !reflect.DeepEqual(got[k], v) {
				t.Fatalf("managed %s = %v, want %v in:\n%s", k, got[k], v, out)
			}
		}
		want := in
		if want != "" && !strings.HasSuffix(want, "\n") {
			want += "\n"
		}
		if got := withoutBoot(string(out)); got != want {
			t.Fatalf("outside lines changed:\n%s", UnifiedDiff("/f", []byte(want), []byte(got)))
		}
		again, err := renderElasticsearchYML(out, s)
		if err != nil || string(again) != string(out) {
			t.Fatalf("second pass: %v\n%s", err, UnifiedDiff("/f", out, again))
		}
	})
}

// TestRenderElasticsearchYMLOnlyWhenInEffect: boot writes a yml only when
// it parses with every managed key holding the block's value; otherwise it
// refuses, and Run keeps the last good file.
func TestRenderElasticsearchYMLOnlyWhenInEffect(t *testing.T) {
	s, _ := testYMLConfig("8.15.3").settings()
	// A flow list of an owned key over several lines, closed at column 0:
	// disabled whole, no stray "]".
	in := "cluster.initial_master_nodes: [\n  \"a\",\n  \"b\"\n]\npath.data: /d\n"
	out, err := renderElasticsearchYML([]byte(in), s)
	if err != nil {
		t.Fatal(err)
	}
	flat := flatYML(t, out)
	if flat["path.data"] != "/d" || flat["cluster.name"] != "logs-prod" {
		t.Errorf("flow list not disabled whole:\n%s", out)
	}
	for name, in := range map[string]string{
		// Indented top-level mapping: the block appended at column 0 breaks it.
		"indented mapping": "  path.data: /d\n  path.logs: /l\n",
		// A document end: YAML (and Elasticsearch) ignore the block after it.
		"document end": "path.data: /d\n...\n",
		// A second document start hides the block likewise.
		"document start": "path.data: /d\n---\n",
		"not a mapping":  "- a\n- b\n",
	} {
		out, err := renderElasticsearchYML([]byte(in), s)
		if err == nil || !strings.Contains(err.Error(), "boot leaves it as it was") {
			t.Errorf("%s: err = %v, want a refusal; rendered:\n%s", name, err, out)
		}
	}
}

// TestRegionCannotInjectYML: a lying metadata service's region never
// reaches elasticsearch.yml unquoted.
func TestRegionCannotInjectYML(t *testing.T) {
	c := testYMLConfig("8.15.3")
	c.Region = "eu-west-2\ncluster.name: hijacked\nx"
	if s, err := c.settings(); err == nil {
		out, _ := renderElasticsearchYML(nil, s)
		t.Fatalf("region with a newline accepted:\n%s", out)
	}
	md := &Metadata{LocalIPv4: "10.0.1.2", SubnetCIDR: "10.0.1.0/24", VPCCIDRs: []string{"10.0.0.0/16"}, Region: "eu-west-2.evil.example/x"}
	if err := md.check(); err == nil || !strings.Contains(err.Error(), "not an AWS region name") {
		t.Errorf("metadata check: %v", err)
	}
	md.Region = "us-gov-west-1"
	if err := md.check(); err != nil {
		t.Errorf("us-gov-west-1 refused: %v", err)
	}
}

// TestBootKeepsLastGoodYML: when the yml boot would write does not hold
// the managed keys, boot fails and leaves every file as it was.
func TestBootKeepsLastGoodYML(t *testing.T) {
	ep := startMock(t, testcloud.IMDSConfig{
		InstanceID: "i-0feedfacecafe0002", InstanceType: "r6g.large", LocalIPv4: "10.213.20.18",
		MAC: "0e:11:22:33:44:56", SubnetCIDR: "10.213.20.0/22", VPCCIDR: "10.213.0.0/16",
		Region: "eu-west-2", AvailabilityZone: "eu-west-2b",
		Tags: map[string]string{"es_cluster": "logs-prod"},
	})
	root := testRoot(t, testSpec(), 16*1024*1024)
	// A document end: YAML and Elasticsearch stop reading there, so a
	// block appended after it would never take effect.
	bad := "path.data: /var/lib/elasticsearch\n...\n"
	os.WriteFile(filepath.Join(root, ElasticsearchYML), []byte(bad), 0o660)
	before := snapshot(t, root)
	var out bytes.Buffer
	_, err := Run(context.Background(), Options{Root: root, IMDSEndpoint: ep, IMDSTimeout: 30 * time.Second, Out: &out,
		Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{}})
	if err == nil || !strings.Contains(err.Error(), "boot leaves it as it was") {
		t.Fatalf("boot = %v, want the yml refused\n%s", err, out.String())
	}
	if after := snapshot(t, root); !reflect.DeepEqual(after, before) {
		t.Errorf("boot changed files although it refused the yml")
	}
}
