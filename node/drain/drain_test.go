package drain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeES is a test double of the REST calls a drain makes: the persistent
// exclusion setting, voting exclusions, /_cat/shards rows that move off an
// excluded node one per read (as relocation does), and health.
type fakeES struct {
	mu        sync.Mutex
	exclude   string
	voting    []string
	calls     []string
	shards    map[string]string // shard id -> node ("a -> 10.0.0.2 id b" while relocating)
	target    string            // where excluded shards move
	health    string
	fail      map[string]int // path prefix -> failures left
	stuck     bool           // shards never move
	votingAPI string         // "path" or "query"
	present   []string       // node ids in the cluster state (voting exclusions hold ids = names)
}

func (f *fakeES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := r.Method + " " + r.URL.RequestURI()
	f.calls = append(f.calls, call)
	for p, n := range f.fail {
		if n > 0 && strings.HasPrefix(call, p) {
			f.fail[p] = n - 1
			http.Error(w, `{"error":"injected"}`, http.StatusInternalServerError)
			return
		}
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/_cluster/settings":
		p := map[string]any{}
		if f.exclude != "" {
			p[excludeSetting] = f.exclude
		}
		json.NewEncoder(w).Encode(map[string]any{"persistent": p, "transient": map[string]any{}})
	case r.Method == "PUT" && r.URL.Path == "/_cluster/settings":
		var body struct {
			Persistent map[string]*string `json:"persistent"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		v, ok := body.Persistent[excludeSetting]
		if !ok {
			http.Error(w, "unexpected body", 400)
			return
		}
		f.exclude = ""
		if v != nil {
			f.exclude = *v
		}
		fmt.Fprint(w, `{"acknowledged":true}`)
	case r.URL.Path == "/_cluster/voting_config_exclusions" && r.Method == "POST":
		f.voting = append(f.voting, r.URL.Query().Get("node_names"))
		f.votingAPI = "query"
	case strings.HasPrefix(r.URL.Path, "/_cluster/voting_config_exclusions/") && r.Method == "POST":
		f.voting = append(f.voting, strings.TrimPrefix(r.URL.Path, "/_cluster/voting_config_exclusions/"))
		f.votingAPI = "path"
	case r.URL.Path == "/_cluster/voting_config_exclusions" && r.Method == "DELETE":
		f.voting = nil
	case r.Method == "GET" && r.URL.Path == "/_cluster/state/metadata,nodes":
		ex := []map[string]string{}
		for _, v := range f.voting {
			ex = append(ex, map[string]string{"node_id": v, "node_name": v})
		}
		nodes := map[string]any{}
		for _, n := range f.present {
			nodes[n] = map[string]string{"name": n}
		}
		json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"cluster_coordination": map[string]any{"voting_config_exclusions": ex}}, "nodes": nodes})
	case r.URL.Path == "/_cat/shards":
		var rows []map[string]any
		for id, node := range f.shards {
			rows = append(rows, map[string]any{"index": "logs", "shard": id, "prirep": "p", "state": "STARTED", "node": node})
		}
		json.NewEncoder(w).Encode(rows)
		f.relocate()
	case r.URL.Path == "/_cluster/health":
		fmt.Fprintf(w, `{"status":%q}`, f.health)
	default:
		http.Error(w, "not served by the fake: "+call, 404)
	}
}

// relocate moves one shard a step: excluded node -> relocating -> target.
func (f *fakeES) relocate() {
	if f.stuck {
		return
	}
	for id, node := range f.shards {
		if strings.Contains(node, " -> ") {
			f.shards[id] = f.target
			return
		}
	}
	for id, node := range f.shards {
		if node != "" && strings.Contains(","+f.exclude+",", ","+node+",") {
			f.shards[id] = node + " -> 10.0.0.9 xyz " + f.target
			return
		}
	}
}

func (f *fakeES) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

type fakeHook struct {
	mu         sync.Mutex
	beats      int
	completed  []string
	failBefore int
}

func (h *fakeHook) Heartbeat(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.beats++
	return nil
}

func (h *fakeHook) Complete(_ context.Context, r string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failBefore > 0 {
		h.failBefore--
		return errors.New("injected: Rate exceeded")
	}
	h.completed = append(h.completed, r)
	return nil
}

func newCluster(t *testing.T, f *fakeES, major, minor int) *ESClient {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &ESClient{BaseURL: srv.URL, Major: major, Minor: minor, Client: srv.Client()}
}

var fast = Options{Timeout: 3 * time.Second, HeartbeatEvery: 20 * time.Millisecond, Poll: 5 * time.Millisecond}

func TestDrainMovesShardsThenCompletes(t *testing.T) {
	f := &fakeES{exclude: "es-old", target: "es-2", health: "green",
		shards: map[string]string{"0": "es-1", "1": "es-1", "2": "es-2"}}
	h := &fakeHook{}
	var out bytes.Buffer
	o := fast
	o.Out = &out
	if err := Drain(context.Background(), newCluster(t, f, 8, 15), h, Node{Name: "es-1", MasterEligible: true, Voting: true}, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if f.exclude != "es-old,es-1" {
		t.Errorf("exclusions %q: another node's entry lost, or ours missing", f.exclude)
	}
	if len(f.voting) != 1 || f.voting[0] != "es-1" || f.votingAPI != "query" {
		t.Errorf("voting exclusions %v via %s, want es-1 via node_names", f.voting, f.votingAPI)
	}
	for id, node := range f.shards {
		if node != "es-2" {
			t.Errorf("shard %s on %q", id, node)
		}
	}
	if len(h.completed) != 1 || h.completed[0] != "CONTINUE" {
		t.Errorf("completed %v, want one CONTINUE", h.completed)
	}
	for _, want := range []string{"es-1 excluded from shard allocation", "excluded from the voting configuration", "holds no shard and the cluster is green", "completed with CONTINUE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDrainHeartbeatsWhileWaitingAndGivesUp(t *testing.T) {
	f := &fakeES{target: "es-2", health: "yellow", stuck: true, shards: map[string]string{"0": "es-1"}}
	h := &fakeHook{}
	o := fast
	o.Timeout = 300 * time.Millisecond
	o.HeartbeatEvery = 10 * time.Millisecond
	err := Drain(context.Background(), newCluster(t, f, 7, 17), h, Node{Name: "es-1"}, o)
	if !errors.Is(err, ErrNotDrained) || !strings.Contains(err.Error(), "1 shard(s) still on es-1 (cluster yellow)") ||
		!strings.Contains(err.Error(), "default result applies") {
		t.Fatalf("err = %v", err)
	}
	if len(h.completed) != 0 {
		t.Errorf("completed %v after giving up", h.completed)
	}
	if h.beats < 2 {
		t.Errorf("%d heartbeats in 300ms at 10ms, want several", h.beats)
	}
	if f.count("POST /_cluster/voting_config_exclusions") != 0 {
		t.Error("a node that is not master-eligible got a voting exclusion")
	}
}

func TestDrainWaitsWhileRed(t *testing.T) {
	f := &fakeES{target: "es-2", health: "red", shards: map[string]string{}}
	h := &fakeHook{}
	o := fast
	o.Timeout = 100 * time.Millisecond
	err := Drain(context.Background(), newCluster(t, f, 8, 15), h, Node{Name: "es-1"}, o)
	if !errors.Is(err, ErrNotDrained) || !strings.Contains(err.Error(), "the cluster is red") {
		t.Fatalf("err = %v", err)
	}
	if len(h.completed) != 0 {
		t.Error("completed while red")
	}
	// Turns green: the next drain completes at once.
	f.mu.Lock()
	f.health = "green"
	f.mu.Unlock()
	if err := Drain(context.Background(), newCluster(t, f, 8, 15), h, Node{Name: "es-1"}, fast); err != nil || len(h.completed) != 1 {
		t.Fatalf("err = %v, completed %v", err, h.completed)
	}
}

func TestDrainRetriesFailures(t *testing.T) {
	f := &fakeES{target: "es-2", health: "green", shards: map[string]string{"0": "es-1"},
		fail: map[string]int{"PUT /_cluster/settings": 2, "GET /_cluster/health": 1, "GET /_cat/shards": 1}}
	h := &fakeHook{failBefore: 2}
	var out bytes.Buffer
	o := fast
	o.Out = &out
	if err := Drain(context.Background(), newCluster(t, f, 6, 8), h, Node{Name: "es-1", MasterEligible: true, Voting: false}, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(h.completed) != 1 {
		t.Errorf("completed %v", h.completed)
	}
	for _, want := range []string{"exclude the node from shard allocation failed (will retry)", "500 Internal Server Error", "complete the lifecycle action failed (will retry): injected: Rate exceeded"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if f.count("POST /_cluster/voting_config_exclusions") != 0 {
		t.Error("6.x has no voting configuration, but one was excluded from")
	}
}

func TestDrainRefusesUnnamedNode(t *testing.T) {
	if err := Drain(context.Background(), &ESClient{}, &fakeHook{}, Node{}, fast); err == nil || !strings.Contains(err.Error(), "boot.json") {
		t.Errorf("err = %v", err)
	}
}

func TestVotingExclusionAPIByVersion(t *testing.T) {
	for _, tc := range []struct {
		major, minor int
		api          string
	}{{7, 5, "path"}, {7, 8, "query"}, {8, 15, "query"}} {
		f := &fakeES{}
		if err := newCluster(t, f, tc.major, tc.minor).ExcludeFromVoting(context.Background(), "es 1"); err != nil {
			t.Fatal(err)
		}
		if f.votingAPI != tc.api || len(f.voting) != 1 || f.voting[0] != "es 1" {
			t.Errorf("%d.%d: %s %v, want %s", tc.major, tc.minor, f.votingAPI, f.voting, tc.api)
		}
	}
}

func TestShardsOnCountsRelocatingSource(t *testing.T) {
	f := &fakeES{stuck: true, shards: map[string]string{"0": "es-1", "1": "es-1 -> 10.0.0.9 xyz es-2", "2": "es-10", "3": ""}}
	n, err := newCluster(t, f, 8, 15).ShardsOn(context.Background(), "es-1")
	if err != nil || n != 2 {
		t.Errorf("ShardsOn = %d, %v; want 2 (es-10 and unassigned not counted)", n, err)
	}
}

func TestUndrainTakesBackOnlyItsOwnExclusion(t *testing.T) {
	f := &fakeES{exclude: "es-3,es-1", voting: []string{"es-1"}}
	c := newCluster(t, f, 8, 15)
	var out bytes.Buffer
	if err := Undrain(context.Background(), c, Node{Name: "es-1", MasterEligible: true, Voting: true}, &out); err != nil {
		t.Fatal(err)
	}
	if f.exclude != "es-3" || f.voting != nil {
		t.Errorf("exclude %q voting %v", f.exclude, f.voting)
	}
	// Not excluded: nothing written.
	puts := f.count("PUT ")
	if err := Undrain(context.Background(), c, Node{Name: "es-1"}, nil); err != nil || f.count("PUT ") != puts {
		t.Errorf("second undrain: %v, %d writes", err, f.count("PUT ")-puts)
	}
	// The last name resets the setting to null.
	if err := Undrain(context.Background(), c, Node{Name: "es-3"}, nil); err != nil || f.exclude != "" {
		t.Errorf("exclude %q, %v", f.exclude, err)
	}
}

func TestWatchDrainsOnceOnTerminatedAndUndrainsInService(t *testing.T) {
	f := &fakeES{target: "es-2", health: "green", shards: map[string]string{"0": "es-1"}}
	h := &fakeHook{}
	states := []string{"", "InService", "Terminated", "Terminated", "Terminated", "InService", "InService"}
	var mu sync.Mutex
	i := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	state := func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if i >= len(states) {
			cancel()
			return "InService", nil
		}
		s := states[i]
		i++
		if s == "" {
			return "", errors.New("injected: IMDS unreachable")
		}
		return s, nil
	}
	hooks := 0
	var out bytes.Buffer
	err := Watch(ctx, WatchOptions{
		State: state, Cluster: newCluster(t, f, 8, 15), Node: Node{Name: "es-1"}, Drain: fast, Poll: time.Millisecond, Out: &out,
		Hook: func(context.Context) (Hook, error) { hooks++; return h, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if hooks != 1 || len(h.completed) != 1 {
		t.Errorf("%d hooks, completed %v: want one drain for three Terminated reads", hooks, h.completed)
	}
	if f.exclude != "" {
		t.Errorf("back InService but still excluded: %q", f.exclude)
	}
	for _, want := range []string{"injected: IMDS unreachable (retrying", "target lifecycle state Terminated: draining es-1", "es-1 back in service"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// Voting exclusions of nodes that have left are cleared before the drain
// adds its own (Elasticsearch allows at most 10); one of a node still in the
// cluster (another drain under way) is kept.
func TestDrainClearsDepartedVotingExclusions(t *testing.T) {
	f := &fakeES{target: "es-2", health: "green", shards: map[string]string{}, voting: []string{"i-gone-1", "i-gone-2"}, present: []string{"es-1", "es-2"}}
	var out bytes.Buffer
	o := fast
	o.Out = &out
	if err := Drain(context.Background(), newCluster(t, f, 8, 15), &fakeHook{}, Node{Name: "es-1", MasterEligible: true, Voting: true}, o); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.voting) != "[es-1]" || f.count("DELETE /_cluster/voting_config_exclusions") != 1 ||
		!strings.Contains(out.String(), "cleared 2 voting exclusion(s) of nodes that have left the cluster") {
		t.Errorf("voting %v after the drain, output:\n%s", f.voting, out.String())
	}
	g := &fakeES{target: "es-2", health: "green", shards: map[string]string{}, voting: []string{"es-3"}, present: []string{"es-1", "es-3"}}
	if err := Drain(context.Background(), newCluster(t, g, 8, 15), &fakeHook{}, Node{Name: "es-1", MasterEligible: true, Voting: true}, fast); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(g.voting) != "[es-3 es-1]" || g.count("DELETE ") != 0 {
		t.Errorf("es-3 is still draining, its exclusion must stay: %v", g.voting)
	}
	// The state unreadable: the drain goes on and says so.
	h := &fakeES{target: "es-2", health: "green", shards: map[string]string{}, fail: map[string]int{"GET /_cluster/state": 1}}
	out.Reset()
	if err := Drain(context.Background(), newCluster(t, h, 8, 15), &fakeHook{}, Node{Name: "es-1", MasterEligible: true, Voting: true}, o); err != nil ||
		!strings.Contains(out.String(), "clearing the voting exclusions of departed nodes failed (continuing)") {
		t.Errorf("%v\n%s", err, out.String())
	}
}

func TestESClientCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "elastic" || p != "s3cret-pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="security" charset="UTF-8"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"type":"security_exception"},"status":401}`))
			return
		}
		w.Write([]byte(`{"persistent":{}}`))
	}))
	defer srv.Close()
	anon := &ESClient{BaseURL: srv.URL, Major: 8, Minor: 15}
	if _, err := anon.exclusions(context.Background()); err == nil || !strings.Contains(err.Error(), "security.elastic_password") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("without credentials: %v, want the 401 explained with the setting to fix", err)
	}
	authed := &ESClient{BaseURL: srv.URL, Major: 8, Minor: 15, Username: "elastic", Password: "s3cret-pw"}
	if _, err := authed.exclusions(context.Background()); err != nil {
		t.Fatalf("with the elastic password: %v", err)
	}
}
