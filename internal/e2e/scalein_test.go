package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

const (
	scaleInGroup = "es-asg"
	scaleInHook  = "es-drain"
)

// TestE2EScaleInOnLocalCloud is safe scale-in end to end: 8.x nodes baked
// with lifecycle.termination_hook, three of them in two AZs in an Auto
// Scaling group with that termination hook, and an index of 3 primaries and
// 1 replica. A rolling replacement of all three nodes with a new AMI (launch
// the new node, then TerminateInstanceInAutoScalingGroup the old one) and a
// scale-in by one (ShouldDecrementDesiredCapacity) each go through
// esnode-drain.service: the node is excluded, its shards move, the
// lifecycle action completes with CONTINUE, the instance terminates, and the
// cluster is green again with every shard. Then the counter-case: without
// the hook, two nodes holding both copies of a shard terminated together
// take that shard with them (red, for good). The hook's heartbeat timeout
// runs on a short clock (ec2emu.SetHookTimeUnit) so a drain that failed to
// complete would show as a timeout within seconds.
func TestE2EScaleInOnLocalCloud(t *testing.T) {
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	t.Cleanup(ec2emu.SetHookTimeUnit(100 * time.Millisecond)) // HeartbeatTimeout 300 -> 30 s
	e := newClusterEnv(t, ctx, esVersion, bakeOptions{Spec: func(n *spec.Node) {
		n.Lifecycle = spec.Lifecycle{TerminationHook: scaleInHook, DrainTimeout: "2m", HeartbeatInterval: "10s"}
	}})
	as := emuAutoScaling(t, e)
	start := time.Now()
	members := e.launch("", 0, 1, 0)
	e.waitCluster("three nodes in two AZs", "green", members...)
	t.Logf("3 nodes formed a green cluster in %s", time.Since(start).Round(time.Second))
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(scaleInGroup), MinSize: aws.Int32(0), MaxSize: aws.Int32(8)}))
	must(as.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String(scaleInGroup), InstanceIds: ids(members)}))
	must(as.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: aws.String(scaleInGroup), LifecycleHookName: aws.String(scaleInHook),
		LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"), HeartbeatTimeout: aws.Int32(300), DefaultResult: aws.String("CONTINUE")}))
	e.sh(members[0], fmt.Sprintf(`curl -fsS -X PUT -H 'Content-Type: application/json' http://%s:9200/logs -d '{"settings":{"number_of_shards":3,"number_of_replicas":1}}'`, members[0].inst.PrivateIP()))
	e.waitCluster("the index allocated", "green", members...)
	e.wantShards(members[0], 6, 3)

	// Rolling replacement with a new AMI (the same baked disk registered again:
	// what matters here is that every node is replaced).
	ami2, err := e.lc.Server().AddImage(ec2emu.ImageSpec{Name: "esnode-cluster-v2", ImageRef: e.imageRef, ImdsSupport: "v2.0"})
	if err != nil {
		t.Fatal(err)
	}
	oldAMI := e.ami
	e.ami = ami2
	roll := time.Now()
	for i, old := range append([]*clusterNode(nil), members...) {
		nw := e.launch("", old.zone)[0]
		must(as.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String(scaleInGroup), InstanceIds: []string{nw.id}}))
		members = append(members, nw)
		e.waitCluster(fmt.Sprintf("replacement %d joins", i+1), "green", members...)
		members = e.scaleIn(as, members, old, fmt.Sprintf("rolling replacement %d/3", i+1))
	}
	e.ami = oldAMI
	for _, n := range members {
		out, err := e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{n.id}})
		if err != nil || aws.ToString(out.Reservations[0].Instances[0].ImageId) != ami2 {
			t.Errorf("%s does not run the new AMI %s: %v", n.id, ami2, err)
		}
	}
	t.Logf("rolling replacement of 3 nodes: %s, every shard kept", time.Since(roll).Round(time.Second))

	// Scale in by one: a zone-a node (zone a keeps another node).
	var victim *clusterNode
	for _, n := range members {
		if n.zone == 0 {
			victim = n
		}
	}
	members = e.scaleIn(as, members, victim, "scale-in by one")

	// Counter-case: no hook, two nodes holding both copies of a shard go together.
	more := e.launch("", 0, 1, 0)
	must(as.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String(scaleInGroup), InstanceIds: ids(more)}))
	members = append(members, more...)
	e.waitCluster("five nodes", "green", members...)
	must(as.DeleteLifecycleHook(ctx, &autoscaling.DeleteLifecycleHookInput{AutoScalingGroupName: aws.String(scaleInGroup), LifecycleHookName: aws.String(scaleInHook)}))
	holders := e.shardHolders(members[0], "logs", "0")
	if len(holders) != 2 {
		t.Fatalf("shard 0 of logs is on %v, want two nodes", holders)
	}
	var survivors []*clusterNode
	for _, n := range members {
		if n.id != holders[0] && n.id != holders[1] {
			survivors = append(survivors, n)
		}
	}
	lost := time.Now()
	for _, id := range holders {
		must(as.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(id), ShouldDecrementDesiredCapacity: aws.Bool(true)}))
	}
	for _, id := range holders {
		if o := e.lc.Server().LifecycleOutcome(id); o != "no-hook" {
			t.Errorf("%s terminated with outcome %q, want no-hook", id, o)
		}
	}
	e.waitCluster("two nodes gone together, without the hook", "red", survivors...)
	redAfter := time.Since(lost)
	time.Sleep(10 * time.Second) // no node holds an in-sync copy: it stays lost
	h := e.health(survivors[0])
	if h.Status != "red" || h.ActivePrimaries != 2 || h.Unassigned < 2 {
		t.Errorf("after losing both copies of shard 0: %+v, want red with 2 active primaries", h)
	}
	for _, r := range e.catShards(survivors[0]) {
		if r.Index == "logs" && r.Shard == "0" && r.State != "UNASSIGNED" {
			t.Errorf("shard 0 copy %+v: want UNASSIGNED", r)
		}
	}
	t.Logf("without the hook: shard 0 lost (red) %s after terminating %v together, still red 10 s later", redAfter.Round(time.Second), holders)
}

