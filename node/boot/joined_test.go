package boot

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitJoinedRemovesBootstrapList: once the node reports a cluster
// UUID, cluster.json is written and the list leaves elasticsearch.yml; the
// next boot then plans no list ("joined").
func TestWaitJoinedRemovesBootstrapList(t *testing.T) {
	root := t.TempDir()
	s, err := testYMLConfig("8.15.3").settings()
	if err != nil {
		t.Fatal(err)
	}
	s = append(s, setting{"cluster.initial_master_nodes", yamlList([]string{"i-01", "i-02", "i-03"})})
	yml, err := renderElasticsearchYML([]byte("path.data: /var/lib/elasticsearch\n"), s)
	if err != nil {
		t.Fatal(err)
	}
	for path, b := range map[string][]byte{ElasticsearchYML: yml} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, path), b, 0o660); err != nil {
			t.Fatal(err)
		}
	}
	st := &State{APIVersion: StateAPIVersion, InstanceID: "i-01", Files: []StateFile{{Path: ElasticsearchYML, SHA256: sha256Hex(yml)}}}
	sb, _ := json.Marshal(st)
	if err := writeAtomic(filepath.Join(root, StatePath), sb, 0o644, false, 0o755); err != nil {
		t.Fatal(err)
	}

	var calls atomic.Int32
	es := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uuid := "_na_"
		if calls.Add(1) > 2 {
			uuid = "Jf3x0lWvQyuYd2A7dC1m4w"
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"name": "i-01", "cluster_name": "logs-prod", "cluster_uuid": uuid})
	}))
	defer es.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := WaitJoined(ctx, JoinedOptions{Root: root, URL: es.URL, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if j.ClusterUUID != "Jf3x0lWvQyuYd2A7dC1m4w" || calls.Load() != 3 {
		t.Fatalf("joined %+v after %d calls", j, calls.Load())
	}
	after, _ := os.ReadFile(filepath.Join(root, ElasticsearchYML))
	if strings.Contains(string(after), "initial_master_nodes") || !strings.Contains(string(after), "cluster.name:") {
		t.Errorf("elasticsearch.yml after joining:\n%s", after)
	}
	rec, err := ReadJoined(root)
	if err != nil || rec == nil || rec.ClusterUUID != j.ClusterUUID {
		t.Fatalf("cluster.json: %+v %v", rec, err)
	}
	st2, _ := ReadState(root)
	if st2.Files[0].SHA256 != sha256Hex(after) {
		t.Error("boot.json still records the old elasticsearch.yml sum (drift would be reported)")
	}
	in := bootstrapInput("8.15.3", "i-01", 3)
	in.joined = rec
	if d, err := decideBootstrap(ctx, in, nil, nil, "", bootstrapOptions{}); err != nil || d.Mode != "joined" || len(d.InitialMasterNodes) != 0 {
		t.Errorf("next boot after joining: %+v %v", d, err)
	}

	// A damaged record fails closed.
	if err := os.WriteFile(filepath.Join(root, JoinedPath), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJoined(root); err == nil || !strings.Contains(err.Error(), "delete it only if this node never joined a cluster") {
		t.Errorf("damaged record: %v", err)
	}
}
