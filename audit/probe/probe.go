// Package probe checks a node from the auditor's side: which of its ports
// accept a TCP connection, and, when the HTTP port answers, what the
// Elasticsearch API reports about the node (effective settings, JVM heap)
// how many snapshot lifecycle policies the cluster has, and how its
// indices' copies can spread over availability zones.
package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure probes.
type Options struct {
	// ConnectTimeout bounds each TCP connect. Default 2s.
	ConnectTimeout time.Duration
	// HTTPTimeout bounds each API request. Default 5s.
	HTTPTimeout time.Duration
	// User and Password authenticate to the API (basic auth) when set.
	User     string
	Password string
	// CAFile verifies the API's TLS certificate; Insecure skips verification.
	CAFile   string
	Insecure bool
	// Scheme is https, http, or auto (https, falling back to http when the
	// port speaks plain HTTP; that fallback never sends User and Password,
	// which only an explicit http sends in clear). Default auto.
	Scheme string
	// MaxBody bounds an API answer. Default 8 MiB.
	MaxBody int64
}

// Result is what the probes saw.
type Result struct {
	ReachablePorts []int
	// ESAPI is what GET /_nodes/_local/settings,jvm said about the node, or
	// nil when the API did not answer.
	ESAPI      *ESAPI
	ESAPIError string
	// SnapshotPolicies counts GET /_slm/policy entries; nil when unknown.
	SnapshotPolicies *int
	// Cluster is the indices' replicas, the allocation awareness in effect
	// and the data nodes' attributes; nil when the API did not tell.
	Cluster *Cluster
}

// Cluster is what decides whether the indices survive the loss of one
// availability zone.
type Cluster struct {
	// Indices are the indices GET /_cat/indices lists, with their replicas.
	Indices []IndexReplicas `json:"indices"`
	// Awareness is cluster.routing.allocation.awareness.attributes in
	// effect: transient, else persistent (GET /_cluster/settings), else the
	// probed node's own setting. Force are the forced awareness values per
	// attribute (cluster.routing.allocation.awareness.force.<attr>.values).
	Awareness       []string            `json:"awareness_attributes"`
	AwarenessSource string              `json:"awareness_source"`
	Force           map[string][]string `json:"forced_awareness"`
	// DataNodes are the nodes holding a data role, with their attributes.
	DataNodes []DataNode `json:"data_nodes"`
}

// IndexReplicas is one index and its number_of_replicas.
type IndexReplicas struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
}

// DataNode is a data node's name and attributes (node.attr.*).
type DataNode struct {
	Name       string            `json:"name"`
	Attributes map[string]string `json:"attributes"`
}

// ESAPI is the node as its API reports it.
type ESAPI struct {
	Version     string
	ClusterName string
	NodeName    string
	// Settings are the effective settings, flattened to dotted keys.
	Settings      map[string]any
	HeapInitBytes int64
	HeapMaxBytes  int64
}

type nodesInfo struct {
	ClusterName string `json:"cluster_name"`
	Nodes       map[string]struct {
		Name     string         `json:"name"`
		Version  string         `json:"version"`
		Settings map[string]any `json:"settings"`
		JVM      struct {
			Mem struct {
				HeapInit int64 `json:"heap_init_in_bytes"`
				HeapMax  int64 `json:"heap_max_in_bytes"`
			} `json:"mem"`
		} `json:"jvm"`
	} `json:"nodes"`
}

// Flatten turns nested settings into dotted keys ({"a":{"b":1}} → "a.b").
func Flatten(m map[string]any) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if mm, ok := v.(map[string]any); ok && len(mm) > 0 {
			for k, vv := range mm {
				key := k
				if prefix != "" {
					key = prefix + "." + k
				}
				walk(key, vv)
			}
			return
		}
		out[prefix] = v
	}
	for k, v := range m {
		walk(k, v)
	}
	return out
}

// Prober runs probes with shared HTTP clients.
type Prober struct {
	opts  Options
	https *http.Client
	http  *http.Client
}

