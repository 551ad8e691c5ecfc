package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/internal/plugintest"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
)

// TestE2EDemoPipeline runs `make demo`'s whole flow: bake example.pkr.hcl
// through the plugin's builder and provisioner on the local cloud, three
// nodes in two AZs with empty userdata, esnode boot on each, the three
// forming one cluster, a fourth joining later, a fifth whose boot fails,
// drift of node 3, esaudit over SSH. run fails unless the image is
// available with the manifest summary tags and its id in the SSM parameter
// (checkImage), each node runs that manifest with network.host = its IP,
// heap = its share of its RAM and the ES ports open to its VPC only
// (checkNode), the three nodes' APIs report one green cluster (one UUID,
// 3 nodes, both AZs' attributes) from one bootstrap list that each dropped
// once joined (formed), node 4 joins that cluster without bootstrapping
// (joinLate), node 5's failed boot leaves Elasticsearch stopped
// (failedBoot), the clean nodes have no violations, node 3 has exactly
// driftRules, and the emulator's leak report is empty at the end (cleanup).
func TestE2EDemoPipeline(t *testing.T) {
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	reports := t.TempDir()
	if err := run(ctx, plugintest.Binary(t), "", "../../example.pkr.hcl", reports, false); err != nil {
		t.Fatalf("demo pipeline: %v", err)
	}
	for _, f := range []string{"report.txt", "report.json", "report.sarif", "report.xml", "report.html"} {
		if st, err := os.Stat(filepath.Join(reports, f)); err != nil || st.Size() == 0 {
			t.Errorf("report %s missing or empty: %v", f, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(reports, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res report.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if res.SchemaVersion != report.SchemaVersion || len(res.Nodes) != 4 {
		t.Errorf("report.json: schema %q with %d nodes, want %s with 4 (the cluster)", res.SchemaVersion, len(res.Nodes), report.SchemaVersion)
	}
}

// TestE2EDemoInterruptCleansUp is Ctrl-C after the nodes are launched from
// the baked image: run must return only the interruption (cleanup found
// no leak and closed the cloud), and none of the cloud's network
// namespaces may be left on the host.
func TestE2EDemoInterruptCleansUp(t *testing.T) {
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var cloudID string
	var nodes []string
	beforeStep = func(d *demo, name string) {
		if d.lc != nil {
			cloudID = d.lc.Cloud().ID()
		}
		if strings.HasPrefix(name, "wait for esnode boot") {
			nodes = append(nodes, d.nodes...)
			cancel() // what Ctrl-C does to main's context
		}
	}
	defer func() { beforeStep = nil }()
	err := run(ctx, plugintest.Binary(t), "", "../../example.pkr.hcl", t.TempDir(), false)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v, want the interruption", err)
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != nil && !errors.Is(e, context.Canceled) {
				t.Errorf("cleanup after the interrupt failed: %v", e)
			}
		}
	}
	if cloudID == "" || len(nodes) != 3 {
		t.Fatalf("interrupted with cloud %q and nodes %v: the pipeline did not get as far as launching three nodes", cloudID, nodes)
	}
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), "-"+cloudID+"-") {
			t.Errorf("network namespace %s of the interrupted demo is still on the host", e.Name())
		}
	}
}
