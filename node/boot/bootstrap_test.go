package boot

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// emulatorSlots is Parameter Store from the EC2/SSM emulator, through the
// same SSMParams client boot uses on EC2.
func emulatorSlots(t *testing.T) *SSMParams {
	t.Helper()
	srv := ec2emu.New(ec2emu.Options{})
	url := srv.Start()
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDIN")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "stand-in")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	p, err := NewSSMParams(context.Background(), "us-east-1", url, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func bootstrapInput(version, id string, masters int) *gathered {
	v, _ := spec.ParseVersion(version)
	n := &spec.Node{Elasticsearch: spec.Elasticsearch{Version: version}, Cluster: spec.Cluster{MasterNodes: masters}}
	n.SetDefaults()
	return &gathered{node: n, ver: v, cluster: "logs-prod", md: &Metadata{InstanceID: id}}
}

// TestBootstrapSlotsOneListForAll launches five master-eligible nodes at
// once for a three-master cluster: exactly three own a slot and all three
// write the same list; the other two only join.
func TestBootstrapSlotsOneListForAll(t *testing.T) {
	store := emulatorSlots(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := []string{"i-0e", "i-0a", "i-0d", "i-0b", "i-0c"}
	decs := make([]*BootstrapDecision, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			decs[i], errs[i] = decideBootstrap(ctx, bootstrapInput("8.15.3", id, 3), nil, nil, "", bootstrapOptions{Store: store, Poll: 20 * time.Millisecond})
		}()
	}
	wg.Wait()
	var lists [][]string
	joiners := 0
	for i, d := range decs {
		if errs[i] != nil {
			t.Fatalf("%s: %v", ids[i], errs[i])
		}
		switch d.Mode {
		case "slots":
			lists = append(lists, d.InitialMasterNodes)
		case "join-only":
			joiners++
			if d.InitialMasterNodes != nil || !strings.Contains(d.Reason, "all 3 bootstrap slots (/esnode/bootstrap/logs-prod/*) are owned by other instances") {
				t.Errorf("%s: %+v", ids[i], d)
			}
		default:
			t.Errorf("%s: mode %q", ids[i], d.Mode)
		}
	}
	if len(lists) != 3 || joiners != 2 {
		t.Fatalf("%d slot owners and %d joiners, want 3 and 2: %+v", len(lists), joiners, decs)
	}
	for _, l := range lists[1:] {
		if !reflect.DeepEqual(l, lists[0]) {
			t.Fatalf("slot owners computed different lists: %v", lists)
		}
	}
	if len(lists[0]) != 3 {
		t.Fatalf("list %v", lists[0])
	}

	// A node launched after formation (or a replacement) never bootstraps.
	late, err := decideBootstrap(ctx, bootstrapInput("8.15.3", "i-0f", 3), nil, nil, "", bootstrapOptions{Store: store})
	if err != nil || late.Mode != "join-only" || late.InitialMasterNodes != nil {
		t.Errorf("late node: %+v, %v", late, err)
	}
	// A slot owner that reboots before formation gets its slot and list back.
	again, err := decideBootstrap(ctx, bootstrapInput("8.15.3", lists[0][0], 3), nil, nil, "", bootstrapOptions{Store: store})
	if err != nil || again.Mode != "slots" || !reflect.DeepEqual(again.InitialMasterNodes, lists[0]) {
		t.Errorf("rebooted owner: %+v, %v", again, err)
	}
}

// TestBootstrapPartialLaunchWaitsAndSaysWhy: two of three masters launched;
// the owners wait (never a two-node list of their own) and say why.
func TestBootstrapPartialLaunchWaitsAndSaysWhy(t *testing.T) {
	store := emulatorSlots(t)
	ctx := context.Background()
	var progress []string
	o := bootstrapOptions{Store: store, Poll: 10 * time.Millisecond, Wait: 200 * time.Millisecond,
		Progress: func(f string, a ...any) { progress = append(progress, fmt.Sprintf(f, a...)) }}
	if _, err := decideBootstrap(ctx, bootstrapInput("7.17.25", "i-01", 3), nil, nil, "", bootstrapOptions{Store: store, Wait: time.Millisecond}); err == nil {
		t.Fatal("the first node bootstrapped alone")
	}
	_, err := decideBootstrap(ctx, bootstrapInput("7.17.25", "i-02", 3), nil, nil, "", o)
	want := "waited 200ms for 3 master-eligible nodes of cluster logs-prod to claim the bootstrap slots, and only 2 did (i-01, i-02); launch the missing nodes (the auto-scaling group's desired capacity must be at least cluster.master_nodes = 3)"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant\n%s", err, want)
	}
	if len(progress) == 0 || !strings.Contains(progress[0], "waiting for 1 more master-eligible node(s) of cluster logs-prod") {
		t.Errorf("progress: %q", progress)
	}
	// The third node completes the list for everyone.
	d, err := decideBootstrap(ctx, bootstrapInput("7.17.25", "i-03", 3), nil, nil, "", o)
	if err != nil || !reflect.DeepEqual(d.InitialMasterNodes, []string{"i-01", "i-02", "i-03"}) {
		t.Fatalf("third node: %+v, %v", d, err)
	}
}

// TestBootstrapNeverAfterJoining: a joined node, a node that is not
// master-eligible, a fixed list and 6.x never touch the slots (no store).
func TestBootstrapNeverAfterJoining(t *testing.T) {
	ctx := context.Background()
	in := bootstrapInput("8.15.3", "i-01", 3)
	in.joined = &Joined{ClusterName: "logs-prod", ClusterUUID: "uuid-1"}
	if d, err := decideBootstrap(ctx, in, nil, nil, "", bootstrapOptions{}); err != nil || d.Mode != "joined" || d.InitialMasterNodes != nil {
		t.Errorf("joined: %+v %v", d, err)
	}
	if d, err := decideBootstrap(ctx, bootstrapInput("8.15.3", "i-01", 3), []string{"data", "ingest"}, nil, "", bootstrapOptions{}); err != nil || d.Mode != "join-only" {
		t.Errorf("data node: %+v %v", d, err)
	}
	if d, err := decideBootstrap(ctx, bootstrapInput("8.15.3", "i-01", 3), nil, []string{"i-01", "i-02"}, "userdata", bootstrapOptions{}); err != nil || d.Mode != "userdata" || len(d.InitialMasterNodes) != 2 {
		t.Errorf("userdata list: %+v %v", d, err)
	}
	if d, err := decideBootstrap(ctx, bootstrapInput("8.15.3", "i-01", 0), nil, nil, "", bootstrapOptions{}); err != nil || d.Mode != "off" {
		t.Errorf("no master_nodes: %+v %v", d, err)
	}
	d, err := decideBootstrap(ctx, bootstrapInput("6.8.23", "i-01", 5), nil, nil, "", bootstrapOptions{})
	if err != nil || d.Mode != "zen" || d.MinimumMasterNodes != 3 {
		t.Errorf("6.x: %+v %v", d, err)
	}
}
