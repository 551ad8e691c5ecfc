package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"

	"github.com/esbake/packer-plugin-elasticsearch/audit"
	"github.com/esbake/packer-plugin-elasticsearch/audit/transport"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/localcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testpki"
	"github.com/esbake/packer-plugin-elasticsearch/node/boot"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
	"golang.org/x/crypto/ssh/knownhosts"
)

// es7Version is the 7.x release the cluster tests bake (as stand-ins).
const es7Version = "7.17.25"

// clusterMasters is cluster.master_nodes in the cluster tests' spec: the
// first three master-eligible nodes bootstrap (7+) or the quorum is 2 (6.x).
const clusterMasters = 3

// clusterEnv is one baked image registered in the local cloud's emulator,
// and the nodes launched from it as an auto-scaling group would: one
// RunInstances per node, spread over the two AZs' subnets, the same
// parameters (launch template) and empty userdata.
type clusterEnv struct {
	t       *testing.T
	ctx     context.Context
	lc      *localcloud.LocalCloud
	ec2     *ec2.Client
	version string
	ami     string
	// imageRef is the baked image behind ami (a second AMI can share it).
	imageRef string
	subnets  []ec2types.Subnet // sorted by AZ: a, b
	key      Key
	ca       *testpki.CA // the cluster's transport CA (8.x), in the emulator's Parameter Store
}

// clusterNode is one launched node.
type clusterNode struct {
	id   string
	zone int
	inst *testcloud.Instance
}

func (n *clusterNode) url(path string) string {
	return "http://" + n.inst.PrivateIP() + ":9200" + path
}

func newClusterEnv(t *testing.T, ctx context.Context, version string, o bakeOptions) *clusterEnv {
	t.Helper()
	lc := localcloud.New(t)
	o.Version = version
	specFn := o.Spec
	o.Spec = func(n *spec.Node) {
		n.Cluster.MasterNodes = clusterMasters
		if specFn != nil {
			specFn(n)
		}
	}
	start := time.Now()
	b := bakeNodeWith(t, lc.Cloud(), o)
	t.Logf("baked %s in %s (esnode install %s)", version, time.Since(start).Round(time.Second), b.Install.Round(time.Second))
	ami, err := lc.Server().AddImage(ec2emu.ImageSpec{Name: "esnode-cluster-" + version, ImageRef: b.Image.Ref(), ImdsSupport: "v2.0"})
	if err != nil {
		t.Fatal(err)
	}
	e := &clusterEnv{t: t, ctx: ctx, lc: lc, ec2: emuEC2(t, lc), version: version, ami: ami, imageRef: b.Image.Ref(), key: NewKey(t)}
	if v, _ := spec.ParseVersion(version); v.Major >= 8 {
		e.ca = putLocalCloudMaterial(t, ctx, lc, clusterTag)
	}
	if _, err := e.ec2.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("cluster"), PublicKeyMaterial: []byte(e.key.Authorized)}); err != nil {
		t.Fatal(err)
	}
	subs, err := e.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subs.Subnets) != 2 {
		t.Fatalf("DescribeSubnets: %v (%d subnets, want one per AZ)", err, len(subs.Subnets))
	}
	e.subnets = subs.Subnets
	sort.Slice(e.subnets, func(i, j int) bool {
		return aws.ToString(e.subnets[i].AvailabilityZone) < aws.ToString(e.subnets[j].AvailabilityZone)
	})
	return e
}

