package standin

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/localcloud"
)

// TestStandInTransportFirewallAcrossZones runs three stand-ins on guests in
// two zones of the local cloud, discovering each other through the EC2 API.
// With transport open to each node's own subnet only (the product's old
// default), zone b's node never reaches zone a's, which form the cluster
// without it; opened to the VPC CIDR, it joins.
func TestStandInTransportFirewallAcrossZones(t *testing.T) {
	need(t, "dpkg-deb")
	lc := localcloud.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	seeds, err := lc.RegisterBaseImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var base string
	for _, s := range seeds {
		if s.Variant == testcloud.VariantBase {
			base = s.ID
		}
	}
	arts, err := BuildWith(t.TempDir(), "7.17.25", Options{EC2Endpoint: lc.GuestEndpoint()})
	if err != nil {
		t.Fatal(err)
	}
	client := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(lc.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDSTANDIN", "stand-in-secret", "")})
	subs, err := client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subs.Subnets) != 2 {
		t.Fatalf("DescribeSubnets: %v %+v", err, subs)
	}
	type node struct {
		name string
		g    *testcloud.Instance
	}
	var nodes []node
	for i, name := range []string{"es-a1", "es-a2", "es-b1"} {
		sn := subs.Subnets[i/2]
		out, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(base), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			SubnetId: sn.SubnetId, TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance,
				Tags: []types.Tag{{Key: aws.String("es_cluster"), Value: aws.String("aardvark")}}}}})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.Instances[0].InstanceId)
		if err := ec2.NewInstanceRunningWaiter(client).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, node{name, lc.Instance(id)})
	}
	vpc := lc.Cloud().Subnet().String()
	// Transport from the node's own subnet only; SSH and HTTP from the VPC.
	firewall := func(g *testcloud.Instance, transportFrom string) {
		t.Helper()
		cmd := "iptables -F INPUT && iptables -A INPUT -i lo -j ACCEPT && iptables -A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT && " +
			"iptables -A INPUT -p tcp --dport 9300 -s " + transportFrom + " -j ACCEPT && iptables -A INPUT -p tcp --dport 9300 -j DROP"
		if out, err := g.Exec(ctx, cmd); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	for _, n := range nodes {
		firewall(n.g, n.g.Zone().CIDR.String())
		yml := fmt.Sprintf("cluster.name: aardvark\nnode.name: %s\nnetwork.host: %s\npath.data: /var/lib/elasticsearch\n"+
			"discovery.seed_providers: ec2\ndiscovery.ec2.tag.es_cluster: aardvark\ncluster.initial_master_nodes: [es-a1, es-a2, es-b1]\n", n.name, n.g.PrivateIP())
		// Installed and started as on a node: dpkg, the plugin tool, the
		// keystore for the EC2 credentials, and the package's systemd unit.
		start := "dpkg -i /tmp/es.deb >/dev/null && " +
			"/usr/share/elasticsearch/bin/elasticsearch-plugin install --batch file:///tmp/discovery-ec2.zip >/dev/null && " +
			"printf 'AKIDSTANDIN\\nstand-in-secret\\n' | /usr/share/elasticsearch/bin/elasticsearch-keystore add -x discovery.ec2.access_key discovery.ec2.secret_key && " +
			"printf '%s' '" + yml + "' > /etc/elasticsearch/elasticsearch.yml && systemctl start elasticsearch"
		for src, dst := range map[string]string{arts.Elasticsearch.Path: "/tmp/es.deb", arts.PluginEC2.Path: "/tmp/discovery-ec2.zip"} {
			if out, err := exec.Command("cp", src, n.g.RootDir()+dst).CombinedOutput(); err != nil {
				t.Fatalf("%v %s", err, out)
			}
		}
		if out, err := n.g.Exec(ctx, start); err != nil {
			t.Fatalf("start the stand-in on %s: %v\n%s", n.name, err, out)
		}
	}
	state := func(n node) (string, []string) {
		out, _ := n.g.Exec(ctx, "curl -s http://"+n.g.PrivateIP()+":9200/_cluster/state/master_node,nodes")
		var v clusterView
		if json.Unmarshal([]byte(out), &v) != nil || v.Master == "" {
			return "", nil
		}
		var names []string
		for _, x := range v.Nodes {
			names = append(names, x.Name)
		}
		return v.UUID, sortStrings(names)
	}
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(500 * time.Millisecond) {
			if time.Now().After(deadline) {
				for _, n := range nodes {
					out, _ := n.g.Exec(ctx, "journalctl -u elasticsearch --no-pager | tail -40")
					t.Logf("--- %s (%s, zone %s):\n%s", n.name, n.g.PrivateIP(), n.g.Zone().Letter, out)
				}
				t.Fatalf("%s: not reached in 60s", what)
			}
		}
	}
	wait("zone a forms a cluster of two", func() bool {
		_, names := state(nodes[0])
		return strings.Join(names, ",") == "es-a1,es-a2"
	})
	time.Sleep(5 * time.Second) // zone b keeps trying meanwhile
	if uuid, names := state(nodes[2]); uuid != "" || names != nil {
		t.Fatalf("zone b's node is in a cluster %s %v through a subnet-only transport firewall", uuid, names)
	}
	if _, names := state(nodes[0]); strings.Join(names, ",") != "es-a1,es-a2" {
		t.Fatalf("zone a's cluster changed to %v", names)
	}
	for _, n := range nodes {
		firewall(n.g, vpc)
	}
	wait("zone b's node joins once transport is open to the VPC", func() bool {
		ua, na := state(nodes[0])
		ub, nb := state(nodes[2])
		return ua != "" && ua == ub && strings.Join(na, ",") == "es-a1,es-a2,es-b1" && strings.Join(nb, ",") == strings.Join(na, ",")
	})
}
