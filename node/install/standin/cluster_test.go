package standin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// These tests run the stand-in Elasticsearch directly on the host, several
// nodes on their own loopback addresses (127.88.<subnet>.<n>), with EC2
// discovery against the EC2 emulator whose VPC is that loopback range: the
// same code paths as on a guest, in seconds. Firewall effects need real
// guests (internal/testcloud/localcloud).

// standinCluster is one extracted stand-in package and an emulator.
type standinCluster struct {
	t        *testing.T
	version  string
	home     string
	confTmpl string
	emu      *ec2emu.Server
	endpoint string
	ec2      *ec2.Client
	http     int
	port     int
}

func newStandinCluster(t *testing.T, version string) *standinCluster {
	t.Helper()
	need(t, "dpkg-deb", "python3")
	a, err := Build(t.TempDir(), version)
	if err != nil {
		t.Fatal(err)
	}
	root := extract(t, a.Elasticsearch.Path)
	home := filepath.Join(root, "usr/share/elasticsearch")
	cmd := exec.Command(filepath.Join(home, "bin/elasticsearch-plugin"), "install", "--batch", "file://"+a.PluginEC2.Path)
	cmd.Env = append(os.Environ(), "ES_HOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plugin install: %v\n%s", err, out)
	}
	emu := ec2emu.New(ec2emu.Options{VPCCIDR: "127.88.0.0/16", Subnets: []ec2emu.SubnetSpec{
		{CIDR: "127.88.1.0/24", Zone: "a"}, {CIDR: "127.88.2.0/24", Zone: "b"}}})
	endpoint := emu.Start()
	t.Cleanup(emu.Close)
	client := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDSTANDIN", "stand-in-secret", "")})
	// One port pair for the whole cluster (EC2 discovery dials the node's own
	// transport port on every address), random so parallel runs do not meet.
	base := 20000 + rand.IntN(20000)
	return &standinCluster{t: t, version: version, home: home, confTmpl: filepath.Join(root, "etc/elasticsearch"),
		emu: emu, endpoint: endpoint, ec2: client, http: base, port: base + 1}
}

// launchInstance registers an instance in the emulator (subnet 1 or 2) with
// the cluster tag and returns its private (loopback) IP.
func (c *standinCluster) launchInstance(subnet int, tag string) string {
	c.t.Helper()
	ctx := context.Background()
	subs, err := c.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil {
		c.t.Fatal(err)
	}
	img, err := c.emu.AddImage(ec2emu.ImageSpec{Name: fmt.Sprintf("standin-%d", rand.Int())})
	if err != nil {
		c.t.Fatal(err)
	}
	out, err := c.ec2.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(img), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId: subs.Subnets[subnet-1].SubnetId, TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance,
			Tags: []types.Tag{{Key: aws.String("es_cluster"), Value: aws.String(tag)}}}}})
	if err != nil {
		c.t.Fatal(err)
	}
	return aws.ToString(out.Instances[0].PrivateIpAddress)
}