// launch starts nodes, one RunInstances each (as an auto-scaling group
// does), in the given zones (0 = a, 1 = b), all with the same launch
// parameters and userdata, and waits until their guests run.
func (e *clusterEnv) launch(userdata string, zones ...int) []*clusterNode {
	e.t.Helper()
	var nodes []*clusterNode
	for _, z := range zones {
		out, err := e.ec2.RunInstances(e.ctx, &ec2.RunInstancesInput{
			ImageId: aws.String(e.ami), InstanceType: ec2types.InstanceTypeM6iLarge, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			KeyName: aws.String("cluster"), SubnetId: e.subnets[z].SubnetId,
			UserData:           aws.String(base64.StdEncoding.EncodeToString([]byte(userdata))),
			IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String("esnode-node")},
			MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired,
				InstanceMetadataTags: ec2types.InstanceMetadataTagsStateEnabled},
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance,
				Tags: []ec2types.Tag{{Key: aws.String("es_cluster"), Value: aws.String(clusterTag)}}}},
		})
		if err != nil {
			e.t.Fatalf("RunInstances: %v", err)
		}
		nodes = append(nodes, &clusterNode{id: aws.ToString(out.Instances[0].InstanceId), zone: z})
	}
	for _, n := range nodes {
		if err := ec2.NewInstanceRunningWaiter(e.ec2).Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{n.id}}, 5*time.Minute); err != nil {
			e.t.Fatalf("%s not running: %v", n.id, err)
		}
		if n.inst = e.lc.Instance(n.id); n.inst == nil {
			e.t.Fatalf("%s has no guest", n.id)
		}
		if got, want := n.inst.Zone().Letter, string(rune('a'+n.zone)); got != want {
			e.t.Fatalf("%s landed in zone %s, want %s", n.id, got, want)
		}
	}
	return nodes
}

// clusterView is what GET /_cluster/state and /_cluster/health say on one node.
type clusterView struct {
	UUID   string `json:"cluster_uuid"`
	Master string `json:"master_node"`
	Nodes  map[string]struct {
		Name       string            `json:"name"`
		Attributes map[string]string `json:"attributes"`
	} `json:"nodes"`
	Status string
}

func (v *clusterView) names() []string {
	var out []string
	for _, n := range v.Nodes {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// view asks n's Elasticsearch (the stand-in) from the host, through the
// node's firewall (HTTP is open to the VPC, which holds the host's bridge).
func (e *clusterEnv) view(n *clusterNode) (*clusterView, error) {
	body, err := httpGet(e.ctx, n.url("/_cluster/state/master_node,nodes"))
	if err != nil {
		return nil, err
	}
	var v clusterView
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.UUID == "" || v.Master == "" {
		return nil, fmt.Errorf("no cluster on %s: %s", n.id, body)
	}
	h, err := httpGet(e.ctx, n.url("/_cluster/health"))
	if err != nil {
		return nil, err
	}
	var hv struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(h), &hv); err != nil {
		return nil, err
	}
	v.Status = hv.Status
	return &v, nil
}

// waitCluster waits until every node of members sees one cluster of
// exactly members with status, and returns that view.
func (e *clusterEnv) waitCluster(what string, status string, members ...*clusterNode) *clusterView {
	e.t.Helper()
	var want []string
	for _, n := range members {
		want = append(want, n.id)
	}
	sort.Strings(want)
	var last string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var first *clusterView
		ok := true
		for _, n := range members {
			v, err := e.view(n)
			if err != nil {
				ok, last = false, err.Error()
				break
			}
			if first == nil {
				first = v
			}
			if v.UUID != first.UUID || !slices.Equal(v.names(), want) || v.Status != status {
				ok, last = false, fmt.Sprintf("%s sees uuid %s nodes %v status %s", n.id, v.UUID, v.names(), v.Status)
				break
			}
		}
		if ok {
			return first
		}
		if time.Now().After(deadline) || e.ctx.Err() != nil {
			for _, n := range members {
				out, _ := n.inst.Exec(e.ctx, "journalctl -u esnode-boot -u elasticsearch -u esnode-joined --no-pager | tail -25")
				e.t.Logf("--- %s (zone %s, %s):\n%s", n.id, n.inst.Zone().Letter, n.inst.PrivateIP(), out)
			}
			e.t.Fatalf("%s: want one %s cluster of %v; last: %s", what, status, want, last)
		}
		time.Sleep(time.Second)
	}
}

