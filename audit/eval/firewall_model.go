package eval

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// The engine judges each host firewall rule once, in Go, and hands the
// policies the result as input.derived.firewall: {"accepting": [i...],
// "dropping": [j...]}, the indices of facts.firewall.rules that
// lib_firewall.rego's accepts_new and drops_all hold for. In Rego those
// cost ~25 µs per rule (a 200-rule Docker/fail2ban host cost 2.5x a
// 6-rule one); here a few µs for the whole ruleset. The Rego definitions
// stay, and run when the input has no model (opa eval, conftest, a
// firewall not in the collector's shape), so findings are the same either
// way (TestFirewallModelEquivalent).

var (
	derivedKey   = ast.InternedTerm("derived")
	firewallKey  = ast.InternedTerm("firewall")
	factsKey     = ast.InternedTerm("facts")
	rulesKey     = ast.InternedTerm("rules")
	chainsKey    = ast.InternedTerm("chains")
	acceptingKey = ast.InternedTerm("accepting")
	droppingKey  = ast.InternedTerm("dropping")
	backendKey   = ast.InternedTerm("backend")
	familyKey    = ast.InternedTerm("family")
	tableKey     = ast.InternedTerm("table")
	chainKey     = ast.InternedTerm("chain")
	nameKey      = ast.InternedTerm("name")
	hookKey      = ast.InternedTerm("hook")
	targetKey    = ast.InternedTerm("target")
	protoKey     = ast.InternedTerm("proto")
	ctstateKey   = ast.InternedTerm("ctstate")
	sourcesKey   = ast.InternedTerm("sources")
	srcNegKey    = ast.InternedTerm("sources_negated")
	otherKey     = ast.InternedTerm("other_matches")
	inIfaceKey   = ast.InternedTerm("in_interface")
)

// verdicts are the targets that do not jump to a chain (lib_firewall.rego's
// verdicts; keep the two in step).
var verdicts = map[string]bool{"": true, "ACCEPT": true, "DROP": true, "REJECT": true, "RETURN": true, "LOG": true,
	"QUEUE": true, "NFQUEUE": true, "CONTINUE": true, "MARK": true, "CT": true, "NOTRACK": true, "AUDIT": true}

// withDerived sets input.derived to the firewall model, or to {} when the
// input is not an object or its firewall is not in the collector's shape
// (the policies then judge the rules themselves). Whatever derived the
// input came with is replaced: only the engine writes it.
func withDerived(input ast.Value) ast.Value {
	in, ok := input.(ast.Object)
	if !ok {
		return input
	}
	derived := ast.NewObject()
	if acc, drop, ok := firewallModel(in); ok {
		derived = ast.NewObject(
			ast.Item(firewallKey, ast.ObjectTerm(
				ast.Item(acceptingKey, indexArray(acc)),
				ast.Item(droppingKey, indexArray(drop)))))
	}
	in.Insert(derivedKey, ast.NewTerm(derived))
	return in
}

func indexArray(idx []int) *ast.Term {
	terms := make([]*ast.Term, len(idx))
	for i, n := range idx {
		terms[i] = ast.InternedTerm(n)
	}
	return ast.ArrayTerm(terms...)
}

// fwRule is one rule's fields as the model reads them.
type fwRule struct {
	backend, family, table, chain, target string
	hook, proto, inIface                  string
	newConns, anySourceList, plainSources bool
	noOther                               bool
}

