package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/esbake/packer-plugin-elasticsearch/node/boot"
)

// clusterView is what one node's Elasticsearch (the stand-in) says about
// its cluster: GET /_cluster/state/master_node,nodes and /_cluster/health.
type clusterView struct {
	UUID   string `json:"cluster_uuid"`
	Master string `json:"master_node"`
	Nodes  map[string]struct {
		Name       string            `json:"name"`
		Attributes map[string]string `json:"attributes"`
	} `json:"nodes"`
	Health struct {
		Status     string `json:"status"`
		Nodes      int    `json:"number_of_nodes"`
		Unassigned int    `json:"unassigned_shards"`
	}
}

func (v *clusterView) names() []string {
	var out []string
	for _, n := range v.Nodes {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, v)
}

// view asks node id's HTTP API from the host (inside the VPC the ports are
// open to).
func (d *demo) view(ctx context.Context, id string) (*clusterView, error) {
	base := "http://" + d.lc.Instance(id).PrivateIP() + ":9200"
	var v clusterView
	if err := getJSON(ctx, base+"/_cluster/state/master_node,nodes", &v); err != nil {
		return nil, err
	}
	if err := getJSON(ctx, base+"/_cluster/health", &v.Health); err != nil {
		return nil, err
	}
	return &v, nil
}