// scaleIn terminates n through the group (desired capacity decremented) and
// checks the drain: n's shards move, the lifecycle action completes with
// CONTINUE, the instance terminates, the cluster is green without n and
// still holds all 6 shard copies. It returns members without n.
func (e *clusterEnv) scaleIn(as *autoscaling.Client, members []*clusterNode, n *clusterNode, what string) []*clusterNode {
	t := e.t
	t.Helper()
	var rest []*clusterNode
	for _, m := range members {
		if m != n {
			rest = append(rest, m)
		}
	}
	held := e.shardsOn(rest[0], n.id)
	start := time.Now()
	if _, err := as.TerminateInstanceInAutoScalingGroup(e.ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(n.id), ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	var journal string
	for {
		if out, err := n.inst.Exec(e.ctx, "journalctl -u esnode-drain --no-pager | tail -20"); err == nil {
			journal = out
		}
		out, err := e.ec2.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{n.id}})
		if err == nil && string(out.Reservations[0].Instances[0].State.Name) == "terminated" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not terminated after 3 min; esnode-drain:\n%s", what, n.id, journal)
		}
		time.Sleep(time.Second)
	}
	took := time.Since(start)
	if o := e.lc.Server().LifecycleOutcome(n.id); o != "completed:CONTINUE" {
		t.Errorf("%s: %s's lifecycle action ended %q, want completed:CONTINUE (esnode drain completing it); esnode-drain:\n%s", what, n.id, o, journal)
	}
	if hb := e.lc.Server().LifecycleHeartbeats(n.id); hb > 0 {
		t.Logf("%s: %d lifecycle heartbeats", what, hb)
	}
	e.waitCluster(what+": green without the terminated node", "green", rest...)
	e.wantShards(rest[0], 6, 3)
	// Each drain clears the exclusions of the nodes drained before it
	// (Elasticsearch allows 10): only this node's is left.
	var st struct {
		Metadata struct {
			Coordination struct {
				Exclusions []struct {
					Name string `json:"node_name"`
				} `json:"voting_config_exclusions"`
			} `json:"cluster_coordination"`
		} `json:"metadata"`
	}
	if body, err := httpGet(e.ctx, rest[0].url("/_cluster/state")); err != nil || json.Unmarshal([]byte(body), &st) != nil {
		t.Errorf("cluster state: %v", err)
	} else if ex := st.Metadata.Coordination.Exclusions; len(ex) != 1 || ex[0].Name != n.id {
		t.Errorf("%s: voting exclusions %+v, want only %s's", what, ex, n.id)
	}
	t.Logf("%s: %s drained (%d shard copies moved) and terminated in %s", what, n.id, held, took.Round(100*time.Millisecond))
	if held == 0 {
		t.Logf("%s: %s held no shard (nothing to move)", what, n.id)
	}
	return rest
}

type healthAnswer struct {
	Status          string `json:"status"`
	Active          int    `json:"active_shards"`
	ActivePrimaries int    `json:"active_primary_shards"`
	Unassigned      int    `json:"unassigned_shards"`
}

func (e *clusterEnv) health(n *clusterNode) healthAnswer {
	e.t.Helper()
	var h healthAnswer
	body, err := httpGet(e.ctx, n.url("/_cluster/health"))
	if err != nil || json.Unmarshal([]byte(body), &h) != nil {
		e.t.Fatalf("health on %s: %v %s", n.id, err, body)
	}
	return h
}

// wantShards checks the cluster's active copies and primaries.
func (e *clusterEnv) wantShards(n *clusterNode, active, primaries int) {
	e.t.Helper()
	if h := e.health(n); h.Active != active || h.ActivePrimaries != primaries || h.Unassigned != 0 {
		e.t.Errorf("health %+v, want %d active copies, %d primaries, none unassigned: a shard was lost", h, active, primaries)
	}
}

type catShard struct{ Index, Shard, Prirep, State, Node string }

func (e *clusterEnv) catShards(n *clusterNode) []catShard {
	e.t.Helper()
	body, err := httpGet(e.ctx, n.url("/_cat/shards?format=json&h=index,shard,prirep,state,node"))
	var rows []struct {
		Index, Shard, Prirep, State string
		Node                        *string
	}
	if err != nil || json.Unmarshal([]byte(body), &rows) != nil {
		e.t.Fatalf("_cat/shards on %s: %v %s", n.id, err, body)
	}
	out := make([]catShard, 0, len(rows))
	for _, r := range rows {
		c := catShard{Index: r.Index, Shard: r.Shard, Prirep: r.Prirep, State: r.State}
		if r.Node != nil {
			c.Node = *r.Node
		}
		out = append(out, c)
	}
	return out
}

// shardHolders are the nodes holding a copy of index's shard.
func (e *clusterEnv) shardHolders(via *clusterNode, index, shard string) []string {
	var out []string
	for _, r := range e.catShards(via) {
		if r.Index == index && r.Shard == shard && r.Node != "" {
			out = append(out, strings.Fields(r.Node)[0])
		}
	}
	return out
}

func ids(nodes []*clusterNode) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.id)
	}
	return out
}

func emuAutoScaling(t *testing.T, e *clusterEnv) *autoscaling.Client {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(localRegion),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	return autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) { o.BaseEndpoint = aws.String(e.lc.Endpoint()) })
}
