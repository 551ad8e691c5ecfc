package boot

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// JoinedOptions configure WaitJoined.
type JoinedOptions struct {
	Root string
	// URL of the local node's HTTP API; default http://<local_ipv4>:<http_port>
	// from boot.json and the spec.
	URL string
	// Poll is how often the node is asked (default 5s).
	Poll time.Duration
	Out  io.Writer
	Now  func() time.Time
	// Client is the HTTP client (default one with a 5s timeout).
	Client *http.Client
}

// WaitJoined is the post-start half of the first-cluster bootstrap: it
// waits until the local node reports a cluster UUID (it joined or formed a
// cluster), records it in /etc/esnode/cluster.json and removes
// cluster.initial_master_nodes from elasticsearch.yml, so that nothing left
// on the node can bootstrap a cluster again (Elastic: "remove
// cluster.initial_master_nodes once the cluster has formed"). Running
// Elasticsearch read the file at start, so editing it now changes nothing
// until the next start, which then has no bootstrap list.
func WaitJoined(ctx context.Context, o JoinedOptions) (*Joined, error) {
	root := rootDir(o.Root)
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	if j, err := ReadJoined(root); err != nil || j != nil {
		if j != nil {
			fmt.Fprintf(out, "esnode joined: already recorded: cluster %s (uuid %s)\n", j.ClusterName, j.ClusterUUID)
		}
		return j, err
	}
	st, err := ReadState(root)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%s is missing: esnode boot has not run successfully on this node", StatePath)
	}
	url := o.URL
	if url == "" {
		n, err := readSpec(root)
		if err != nil {
			return nil, err
		}
		url = fmt.Sprintf("http://%s:%d/", st.LocalIPv4, n.Elasticsearch.HTTPPort)
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	poll := o.Poll
	if poll == 0 {
		poll = 5 * time.Second
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	var last string
	for {
		info, err := nodeInfo(ctx, client, url)
		switch {
		case err != nil:
			last = err.Error()
		case info.ClusterUUID == "" || info.ClusterUUID == "_na_":
			last = "the node has not joined a cluster yet (cluster_uuid " + info.ClusterUUID + ")"
		default:
			j := &Joined{ClusterName: info.ClusterName, ClusterUUID: info.ClusterUUID, NodeName: info.Name, JoinedAt: now().UTC()}
			if err := recordJoined(root, st, j); err != nil {
				return nil, err
			}
			fmt.Fprintf(out, "esnode joined: node %s is in cluster %s (uuid %s); removed cluster.initial_master_nodes\n", j.NodeName, j.ClusterName, j.ClusterUUID)
			return j, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the node at %s to join a cluster: %w (last: %s)", url, ctx.Err(), last)
		case <-time.After(poll):
		}
	}
}

type rootInfo struct {
	Name        string `json:"name"`
	ClusterName string `json:"cluster_name"`
	ClusterUUID string `json:"cluster_uuid"`
}

// nodeInfo reads GET / (RestMainAction), which every supported major
// answers with the node's cluster_uuid, "_na_" before it joined.
func nodeInfo(ctx context.Context, c *http.Client, url string) (*rootInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	var ri rootInfo
	if err := json.Unmarshal(b, &ri); err != nil {
		return nil, fmt.Errorf("GET %s: not Elasticsearch's JSON: %w", url, err)
	}
	return &ri, nil
}

// recordJoined writes cluster.json, then drops initial_master_nodes from
// the managed block and updates boot.json's sum of elasticsearch.yml so
// the edit is not reported as drift. The record comes first: if the node
// stops between the two, the next boot reads it and writes no list.
func recordJoined(root string, st *State, j *Joined) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(root, JoinedPath), append(b, '\n'), 0o644, false, 0o755); err != nil {
		return err
	}
	ymlPath := filepath.Join(root, ElasticsearchYML)
	old, err := os.ReadFile(ymlPath)
	if err != nil {
		return fmt.Errorf("read %s: %w", ElasticsearchYML, err)
	}
	nb := dropManagedKey(old, "cluster.initial_master_nodes")
	if string(nb) == string(old) {
		return nil
	}
	if err := writeAtomic(ymlPath, nb, 0o660, true, 0o755); err != nil {
		return err
	}
	for i, f := range st.Files {
		if f.Path == ElasticsearchYML {
			st.Files[i].SHA256 = sha256Hex(nb)
		}
	}
	sb, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(root, StatePath), append(sb, '\n'), 0o644, false, 0o755)
}

// dropManagedKey removes one key's line from inside the managed block.
func dropManagedKey(yml []byte, key string) []byte {
	lines := splitLines(string(yml))
	var out strings.Builder
	in := false
	for _, l := range lines {
		t := strings.TrimRight(l, "\r\n")
		switch {
		case strings.HasPrefix(t, beginPrefix):
			in = true
		case strings.HasPrefix(t, endPrefix):
			in = false
		case in && strings.HasPrefix(t, key+":"):
			continue
		}
		out.WriteString(l)
	}
	return []byte(out.String())
}