// sh runs a command on a node's guest; failing is fatal.
func (e *clusterEnv) sh(n *clusterNode, cmd string) string {
	e.t.Helper()
	out, err := n.inst.Exec(e.ctx, cmd)
	if err != nil {
		e.t.Fatalf("%s on %s: %v\n%s", cmd, n.id, err, out)
	}
	return strings.TrimSpace(out)
}

// activeInitialMasters is the active cluster.initial_master_nodes line of
// the node's elasticsearch.yml, "" when there is none.
func (e *clusterEnv) activeInitialMasters(n *clusterNode) string {
	return e.sh(n, "grep -E '^[[:space:]]*cluster\\.initial_master_nodes' "+boot.ElasticsearchYML+" || true")
}

// waitJoinedRecord waits for esnode joined's record and checks it.
func (e *clusterEnv) waitJoinedRecord(n *clusterNode, uuid string) {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _ := n.inst.Exec(e.ctx, "cat "+boot.JoinedPath+" 2>/dev/null")
		var j boot.Joined
		if json.Unmarshal([]byte(out), &j) == nil && j.ClusterUUID != "" {
			if j.ClusterUUID != uuid || j.NodeName != n.id {
				e.t.Errorf("%s: %s records %+v, want cluster %s node %s", n.id, boot.JoinedPath, j, uuid, n.id)
			}
			if l := e.activeInitialMasters(n); l != "" {
				e.t.Errorf("%s: joined, yet elasticsearch.yml keeps %q", n.id, l)
			}
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: no %s 2 minutes after joining: %s", n.id, boot.JoinedPath, e.sh(n, "journalctl -u esnode-joined --no-pager | tail -20"))
		}
		time.Sleep(time.Second)
	}
}

func (e *clusterEnv) bootDecision(n *clusterNode) *boot.BootstrapDecision {
	e.t.Helper()
	st := readBootState(e.t, e.ctx, n.inst)
	if st.Bootstrap == nil {
		e.t.Fatalf("%s: boot.json has no bootstrap decision", n.id)
	}
	return st.Bootstrap
}

// terminate ends a node through the API and waits until its guest is gone.
func (e *clusterEnv) terminate(n *clusterNode) {
	e.t.Helper()
	if _, err := e.ec2.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{n.id}}); err != nil {
		e.t.Fatal(err)
	}
	if err := ec2.NewInstanceTerminatedWaiter(e.ec2).Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{n.id}}, 3*time.Minute); err != nil {
		e.t.Fatal(err)
	}
}

// masterZone is the zone of the elected master.
func (e *clusterEnv) master(v *clusterView, nodes []*clusterNode) *clusterNode {
	e.t.Helper()
	name := v.Nodes[v.Master].Name
	for _, n := range nodes {
		if n.id == name {
			return n
		}
	}
	e.t.Fatalf("master %s is none of the nodes", name)
	return nil
}

// TestE2EClusterES8OnLocalCloud bakes an 8.x image (stand-in .deb with the
// security auto-configuration) with cluster.master_nodes = 3 and launches
// it as an auto-scaling group would, across two AZs with empty userdata:
// the nodes form exactly one cluster; a node launched later and a
// replacement join and never bootstrap; a node cut off by a subnet-only
// transport firewall, a node without the AZ attribute, an unknown setting
// and a failing esnode boot each break what they should, and nothing else.
func TestE2EClusterES8OnLocalCloud(t *testing.T) {
	runClusterCases(t, esVersion, bakeOptions{}, "cluster.routing.allocation.awareness.atributes", "aws_availability_zone")
}

// TestE2EClusterES7OnLocalCloud is the 7.17 cluster through the same
// cases as 8.x, 7.x's own trap included: awareness without the AZ
// attribute (discovery-ec2 before 8.2 reads it with IMDSv1, which the image
// refuses) leaves the node without shards.
func TestE2EClusterES7OnLocalCloud(t *testing.T) {
	runClusterCases(t, es7Version, bakeOptions{}, "cluster.routing.allocation.awareness.atributes", "aws_availability_zone")
}

