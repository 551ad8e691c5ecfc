package spec

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func validNode() Node {
	n := Node{Elasticsearch: Elasticsearch{Version: "8.15.3"}}
	n.SetDefaults()
	return n
}

func TestDefaults(t *testing.T) {
	n := validNode()
	if err := n.Validate(); err != nil {
		t.Fatalf("defaulted spec invalid: %v", err)
	}
	if len(n.Plugins) != 1 || n.Plugins[0].Name != "discovery-ec2" {
		t.Errorf("plugins default %v", n.Plugins)
	}
	if n.Heap.Percent != 50 || n.Heap.MaxMB != 31744 || n.Elasticsearch.HTTPPort != 9200 {
		t.Errorf("defaults not applied: %+v %+v", n.Heap, n.Elasticsearch)
	}
	if n.Java.Package != "" {
		t.Errorf("ES 8 got a Java package %q", n.Java.Package)
	}
	six := Node{Elasticsearch: Elasticsearch{Version: "6.8.23"}}
	six.SetDefaults()
	if six.Java.Package != "openjdk-11-jre-headless" {
		t.Errorf("ES 6 Java default %q", six.Java.Package)
	}
	before := n
	n.SetDefaults()
	if !reflect.DeepEqual(before, n) {
		t.Errorf("SetDefaults is not idempotent")
	}
}

