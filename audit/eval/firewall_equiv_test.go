package eval

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/esbake/packer-plugin-elasticsearch/audit/internal/fleetfacts"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/policies"
)

// pairwisePolicies are the embedded policies with lib_firewall.rego swapped
// for its previous version (testdata/lib_firewall_pairwise.rego), whose
// jumps and shadowed compared every pair of rules.
func pairwisePolicies(t testing.TB) fs.FS {
	t.Helper()
	old, err := os.ReadFile("testdata/lib_firewall_pairwise.rego")
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{}
	err = fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		data, err := fs.ReadFile(policies.FS, p)
		if p == "lib_firewall.rego" {
			data = old
		}
		m[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFirewallLibraryEquivalent runs the one-pass firewall library and the
// pairwise one it replaced over the fixtures, realistic large firewalls and
// a generated corpus of random rulesets (jumps, loops, shadowing drops,
// negations, every backend and family), and requires the same findings,
// field for field, from every rule.
func TestFirewallLibraryEquivalent(t *testing.T) {
	ctx := context.Background()
	cur := newEngine(t, Options{})
	old := newEngine(t, Options{FS: pairwisePolicies(t)})

	docs := map[string]Input{"clean": cleanNode(), "seed": seedNode()}
	for _, n := range []int{50, 200} {
		in := cleanNode()
		fleetfacts.WithFirewallRules(in.Facts, n)
		docs[fmt.Sprintf("clean-%d-rules", n)] = in
	}
	rng := rand.New(rand.NewPCG(14, 2026))
	for i := range 120 {
		in := cleanNode()
		if i%3 == 0 {
			in = seedNode()
		}
		in.Facts.Firewall = randomFirewall(rng, 1+rng.IntN(30))
		docs[fmt.Sprintf("random-%03d", i)] = in
	}

	exposures, flagged := 0, 0
	for name, in := range docs {
		want, err := old.Evaluate(ctx, in)
		if err != nil {
			t.Fatalf("%s: pairwise library: %v", name, err)
		}
		got, err := cur.Evaluate(ctx, in)
		if err != nil {
			t.Fatalf("%s: one-pass library: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: findings differ\none-pass: %+v\npairwise: %+v", name, got, want)
		}
		n := 0
		for _, f := range want {
			if f.RuleID == "ES-NET-002" {
				n++
			}
		}
		exposures += n
		if n > 0 {
			flagged++
		}
	}
	// The corpus must exercise the firewall rule both ways, or agreeing
	// proves nothing.
	t.Logf("%d documents, %d flagged by ES-NET-002 with %d findings", len(docs), flagged, exposures)
	if flagged < len(docs)/5 || flagged > len(docs)*9/10 {
		t.Errorf("%d of %d documents flagged by ES-NET-002: the corpus does not exercise both outcomes", flagged, len(docs))
	}
}

// randomFirewall is a random but well-formed ruleset: built-in and custom
// chains in a few tables and families of one backend, rules that jump
// between them (cycles included), and matches on the fields the library
// reads.
func randomFirewall(rng *rand.Rand, n int) facts.Firewall {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	backend := pick("iptables", "iptables", "nftables")
	fw := facts.Firewall{Backend: backend, DefaultInputPolicy: pick("DROP", "ACCEPT", ""), DefaultInputPolicy6: pick("DROP", "ACCEPT")}
	type place struct{ family, table string }
	places := []place{{"ipv4", "filter"}, {"ipv6", "filter"}, {"ipv4", "raw"}}
	input, forward := "INPUT", "FORWARD"
	if backend == "nftables" {
		places = []place{{"inet", "filter"}, {"ipv4", "fw"}, {"ipv6", "fw"}}
		input, forward = "input", "forward"
	}
	custom := []string{"ESNODE-INPUT", "C1", "C2", "C3"}
	for _, p := range places {
		fw.Chains = append(fw.Chains,
			facts.Chain{Backend: backend, Family: p.family, Table: p.table, Name: input, Hook: "input", Policy: fw.DefaultInputPolicy},
			facts.Chain{Backend: backend, Family: p.family, Table: p.table, Name: forward, Hook: "forward", Policy: "DROP"})
		for _, c := range custom {
			fw.Chains = append(fw.Chains, facts.Chain{Backend: backend, Family: p.family, Table: p.table, Name: c})
		}
	}
	ports := []facts.PortRange{{From: 9200, To: 9200}, {From: 9300, To: 9300}, {From: 5000, To: 5000}, {From: 22, To: 22}, {From: 9000, To: 9400}, {From: 1, To: 65535}}
	sources := []string{"0.0.0.0/0", "10.0.1.0/24", "10.0.1.128/25", "10.0.0.0/16", "192.0.2.0/24", "::/0", "10.0.1.7"}
	for range n {
		p := places[rng.IntN(len(places))]
		r := facts.FirewallRule{Backend: backend, Family: p.family, Table: p.table, DPorts: []facts.PortRange{}, Sources: []string{}}
		if rng.IntN(3) == 0 {
			r.Chain = pick(input, input, forward)
			r.Hook = map[string]string{input: "input", forward: "forward"}[r.Chain]
		} else {
			r.Chain = custom[rng.IntN(len(custom))]
		}
		r.Target = pick("ACCEPT", "ACCEPT", "ACCEPT", "DROP", "DROP", "REJECT", "RETURN", "LOG", "", "ESNODE-INPUT", "C1", "C2", "C3")
		r.Proto = pick("", "tcp", "tcp", "tcp", "udp", "all", "6")
		for range rng.IntN(3) {
			r.DPorts = append(r.DPorts, ports[rng.IntN(len(ports))])
		}
		r.DPortsNegated = len(r.DPorts) > 0 && rng.IntN(6) == 0
		for range rng.IntN(3) {
			r.Sources = append(r.Sources, sources[rng.IntN(len(sources))])
		}
		r.SourcesNegated = len(r.Sources) > 0 && rng.IntN(6) == 0
		if rng.IntN(4) == 0 {
			r.CTState = []string{pick("new", "established", "related")}
		}
		r.InInterface = pick("", "", "", "lo", "eth0")
		r.Other = rng.IntN(5) == 0
		if rng.IntN(5) == 0 {
			// A plain drop of a port for every source: what shadows later
			// ACCEPTs of the same chain (and closes a default ACCEPT).
			r.Target, r.Proto, r.Sources, r.SourcesNegated = pick("DROP", "REJECT"), "tcp", []string{}, false
			r.CTState, r.InInterface, r.Other = nil, "", false
		}
		r.Raw = fmt.Sprintf("rule %d", len(fw.Rules))
		fw.Rules = append(fw.Rules, r)
	}
	return fw
}

// BenchmarkFirewallRules (P3's second case) evaluates the clean node with
// its own 6-rule firewall and grown to 50 and 200 rules, interleaved in one
// loop so machine load hits every size alike, with the one-pass library and
// the pairwise one it replaced. Metrics: CPU-ms per evaluation of each size
// and the 200-rule/6-rule cost ratio (target ≤ 2).
func BenchmarkFirewallRules(b *testing.B) {
	ctx := context.Background()
	sizes := []int{6, 50, 200}
	docs := make([]Input, len(sizes))
	for i, n := range sizes {
		docs[i] = cleanNode()
		fleetfacts.WithFirewallRules(docs[i].Facts, n)
		if got := len(docs[i].Facts.Firewall.Rules); got != n {
			b.Fatalf("firewall of %d rules has %d", n, got)
		}
	}
	for _, lib := range []struct {
		name string
		opts Options
	}{{"one-pass", Options{}}, {"pairwise", Options{FS: pairwisePolicies(b)}}} {
		b.Run(lib.name, func(b *testing.B) {
			e := newEngine(b, lib.opts)
			cpu := make([]int64, len(sizes))
			for b.Loop() {
				for i, in := range docs {
					c0 := cpuTime()
					found, err := e.Evaluate(ctx, in)
					if err != nil {
						b.Fatal(err)
					}
					if len(found) != 0 {
						b.Fatalf("%d-rule clean node: findings %+v", sizes[i], found)
					}
					cpu[i] += cpuTime() - c0
				}
			}
			for i, n := range sizes {
				b.ReportMetric(float64(cpu[i])/float64(b.N)/1e6, fmt.Sprintf("cpu-ms/%d-rules", n))
			}
			b.ReportMetric(float64(cpu[len(sizes)-1])/float64(cpu[0]), "200/6-rules")
		})
	}
}