// TestE2EClusterES6OnLocalCloud is the 6.8 cluster (Zen discovery,
// minimum_master_nodes from cluster.master_nodes) through the same cases,
// with 6.8's own unknown setting: a 7.x-only one, which the stand-in
// refuses as 6.8 does and esaudit flags (ES-CLU-004).
func TestE2EClusterES6OnLocalCloud(t *testing.T) {
	runClusterCases(t, es6Version, bakeOptions{Base: javaImage, Spec: func(n *spec.Node) { n.Java.Package = javaPackage }}, "discovery.seed_providers", "ec2")
}

// runClusterCases forms a cluster of one version, adds a late node and a
// replacement, then runs each negative; unknownKey=value is a setting that
// version does not register.
func runClusterCases(t *testing.T, version string, o bakeOptions, unknownKey, value string) {
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	e := newClusterEnv(t, ctx, version, o)
	first := e.clusterForms()
	members := e.replacementJoins(first[1], append(first, e.joinsLate(first)))
	if version == esVersion {
		e.ssmAuditMatchesSSH(members)
	}
	e.transportSubnetOnlyIsCutOff(members)
	e.awarenessWithoutAttributeHoldsNoShard(members)
	e.unknownSettingRefusedAndAudited(members, unknownKey, value)
	e.failedBootLeavesESStopped(members)
}

// replacementJoins terminates gone and launches a node in its zone: the
// cluster stays green without it and the replacement joins the same
// cluster, never bootstrapping (7+: join-only; 6.x: the same quorum).
func (e *clusterEnv) replacementJoins(gone *clusterNode, members []*clusterNode) []*clusterNode {
	parent := e.t
	parent.Run("replacement-joins", func(t *testing.T) {
		e.t = t
		defer func() { e.t = parent }()
		e.terminate(gone)
		members = slices.DeleteFunc(members, func(n *clusterNode) bool { return n == gone })
		v := e.waitCluster("the cluster after a node was terminated", "green", members...)
		repl := e.launch("", gone.zone)[0]
		members = append(members, repl)
		if got := e.waitCluster("the replacement joins", "green", members...); got.UUID != v.UUID {
			t.Fatalf("cluster UUID %s after the replacement, was %s", got.UUID, v.UUID)
		}
		d := e.bootDecision(repl)
		switch {
		case e.version < "7" && (d.Mode != "zen" || d.MinimumMasterNodes != 2):
			t.Errorf("the replacement's bootstrap decision %+v, want zen with minimum_master_nodes 2", d)
		case e.version >= "7" && (d.Mode != "join-only" || len(d.InitialMasterNodes) != 0):
			t.Errorf("the replacement's bootstrap decision %+v, want join-only", d)
		}
	})
	return members
}

// clusterForms launches three nodes (two in zone a, one in zone b) and
// checks they form one green cluster with awareness, from one bootstrap
// list all three computed alike, and drop that list once joined.
func (e *clusterEnv) clusterForms() []*clusterNode {
	t := e.t
	start := time.Now()
	nodes := e.launch("", 0, 0, 1)
	v := e.waitCluster("three nodes launched together form one cluster", "green", nodes...)
	t.Logf("%s: 3 nodes in 2 AZs formed cluster %s (green, master %s) %s after the first RunInstances", e.version, v.UUID, v.Nodes[v.Master].Name, time.Since(start).Round(time.Second))
	zones := map[string]bool{}
	for _, n := range v.Nodes {
		zones[n.Attributes["aws_availability_zone"]] = true
	}
	if len(zones) != 2 || zones[""] {
		t.Errorf("aws_availability_zone attributes %v, want the two AZs", zones)
	}
	if e.ca != nil { // 8.x: over the cluster's mutual transport TLS, from Parameter Store
		for _, n := range nodes {
			if c := e.sh(n, "journalctl -u elasticsearch --no-pager | grep -c 'transport TLS on (verification_mode certificate, client_authentication required)' || true"); c == "0" {
				t.Errorf("%s: the stand-in did not turn transport TLS on", n.id)
			}
		}
	}
	if e.version < "7" {
		for _, n := range nodes {
			if d := e.bootDecision(n); d.Mode != "zen" || d.MinimumMasterNodes != 2 {
				t.Errorf("%s: bootstrap decision %+v, want zen with minimum_master_nodes 2", n.id, d)
			}
			if got := e.sh(n, "grep -c '^discovery.zen.minimum_master_nodes: 2' "+boot.ElasticsearchYML+" || true"); got != "1" {
				t.Errorf("%s: elasticsearch.yml has no minimum_master_nodes: 2", n.id)
			}
		}
		return nodes
	}
	var lists []string
	for _, n := range nodes {
		d := e.bootDecision(n)
		if d.Mode != "slots" {
			t.Errorf("%s: bootstrap decision %+v, want slots", n.id, d)
		}
		lists = append(lists, strings.Join(d.InitialMasterNodes, ","))
		e.waitJoinedRecord(n, v.UUID)
	}
	want := []string{nodes[0].id, nodes[1].id, nodes[2].id}
	sort.Strings(want)
	for i, l := range lists {
		if l != strings.Join(want, ",") {
			t.Errorf("%s bootstrapped from [%s], want the three launched nodes [%s]", nodes[i].id, l, strings.Join(want, ","))
		}
	}
	return nodes
}

