package probe

import (
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// esStandIn is a stand-in for Elasticsearch's HTTP API: the two endpoints
// the probes read, behind basic auth.
func esStandIn(t *testing.T) http.Handler { return esAPIStandIn(true) }

// esOpenStandIn is esStandIn without security (anonymous access).
func esOpenStandIn(t *testing.T) http.Handler { return esAPIStandIn(false) }

func esAPIStandIn(secured bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); secured && (!ok || u != "monitor" || p != "s3cret") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/_nodes/_local/settings,jvm":
			w.Write([]byte(`{"cluster_name":"aardvark-cluster","nodes":{"abc":{"name":"es-1","version":"8.15.3",
				"settings":{"network":{"host":"0.0.0.0"},"http":{"cors":{"enabled":"true","allow-origin":"*"}},"cluster":{"name":"aardvark-cluster"}},
				"jvm":{"mem":{"heap_init_in_bytes":4294967296,"heap_max_in_bytes":4294967296}}}}}`))
		case "/_slm/policy":
			w.Write([]byte(`{"nightly":{},"weekly":{}}`))
		case "/_cat/indices":
			if r.URL.Query().Get("format") != "json" || r.URL.Query().Get("h") != "index,rep" {
				http.Error(w, "stand-in: unexpected query", http.StatusBadRequest)
				return
			}
			w.Write([]byte(`[{"index":"logs","rep":"1"},{"index":"raw","rep":"0"}]`))
		case "/_cluster/settings":
			// Flat settings: transient wins over persistent (and both over the node's own).
			w.Write([]byte(`{"persistent":{"cluster.routing.allocation.awareness.attributes":"rack",
				"cluster.routing.allocation.awareness.force.aws_availability_zone.values":"us-east-1a,us-east-1b"},
				"transient":{"cluster.routing.allocation.awareness.attributes":"aws_availability_zone"}}`))
		case "/_nodes":
			w.Write([]byte(`{"nodes":{
				"b":{"name":"es-2","roles":["data_hot","ingest"],"attributes":{"aws_availability_zone":"us-east-1b"}},
				"a":{"name":"es-1","roles":["master","data"],"attributes":{"aws_availability_zone":"us-east-1a"}},
				"m":{"name":"es-m","roles":["master"],"attributes":{}}}}`))
		default:
			http.NotFound(w, r)
		}
	})
}