// standinNode is one running stand-in process.
type standinNode struct {
	ip, name, data string
	cmd            *exec.Cmd
	out            *syncBuffer
	done           chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// start runs a node at ip with the yml lines given (cluster, node name,
// addresses and ports are added); data is its path.data ("" = fresh).
func (c *standinCluster) start(ip, name, data, yml string, env ...string) *standinNode {
	c.t.Helper()
	conf := c.t.TempDir()
	for _, f := range []string{"jvm.options", "log4j2.properties"} {
		b, _ := os.ReadFile(filepath.Join(c.confTmpl, f))
		os.WriteFile(filepath.Join(conf, f), b, 0o644)
	}
	if data == "" {
		data = c.t.TempDir()
	}
	full := fmt.Sprintf("cluster.name: standin-cluster\nnode.name: %s\nnetwork.host: %s\nhttp.port: %d\n%s: %d\npath.data: %s\n%s",
		name, ip, c.http, map[bool]string{true: "transport.tcp.port", false: "transport.port"}[strings.HasPrefix(c.version, "6.")], c.port, data, yml)
	os.WriteFile(filepath.Join(conf, "elasticsearch.yml"), []byte(full), 0o644)
	n := &standinNode{ip: ip, name: name, data: data, out: &syncBuffer{}, done: make(chan error, 1)}
	n.cmd = exec.Command(filepath.Join(c.home, "bin/elasticsearch"))
	n.cmd.Env = append(os.Environ(), "ES_PATH_CONF="+conf, "ES_HOME="+c.home, "ES_STANDIN_EC2_ENDPOINT="+c.endpoint,
		"AWS_ACCESS_KEY_ID=AKIDSTANDIN", "AWS_SECRET_ACCESS_KEY=stand-in-secret", "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1")
	n.cmd.Env = append(n.cmd.Env, env...)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { n.done <- n.cmd.Wait() }()
	c.t.Cleanup(func() { n.stop() })
	return n
}

func (n *standinNode) stop() {
	if n.cmd.ProcessState == nil {
		n.cmd.Process.Kill()
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// waitOutput waits (up to 30s) for the node to print want.
func (n *standinNode) waitOutput(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(n.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q in\n%s", n.name, want, n.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exited waits for the node to exit and returns its output and exit code.
func (n *standinNode) exited(t *testing.T) (string, int) {
	t.Helper()
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not exit; output:\n%s", n.name, n.out)
	}
	return n.out.String(), n.cmd.ProcessState.ExitCode()
}

func (c *standinCluster) get(n *standinNode, path string, v any) int {
	resp, err := http.Get(fmt.Sprintf("http://%s:%d%s", n.ip, c.http, path))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		json.Unmarshal(b, v)
	}
	return resp.StatusCode
}

type clusterView struct {
	UUID   string `json:"cluster_uuid"`
	Master string `json:"master_node"`
	Nodes  map[string]struct {
		Name       string            `json:"name"`
		Attributes map[string]string `json:"attributes"`
	} `json:"nodes"`
}

func (v clusterView) names() string {
	var out []string
	for _, n := range v.Nodes {
		out = append(out, n.Name)
	}
	return strings.Join(sortStrings(out), ",")
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// waitFor polls every node's /_cluster/state until ok holds for all of them.
func (c *standinCluster) waitFor(what string, ok func(clusterView) bool, nodes ...*standinNode) map[string]clusterView {
	c.t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		views := map[string]clusterView{}
		all := true
		for _, n := range nodes {
			var v clusterView
			if c.get(n, "/_cluster/state/master_node,nodes", &v) != 200 || !ok(v) {
				all = false
			}
			views[n.name] = v
		}
		if all {
			return views
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, n := range nodes {
				fmt.Fprintf(&logs, "--- %s (%s): %+v\n%s\n", n.name, n.ip, views[n.name], n.out)
			}
			c.t.Fatalf("%s: not reached in 40s\n%s", what, logs.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestStandInClusterFormsFromInitialMasterNodes(t *testing.T) {
	for _, version := range []string{"7.17.25", "8.15.3"} {
		t.Run(version, func(t *testing.T) {
			c := newStandinCluster(t, version)
			disc := "discovery.seed_providers: ec2\ndiscovery.ec2.tag.es_cluster: aardvark\ncluster.initial_master_nodes: [es-1, es-2, es-3]\n"
			var nodes []*standinNode
			for i := 1; i <= 3; i++ {
				ip := c.launchInstance(1+i%2, "aardvark") // both subnets
				nodes = append(nodes, c.start(ip, fmt.Sprintf("es-%d", i), "", disc))
			}
			c.launchInstance(1, "zebra") // another cluster's instance is never dialled
			three := func(v clusterView) bool { return len(v.Nodes) == 3 && v.UUID != "" && v.UUID != "_na_" }
			views := c.waitFor("three nodes, one cluster", three, nodes...)
			uuid, master := views["es-1"].UUID, views["es-1"].Master
			for name, v := range views {
				if v.UUID != uuid || v.Master != master || v.names() != "es-1,es-2,es-3" {
					t.Fatalf("%s sees %+v; es-1 sees uuid %s master %s", name, v, uuid, master)
				}
			}
			var health struct {
				Status string `json:"status"`
				Nodes  int    `json:"number_of_nodes"`
			}
			if c.get(nodes[0], "/_cluster/health", &health); health.Status != "green" || health.Nodes != 3 {
				t.Errorf("health %+v", health)
			}

			// Joins late without initial_master_nodes, and never bootstraps.
			late := c.start(c.launchInstance(2, "aardvark"), "es-4", "", "discovery.seed_providers: ec2\ndiscovery.ec2.tag.es_cluster: aardvark\n")
			views = c.waitFor("the late node joins", func(v clusterView) bool { return len(v.Nodes) == 4 && v.UUID == uuid }, append(nodes, late)...)
			if views["es-4"].Master != master {
				t.Errorf("es-4 follows %s, want %s", views["es-4"].Master, master)
			}

			// A restarted node keeps its cluster: initial_master_nodes is ignored, with Elastic's warning.
			nodes[0].stop()
			again := c.start(nodes[0].ip, "es-1", nodes[0].data, disc)
			again.waitOutput(t, "this node is locked into cluster UUID ["+uuid+"] but [cluster.initial_master_nodes] is set to [es-1, es-2, es-3]")
			nodes[0] = again
			c.waitFor("es-1 rejoins its cluster", func(v clusterView) bool { return len(v.Nodes) == 4 && v.UUID == uuid }, append(nodes, late)...)

			// A node whose data path belongs to another cluster refuses to join.
			other := c.start("127.88.3.9", "loner", "", "discovery.type: single-node\n")
			c.waitFor("single-node cluster", func(v clusterView) bool { return len(v.Nodes) == 1 && v.UUID != "" }, other)
			var lonerView clusterView
			c.get(other, "/_cluster/state/master_node,nodes", &lonerView)
			other.stop()
			refugee := c.start(c.launchInstance(1, "aardvark"), "loner", other.data, "discovery.seed_providers: ec2\ndiscovery.ec2.tag.es_cluster: aardvark\n")
			want := "join validation on cluster state with a different cluster uuid"
			if version >= "8" {
				want = "This node previously joined a cluster with UUID [" + lonerView.UUID + "] and is now trying to join a different cluster with UUID [" + uuid + "]"
			}
			refugee.waitOutput(t, want)
			var v clusterView
			c.get(nodes[0], "/_cluster/state/master_node,nodes", &v)
			if len(v.Nodes) != 4 || v.UUID != uuid {
				t.Errorf("cluster after the loner tried to join: %+v", v)
			}
		})
	}
}

func TestStandInBootstrapNeedsAQuorumOfInitialMasterNodes(t *testing.T) {
	c := newStandinCluster(t, "8.15.3")
	disc := "discovery.seed_providers: ec2\ndiscovery.ec2.tag.es_cluster: aardvark\ncluster.initial_master_nodes: [es-1, es-2, es-3]\n"
	n1 := c.start(c.launchInstance(1, "aardvark"), "es-1", "", disc)
	n1.waitOutput(t, "this node must discover master-eligible nodes [es-1, es-2, es-3] to bootstrap a cluster")
	if code := c.get(n1, "/_cluster/health", nil); code != 503 {
		t.Fatalf("one of three initial master nodes answered health with %d, want 503 (no master)", code)
	}
	// Without initial_master_nodes a 7+/8 node never bootstraps.
	n := c.start(c.launchInstance(2, "zebra"), "es-9", "", "discovery.seed_providers: ec2\ndiscovery.ec2.tag.es_cluster: zebra\n")
	n.waitOutput(t, "[cluster.initial_master_nodes] is empty on this node")
	if code := c.get(n, "/_cluster/health", nil); code != 503 {
		t.Errorf("node without initial_master_nodes: health %d, output\n%s", code, n.out)
	}
	n2 := c.start(c.launchInstance(2, "aardvark"), "es-2", "", disc)
	c.waitFor("two of three bootstrap", func(v clusterView) bool { return len(v.Nodes) == 2 }, n1, n2)
}

func TestStandIn6xMinimumMasterNodes(t *testing.T) {
	c := newStandinCluster(t, "6.8.23")
	disc := "discovery.zen.hosts_provider: ec2\ndiscovery.ec2.tag.es_cluster: aardvark\ndiscovery.zen.minimum_master_nodes: 2\n"
	n1 := c.start(c.launchInstance(1, "aardvark"), "es-1", "", disc)
	n1.waitOutput(t, "not enough master nodes discovered during pinging (found [{es-1}], but needed [2])")
	if code := c.get(n1, "/_cluster/health", nil); code != 503 {
		t.Fatalf("one node with minimum_master_nodes 2: health %d, output\n%s", code, n1.out)
	}
	n2 := c.start(c.launchInstance(2, "aardvark"), "es-2", "", disc)
	c.waitFor("two nodes elect", func(v clusterView) bool { return len(v.Nodes) == 2 && v.Master != "" }, n1, n2)
	// The default -1 lets a lone node elect itself (real 6.8 does: split brain).
	alone := c.start(c.launchInstance(1, "zebra"), "es-9", "", "discovery.zen.hosts_provider: ec2\ndiscovery.ec2.tag.es_cluster: zebra\n")
	c.waitFor("a lone 6.x node elects itself", func(v clusterView) bool { return len(v.Nodes) == 1 }, alone)
}

// With awareness on, a node without the attribute holds no shard copy
// (AwarenessAllocationDecider): a new index on it alone is red.
func TestStandInAwarenessWithoutAttributeIsRed(t *testing.T) {
	c := newStandinCluster(t, "7.17.25")
	for _, tc := range []struct{ yml, status string }{
		{"cluster.routing.allocation.awareness.attributes: aws_availability_zone\n", "red"},
		{"cluster.routing.allocation.awareness.attributes: aws_availability_zone\nnode.attr.aws_availability_zone: us-east-1a\n", "green"},
	} {
		n := c.start(fmt.Sprintf("127.88.4.%d", 10+len(tc.status)), "es-1", "", "discovery.type: single-node\n"+tc.yml)
		var h struct {
			Status     string `json:"status"`
			Unassigned int    `json:"unassigned_shards"`
		}
		deadline := time.Now().Add(20 * time.Second)
		for c.get(n, "/_cluster/health", &h) != 200 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		// An index: awareness decides where its copies go (none without the attribute).
		if code := c.do(n, "PUT", "/probe?timeout=2s", `{"settings":{"number_of_replicas":0}}`, nil); code != 200 {
			t.Fatalf("create index: %d", code)
		}
		c.get(n, "/_cluster/health", &h)
		if h.Status != tc.status {
			t.Errorf("%q: status %q, want %s\n%s", tc.yml, h.Status, tc.status, n.out)
		}
		n.stop()
	}
}

func TestStandInRefusesSettings(t *testing.T) {
	for _, tc := range []struct{ version, yml, want string }{
		{"7.17.25", "cluster.nmae: x\n", "unknown setting [cluster.nmae] please check that any required plugins are installed"},
		{"8.15.3", "discovery.zen.minimum_master_nodes: 2\n", "unknown setting [discovery.zen.minimum_master_nodes]"},
		{"8.15.3", "node.master: true\n", "unknown setting [node.master]"},
		{"6.8.23", "cluster.initial_master_nodes: [a]\n", "unknown setting [cluster.initial_master_nodes]"},
		{"8.15.3", "discovery.ec2.access_key: AKID\n", "is a secure setting and must be stored inside the Elasticsearch keystore"},
		{"8.15.3", "discovery.ec2.tag.es:cluster: x\n", "unknown setting [discovery.ec2.tag.es:cluster]"},
		{"8.15.3", "cluster.initial_master_nodes: [a, a]\n", "setting [cluster.initial_master_nodes] contains duplicates"},
		{"8.15.3", "discovery.type: single-node\ncluster.initial_master_nodes: [a]\n", "is not allowed when [discovery.type] is set to [single-node]"},
		{"8.15.3", "node.roles: [voting_only, data]\n", "voting-only node must be master-eligible"},
		{"7.17.25", "node.roles: [master]\nnode.data: false\n", "can not explicitly configure node roles and use legacy role setting"},
	} {
		t.Run(tc.version+"/"+strings.SplitN(tc.yml, ":", 2)[0], func(t *testing.T) {
			c := newStandinCluster(t, tc.version)
			out, code := c.start("127.88.5.1", "es-1", "", tc.yml).exited(t)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output lacks %q:\n%s", code, tc.want, out)
			}
		})
	}
}

func TestStandInBootstrapChecks(t *testing.T) {
	c := newStandinCluster(t, "7.17.25")
	// es.enforce.bootstrap.checks forces production mode on a loopback bind, as on the real server.
	n := c.start("127.88.6.1", "es-1", "", "", "ES_JAVA_OPTS=-Xms512m -Xmx1g -Des.enforce.bootstrap.checks=true")
	out, code := n.exited(t)
	for _, want := range []string{"bootstrap checks failed", "initial heap size [536870912] not equal to maximum heap size [1073741824]",
		"the default discovery settings are unsuitable for production use; at least one of [discovery.seed_hosts, discovery.seed_providers, cluster.initial_master_nodes] must be configured"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != 78 {
		t.Errorf("exit code %d, want 78", code)
	}
	// A low file-descriptor limit fails FileDescriptorCheck.
	low := exec.Command("sh", "-c", "ulimit -n 4096 && exec \"$0\"", filepath.Join(c.home, "bin/elasticsearch"))
	conf := t.TempDir()
	os.WriteFile(filepath.Join(conf, "elasticsearch.yml"), []byte(fmt.Sprintf("path.data: %s\nhttp.port: %d\ntransport.port: %d\nnetwork.host: 127.88.6.4\ndiscovery.seed_hosts: [127.88.6.5]\n", t.TempDir(), c.http, c.port)), 0o644)
	low.Env = append(os.Environ(), "ES_PATH_CONF="+conf, "ES_HOME="+c.home, "ES_JAVA_OPTS=-Xms1g -Xmx1g -Des.enforce.bootstrap.checks=true")
	b, _ := low.CombinedOutput()
	if !strings.Contains(string(b), "max file descriptors [4096] for elasticsearch process is too low, increase to at least [65535]") {
		t.Errorf("nofile 4096 accepted:\n%s", b)
	}
}