// joinsLate launches a fourth node (zone b) after the cluster exists: it
// joins the same cluster and never writes initial_master_nodes.
func (e *clusterEnv) joinsLate(first []*clusterNode) *clusterNode {
	t := e.t
	before, err := e.view(first[0])
	if err != nil {
		t.Fatal(err)
	}
	late := e.launch("", 1)[0]
	v := e.waitCluster("a node launched later joins", "green", append(slices.Clone(first), late)...)
	if v.UUID != before.UUID {
		t.Errorf("cluster UUID %s after the late node, was %s", v.UUID, before.UUID)
	}
	if e.version >= "7" {
		if d := e.bootDecision(late); d.Mode != "join-only" || len(d.InitialMasterNodes) != 0 {
			t.Errorf("the late node's bootstrap decision %+v, want join-only", d)
		}
		e.waitJoinedRecord(late, v.UUID)
	}
	return late
}

// transportSubnetOnlyIsCutOff gives one node in the zone without the
// master the old default, transport_sources = subnet (its spec in the
// manifest, as an image baked with it), restarts it, and checks it is left
// out of the cluster; back to the VPC default, it rejoins.
func (e *clusterEnv) transportSubnetOnlyIsCutOff(members []*clusterNode) {
	parent := e.t
	parent.Run("transport-subnet-only-cut-off", func(t *testing.T) {
		e.t = t
		defer func() { e.t = parent }()
		v := e.waitCluster("before", "green", members...)
		m := e.master(v, members)
		var n *clusterNode
		for _, c := range members {
			if c.zone != m.zone {
				n = c
			}
		}
		rest := slices.DeleteFunc(slices.Clone(members), func(c *clusterNode) bool { return c == n })
		setSources := func(src string) {
			e.sh(n, `python3 -c 'import json,sys; p="`+spec.ManifestPath+`"; m=json.load(open(p)); m["spec"]["firewall"]["transport_sources"]=["`+src+`"]; json.dump(m, open(p,"w"), indent=2)'`)
			e.sh(n, "systemctl stop elasticsearch && systemctl restart esnode-boot && systemctl start elasticsearch")
		}
		setSources(spec.SourceSubnet)
		if rules := e.sh(n, "iptables -S"); !strings.Contains(rules, "-s "+n.inst.Zone().CIDR.String()+" -p tcp -m tcp --dport 9300") && !strings.Contains(rules, n.inst.Zone().CIDR.String()) {
			t.Fatalf("the subnet-only firewall does not name %s:\n%s", n.inst.Zone().CIDR, rules)
		}
		e.waitCluster("the others, without the cut-off node", "green", rest...)
		// It keeps trying meanwhile; it must stay out.
		time.Sleep(8 * time.Second)
		if got, err := e.view(n); err == nil {
			t.Fatalf("the node behind a subnet-only transport firewall (zone %s, master in zone %s) is in cluster %s with %v", n.inst.Zone().Letter, m.inst.Zone().Letter, got.UUID, got.names())
		}
		if got := e.waitCluster("the others", "green", rest...); slices.Contains(got.names(), n.id) {
			t.Fatalf("the master lists the cut-off node")
		}
		setSources(spec.SourceVPC)
		e.waitCluster("the node rejoins with transport open to the VPC", "green", members...)
	})
}

