package standin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/node/drain"
)

// The shard model's rules one by one (testdata/shards_test.py, Python's
// unittest over files/standin_shards.py).
func TestStandInShardModel(t *testing.T) {
	need(t, "python3")
	out, err := exec.Command("python3", "testdata/shards_test.py", "files").CombinedOutput()
	if err != nil {
		t.Fatalf("shard model tests failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OK") {
		t.Fatalf("no unittest verdict:\n%s", out)
	}
}

// do sends a request with a JSON body to n and decodes the answer into v.
func (c *standinCluster) do(n *standinNode, method, path, body string, v any) int {
	c.t.Helper()
	req, _ := http.NewRequest(method, fmt.Sprintf("http://%s:%d%s", n.ip, c.http, path), strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if v != nil {
		// Error answers need not fit v (a 503's status is a number).
		if err := json.Unmarshal(b.Bytes(), v); err != nil && resp.StatusCode/100 == 2 {
			c.t.Fatalf("%s %s: %v in %q", method, path, err, b.String())
		}
	}
	return resp.StatusCode
}

type healthView struct {
	Status       string `json:"status"`
	Nodes        int    `json:"number_of_nodes"`
	Active       int    `json:"active_shards"`
	Primaries    int    `json:"active_primary_shards"`
	Relocating   int    `json:"relocating_shards"`
	Initializing int    `json:"initializing_shards"`
	Unassigned   int    `json:"unassigned_shards"`
	TimedOut     bool   `json:"timed_out"`
}

// The shard model on a real four-node stand-in cluster in two zones, driven
// by esnode drain's own Elasticsearch client: an index is allocated one copy
// per zone; the drain's exclusion empties the elected master, which then
// leaves, and the next master keeps every shard; an index without replicas
// loses its shard for good when its node goes. (Two nodes per zone: with
// awareness on, the only node of a zone cannot be drained while it is in
// the cluster, as in Elasticsearch: the zone still counts, one copy each.)
func TestStandInShardsDrainAndLoss(t *testing.T) {
	c := newStandinCluster(t, "8.15.3")
	disc := "discovery.seed_providers: ec2\ndiscovery.ec2.tag.es_cluster: aardvark\ncluster.initial_master_nodes: [es-1, es-2, es-3]\n" +
		"cluster.routing.allocation.awareness.attributes: zone\n"
	byName := map[string]*standinNode{}
	var nodes []*standinNode
	for i := 1; i <= 4; i++ {
		zone := map[bool]string{true: "a", false: "b"}[i%2 == 1]
		n := c.start(c.launchInstance(map[string]int{"a": 1, "b": 2}[zone], "aardvark"), fmt.Sprintf("es-%d", i), "",
			disc+"node.attr.zone: "+zone+"\n", "ES_STANDIN_RECOVERY_SECONDS=1")
		nodes = append(nodes, n)
		byName[n.name] = n
	}
	views := c.waitFor("four nodes", func(v clusterView) bool { return len(v.Nodes) == 4 }, nodes...)
	masterID := views["es-1"].Master
	master := views["es-1"].Nodes[masterID].Name
	var other *standinNode
	for _, n := range nodes {
		if n.name != master {
			other = n
		}
	}
	var created map[string]any
	if code := c.do(other, "PUT", "/logs", `{"settings":{"number_of_shards":3,"number_of_replicas":1}}`, &created); code != 200 ||
		created["acknowledged"] != true || created["shards_acknowledged"] != true || created["index"] != "logs" {
		t.Fatalf("create index: %d %v", code, created)
	}
	var dup map[string]any
	if code := c.do(other, "PUT", "/logs", `{}`, &dup); code != 400 || !strings.Contains(fmt.Sprint(dup), "resource_already_exists_exception") {
		t.Errorf("second create: %d %v", code, dup)
	}
	if code := c.do(other, "PUT", "/raw", `{"settings":{"index":{"number_of_shards":1,"number_of_replicas":0}}}`, nil); code != 200 {
		t.Fatalf("create raw: %d", code)
	}
	var h healthView
	if code := c.do(other, "GET", "/_cluster/health?wait_for_status=green&timeout=30s", "", &h); code != 200 || h.Status != "green" || h.Active != 7 {
		t.Fatalf("health after create: %d %+v", code, h)
	}
	type shardRow struct{ Index, Shard, Prirep, State, Node string }
	rows := func(n *standinNode) []shardRow {
		var r []shardRow
		if code := c.do(n, "GET", "/_cat/shards?format=json&h=index,shard,prirep,state,node", "", &r); code != 200 {
			t.Fatalf("_cat/shards: %d", code)
		}
		return r
	}
	// Awareness: every shard of logs has one copy in each zone (es-2 and es-4 are zone b).
	onB := map[string]bool{}
	for _, r := range rows(other) {
		if r.Index == "logs" && (r.Node == "es-2" || r.Node == "es-4") {
			onB[r.Shard] = true
		}
	}
	if len(onB) != 3 {
		t.Errorf("zone b holds copies of shards %v of logs, want one of each: %+v", onB, rows(other))
	}

	// Drain the elected master with drain's client, as esnode drain does.
	es := &drain.ESClient{BaseURL: fmt.Sprintf("http://%s:%d", other.ip, c.http), Major: 8, Minor: 15}
	ctx := context.Background()
	start := time.Now()
	before, err := es.ShardsOn(ctx, master)
	if err != nil {
		t.Fatal(err)
	}
	if err := es.ExcludeFromAllocation(ctx, master); err != nil {
		t.Fatal(err)
	}
	if ex, err := es.Excluded(ctx, master); err != nil || !ex {
		t.Fatalf("Excluded(%s) = %v %v after the exclusion", master, ex, err)
	}
	if err := es.ExcludeFromVoting(ctx, master); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Metadata struct {
			Coordination struct {
				Config     []string `json:"last_committed_config"`
				Exclusions []struct {
					Name string `json:"node_name"`
				} `json:"voting_config_exclusions"`
			} `json:"cluster_coordination"`
		} `json:"metadata"`
	}
	c.do(other, "GET", "/_cluster/state", "", &st)
	if len(st.Metadata.Coordination.Exclusions) != 1 || st.Metadata.Coordination.Exclusions[0].Name != master ||
		slices.Contains(st.Metadata.Coordination.Config, masterID) || len(st.Metadata.Coordination.Config) != 3 {
		t.Errorf("voting exclusion of %s not in the state: %+v", master, st)
	}
	sawRelocating := false
	for {
		n, err := es.ShardsOn(ctx, master)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows(other) {
			sawRelocating = sawRelocating || strings.HasPrefix(r.Node, master+" -> ")
		}
		status, _ := es.Health(ctx)
		if n == 0 && status != "red" {
			break
		}
		if time.Since(start) > 40*time.Second {
			t.Fatalf("%s still holds %d shards (cluster %s): %+v", master, n, status, rows(other))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("drained %s: %d shard copies moved in %s", master, before, time.Since(start).Round(time.Millisecond))
	if before == 0 || !sawRelocating {
		t.Errorf("drain moved %d shards, relocation seen in _cat/shards: %v", before, sawRelocating)
	}
	byName[master].stop()
	var rest []*standinNode
	for _, n := range nodes {
		if n.name != master {
			rest = append(rest, n)
		}
	}
	c.waitFor("the three others elect a new master", func(v clusterView) bool {
		return len(v.Nodes) == 3 && v.Master != "" && v.Nodes[v.Master].Name != master
	}, rest...)
	if code := c.do(rest[0], "GET", "/_cluster/health?wait_for_status=green&timeout=30s", "", &h); code != 200 || h.Active != 7 || h.Primaries != 4 {
		t.Fatalf("after the drained master left: %d %+v\n%s", code, h, rest[0].out)
	}
	// The exclusions are the drain's to take back (Undrain); the new master kept them.
	var settings struct {
		Persistent map[string]any `json:"persistent"`
	}
	c.do(rest[0], "GET", "/_cluster/settings?flat_settings=true", "", &settings)
	if settings.Persistent["cluster.routing.allocation.exclude._name"] != master {
		t.Errorf("the new master lost the exclusion: %v", settings)
	}
	// The drained master is gone: the next drain clears its voting exclusion first.
	if k, err := es.ClearDepartedVotingExclusions(ctx); err != nil || k != 1 {
		t.Errorf("ClearDepartedVotingExclusions = %d, %v; want 1 (the departed master's)", k, err)
	}
	c.do(rest[0], "GET", "/_cluster/state", "", &st)
	if len(st.Metadata.Coordination.Exclusions) != 0 {
		t.Errorf("exclusions left: %+v", st.Metadata.Coordination.Exclusions)
	}
	if err := es.IncludeInAllocation(ctx, master); err != nil {
		t.Fatal(err)
	}
	if err := es.ClearVotingExclusions(ctx); err != nil {
		t.Fatal(err)
	}
	var nested map[string]any
	c.do(rest[0], "GET", "/_cluster/settings", "", &nested)
	if fmt.Sprint(nested) != "map[persistent:map[] transient:map[]]" {
		t.Errorf("settings after Undrain: %v", nested)
	}

	// The raw index (no replica): its node leaving without a drain loses it.
	// Undrain may have let it relocate: wait until its one copy is started
	// on a node (a stopped node's name would otherwise be nil here).
	var raw []shardRow
	var holder *standinNode
	for wait := time.Now().Add(30 * time.Second); ; {
		raw = raw[:0]
		for _, r := range rows(rest[0]) {
			if r.Index == "raw" {
				raw = append(raw, r)
			}
		}
		if len(raw) == 1 && raw[0].State == "STARTED" && byName[raw[0].Node] != nil && raw[0].Node != master {
			holder = byName[raw[0].Node]
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("raw has no one started copy on a running node within 30s: %+v", raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	survivor := rest[0]
	if survivor == holder {
		survivor = rest[1]
	}
	holder.stop()
	deadline := time.Now().Add(40 * time.Second)
	for {
		if c.do(survivor, "GET", "/_cluster/health", "", &h) == 200 && h.Status == "red" && h.Nodes == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("raw's only copy gone with %s: health %+v, want red", holder.name, h)
		}
		time.Sleep(300 * time.Millisecond)
	}
	var lost []map[string]any
	c.do(survivor, "GET", "/_cat/shards?format=json", "", &lost)
	for _, r := range lost {
		if r["index"] == "raw" && (r["state"] != "UNASSIGNED" || r["node"] != nil) {
			t.Errorf("raw's shard after its node left: %v", r)
		}
	}
	if code := c.do(survivor, "GET", "/_cluster/health?wait_for_status=green&timeout=2s", "", &h); code != 408 || !h.TimedOut {
		t.Errorf("wait_for_status=green on a red cluster: %d %+v, want 408 timed_out", code, h)
	}
}

// The requests esnode drain makes, answered as Elasticsearch answers them:
// bad voting exclusion requests, the 7.x path form, a Content-Type-less body.
func TestStandInClusterAPIErrors(t *testing.T) {
	for _, version := range []string{"7.17.25", "8.15.3"} {
		t.Run(version, func(t *testing.T) {
			c := newStandinCluster(t, version)
			n := c.start(fmt.Sprintf("127.88.5.%d", 10+len(version)), "es-1", "", "discovery.type: single-node\n")
			c.waitFor("single node", func(v clusterView) bool { return len(v.Nodes) == 1 }, n)
			var e map[string]any
			if code := c.do(n, "POST", "/_cluster/voting_config_exclusions", "", &e); code != 400 ||
				!strings.Contains(fmt.Sprint(e), "Please set node identifiers correctly. One and only one of [node_name], [node_names] and [node_ids] has to be set") {
				t.Errorf("POST without node_names: %d %v", code, e)
			}
			code := c.do(n, "POST", "/_cluster/voting_config_exclusions/es-1", "", &e)
			if version < "8" && code != 200 {
				t.Errorf("7.x path form: %d %v", code, e)
			}
			if version >= "8" && code != 400 {
				t.Errorf("8.x path form (removed): %d %v", code, e)
			}
			if code := c.do(n, "DELETE", "/_cluster/voting_config_exclusions?wait_for_removal=false", "", &e); code != 200 {
				t.Errorf("DELETE: %d %v", code, e)
			}
			if code := c.do(n, "PUT", "/_cluster/settings", `{"persistent":{"cluster.routing.allocation.exclude._nmae":"x"}}`, &e); code != 200 {
				t.Errorf("an attribute filter named _nmae is a node attribute filter, accepted: %d %v", code, e)
			}
			if code := c.do(n, "PUT", "/_cluster/settings", `{"persistent":{"cluster.routing.allocaton.exclude._name":"x"}}`, &e); code != 400 ||
				!strings.Contains(fmt.Sprint(e), "persistent setting [cluster.routing.allocaton.exclude._name], not recognized") {
				t.Errorf("unknown setting: %d %v", code, e)
			}
			req, _ := http.NewRequest("PUT", fmt.Sprintf("http://%s:%d/_cluster/settings", n.ip, c.http), strings.NewReader(`{"persistent":{}}`))
			req.Header.Set("Content-Type", "text/plain")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 406 {
				t.Errorf("a text/plain body: %d, want 406", resp.StatusCode)
			}
			if code := c.do(n, "PUT", "/Logs", "", &e); code != 400 || !strings.Contains(fmt.Sprint(e), "must be lowercase") {
				t.Errorf("PUT /Logs: %d %v", code, e)
			}
		})
	}
}