// New builds a Prober; errors are configuration errors (unreadable CA file).
func New(opts Options) (*Prober, error) {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 2 * time.Second
	}
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = 5 * time.Second
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 8 << 20
	}
	switch opts.Scheme {
	case "":
		opts.Scheme = "auto"
	case "auto", "http", "https":
	default:
		return nil, fmt.Errorf("--es-scheme %q: use auto, http or https", opts.Scheme)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opts.Insecure} //nolint:gosec // --es-insecure is the user's explicit choice
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read --es-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--es-ca %s holds no PEM certificate", opts.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	mk := func(tc *tls.Config) *http.Client {
		return &http.Client{
			Timeout: opts.HTTPTimeout,
			Transport: &http.Transport{
				Proxy:               nil, // probes go straight to the node
				DialContext:         (&net.Dialer{Timeout: opts.ConnectTimeout}).DialContext,
				TLSClientConfig:     tc,
				TLSHandshakeTimeout: opts.HTTPTimeout,
				MaxIdleConnsPerHost: 1,
				IdleConnTimeout:     time.Second,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Prober{opts: opts, https: mk(tlsCfg), http: mk(nil)}, nil
}

// Probe connects to each port of host and, when httpPort is reachable,
// queries the API. It never fails: what it could not learn stays empty.
func (p *Prober) Probe(ctx context.Context, host string, ports []int, httpPort int) Result {
	var res Result
	if host == "" {
		return res
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, port := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, p.opts.ConnectTimeout)
			defer cancel()
			c, err := (&net.Dialer{}).DialContext(cctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				return
			}
			c.Close()
			mu.Lock()
			res.ReachablePorts = append(res.ReachablePorts, port)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Ints(res.ReachablePorts)
	if res.ReachablePorts == nil {
		res.ReachablePorts = []int{}
	}
	reachable := false
	for _, port := range res.ReachablePorts {
		if port == httpPort {
			reachable = true
		}
	}
	if !reachable || httpPort == 0 {
		return res
	}
	base := net.JoinHostPort(host, strconv.Itoa(httpPort))
	var nodes nodesInfo
	client, scheme, err := p.get(ctx, base, "/_nodes/_local/settings,jvm", &nodes)
	if err != nil {
		res.ESAPIError = err.Error()
		return res
	}
	ids := make([]string, 0, len(nodes.Nodes))
	for id := range nodes.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		res.ESAPIError = "GET /_nodes/_local/settings,jvm returned no node"
		return res
	}
	n := nodes.Nodes[ids[0]]
	api := &ESAPI{Version: n.Version, ClusterName: nodes.ClusterName, NodeName: n.Name, Settings: Flatten(n.Settings),
		HeapInitBytes: n.JVM.Mem.HeapInit, HeapMaxBytes: n.JVM.Mem.HeapMax}
	if api.ClusterName == "" {
		if cn, ok := api.Settings["cluster.name"].(string); ok {
			api.ClusterName = cn
		}
	}
	res.ESAPI = api
	var slm map[string]any
	if err := p.getWith(ctx, client, scheme, base, "/_slm/policy", &slm); err == nil {
		n := len(slm)
		res.SnapshotPolicies = &n
	}
	res.Cluster = p.cluster(ctx, client, scheme, base, api.Settings)
	return res
}