// rebootNode re-runs esnode boot through its unit (which carries the
// local cloud's endpoints, as a boot does) and restarts Elasticsearch.
const rebootNode = "systemctl stop elasticsearch && systemctl restart esnode-boot && systemctl start elasticsearch"

// awarenessWithoutAttributeHoldsNoShard creates an index with two copies
// per member, then removes node.attr.aws_availability_zone from one node
// (what relying on cloud.node.auto_attributes gives on an IMDSv2-only image
// before 8.2) and restarts it: with awareness on, a node without the
// attribute may hold no shard copy (AwarenessAllocationDecider), so its
// copies move to the others and it stays empty while the cluster is green
// again; esnode-boot puts the attribute back. (With no node holding the
// attribute, a new index is red: the stand-in's unit tests show that.)
func (e *clusterEnv) awarenessWithoutAttributeHoldsNoShard(members []*clusterNode) {
	parent := e.t
	parent.Run("awareness-without-attribute-holds-no-shard", func(t *testing.T) {
		e.t = t
		defer func() { e.t = parent }()
		first, n := members[0], members[len(members)-1]
		e.sh(first, fmt.Sprintf(`curl -fsS -X PUT -H 'Content-Type: application/json' http://%s:9200/awareness-probe -d '{"settings":{"number_of_shards":%d,"number_of_replicas":1}}'`,
			first.inst.PrivateIP(), len(members)))
		e.waitCluster("the probe index allocated", "green", members...)
		if held := e.shardsOn(first, n.id); held == 0 {
			t.Errorf("%s holds no copy of the probe index before losing its attribute: the test proves nothing", n.id)
		}
		e.sh(n, "sed -i '/^node\\.attr\\.aws_availability_zone/d' "+boot.ElasticsearchYML+" && systemctl restart elasticsearch")
		deadline := time.Now().Add(3 * time.Minute)
		for {
			held := e.shardsOn(first, n.id)
			v, err := e.view(first)
			if held == 0 && err == nil && v.Status == "green" && len(v.Nodes) == len(members) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s without the awareness attribute still holds %d shard copies (view %+v, %v)", n.id, held, v, err)
			}
			time.Sleep(time.Second)
		}
		e.sh(n, rebootNode)
		e.waitCluster("the attribute back", "green", members...)
	})
}

// shardsOn counts the shard copies _cat/shards (asked on via) places on the
// node named name, relocating ones included; -1 when the API does not answer.
func (e *clusterEnv) shardsOn(via *clusterNode, name string) int {
	body, err := httpGet(e.ctx, via.url("/_cat/shards?format=json&h=index,shard,prirep,state,node"))
	if err != nil {
		return -1
	}
	var rows []struct {
		Node *string `json:"node"`
	}
	if json.Unmarshal([]byte(body), &rows) != nil {
		return -1
	}
	held := 0
	for _, r := range rows {
		if r.Node != nil && (*r.Node == name || strings.HasPrefix(*r.Node, name+" ->")) {
			held++
		}
	}
	return held
}

