package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

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
	return policiesReplacing(t, map[string][]byte{"lib_firewall.rego": old})
}

// policiesReplacing is the embedded policies (tests left out) with some
// files' contents replaced; naming a file that is not a policy fails.
func policiesReplacing(t testing.TB, replace map[string][]byte) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		data, err := fs.ReadFile(policies.FS, p)
		m[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range replace {
		if _, ok := m[name]; !ok {
			t.Fatalf("%s replaces no policy file", name)
		}
		m[name] = &fstest.MapFile{Data: data}
	}
	return m
}

// firewallCorpus is the fixtures, realistic large firewalls and a generated
// corpus of random rulesets (jumps, loops, shadowing drops, negations,
// every backend and family), some with a rule or chain not in the
// collector's shape (the engine's Go model then steps aside).
func firewallCorpus(t testing.TB) map[string][]byte {
	t.Helper()
	docs := map[string]Input{"clean": cleanNode(), "seed": seedNode(), "no-facts": {Node: NodeInfo{Name: "n"}}}
	for _, n := range []int{50, 200} {
		in := cleanNode()
		fleetfacts.WithFirewallRules(in.Facts, n)
		docs[fmt.Sprintf("clean-%d-rules", n)] = in
	}
	rng := rand.New(rand.NewPCG(14, 2026))
	for i := range 160 {
		in := cleanNode()
		if i%3 == 0 {
			in = seedNode()
		}
		in.Facts.Firewall = randomFirewall(rng, 1+rng.IntN(30))
		docs[fmt.Sprintf("random-%03d", i)] = in
	}
	out := map[string][]byte{}
	for name, in := range docs {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
		if !strings.HasPrefix(name, "random-") || rng.IntN(6) != 0 {
			continue
		}
		// A copy with one rule or chain not in the collector's shape.
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		fw := doc["facts"].(map[string]any)["firewall"].(map[string]any)
		rules, chains := fw["rules"].([]any), fw["chains"].([]any)
		r := rules[rng.IntN(len(rules))].(map[string]any)
		switch rng.IntN(7) {
		case 0:
			delete(r, "family")
		case 1:
			r["target"] = nil
		case 2:
			r["hook"] = 7
		case 3:
			rules[rng.IntN(len(rules))] = "-A INPUT -j ACCEPT"
		case 4:
			chains[rng.IntN(len(chains))].(map[string]any)["hook"] = nil
		case 5:
			r["dports"] = []any{map[string]any{"from": "9200", "to": 9200}}
		case 6:
			r["dports_negated"] = "yes"
		}
		if out[name+"-odd"], err = json.Marshal(doc); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestFirewallLibraryEquivalent runs the one-pass firewall library with the
// engine's Go model, the same library judging every rule in Rego, and the
// pairwise library it replaced over firewallCorpus, and requires the same
// findings, field for field, from every rule.
func TestFirewallLibraryEquivalent(t *testing.T) {
	ctx := context.Background()
	cur := newEngine(t, Options{})
	inRego := newEngine(t, Options{})
	inRego.regoFirewall = true
	old := newEngine(t, Options{FS: pairwisePolicies(t)})

	docs := firewallCorpus(t)
	exposures, flagged := 0, 0
	for name, in := range docs {
		want, err := old.EvaluateJSON(ctx, in)
		if err != nil {
			t.Fatalf("%s: pairwise library: %v", name, err)
		}
		got, err := cur.EvaluateJSON(ctx, in)
		if err != nil {
			t.Fatalf("%s: one-pass library, Go model: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: findings differ\none-pass, Go model: %+v\npairwise: %+v", name, got, want)
		}
		gotRego, err := inRego.EvaluateJSON(ctx, in)
		if err != nil {
			t.Fatalf("%s: one-pass library in Rego: %v", name, err)
		}
		if !reflect.DeepEqual(gotRego, want) {
			t.Errorf("%s: findings differ\none-pass in Rego: %+v\npairwise: %+v", name, gotRego, want)
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

// TestFirewallModelEquivalent compares the Go model's accepting and
// dropping rules, the ports the accepting ones open and the sources they
// open them to beyond what the spec allows, with what
// lib_firewall.rego computes without it, rule by rule, over firewallCorpus
// and mutatedCorpus (which varies the spec's ports and sources and the
// node's subnet and VPC); where the model steps aside (a rule not in
// the collector's shape) input.derived must be empty.
func TestFirewallModelEquivalent(t *testing.T) {
	ctx := context.Background()
	pq, err := rego.New(rego.Query("a = data.esbake.lib.firewall.accepting; d = data.esbake.lib.firewall.dropping; o = data.esbake.lib.firewall.opened; x = data.esbake.lib.firewall.exposed; w = data.esbake.rules.network.world_open"),
		rego.ParsedModule(mustModule(t, "lib.rego")), rego.ParsedModule(mustModule(t, "lib_firewall.rego")),
		rego.ParsedModule(mustModule(t, "network_security_groups.rego")),
		rego.SetRegoVersion(ast.RegoV1)).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	indices := func(v any) []int {
		out := []int{}
		for _, pair := range v.([]any) {
			n, _ := pair.([]any)[0].(json.Number).Int64()
			out = append(out, int(n))
		}
		return out
	}
	// opened as sorted JSON texts of [rule, port], duplicates dropped.
	texts := func(pairs [][2]any) []string {
		var out []string
		for _, p := range pairs {
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	docs := firewallCorpus(t)
	for name, b := range mutatedCorpus(t, 400) {
		docs[name] = b
	}
	for name, b := range sourcesGrid(t) {
		docs[name] = b
	}
	modelled, aside, judged, opened, outside, worldOpened := 0, 0, 0, 0, 0, 0
	for name, b := range docs {
		v, err := parseInput(b)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := pq.Eval(ctx, rego.EvalParsedInput(v))
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s: %v %v", name, rs, err)
		}
		wantAcc, wantDrop := indices(rs[0].Bindings["a"]), indices(rs[0].Bindings["d"])
		var wantOpens [][2]any
		for _, o := range rs[0].Bindings["o"].([]any) {
			wantOpens = append(wantOpens, [2]any(o.([]any)))
		}
		m, ok := firewallModel(v.(ast.Object))
		acc, drop := m.accepting, m.dropping
		var wantExposed [][2]any
		for _, x := range rs[0].Bindings["x"].([]any) {
			x := x.([]any)
			wantExposed = append(wantExposed, [2]any{x[0], []any{x[1], x[2]}})
		}
		var opens, exposed [][2]any
		for _, o := range m.opens {
			rules := objOrEmpty(objOrEmpty(v.(ast.Object).Get(factsKey)).Get(firewallKey)).Get(rulesKey)
			r, err := ast.JSON(rules.Value.(*ast.Array).Elem(o.rule).Value)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ast.JSON(o.port)
			if err != nil {
				t.Fatal(err)
			}
			opens = append(opens, [2]any{r, p})
		}
		for _, x := range m.exposed {
			rules := objOrEmpty(objOrEmpty(v.(ast.Object).Get(factsKey)).Get(firewallKey)).Get(rulesKey)
			r, err := ast.JSON(rules.Value.(*ast.Array).Elem(x.rule).Value)
			if err != nil {
				t.Fatal(err)
			}
			pp, err := ast.JSON(ast.NewObject(ast.Item(ast.StringTerm("port"), ast.NewTerm(x.port)), ast.Item(ast.StringTerm("kind"), ast.StringTerm(x.kind))))
			if err != nil {
				t.Fatal(err)
			}
			exposed = append(exposed, [2]any{r, []any{pp, x.from}})
		}
		derived := withDerived(v).(ast.Object).Get(ast.StringTerm("derived")).Value.(ast.Object)
		// The world-open security group rules, found in Go whatever the
		// firewall, as ES-NET-003's Rego finds them.
		var worldOpen [][2]any
		sgs := arrOrEmpty(objOrEmpty(v.(ast.Object).Get(nodeKey)).Get(securityGroupsKey))
		wo := derived.Get(securityGroupsKey).Value.(ast.Object).Get(worldOpenKey).Value.(*ast.Array)
		for i := range wo.Len() {
			x := wo.Elem(i).Value.(*ast.Array)
			g, _ := x.Elem(0).Value.(ast.Number).Int()
			r, _ := x.Elem(1).Value.(ast.Number).Int()
			sg := sgs.Elem(g).Value.(ast.Object)
			pair, err := ast.JSON(ast.NewArray(ast.NewTerm(sg), sg.Get(ingressKey).Value.(*ast.Array).Elem(r), x.Elem(2)))
			if err != nil {
				t.Fatal(err)
			}
			worldOpen = append(worldOpen, [2]any{pair, nil})
		}
		var wantWorldOpen [][2]any
		for _, x := range rs[0].Bindings["w"].([]any) {
			wantWorldOpen = append(wantWorldOpen, [2]any{x, nil})
		}
		if got, want := texts(worldOpen), texts(wantWorldOpen); !slices.Equal(got, want) {
			t.Errorf("%s: world-open ingress in Go\n%v\nin Rego\n%v", name, got, want)
		}
		worldOpened += len(wantWorldOpen)
		if !ok {
			aside++
			if derived.Get(firewallKey) != nil {
				t.Errorf("%s: model stepped aside but input.derived is %v", name, derived)
			}
			continue
		}
		modelled++
		judged += len(wantAcc) + len(wantDrop)
		if !slices.Equal(acc, wantAcc) || !slices.Equal(drop, wantDrop) {
			t.Errorf("%s: Go model accepting %v dropping %v, Rego %v and %v", name, acc, drop, wantAcc, wantDrop)
		}
		if got, want := texts(opens), texts(wantOpens); !slices.Equal(got, want) {
			t.Errorf("%s: Go model opens\n%v\nRego\n%v", name, got, want)
		}
		if got, want := texts(exposed), texts(wantExposed); !slices.Equal(got, want) {
			t.Errorf("%s: Go model exposes\n%v\nRego\n%v", name, got, want)
		}
		opened += len(wantOpens)
		outside += len(wantExposed)
	}
	t.Logf("%d documents modelled (%d accepting or dropping rules, %d openings, %d sources outside), %d left to Rego; %d world-open security group sources", modelled, judged, opened, outside, aside, worldOpened)
	if aside == 0 || modelled < 100 || judged < 100 || opened < 100 || outside < 100 || worldOpened < 100 {
		t.Errorf("corpus: %d modelled with %d rules judged, %d left to Rego: both paths must be exercised", modelled, judged, aside)
	}
}

// TestFirewallModelReplacesDerived: an input.derived the document brought
// along never reaches the policies; the engine's own replaces it.
func TestFirewallModelReplacesDerived(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Options{})
	in := seedNode()
	in.Facts.Firewall = facts.Firewall{Backend: "iptables", DefaultInputPolicy: "DROP",
		Chains: []facts.Chain{{Backend: "iptables", Family: "ipv4", Table: "filter", Name: "INPUT", Hook: "input", Policy: "DROP"}},
		Rules: []facts.FirewallRule{{Backend: "iptables", Family: "ipv4", Table: "filter", Chain: "INPUT", Hook: "input",
			Proto: "tcp", DPorts: []facts.PortRange{{From: 9200, To: 9200}}, Sources: []string{}, Target: "ACCEPT", Raw: "-A INPUT -p tcp --dport 9200 -j ACCEPT"}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	doc := asDoc(t, in)
	want, err := e.EvaluateJSON(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ruleIDs(want), "ES-NET-003") {
		t.Fatalf("a security group open to 0.0.0.0/0 is not reported: %+v", want)
	}
	if !slices.Contains(ruleIDs(want), "ES-NET-002") {
		t.Fatalf("an ACCEPT of 9200 from anywhere is not reported: %+v", want)
	}
	doc["derived"] = map[string]any{"firewall": map[string]any{"accepting": []any{}, "dropping": []any{}, "opens": []any{}, "exposed": []any{}},
		"security_groups": map[string]any{"world_open": []any{}}}
	forged, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.EvaluateJSON(ctx, forged)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("a forged input.derived changed the findings:\ngot  %+v\nwant %+v", got, want)
	}
}

func mustModule(t *testing.T, name string) *ast.Module {
	t.Helper()
	b, err := fs.ReadFile(policies.FS, name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ast.ParseModuleWithOpts(name, string(b), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	return m
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
		r.Target = pick("ACCEPT", "ACCEPT", "ACCEPT", "DROP", "DROP", "REJECT", "RETURN", "LOG", "", "MARK", "NFQUEUE", "ESNODE-INPUT", "C1", "C2", "C3")
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
// loop so machine load hits every size alike: rules judged by the engine's
// Go model (what esaudit runs), by the one-pass library in Rego (what opa
// and conftest run), and by the pairwise library that preceded it. Metrics: CPU-ms per evaluation of each size
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
		name         string
		opts         Options
		regoFirewall bool
	}{{"go-model", Options{}, false}, {"one-pass-rego", Options{}, true}, {"pairwise", Options{FS: pairwisePolicies(b)}, true}} {
		b.Run(lib.name, func(b *testing.B) {
			e := newEngine(b, lib.opts)
			e.regoFirewall = lib.regoFirewall
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
