package drain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// ESClient is Cluster over Elasticsearch's REST API.
type ESClient struct {
	// BaseURL is the local node's HTTP address, e.g. http://10.0.1.5:9200.
	BaseURL string
	// Major is the Elasticsearch major version: it picks the voting
	// exclusion API (7.0-7.7 by path, 7.8+ by node_names).
	Major, Minor int
	Client       *http.Client
	// Username and Password, when set, go as Basic auth (security on).
	Username, Password string
}

const excludeSetting = "cluster.routing.allocation.exclude._name"

func (e *ESClient) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(e.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.Username != "" {
		req.SetBasicAuth(e.Username, e.Password)
	}
	c := e.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("%s %s: %s: Elasticsearch refused the drain's credentials; name the elastic user's password in the spec's security.elastic_password (or userdata security_elastic_password) so esnode drain can read it with the instance role", method, path, resp.Status)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, truncate(strings.TrimSpace(string(b)), 300))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: not Elasticsearch's JSON: %w", method, path, err)
		}
	}
	return nil
}

// exclusions reads the persistent exclusion list (flat settings).
func (e *ESClient) exclusions(ctx context.Context) ([]string, error) {
	var s struct {
		Persistent map[string]any `json:"persistent"`
	}
	if err := e.do(ctx, http.MethodGet, "/_cluster/settings?flat_settings=true", nil, &s); err != nil {
		return nil, err
	}
	v, _ := s.Persistent[excludeSetting].(string)
	var names []string
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

func (e *ESClient) putExclusions(ctx context.Context, names []string) error {
	var v any = strings.Join(names, ",")
	if len(names) == 0 {
		v = nil // null resets the setting
	}
	return e.do(ctx, http.MethodPut, "/_cluster/settings", map[string]any{"persistent": map[string]any{excludeSetting: v}}, nil)
}

// ExcludeFromAllocation adds name to the list, keeping other nodes' entries
// (several nodes may drain at once), and reads the list back: two drains
// writing at the same moment can drop one name, which is then written again.
func (e *ESClient) ExcludeFromAllocation(ctx context.Context, name string) error {
	for range 5 {
		names, err := e.exclusions(ctx)
		if err != nil {
			return err
		}
		if slices.Contains(names, name) {
			return nil
		}
		if err := e.putExclusions(ctx, append(names, name)); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s did not stay in %s after 5 writes: other nodes keep rewriting it", name, excludeSetting)
}

// IncludeInAllocation removes name from the list.
func (e *ESClient) IncludeInAllocation(ctx context.Context, name string) error {
	names, err := e.exclusions(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(names, name) {
		return nil
	}
	return e.putExclusions(ctx, slices.DeleteFunc(names, func(n string) bool { return n == name }))
}

// Excluded reports whether name is in the list.
func (e *ESClient) Excluded(ctx context.Context, name string) (bool, error) {
	names, err := e.exclusions(ctx)
	return slices.Contains(names, name), err
}

// ExcludeFromVoting: POST /_cluster/voting_config_exclusions?node_names= from
// 7.8, /_cluster/voting_config_exclusions/{node_name} on 7.0-7.7; nothing on
// 6.x (no voting configurations).
func (e *ESClient) ExcludeFromVoting(ctx context.Context, name string) error {
	switch {
	case e.Major < 7:
		return nil
	case e.Major == 7 && e.Minor < 8:
		return e.do(ctx, http.MethodPost, "/_cluster/voting_config_exclusions/"+url.PathEscape(name), nil, nil)
	}
	return e.do(ctx, http.MethodPost, "/_cluster/voting_config_exclusions?node_names="+url.QueryEscape(name), nil, nil)
}

// ClearVotingExclusions: DELETE without waiting for the excluded nodes to
// leave (the node is staying).
func (e *ESClient) ClearVotingExclusions(ctx context.Context) error {
	if e.Major < 7 {
		return nil
	}
	return e.do(ctx, http.MethodDelete, "/_cluster/voting_config_exclusions?wait_for_removal=false", nil, nil)
}

// ClearDepartedVotingExclusions reads the exclusions and the nodes from the
// cluster state and, when no excluded node is in the cluster any more,
// clears them with DELETE (wait_for_removal left at its default, true, so
// Elasticsearch itself refuses if an excluded node joined meanwhile).
func (e *ESClient) ClearDepartedVotingExclusions(ctx context.Context) (int, error) {
	if e.Major < 7 {
		return 0, nil
	}
	var st struct {
		Metadata struct {
			Coordination struct {
				Exclusions []struct {
					NodeID string `json:"node_id"`
				} `json:"voting_config_exclusions"`
			} `json:"cluster_coordination"`
		} `json:"metadata"`
		Nodes map[string]json.RawMessage `json:"nodes"`
	}
	if err := e.do(ctx, http.MethodGet, "/_cluster/state/metadata,nodes?filter_path=metadata.cluster_coordination.voting_config_exclusions,nodes.*.name", nil, &st); err != nil {
		return 0, err
	}
	ex := st.Metadata.Coordination.Exclusions
	for _, x := range ex {
		if _, present := st.Nodes[x.NodeID]; present {
			return 0, nil // a drain in progress: its exclusion must stay
		}
	}
	if len(ex) == 0 {
		return 0, nil
	}
	if err := e.do(ctx, http.MethodDelete, "/_cluster/voting_config_exclusions", nil, nil); err != nil {
		return 0, err
	}
	return len(ex), nil
}

// ShardsOn counts rows of GET /_cat/shards on the node. A relocating shard
// shows "source -> ip id target" in the node column: it still counts for
// its source until the relocation finishes.
func (e *ESClient) ShardsOn(ctx context.Context, name string) (int, error) {
	var rows []struct {
		Node *string `json:"node"`
	}
	if err := e.do(ctx, http.MethodGet, "/_cat/shards?format=json&h=index,shard,prirep,state,node", nil, &rows); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range rows {
		if r.Node != nil && (*r.Node == name || strings.HasPrefix(*r.Node, name+" ->")) {
			n++
		}
	}
	return n, nil
}

// Health is GET /_cluster/health's status.
func (e *ESClient) Health(ctx context.Context) (string, error) {
	var h struct {
		Status string `json:"status"`
	}
	if err := e.do(ctx, http.MethodGet, "/_cluster/health", nil, &h); err != nil {
		return "", err
	}
	if h.Status == "" {
		return "", fmt.Errorf("GET /_cluster/health: no status")
	}
	return h.Status, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
