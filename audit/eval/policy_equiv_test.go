package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"reflect"
	"testing"
)

// policiesBefore are the embedded policies with the files in
// testdata/policies_before_p3 (their versions before the conditions of
// some rules were reordered for speed) put back.
func policiesBefore(t testing.TB) fs.FS {
	t.Helper()
	const dir = "testdata/policies_before_p3"
	old, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	replace := map[string][]byte{}
	for _, e := range old {
		data, err := os.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		replace[e.Name()] = data
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
	list := func(max int, f func() any) any {
		if rng.IntN(8) == 0 {
			return pick(nil, "x", 3)
		}
		out := []any{}
		for range rng.IntN(max + 1) {
			out = append(out, f())
		}
		return out
	}
	out := map[string][]byte{}
	for i := range n {
		in := cleanNode()
		if i%3 == 0 {
			in = seedNode()
		}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
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
				f["firewall"] = toJSONMap(t, randomFirewall(rng, 1+rng.IntN(12)))
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

func toJSONMap(t testing.TB, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReorderedPoliciesEquivalent runs the policies before and after their
// conditions were reordered for speed over the fixtures, the firewall
// corpus and mutatedCorpus, with the Go firewall model and without it, and
// requires the same findings, field for field. Every rule whose Rego
// changed must report on some documents and not on others, or agreeing
// proves little.
func TestReorderedPoliciesEquivalent(t *testing.T) {
	ctx := context.Background()
	before := newEngine(t, Options{FS: policiesBefore(t)})
	beforeRego := newEngine(t, Options{FS: policiesBefore(t)})
	beforeRego.regoFirewall = true
	after := newEngine(t, Options{})
	afterRego := newEngine(t, Options{})
	afterRego.regoFirewall = true

	docs := firewallCorpus(t)
	for name, b := range mutatedCorpus(t, 400) {
		docs[name] = b
	}
	for name, b := range sourcesGrid(t) {
		docs[name] = b
	}
	changed := []string{"ES-NET-001", "ES-NET-002", "ES-NET-003", "ES-NET-004", "ES-SEC-001"}
	flagged := map[string]int{}
	for name, in := range docs {
		for _, pair := range []struct {
			what     string
			old, cur *Engine
		}{{"Go firewall model", before, after}, {"firewall in Rego", beforeRego, afterRego}} {
			want, err := pair.old.EvaluateJSON(ctx, in)
			if err != nil {
				t.Fatalf("%s: policies before, %s: %v", name, pair.what, err)
			}
			got, err := pair.cur.EvaluateJSON(ctx, in)
			if err != nil {
				t.Fatalf("%s: policies now, %s: %v", name, pair.what, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s, %s: findings differ\nnow:    %+v\nbefore: %+v", name, pair.what, got, want)
			}
			if pair.old != before {
				continue
			}
			seen := map[string]bool{}
			for _, f := range want {
				seen[f.RuleID] = true
			}
			for id := range seen {
				flagged[id]++
			}
		}
	}
	t.Logf("%d documents; documents flagged per changed rule: %v", len(docs), flagged)
	for _, id := range changed {
		if flagged[id] < len(docs)/40 || flagged[id] > len(docs)*19/20 {
			t.Errorf("%s flags %d of %d documents: the corpus does not exercise both outcomes", id, flagged[id], len(docs))
		}
	}
}