func split(t *testing.T, url string) (string, int) {
	h, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func deadPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

func check(t *testing.T, res Result, port int) {
	t.Helper()
	if len(res.ReachablePorts) != 1 || res.ReachablePorts[0] != port {
		t.Errorf("reachable = %v, want [%d]", res.ReachablePorts, port)
	}
	a := res.ESAPI
	if a == nil {
		t.Fatalf("no API answer: %s", res.ESAPIError)
	}
	if a.ClusterName != "aardvark-cluster" || a.NodeName != "es-1" || a.Version != "8.15.3" || a.HeapMaxBytes != 4<<30 || a.HeapInitBytes != 4<<30 {
		t.Errorf("ESAPI = %+v", a)
	}
	if a.Settings["network.host"] != "0.0.0.0" || a.Settings["http.cors.allow-origin"] != "*" {
		t.Errorf("settings not flattened: %v", a.Settings)
	}
	if res.SnapshotPolicies == nil || *res.SnapshotPolicies != 2 {
		t.Errorf("snapshot policies = %v", res.SnapshotPolicies)
	}
	c := res.Cluster
	if c == nil {
		t.Fatal("no cluster layout")
	}
	want := `{[{logs 1} {raw 0}] [aws_availability_zone] transient map[aws_availability_zone:[us-east-1a us-east-1b]] [{es-1 map[aws_availability_zone:us-east-1a]} {es-2 map[aws_availability_zone:us-east-1b]}]}`
	if got := fmt.Sprint(*c); got != want {
		t.Errorf("cluster layout\n%s\nwant\n%s", got, want)
	}
}

// A cluster API the auditor may not read (no monitor privilege on
// /_cat/indices): no layout, so the rule is reported as not evaluated.
func TestProbeClusterLayoutUnreadable(t *testing.T) {
	full := esAPIStandIn(false)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_cat/indices" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		full.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host, port := split(t, srv.URL)
	p, _ := New(Options{Scheme: "http"})
	res := p.Probe(context.Background(), host, []int{port}, port)
	if res.ESAPI == nil || res.Cluster != nil {
		t.Errorf("forbidden /_cat/indices: ESAPI %v, cluster %+v (want the API, no layout)", res.ESAPI, res.Cluster)
	}
}

func TestProbeHTTPFallback(t *testing.T) {
	open := httptest.NewServer(esOpenStandIn(t))
	defer open.Close()
	host, port := split(t, open.URL)
	p, err := New(Options{User: "monitor", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	// auto tries https first and falls back to plain http, anonymously.
	check(t, p.Probe(context.Background(), host, []int{port, deadPort(t)}, port), port)

	srv := httptest.NewServer(esStandIn(t))
	defer srv.Close()
	host, port = split(t, srv.URL)
	// A secured API over plain http: auto keeps the credentials and says why.
	res := p.Probe(context.Background(), host, []int{port}, port)
	if res.ESAPI != nil || !strings.Contains(res.ESAPIError, "--es-scheme http") {
		t.Errorf("auto on a secured plain-http API: %+v", res)
	}
	// An explicit http sends them.
	explicit, _ := New(Options{User: "monitor", Password: "s3cret", Scheme: "http"})
	check(t, explicit.Probe(context.Background(), host, []int{port}, port), port)

	bad, _ := New(Options{User: "monitor", Password: "wrong", Scheme: "http"})
	res = bad.Probe(context.Background(), host, []int{port}, port)
	if res.ESAPI != nil || !strings.Contains(res.ESAPIError, "--es-user") {
		t.Errorf("bad credentials: %+v", res)
	}
	// HTTP port closed: no API probe at all.
	res = p.Probe(context.Background(), host, []int{deadPort(t)}, 9)
	if res.ESAPI != nil || res.ESAPIError != "" || len(res.ReachablePorts) != 0 {
		t.Errorf("closed port: %+v", res)
	}
}

func TestProbeTLS(t *testing.T) {
	srv := httptest.NewTLSServer(esStandIn(t))
	defer srv.Close()
	host, port := split(t, srv.URL)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)

	p, err := New(Options{User: "monitor", Password: "s3cret", CAFile: ca, Scheme: "https"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, p.Probe(context.Background(), host, []int{port}, port), port)

	noCA, _ := New(Options{User: "monitor", Password: "s3cret"})
	res := noCA.Probe(context.Background(), host, []int{port}, port)
	if res.ESAPI != nil || !strings.Contains(res.ESAPIError, "--es-ca") {
		t.Errorf("unverified certificate must fail with advice: %+v", res)
	}
	insecure, _ := New(Options{User: "monitor", Password: "s3cret", Insecure: true})
	check(t, insecure.Probe(context.Background(), host, []int{port}, port), port)

	if _, err := New(Options{CAFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Error("missing CA file must be an error")
	}
}

// TestProbeAutoNeverSendsCredentialsInClear: a hostile plain-HTTP node
// records every request; under the default scheme it must never see the
// monitoring password, whatever it answers (open API, 401, redirects).
func TestProbeAutoNeverSendsCredentialsInClear(t *testing.T) {
	for name, answer := range map[string]http.HandlerFunc{
		"open": esOpenStandIn(t).ServeHTTP,
		"asks": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Basic realm="security"`)
			w.WriteHeader(http.StatusUnauthorized)
		},
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://"+r.Host+"/x"+r.URL.Path, http.StatusFound)
		},
	} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen = append(seen, r.Method+" "+r.URL.String()+" auth="+r.Header.Get("Authorization")+" user="+r.URL.User.String())
				mu.Unlock()
				answer(w, r)
			}))
			defer srv.Close()
			host, port := split(t, srv.URL)
			p, err := New(Options{User: "monitor", Password: "s3cret"})
			if err != nil {
				t.Fatal(err)
			}
			p.Probe(context.Background(), host, []int{port}, port)
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 {
				t.Fatal("the probe never reached the plain-HTTP node")
			}
			for _, r := range seen {
				if strings.Contains(r, "auth=Basic") || strings.Contains(r, "s3cret") {
					t.Errorf("plain-HTTP node received credentials: %s", r)
				}
			}
		})
	}
}