func TestValidateNamesFields(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Node)
		field  string
	}{
		{"no version", func(n *Node) { n.Elasticsearch.Version = "" }, "elasticsearch.version"},
		{"5.x", func(n *Node) { n.Elasticsearch.Version = "5.6.16" }, "elasticsearch.version"},
		{"7.10 not 7.17", func(n *Node) { n.Elasticsearch.Version = "7.10.2" }, "elasticsearch.version"},
		{"leading zero", func(n *Node) { n.Elasticsearch.Version = "8.01.0" }, "elasticsearch.version"},
		{"mirror no sum", func(n *Node) { n.MirrorURL = "https://mirror.example.com" }, "elasticsearch.sha512"},
		{"custom url no sum", func(n *Node) { n.Elasticsearch.URL = "https://mirror.example.com/es.deb" }, "elasticsearch.sha512"},
		{"bad sum", func(n *Node) { n.Elasticsearch.SHA512 = "abc" }, "elasticsearch.sha512"},
		{"ftp url", func(n *Node) {
			n.Elasticsearch.URL = "ftp://x/es.deb"
			n.Elasticsearch.SHA512 = strings.Repeat("a", 128)
		}, "elasticsearch.url"},
		{"same ports", func(n *Node) { n.Elasticsearch.TransportPort = 9200 }, "elasticsearch.transport_port"},
		{"unofficial plugin", func(n *Node) { n.Plugins = []Plugin{{Name: "my-plugin"}} }, "plugin[0].url"},
		{"dup plugin", func(n *Node) { n.Plugins = []Plugin{{Name: "discovery-ec2"}, {Name: "discovery-ec2"}} }, "plugin[1].name"},
		{"hq no sum", func(n *Node) { n.ElasticHQ.Enabled = true; n.SetDefaults() }, "elastichq.sha512"},
		{"cw no sum", func(n *Node) { n.CloudWatchAgent.Enabled = true; n.SetDefaults() }, "cloudwatch_agent.sha512"},
		{"hq sources without hq", func(n *Node) { n.Firewall.HQSources = []string{"subnet"} }, "firewall.hq_sources"},
		{"backend", func(n *Node) { n.Firewall.Backend = "ufw" }, "firewall.backend"},
		{"ssh cidr", func(n *Node) { n.Firewall.SSHSources = []string{"everywhere"} }, "firewall.ssh_sources[0]"},
		{"heap min > max", func(n *Node) { n.Heap.MinMB = 8192; n.Heap.MaxMB = 4096 }, "heap.min_mb"},
		{"regex cors", func(n *Node) { n.Cluster.CORSAllowOrigin = "/.*/" }, "cluster.cors_allow_origin"},
		{"cluster name", func(n *Node) { n.Cluster.Name = "has space" }, "cluster.name"},
		{"max_map_count", func(n *Node) { n.System.MaxMapCount = 65530 }, "system.max_map_count"},
		{"nproc", func(n *Node) { n.System.NProc = 100 }, "system.nproc"},
		{"java url and package", func(n *Node) {
			n.Elasticsearch.Version = "6.8.23"
			n.Java = Java{Package: "default-jre-headless", URL: "https://example.com/j.deb", SHA512: strings.Repeat("a", 128)}
		}, "java.url"},
		{"initial masters on 6", func(n *Node) { n.Elasticsearch.Version = "6.8.23"; n.Cluster.InitialMasterNodes = []string{"a"} }, "cluster.initial_master_nodes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := validNode()
			c.mutate(&n)
			err := n.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			var fe *FieldError
			found := false
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				if errors.As(e, &fe) && fe.Field == c.field {
					found = true
				}
			}
			if !found {
				t.Fatalf("no error for %s in:\n%v", c.field, err)
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	n := validNode()
	n.ElasticHQ = ElasticHQ{Enabled: true, SHA512: strings.Repeat("ab", 64)}
	n.SetDefaults()
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"api_version":"esbake/v1"`) {
		t.Fatalf("no api_version in %s", b)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*back, n) {
		t.Fatalf("round trip changed the spec:\n%+v\n%+v", *back, n)
	}
	if back.Hash() != n.Hash() {
		t.Fatal("hash differs after round trip")
	}
	mirrored := n
	mirrored.MirrorURL = "https://mirror.example.com/elastic"
	if mirrored.Hash() != n.Hash() {
		t.Error("the mirror changed the spec hash; where artifacts come from is not what the node is")
	}
	other := n
	other.ElasticHQ.SHA512 = strings.Repeat("cd", 64)
	if other.Hash() == n.Hash() {
		t.Error("another ElasticHQ checksum kept the spec hash")
	}
	if _, err := Parse([]byte(`{"api_version":"esbake/v0","elasticsearch":{"version":"8.15.3"}}`)); err == nil || !strings.Contains(err.Error(), "api_version") {
		t.Fatalf("other schema version: %v", err)
	}
	if _, err := Parse([]byte(`{"api_version":"esbake/v1","elasticsearch":{"version":"8.15.3"},"colour":1}`)); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := Parse([]byte(`{"api_version":"esbake/v1","elasticsearch":{"version":"4.0.0"}}`)); err == nil || !strings.Contains(err.Error(), "elasticsearch.version") {
		t.Fatalf("invalid spec: %v", err)
	}
}

func TestArtifacts(t *testing.T) {
	n := validNode()
	arts, err := n.Artifacts("arm64")
	if err != nil {
		t.Fatal(err)
	}
	want := []Artifact{
		{Name: "elasticsearch", URL: "https://artifacts.elastic.co/downloads/elasticsearch/elasticsearch-8.15.3-arm64.deb", FileName: "elasticsearch-8.15.3-arm64.deb", SHA512: "file:https://artifacts.elastic.co/downloads/elasticsearch/elasticsearch-8.15.3-arm64.deb.sha512"},
		{Name: "plugin/discovery-ec2", URL: "https://artifacts.elastic.co/downloads/elasticsearch-plugins/discovery-ec2/discovery-ec2-8.15.3.zip", FileName: "discovery-ec2-8.15.3.zip", SHA512: "file:https://artifacts.elastic.co/downloads/elasticsearch-plugins/discovery-ec2/discovery-ec2-8.15.3.zip.sha512"},
	}
	if !reflect.DeepEqual(arts, want) {
		t.Fatalf("artifacts:\n%+v\nwant\n%+v", arts, want)
	}

	six := Node{Elasticsearch: Elasticsearch{Version: "6.8.23", SHA512: strings.Repeat("1", 128)}, MirrorURL: "file:///srv/mirror/",
		Cluster:   Cluster{MasterNodes: 3},
		Plugins:   []Plugin{{Name: "discovery-ec2", SHA512: strings.Repeat("2", 128)}},
		ElasticHQ: ElasticHQ{Enabled: true, SHA512: strings.Repeat("3", 128)}}
	six.SetDefaults()
	if err := six.Validate(); err != nil {
		t.Fatal(err)
	}
	arts, err = six.Artifacts("amd64")
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, a := range arts {
		got = append(got, a.Name+" "+a.URL)
	}
	wantURLs := []string{
		"elasticsearch file:///srv/mirror/elasticsearch-6.8.23.deb",
		"plugin/discovery-ec2 file:///srv/mirror/discovery-ec2-6.8.23.zip",
		"elastichq file:///srv/mirror/elasticsearch-HQ-3.5.12.tar.gz",
	}
	if !reflect.DeepEqual(got, wantURLs) {
		t.Fatalf("mirror artifacts:\n%v\nwant\n%v", got, wantURLs)
	}
	if _, err := n.Artifacts("s390x"); err == nil {
		t.Fatal("s390x accepted")
	}
}

// TestValidateMessages shows the exact text a user sees for each refusal
// of issue 12 (cluster formation and ES's own start-up checks).
func TestValidateMessages(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Node)
		want   string
	}{
		{"tag key with colon", func(n *Node) { n.Cluster.DiscoveryTagKey = "es:cluster" },
			`cluster.discovery_tag_key: "es:cluster" cannot be used by discovery-ec2: Elasticsearch setting keys allow only ASCII letters, digits, _ and - in discovery.ec2.tag.<key>, and refuse to start on others; use a key such as es_cluster`},
		{"tag key with slash", func(n *Node) { n.Cluster.DiscoveryTagKey = "team/es" },
			`cluster.discovery_tag_key: "team/es" cannot be used by discovery-ec2`},
		{"tag key non-ASCII", func(n *Node) { n.Cluster.DiscoveryTagKey = "clüster" },
			`cluster.discovery_tag_key: "clüster" cannot be used by discovery-ec2`},
		{"voting_only without master", func(n *Node) { n.Cluster.Roles = []string{"voting_only", "data"} },
			"cluster.roles: voting_only needs the master role too: Elasticsearch refuses to start a voting-only node that is not master-eligible; add master or remove voting_only"},
		{"duplicate initial masters", func(n *Node) { n.Cluster.InitialMasterNodes = []string{"i-1", "i-2", "i-1"} },
			"cluster.initial_master_nodes: lists i-1 more than once; Elasticsearch refuses duplicate entries: list each node once"},
		{"6.x without master_nodes", func(n *Node) { n.Elasticsearch.Version = "6.8.23"; n.Cluster.MasterNodes = 0; n.SetDefaults() },
			"cluster.master_nodes: is required for Elasticsearch 6.8.23: without it discovery.zen.minimum_master_nodes stays -1 and every master-eligible node can elect itself (split brain); set the number of master-eligible nodes, such as 3 (written as minimum_master_nodes = 2)"},
		{"master_nodes too large", func(n *Node) { n.Cluster.MasterNodes = 10 },
			"cluster.master_nodes: 10 is outside 1-9; set the number of master-eligible nodes the cluster is launched with (3 is usual)"},
		{"6.x on Java 21", func(n *Node) {
			n.Elasticsearch.Version = "6.8.23"
			n.Cluster.MasterNodes = 3
			n.Java.Package = "openjdk-21-jre-headless"
		}, `java.package: "openjdk-21-jre-headless" is Java 21; Elasticsearch 6.8 cannot run on Java 18 or later (its SecurityManager use fails); use Java 11 or 8, such as openjdk-11-jre-headless`},
		{"6.x on the distribution default", func(n *Node) {
			n.Elasticsearch.Version = "6.8.23"
			n.Cluster.MasterNodes = 3
			n.Java.Package = "default-jre-headless"
		}, `java.package: "default-jre-headless" is the distribution's default Java (17 on Debian 12, 21 on Debian 13 and Ubuntu 24.04), not one Elasticsearch 6.8 supports`},
		{"heap over 31744", func(n *Node) { n.Heap.MaxMB = 32767 },
			"heap.max_mb: 32767 MiB is over 31744 MiB: near 32768 MiB the JVM stops using compressed object pointers (the exact limit depends on the JVM), and a larger heap then holds less; use at most 31744"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := validNode()
			c.mutate(&n)
			err := n.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, c.want)
			}
		})
	}
	ok := validNode()
	ok.Elasticsearch.Version = "6.8.23"
	ok.Cluster.MasterNodes = 3
	ok.SetDefaults()
	ok.Cluster.DiscoveryTagKey = "es-cluster_1"
	ok.Cluster.Roles = []string{"master", "voting_only"}
	if err := ok.Validate(); err != nil {
		t.Errorf("a 6.8 spec with master_nodes, Java 11 and a plain tag key was refused: %v", err)
	}
	if q := MasterQuorum(3); q != 2 {
		t.Errorf("MasterQuorum(3) = %d, want 2", q)
	}
}