// waitCluster waits until every one of ids sees the same green cluster of
// exactly ids.
func (d *demo) waitCluster(ctx context.Context, ids []string) (*clusterView, error) {
	want := slices.Sorted(slices.Values(ids))
	deadline := time.Now().Add(4 * time.Minute)
	for {
		var first *clusterView
		last := ""
		for _, id := range ids {
			v, err := d.view(ctx, id)
			switch {
			case err != nil:
				last = fmt.Sprintf("%s: %v", id, err)
			case first != nil && v.UUID != first.UUID:
				last = fmt.Sprintf("%s is in cluster %s, %s in %s", id, v.UUID, ids[0], first.UUID)
			case !slices.Equal(v.names(), want) || v.Health.Status != "green":
				last = fmt.Sprintf("%s sees nodes %v, status %s", id, v.names(), v.Health.Status)
			}
			if last != "" {
				break
			}
			if first == nil {
				first = v
			}
		}
		if last == "" {
			return first, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no single green cluster of %v after 4 minutes: %s", want, last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// printCluster shows the cluster as each node's API reports it.
func (d *demo) printCluster(ctx context.Context, ids []string, v *clusterView) {
	for i, id := range ids {
		nv, err := d.view(ctx, id)
		if err != nil {
			continue
		}
		n := nv.Nodes
		var self string
		for _, x := range n {
			if x.Name == id {
				self = x.Attributes["aws_availability_zone"]
			}
		}
		fmt.Printf("    node %d %s (%s): cluster_uuid %s, number_of_nodes %d, status %s, master %s\n",
			i+1, id, self, nv.UUID, nv.Health.Nodes, nv.Health.Status, n[nv.Master].Name)
	}
	zones := map[string]int{}
	for _, x := range v.Nodes {
		zones[x.Attributes["aws_availability_zone"]]++
	}
	fmt.Printf("    awareness on aws_availability_zone (written by esnode boot from IMDSv2): %v\n", zones)
}

// formed checks the three nodes launched together form one cluster: one
// UUID, 3 nodes, green under awareness across both AZs, all three from the
// same bootstrap list, which each drops once it has joined.
func (d *demo) formed(ctx context.Context) error {
	ids := d.nodes[:demoNodes]
	v, err := d.waitCluster(ctx, ids)
	if err != nil {
		return err
	}
	d.uuid = v.UUID
	d.printCluster(ctx, ids, v)
	zones := map[string]bool{}
	for _, x := range v.Nodes {
		zones[x.Attributes["aws_availability_zone"]] = true
	}
	if len(zones) != 2 || zones[""] {
		return fmt.Errorf("the nodes' aws_availability_zone attributes span %v, want the two AZs", zones)
	}
	var lists []string
	for i, id := range ids {
		st, err := d.bootState(ctx, id)
		if err != nil {
			return err
		}
		b := st.Bootstrap
		if b == nil || b.Mode != "slots" {
			return fmt.Errorf("node %d: bootstrap decision %+v, want a slot of the first cluster", i+1, b)
		}
		lists = append(lists, strings.Join(b.InitialMasterNodes, ","))
		fmt.Printf("    node %d: claimed %s, bootstrapped from [%s]\n", i+1, b.Slot, lists[i])
	}
	for _, l := range lists[1:] {
		if l != lists[0] {
			return fmt.Errorf("the nodes bootstrapped from different lists: %v", lists)
		}
	}
	for i, id := range ids {
		if err := d.waitJoined(ctx, id, v.UUID); err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
	}
	fmt.Printf("    each node recorded cluster %s in %s and removed cluster.initial_master_nodes from elasticsearch.yml (esnode joined)\n", v.UUID, boot.JoinedPath)
	return nil
}

func (d *demo) bootState(ctx context.Context, id string) (*boot.State, error) {
	out, err := d.lc.Instance(id).Exec(ctx, "cat "+boot.StatePath)
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", id, boot.StatePath, err)
	}
	var st boot.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", id, boot.StatePath, err)
	}
	return &st, nil
}

// waitJoined waits for esnode joined's record of uuid, then checks no
// active initial_master_nodes line is left.
func (d *demo) waitJoined(ctx context.Context, id, uuid string) error {
	inst := d.lc.Instance(id)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _ := inst.Exec(ctx, "cat "+boot.JoinedPath+" 2>/dev/null")
		var j boot.Joined
		if json.Unmarshal([]byte(out), &j) == nil && j.ClusterUUID != "" {
			if j.ClusterUUID != uuid {
				return fmt.Errorf("%s records cluster %s, want %s", boot.JoinedPath, j.ClusterUUID, uuid)
			}
			l, _ := inst.Exec(ctx, "grep -E '^[[:space:]]*cluster\\.initial_master_nodes' "+boot.ElasticsearchYML+" || true")
			if strings.TrimSpace(l) != "" {
				return fmt.Errorf("joined, yet elasticsearch.yml keeps %q", strings.TrimSpace(l))
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s two minutes after the cluster formed", boot.JoinedPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// joinLate launches node 4 (zone b) into the running cluster: it finds
// every slot owned, writes no bootstrap list and joins the same cluster.
func (d *demo) joinLate(ctx context.Context) error {
	ids, err := d.runNodes(ctx, "", 1)
	if err != nil {
		return err
	}
	d.nodes = append(d.nodes, ids...)
	id := ids[0]
	fmt.Printf("    node 4: %s in %s, userdata empty\n", id, d.subnetDesc(1))
	if err := d.waitRunning(ctx, ids); err != nil {
		return err
	}
	v, err := d.waitCluster(ctx, d.nodes)
	if err != nil {
		return err
	}
	if v.UUID != d.uuid {
		return fmt.Errorf("the cluster's UUID is %s after node 4 joined, was %s: a second cluster", v.UUID, d.uuid)
	}
	st, err := d.bootState(ctx, id)
	if err != nil {
		return err
	}
	if st.Bootstrap == nil || st.Bootstrap.Mode != "join-only" || len(st.Bootstrap.InitialMasterNodes) > 0 {
		return fmt.Errorf("node 4: bootstrap decision %+v, want join-only", st.Bootstrap)
	}
	fmt.Printf("    node 4: %s\n", st.Bootstrap.Reason)
	d.printCluster(ctx, d.nodes, v)
	if err := d.checkNode(ctx, 4, id); err != nil {
		return err
	}
	return d.waitJoined(ctx, id, v.UUID)
}

// failedBoot launches a node whose userdata esnode boot refuses: the unit
// fails, Elasticsearch is never started (the fail-closed drop-in), the
// cluster is unchanged. The node is then terminated.
func (d *demo) failedBoot(ctx context.Context) error {
	const ud = "heap_percent=500\n"
	ids, err := d.runNodes(ctx, ud, 0)
	if err != nil {
		return err
	}
	d.failed = ids[0]
	fmt.Printf("    node 5: %s, userdata %q (out of range)\n", d.failed, strings.TrimSpace(ud))
	if err := d.waitRunning(ctx, ids); err != nil {
		return err
	}
	inst := d.lc.Instance(d.failed)
	var state string
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(state, "ActiveState=failed") {
		out, _ := inst.Exec(ctx, "systemctl show -p ActiveState -p Result esnode-boot")
		state = strings.Join(strings.Fields(out), " ")
		if strings.Contains(state, "ActiveState=active") {
			return fmt.Errorf("node 5: esnode boot succeeded with userdata %q", ud)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node 5: esnode-boot not failed after 3 minutes (%s)", state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	journal, _ := inst.Exec(ctx, "journalctl -u esnode-boot -u elasticsearch -o cat --no-pager | tail -n 6")
	printIndented(journal)
	es, _ := inst.Exec(ctx, "systemctl is-active elasticsearch; ss -Hltn '( sport = :9200 or sport = :9300 )' | wc -l")
	f := strings.Fields(es)
	if len(f) != 2 || f[0] == "active" || f[1] != "0" {
		return fmt.Errorf("node 5: after a failed esnode boot elasticsearch is %q", es)
	}
	fmt.Printf("    node 5: esnode-boot %s; elasticsearch %s, nothing listens on 9200/9300\n", state, f[0])
	v, err := d.waitCluster(ctx, d.nodes)
	if err != nil {
		return err
	}
	fmt.Printf("    the cluster is unchanged: %s, %d nodes, %s\n", v.UUID, v.Health.Nodes, v.Health.Status)
	if _, err := d.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		return err
	}
	if err := ec2.NewInstanceTerminatedWaiter(d.ec2).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, 3*time.Minute); err != nil {
		return err
	}
	fmt.Printf("    node 5 terminated (the audit that follows covers the cluster's four nodes)\n")
	d.failed = ""
	return nil
}