// unknownSettingRefusedAndAudited adds a setting the node's version does
// not register (a typo, or another major's) to one node: esaudit flags
// ES-CLU-004 on it before anyone restarts it, and the stand-in then refuses
// to start (Elastic's wording); without the line it rejoins.
func (e *clusterEnv) unknownSettingRefusedAndAudited(members []*clusterNode, typo, value string) {
	parent := e.t
	parent.Run("unknown-setting-refused-and-audited", func(t *testing.T) {
		e.t = t
		defer func() { e.t = parent }()
		n := members[len(members)-1]
		e.sh(n, "echo '"+typo+": "+value+"' >> "+boot.ElasticsearchYML)
		res := e.audit(n)
		var got []string
		for _, f := range res.Report.Nodes[0].Findings {
			got = append(got, f.RuleID)
			if f.RuleID == "ES-CLU-004" && !strings.Contains(f.Message, typo) {
				t.Errorf("ES-CLU-004 does not name %s: %s", typo, f.Message)
			}
		}
		if !slices.Contains(got, "ES-CLU-004") {
			t.Errorf("esaudit findings %v lack ES-CLU-004 for %s", got, typo)
		}
		out, _ := n.inst.Exec(e.ctx, "systemctl restart elasticsearch; sleep 2; systemctl is-active elasticsearch; journalctl -u elasticsearch --no-pager | tail -15")
		if !strings.Contains(out, "unknown setting ["+typo+"]") || strings.HasPrefix(out, "active") {
			t.Errorf("the stand-in did not refuse the unknown setting:\n%s", out)
		}
		// Settings esnode boot does not own are the operator's: it keeps them.
		e.sh(n, "sed -i '/^"+strings.ReplaceAll(typo, ".", "\\.")+":/d' "+boot.ElasticsearchYML+" && "+rebootNode)
		e.waitCluster("the setting removed", "green", members...)
	})
}

// audit runs esaudit's engine over SSH against one node.
func (e *clusterEnv) audit(n *clusterNode) *audit.Result {
	t := e.t
	work := t.TempDir()
	knownHosts := filepath.Join(work, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(knownhosts.Line([]string{knownhosts.Normalize(n.inst.SSHAddr())}, n.inst.HostKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inventory := filepath.Join(work, "inventory.txt")
	if err := os.WriteFile(inventory, []byte(fmt.Sprintf("%s user=admin name=%s instance_id=%s\n", n.inst.PrivateIP(), n.id, n.id)), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := audit.Run(e.ctx, audit.Options{
		Inventory:   inventory,
		SSH:         transport.SSHConfig{User: "admin", KnownHostsFile: knownHosts, Signers: []ssh.Signer{e.key.Signer}, Sudo: true},
		NodeTimeout: 2 * time.Minute, FailOn: "low", Formats: []string{"json"}, OutDir: filepath.Join(work, "out"),
	})
	if err != nil {
		t.Fatalf("audit.Run: %v", err)
	}
	if len(res.Report.Nodes) != 1 || res.Report.Nodes[0].Error != "" {
		t.Fatalf("audit did not account for %s: %+v", n.id, res.Report.Nodes)
	}
	return res
}

// failedBootLeavesESStopped launches a node whose esnode boot fails
// (userdata out of range): Elasticsearch stays down and the cluster is
// unchanged.
func (e *clusterEnv) failedBootLeavesESStopped(members []*clusterNode) {
	parent := e.t
	parent.Run("failed-boot-leaves-es-stopped", func(t *testing.T) {
		e.t = t
		defer func() { e.t = parent }()
		n := e.launch("heap_percent=500\n", 0)[0]
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
		defer cancel()
		bootState, esState := waitUnitsSettled(ctx, n.inst)
		if bootState != "failed" || esState == "active" {
			t.Fatalf("esnode-boot %s, elasticsearch %s; want failed and not active", bootState, esState)
		}
		if j := e.sh(n, "journalctl -u esnode-boot --no-pager"); !strings.Contains(j, "heap_percent") {
			t.Errorf("esnode-boot's journal does not say why:\n%s", j)
		}
		if l := e.sh(n, "ss -Hltn 'sport = :9300' | wc -l"); l != "0" {
			t.Errorf("something listens on 9300 after a failed boot")
		}
		e.waitCluster("the cluster without the failed node", "green", members...)
		e.terminate(n)
	})
}
