package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// policiesBefore are the embedded policies with the files of each
// testdata directory put back, later directories first, so the earliest
// version of each file wins: testdata/policies_before_p3 holds the files as
// they were before the conditions of some rules were reordered for speed,
// testdata/policies_before_p3b before lookups were made cheaper (P3's fourth
// pass).
func policiesBefore(t testing.TB, dirs ...string) fs.FS {
	t.Helper()
	replace := map[string][]byte{}
	for _, dir := range slices.Backward(dirs) {
		old, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range old {
			data, err := os.ReadFile(path.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			replace[e.Name()] = data
		}
	}
	return policiesReplacing(t, replace)
}

// mutatedCorpus is the clean and seed nodes with random security groups,
// listeners, spec ports, default input policies and bind settings: the
// facts the reordered rules read, including values of the wrong type.
func mutatedCorpus(t testing.TB, n int) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(14, 3))
	pick := func(vs ...any) any { return vs[rng.IntN(len(vs))] }
	ports := []any{22, 5000, 9200, 9300, 9201, -1, 0, 65535, 80, nil, "9200"}
	cidrs := []any{"0.0.0.0/0", "::/0", " 0.0.0.0/0", "10.0.1.0/24", "10.0.0.0/16", "192.0.2.7/32", "any", "0.0.0.0", 7}
	list := func(max int, f func() any) any { return corpusList(rng, max, f) }
	out := map[string][]byte{}
	for i := range n {
		doc := corpusStart(t, i)
		f := doc["facts"].(map[string]any)
		node := doc["node"].(map[string]any)
		for range 1 + rng.IntN(4) {
			switch rng.IntN(8) {
			case 0:
				node["security_groups"] = list(3, func() any {
					if rng.IntN(10) == 0 {
						return "sg-odd"
					}
					return map[string]any{"id": "sg-1", "name": pick("a", nil), "ingress": list(4, func() any {
						if rng.IntN(10) == 0 {
							return pick(nil, "rule", 3)
						}
						from := pick(ports...)
						to := from
						if rng.IntN(3) == 0 {
							to = pick(ports...)
						}
						return map[string]any{"proto": pick("tcp", "TCP", "6", "-1", "all", "ALL", "udp", "icmp", nil, 6),
							"from_port": from, "to_port": to,
							"cidrs": list(3, func() any { return pick(cidrs...) }), "ipv6_cidrs": list(2, func() any { return pick(cidrs...) })}
					})}
				})
			case 1:
				f["listeners"] = list(6, func() any {
					l := map[string]any{"proto": pick("tcp", "tcp6", "udp"), "address": pick("0.0.0.0", "::", "::ffff:10.0.1.23", "127.0.0.1", "10.0.1.23"),
						"port": pick(ports...), "loopback": pick(true, false, nil), "all_interfaces": pick(true, false)}
					if rng.IntN(4) > 0 {
						l["uid"] = pick(0, 0, 112, -1, "0", nil)
					}
					if rng.IntN(2) == 0 {
						l["user"] = pick("root", "root", "elasticsearch", "", nil)
					}
					if rng.IntN(2) == 0 {
						l["process"] = pick("java", "sshd", "")
					}
					return l
				})
			case 2:
				spec := sub(sub(f, "manifest"), "spec")
				sub(spec, "elasticsearch")[pick("http_port", "transport_port").(string)] = pick(ports...)
				spec["elastichq"] = map[string]any{"enabled": pick(true, false, "true"), "port": pick(ports...)}
			case 3:
				fw := sub(f, "firewall")
				fw["default_input_policy"] = pick("ACCEPT", "DROP", nil)
				fw["default_input_policy6"] = pick("ACCEPT", "DROP", nil)
				if rng.IntN(4) == 0 {
					fw["backend"] = "none"
				}
			case 4:
				yml := sub(sub(f, "elasticsearch"), "yml")
				yml[pick("network.host", "network.bind_host", "http.host", "transport.bind_host").(string)] =
					pick("0.0.0.0", "[::]", "_global_", "_global:ipv4_", "_site_", "0.0.0.0, 127.0.0.1", []any{"10.0.1.23", "0"}, 5, nil)
			case 5:
				f["firewall"] = asDoc(t, randomFirewall(rng, 1+rng.IntN(12)))
			case 6:
				delete(f, pick("listeners", "firewall", "manifest", "host").(string))
			case 7:
				// Where the allowed sources come from: the spec's lists,
				// the subnet and VPC esnode boot recorded, discovery's.
				fw := sub(sub(sub(f, "manifest"), "spec"), "firewall")
				fw[pick("http_sources", "transport_sources", "hq_sources").(string)] = pick([]any{"subnet"}, []any{"vpc"}, []any{"vpc"},
					[]any{"10.0.1.0/25", "subnet"}, []any{}, nil, "subnet", []any{"0.0.0.0/0"}, []any{5}, []any{"bogus"}, []any{"vpc", "192.0.2.0/24"})
				boot := sub(sub(f, "host"), "boot")
				boot["subnet_cidr"] = pick("10.0.1.0/24", "10.0.0.0/8", "", nil, 5, "bogus")
				boot["vpc_cidr"] = pick("10.0.0.0/16", "", nil, 7)
				boot["vpc_cidrs"] = pick([]any{}, []any{"10.0.0.0/16"}, nil, []any{""}, []any{""}, []any{7}, "10.0.0.0/16")
				node["subnet_cidr"] = pick("10.0.1.0/24", "", nil, 5)
				node["vpc_cidrs"] = pick([]any{"10.0.0.0/16"}, nil, []any{3})
				if rng.IntN(3) == 0 {
					delete(sub(f, "host"), "boot")
				}
			}
		}
		var err error
		if out[fmt.Sprintf("mutated-%03d", i)], err = json.Marshal(doc); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sourcesGrid is the clean node under every combination of the spec's
// sources for the HTTP and transport ports and the subnet and VPC esnode
// boot and discovery recorded (present, empty, missing), so each way
// lib.rego's allowed_cidrs resolves (or does not) meets its accepting
// rules.
func sourcesGrid(t testing.TB) map[string][]byte {
	t.Helper()
	b, err := json.Marshal(cleanNode())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	n := 0
	for _, srcs := range []any{nil, []any{"subnet"}, []any{"vpc"}, []any{"vpc", "192.0.2.0/24"}, []any{"10.0.1.0/25"}} {
		for _, subnet := range []any{"10.0.1.0/24", "", nil} {
			for _, vpcs := range []any{nil, []any{""}, []any{"10.0.0.0/16"}} {
				for _, vpc := range []any{"", "10.0.0.0/16"} {
					for _, nodeVPCs := range []any{nil, []any{"10.0.0.0/8"}} {
						for _, nodeSubnet := range []any{"", "10.0.0.0/16"} {
							var doc map[string]any
							if err := json.Unmarshal(b, &doc); err != nil {
								t.Fatal(err)
							}
							f := doc["facts"].(map[string]any)
							fw := sub(sub(sub(f, "manifest"), "spec"), "firewall")
							fw["http_sources"], fw["transport_sources"] = srcs, srcs
							boot := sub(sub(f, "host"), "boot")
							boot["subnet_cidr"], boot["vpc_cidrs"], boot["vpc_cidr"] = subnet, vpcs, vpc
							node := doc["node"].(map[string]any)
							node["vpc_cidrs"], node["subnet_cidr"] = nodeVPCs, nodeSubnet
							if out[fmt.Sprintf("sources-%03d", n)], err = json.Marshal(doc); err != nil {
								t.Fatal(err)
							}
							n++
						}
					}
				}
			}
		}
	}
	return out
}

// sub is m[key] as an object, made one when it is not.
func sub(m map[string]any, key string) map[string]any {
	o, ok := m[key].(map[string]any)
	if !ok {
		o = map[string]any{}
		m[key] = o
	}
	return o
}

// TestReorderedPoliciesEquivalent runs the policies as they were before
// each speed pass (before P3's reordered conditions; before its fourth
// pass's cheaper lookups), and as they are now with the engine's inlined
// rule ids and without, over the fixtures, the
// firewall corpus, mutatedCorpus, sourcesGrid and lookupsCorpus, with the
// Go firewall model and without it, and requires the same findings, field
// for field. Every rule whose Rego changed in a pass must report on some
// documents and not on others, or agreeing proves little.
func TestReorderedPoliciesEquivalent(t *testing.T) {
	ctx := context.Background()
	type engines struct{ model, rego *Engine }
	pair := func(opts Options) engines {
		opts.Stage = StageAll // bake-only rules too
		p := engines{newEngine(t, opts), newEngine(t, opts)}
		p.rego.regoFirewall = true
		return p
	}
	passes := []struct {
		name    string
		e       engines
		changed []string
	}{
		{"before P3", pair(Options{FS: policiesBefore(t, "testdata/policies_before_p3", "testdata/policies_before_p3b")}),
			[]string{"ES-NET-001", "ES-NET-002", "ES-NET-003", "ES-NET-004", "ES-SEC-001"}},
		{"before P3's fourth pass", pair(Options{FS: policiesBefore(t, "testdata/policies_before_p3b")}),
			[]string{"ES-SYS-001", "ES-SYS-002", "ES-SYS-003", "ES-HEAP-001", "ES-HEAP-002", "ES-HEAP-003", "ES-HEAP-004",
				"ES-NET-006", "ES-CLU-001", "ES-CLU-002", "ES-SEC-001", "ES-SEC-002", "ES-SEC-003", "ES-SEC-004", "ES-SEC-005",
				"ES-SEC-006", "ES-SEC-013", "ES-ASG-001", "ES-ASG-002", "ES-FILE-002"}},
		// The engine's inlined rule ids against OPA's own metadata calls.
		{"now, with rego.metadata.rule() left to OPA", pair(Options{keepMetadataCalls: true}), nil},
	}
	now := pair(Options{})

	docs := firewallCorpus(t)
	for _, corpus := range []map[string][]byte{mutatedCorpus(t, 400), sourcesGrid(t), lookupsCorpus(t, 700)} {
		maps.Copy(docs, corpus)
	}
	flagged := map[string]int{}
	var mu sync.Mutex // flagged
	// The engines are safe for concurrent use, as in a fleet audit; one
	// worker per CPU keeps this test's time in check under -race.
	forEachParallel(slices.Sorted(maps.Keys(docs)), func(name string) {
		in := docs[name]
		for _, path := range []struct {
			what string
			pick func(engines) *Engine
		}{{"Go firewall model", func(p engines) *Engine { return p.model }}, {"firewall in Rego", func(p engines) *Engine { return p.rego }}} {
			got, err := path.pick(now).EvaluateJSON(ctx, in)
			if err != nil {
				t.Errorf("%s: policies now, %s: %v", name, path.what, err)
				return
			}
			for _, pass := range passes {
				want, err := path.pick(pass.e).EvaluateJSON(ctx, in)
				if err != nil {
					t.Errorf("%s: policies %s, %s: %v", name, pass.name, path.what, err)
					return
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s, %s: findings differ from %s\nnow:    %+v\nbefore: %+v", name, path.what, pass.name, got, want)
				}
			}
			if path.what != "Go firewall model" {
				continue
			}
			seen := map[string]bool{}
			for _, f := range got {
				seen[f.RuleID] = true
			}
			mu.Lock()
			for id := range seen {
				flagged[id]++
			}
			mu.Unlock()
		}
	})
	t.Logf("%d documents; documents flagged per rule: %v", len(docs), flagged)
	for _, pass := range passes {
		for _, id := range pass.changed {
			if flagged[id] < len(docs)/40 || flagged[id] > len(docs)*19/20 {
				t.Errorf("%s (changed %s) flags %d of %d documents: the corpus does not exercise both outcomes", id, pass.name, flagged[id], len(docs))
			}
		}
	}
}

// lookupsCorpus is the clean and seed nodes with random heap and limit
// figures, sysctls, spec minimums and heap shares, tags, collector errors,
// keystore entries and the elasticsearch.yml settings the rules look up,
// including values of the wrong type: the inputs P3's fourth pass reads
// through plain refs instead of lib.value, lib.obj and lib.arr.
func lookupsCorpus(t testing.TB, n int) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(14, 4))
	pick := func(vs ...any) any { return vs[rng.IntN(len(vs))] }
	list := func(max int, f func() any) any { return corpusList(rng, max, f) }
	sizes := []any{0, gib, 2 * gib, 4 * gib, 8 * gib, 31 * gib, 32 * gib, 40 * gib, -1, nil, "4g"}
	limit := func() any {
		if rng.IntN(6) == 0 {
			return pick(nil, "65535", []any{1}, map[string]any{})
		}
		return map[string]any{"soft": pick(1024, 1024, 4095, 4096, 65535, 65536, -1, 0, nil, "65535"), "hard": 65535}
	}
	out := map[string][]byte{}
	for i := range n {
		doc := corpusStart(t, i)
		f := doc["facts"].(map[string]any)
		node := doc["node"].(map[string]any)
		es := sub(f, "elasticsearch")
		spec := sub(sub(f, "manifest"), "spec")
		for range 3 + rng.IntN(5) {
			switch rng.IntN(13) {
			case 0:
				heap := sub(es, "heap")
				heap["xms_bytes"], heap["xmx_bytes"] = pick(sizes...), pick(sizes...)
				heap["missing"] = pick([]any{}, []any{"xmx"}, []any{"xms"}, []any{"xmx", "xms"}, nil, "xms")
				sub(f, "host")["mem_total_bytes"] = pick(0, 4*gib, 8*gib, 64*gib, nil, "8g")
			case 1:
				if rng.IntN(5) == 0 {
					es["process"] = pick(nil, "java", map[string]any{})
					break
				}
				p := sub(es, "process")
				p["xms_bytes"], p["xmx_bytes"] = pick(sizes...), pick(sizes...)
				p["uid"] = pick(0, 113, nil)
				p["limits"] = map[string]any{"nofile": limit(), "nproc": limit()}
				if rng.IntN(6) == 0 {
					p["limits"] = pick(nil, "x", []any{})
				}
			case 2:
				svcs, _ := f["services"].([]any)
				if len(svcs) == 0 || rng.IntN(5) == 0 {
					f["services"] = pick(nil, "x", []any{}, []any{map[string]any{"name": "elasticsearch", "present": pick(true, false), "user": pick("root", "elasticsearch")}})
					break
				}
				s, ok := svcs[0].(map[string]any)
				if !ok {
					break
				}
				lim := map[string]any{}
				for _, k := range []string{"nofile", "nproc"} {
					if rng.IntN(4) > 0 {
						lim[k] = limit()
					}
				}
				s["limits"] = lim
				if rng.IntN(6) == 0 {
					s["limits"] = pick(nil, "x", []any{})
				}
			case 3:
				f["sysctl"] = map[string]any{"vm.max_map_count": pick(65530, 65530, 65530, 262144, 262145, 1048576, nil, "262144")}
				if rng.IntN(4) == 0 {
					f["sysctl"] = pick(map[string]any{}, nil, "x")
				}
				f["sysctl_conf"] = pick(map[string]any{"vm.max_map_count": pick(
					map[string]any{"value": pick("65530", " 262144 ", "1048576", "x", 5), "source": "/etc/sysctl.d/99-es.conf"}, nil, "262144")}, nil, map[string]any{})
			case 4:
				sys := sub(spec, "system")
				sys[pick("max_map_count", "nofile", "nproc").(string)] = pick(0, -5, 1024, 4096, 4097, 65535, 100000, 262144, 524288, nil, "524288")
				heap := sub(spec, "heap")
				heap[pick("percent", "min_mb").(string)] = pick(0, 30, 50, 60, 75, 1024, 4096, 40960, -1, nil, "75")
			case 5:
				yml := sub(es, "yml")
				yml[pick("reindex.remote.whitelist", "reindex.remote.allowlist").(string)] = pick("*:9200", "10.0.1.*:9200", []any{"a:1", "*.*:*"}, nil, 7, "0.0.0.0:9200")
				yml["cluster.initial_master_nodes"] = pick([]any{"n1"}, []any{"n1"}, []any{}, "n1,n2", "", nil, 3)
				yml["node.roles"] = pick([]any{}, "master,data", "", nil, []any{"data_hot"}, []any{"ingest"})
				if rng.IntN(3) == 0 {
					doc["policy"] = map[string]any{"auto_scaled": pick(false, nil, "true")}
				}
				if rng.IntN(2) == 0 {
					yml[pick("discovery.ec2.access_key", "cloud.aws.secret_key", "xpack.security.enabled").(string)] = pick("AKIAEXAMPLE", false, "false", nil)
				}
			case 6:
				ks := sub(es, "keystore")
				ks["entries"] = pick([]any{}, []any{"keystore.seed"}, []any{"bootstrap.password"}, []any{"discovery.ec2.access_key", "keystore.seed"},
					[]any{"xpack.security.http.ssl.keystore.secure_password"}, nil, "bootstrap.password")
				switch rng.IntN(4) {
				case 0:
					delete(sub(f, "host"), "boot")
				case 1:
					sub(sub(sub(f, "host"), "boot"), "security")["elastic_password_set"] = pick(false, false, false, nil, true, "true")
					ks["entries"] = pick([]any{}, []any{"keystore.seed"}, nil)
				}
			case 7:
				tags := pick(map[string]any{"es_cluster": pick("aardvark-cluster", "other", "other", "other", "", nil, 5, map[string]any{"x": 1})}, map[string]any{"es_cluster": "other"}, nil, "x", map[string]any{})
				switch rng.IntN(3) {
				case 0:
					node["tags"] = tags
				case 1:
					sub(f, "host")["tags"] = tags
					delete(node, "tags")
				case 2:
					sub(sub(f, "host"), "boot")["tags"] = tags
				}
				if rng.IntN(4) == 0 {
					sub(spec, "cluster")["discovery_tag_key"] = pick("es_cluster", "Name", "", nil)
				}
				if rng.IntN(6) == 0 {
					delete(sub(es, "yml"), "cluster.name")
				}
			case 8:
				f["errors"] = pick([]any{map[string]any{"fact": pick("elasticsearch", "elasticsearch.yml", "elasticsearch.heap", "manifest", "firewall"), "error": "x"}}, nil, "x", []any{}, []any{"x"})
			case 10:
				// The elastic password: recorded by esnode boot, or in the
				// keystore.
				sub(sub(sub(f, "host"), "boot"), "security")["elastic_password_set"] = pick(false, nil, true)
				sub(es, "keystore")["entries"] = pick([]any{"keystore.seed"}, []any{"bootstrap.password"}, "bootstrap.password", nil)
			case 11:
				// The Auto Scaling group and its hooks, the policy options.
				hooks := list(3, func() any {
					return map[string]any{"name": "drain", "transition": pick("autoscaling:EC2_INSTANCE_TERMINATING", "autoscaling:EC2_INSTANCE_LAUNCHING"),
						"heartbeat_timeout": pick(60, 300, 3600, nil)}
				})
				node["auto_scaling"] = map[string]any{"group": pick("asg-1", "asg-1", "asg-1", "", nil), "lifecycle_hooks": hooks}
				if rng.IntN(6) == 0 {
					node["auto_scaling"] = pick(nil, "asg-1")
				}
				doc["policy"] = map[string]any{"expect_instance_profile": pick(true, false, nil, "false"), "auto_scaled": pick(true, false, nil)}
			case 12:
				// Paths, the manifest, security and the version.
				f["paths"] = list(3, func() any {
					return map[string]any{"path": pick("/etc/elasticsearch", "/etc/elasticsearch/elasticsearch.keystore", "/etc/elasticsearch/elasticsearch.keystore"), "exists": pick(true, true, false, nil),
						"world_writable": pick(true, false, nil), "world_readable": pick(true, true, false), "mode": "0666"}
				})
				sub(f, "manifest")["present"] = pick(true, false, nil)
				sub(es, "yml")["xpack.security.enabled"] = pick(true, false, "false", "False ", nil, "true")
				es["version"] = pick("8.15.3", "7.10.2", "6.4.2", "", nil, 8)
				if rng.IntN(3) == 0 {
					sub(f, "manifest")["es_version"] = pick("8.1.0", "", nil)
				}
			case 9:
				delete(f, pick("elasticsearch", "host", "services", "manifest", "sysctl").(string))
				if rng.IntN(3) == 0 {
					delete(es, pick("heap", "process", "yml", "keystore").(string))
				}
			}
		}
		var err error
		if out[fmt.Sprintf("lookups-%03d", i)], err = json.Marshal(doc); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// corpusList is up to max values drawn by f, or now and then a value that is
// not a list: what the generated corpora put where a fact is a list.
func corpusList(rng *rand.Rand, max int, f func() any) any {
	if rng.IntN(8) == 0 {
		return []any{nil, "x", 3}[rng.IntN(3)]
	}
	out := []any{}
	for range rng.IntN(max + 1) {
		out = append(out, f())
	}
	return out
}

// corpusStart is generated document i before its mutations, as generic
// JSON: every third the seed node, the others the clean node.
func corpusStart(t testing.TB, i int) map[string]any {
	t.Helper()
	in := cleanNode()
	if i%3 == 0 {
		in = seedNode()
	}
	return asDoc(t, in)
}

// asDoc is in as generic JSON, for tests that change a document freely.
func asDoc(t testing.TB, in any) map[string]any {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// forEachParallel calls f for each item on one goroutine per CPU and
// returns when all calls have.
func forEachParallel[T any](items []T, f func(T)) {
	work := make(chan T)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for it := range work {
				f(it)
			}
		})
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
}