// firewallModel mirrors lib_firewall.rego: roots are the input-hook chains
// (and chains of rules that carry the input hook) of deciding tables,
// input chains are the roots and every chain they reach by jumps, and a
// rule accepts (drops) when accepts_new (drops_all) holds. ok is false
// when a rule or chain is not in the shape the collector writes.
func firewallModel(in ast.Object) (accept, drop []int, ok bool) {
	fw := objOrEmpty(objOrEmpty(in.Get(factsKey)).Get(firewallKey))
	rules := arrOrEmpty(fw.Get(rulesKey))
	chains := arrOrEmpty(fw.Get(chainsKey))

	parsed := make([]fwRule, rules.Len())
	roots := map[string]bool{}
	jumps := map[string][]string{}
	for i := range rules.Len() {
		r, ok := readRule(rules.Elem(i).Value)
		if !ok {
			return nil, nil, false
		}
		parsed[i] = r
		k := fwKey(r.family, r.table, r.chain)
		if r.hook == "input" && deciding(r.backend, r.table) {
			roots[k] = true
		}
		if !verdicts[r.target] {
			jumps[k] = append(jumps[k], fwKey(r.family, r.table, r.target))
		}
	}
	for i := range chains.Len() {
		c, ok := chains.Elem(i).Value.(ast.Object)
		if !ok {
			return nil, nil, false
		}
		var f [5]string
		for j, key := range []*ast.Term{backendKey, familyKey, tableKey, nameKey, hookKey} {
			v := c.Get(key)
			if v == nil && key == hookKey {
				continue
			}
			s, ok := stringOf(v)
			if !ok {
				return nil, nil, false
			}
			f[j] = s
		}
		if f[4] == "input" && deciding(f[0], f[2]) {
			roots[fwKey(f[1], f[2], f[3])] = true
		}
	}

	// Reachability from the roots, as graph.reachable over jumps.
	reached := map[string]bool{}
	queue := make([]string, 0, len(roots))
	for k := range roots {
		queue = append(queue, k)
	}
	for len(queue) > 0 {
		k := queue[0]
		queue = queue[1:]
		if reached[k] {
			continue
		}
		reached[k] = true
		queue = append(queue, jumps[k]...)
	}

	accept, drop = []int{}, []int{}
	for i, r := range parsed {
		tcp := r.proto == "" || r.proto == "tcp" || r.proto == "all" || r.proto == "6"
		if !tcp || !r.newConns || !reached[fwKey(r.family, r.table, r.chain)] {
			continue
		}
		switch r.target {
		case "ACCEPT":
			if r.inIface != "lo" {
				accept = append(accept, i)
			}
		case "DROP", "REJECT":
			if r.plainSources && r.noOther && r.inIface == "" && r.anySourceList {
				drop = append(drop, i)
			}
		}
	}
	return accept, drop, true
}

// readRule reads a rule whose backend, family, table, chain and target are
// strings and whose hook, proto and in_interface are strings or absent.
func readRule(v ast.Value) (fwRule, bool) {
	o, ok := v.(ast.Object)
	if !ok {
		return fwRule{}, false
	}
	var r fwRule
	for _, f := range []struct {
		key      *ast.Term
		dst      *string
		optional bool
	}{
		{backendKey, &r.backend, false}, {familyKey, &r.family, false}, {tableKey, &r.table, false},
		{chainKey, &r.chain, false}, {targetKey, &r.target, false},
		{hookKey, &r.hook, true}, {protoKey, &r.proto, true}, {inIfaceKey, &r.inIface, true},
	} {
		t := o.Get(f.key)
		if t == nil && f.optional {
			continue
		}
		s, ok := stringOf(t)
		if !ok {
			return fwRule{}, false
		}
		*f.dst = s
	}
	// new_conns: no conntrack state match, or one that includes new.
	ct := arrOrEmpty(o.Get(ctstateKey))
	r.newConns = ct.Len() == 0
	for i := 0; i < ct.Len() && !r.newConns; i++ {
		r.newConns = ct.Elem(i).Value.Compare(ast.String("new")) == 0
	}
	r.anySourceList = arrOrEmpty(o.Get(sourcesKey)).Len() == 0
	// `not r.x` holds when x is absent or false.
	r.plainSources = absentOrFalse(o.Get(srcNegKey))
	r.noOther = absentOrFalse(o.Get(otherKey))
	return r, true
}

func deciding(backend, table string) bool {
	return backend == "nftables" || backend == "iptables" && table == "filter"
}

// fwKey is lib_firewall.rego's key: concat("/", [family, table, chain]).
func fwKey(family, table, chain string) string { return family + "/" + table + "/" + chain }

func objOrEmpty(t *ast.Term) ast.Object {
	if t != nil {
		if o, ok := t.Value.(ast.Object); ok {
			return o
		}
	}
	return emptyObject
}

// emptyObject is only read.
var emptyObject = ast.NewObject()

func arrOrEmpty(t *ast.Term) *ast.Array {
	if t != nil {
		if a, ok := t.Value.(*ast.Array); ok {
			return a
		}
	}
	return ast.NewArray()
}

func stringOf(t *ast.Term) (string, bool) {
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

func absentOrFalse(t *ast.Term) bool {
	return t == nil || t.Value.Compare(ast.Boolean(false)) == 0
}