// cluster reads the indices, the cluster settings and the nodes; nil when
// one of them does not answer (the rule is then not evaluated).
func (p *Prober) cluster(ctx context.Context, client *http.Client, scheme, base string, local map[string]any) *Cluster {
	var cat []struct {
		Index string `json:"index"`
		Rep   string `json:"rep"`
	}
	var settings struct {
		Persistent map[string]any `json:"persistent"`
		Transient  map[string]any `json:"transient"`
	}
	var nodes struct {
		Nodes map[string]struct {
			Name       string            `json:"name"`
			Roles      []string          `json:"roles"`
			Attributes map[string]string `json:"attributes"`
		} `json:"nodes"`
	}
	if p.getWith(ctx, client, scheme, base, "/_cat/indices?format=json&h=index,rep", &cat) != nil ||
		p.getWith(ctx, client, scheme, base, "/_cluster/settings?flat_settings=true", &settings) != nil ||
		p.getWith(ctx, client, scheme, base, "/_nodes", &nodes) != nil {
		return nil
	}
	c := &Cluster{Indices: []IndexReplicas{}, Awareness: []string{}, Force: map[string][]string{}, DataNodes: []DataNode{}}
	for _, i := range cat {
		n, err := strconv.Atoi(i.Rep)
		if err != nil {
			return nil
		}
		c.Indices = append(c.Indices, IndexReplicas{Name: i.Index, Replicas: n})
	}
	const awareKey, forcePrefix = "cluster.routing.allocation.awareness.attributes", "cluster.routing.allocation.awareness.force."
	// Transient settings win over persistent ones, which win over the node's
	// elasticsearch.yml (ClusterSettings).
	for _, src := range []struct {
		name string
		m    map[string]any
	}{{"node", local}, {"persistent", settings.Persistent}, {"transient", settings.Transient}} {
		if v, ok := src.m[awareKey]; ok {
			c.Awareness, c.AwarenessSource = settingList(v), src.name
		}
		for k, v := range src.m {
			if attr, ok := strings.CutPrefix(k, forcePrefix); ok && strings.HasSuffix(attr, ".values") {
				c.Force[strings.TrimSuffix(attr, ".values")] = settingList(v)
			}
		}
	}
	ids := make([]string, 0, len(nodes.Nodes))
	for id := range nodes.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := nodes.Nodes[id]
		for _, r := range n.Roles {
			if r == "data" || strings.HasPrefix(r, "data_") {
				attrs := n.Attributes
				if attrs == nil {
					attrs = map[string]string{}
				}
				c.DataNodes = append(c.DataNodes, DataNode{Name: n.Name, Attributes: attrs})
				break
			}
		}
	}
	return c
}

// settingList reads a list setting: a JSON list or a comma-separated string.
func settingList(v any) []string {
	out := []string{}
	switch t := v.(type) {
	case []any:
		for _, x := range t {
			if s := strings.TrimSpace(fmt.Sprint(x)); s != "" {
				out = append(out, s)
			}
		}
	case string:
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// get picks the scheme (auto: https first) and decodes the answer.
func (p *Prober) get(ctx context.Context, base, path string, v any) (*http.Client, string, error) {
	switch p.opts.Scheme {
	case "http":
		return p.http, "http", p.getWith(ctx, p.http, "http", base, path, v)
	case "https":
		return p.https, "https", p.getWith(ctx, p.https, "https", base, path, v)
	}
	err := p.getWith(ctx, p.https, "https", base, path, v)
	if err != nil && plainHTTP(err) {
		// Anyone can answer plain HTTP on the node's port (the node
		// itself if hostile, or anything on the path): auto never hands
		// it the credentials. An open API answers anyway; a secured one
		// gets the choice spelled out.
		err = p.getAs(ctx, p.http, "http", base, path, v, false)
		var ae *authError
		if errors.As(err, &ae) && p.opts.User != "" {
			err = fmt.Errorf("GET %s: %s over plain http: the node's API asks for credentials but serves no TLS, and --es-scheme auto sends them only over https; enable TLS on the HTTP layer (xpack.security.http.ssl), or pass --es-scheme http to send them in clear", path, ae.status)
		}
		return p.http, "http", err
	}
	return p.https, "https", err
}

// authError is a 401 or 403 answer.
type authError struct{ path, status string }

func (e *authError) Error() string {
	return fmt.Sprintf("GET %s: %s: pass --es-user and --es-password-file with monitor privileges", e.path, e.status)
}

// plainHTTP says the port answered the TLS handshake with something that
// is not TLS. Go names it "server gave HTTP response" only when the answer
// starts with "HTTP/"; servers that answer a garbled request line with a
// bare HTTP/0.9-style body (Python's http.server) give a RecordHeaderError.
func plainHTTP(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// getWith sends the credentials over https, and over http only when the
// user chose --es-scheme http.
func (p *Prober) getWith(ctx context.Context, c *http.Client, scheme, base, path string, v any) error {
	return p.getAs(ctx, c, scheme, base, path, v, scheme == "https" || p.opts.Scheme == "http")
}

func (p *Prober) getAs(ctx context.Context, c *http.Client, scheme, base, path string, v any, withAuth bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+base+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if withAuth && p.opts.User != "" {
		req.SetBasicAuth(p.opts.User, p.opts.Password)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return fmt.Errorf("GET %s: %w: pass --es-ca with the cluster's CA, or --es-insecure", path, err)
		}
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.opts.MaxBody))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return &authError{path: path, status: resp.Status}
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: answer is not JSON: %w", path, err)
	}
	return nil
}
