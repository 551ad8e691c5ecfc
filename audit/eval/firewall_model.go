package eval

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// The engine judges each host firewall rule once, in Go, and hands the
// policies the result as input.derived.firewall: {"accepting": [i...],
// "dropping": [j...], "opens": [[i, port]...]}: the indices of
// facts.firewall.rules that lib_firewall.rego's accepts_new and drops_all
// hold for, and the protected ports each accepting rule opens unshadowed
// (its opened; matching every rule against every port cost ~0.2 ms of
// Rego per node). In Rego those
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
	opensKey     = ast.InternedTerm("opens")
	dportsKey    = ast.InternedTerm("dports")
	dportsNegKey = ast.InternedTerm("dports_negated")
	fromKey      = ast.InternedTerm("from")
	toKey        = ast.InternedTerm("to")
	manifestKey  = ast.InternedTerm("manifest")
	specKey      = ast.InternedTerm("spec")
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
	if m, ok := firewallModel(in); ok {
		opens := make([]*ast.Term, len(m.opens))
		for i, o := range m.opens {
			opens[i] = ast.ArrayTerm(ast.InternedTerm(o.rule), ast.NewTerm(o.port))
		}
		derived = ast.NewObject(
			ast.Item(firewallKey, ast.ObjectTerm(
				ast.Item(acceptingKey, indexArray(m.accepting)),
				ast.Item(droppingKey, indexArray(m.dropping)),
				ast.Item(opensKey, ast.ArrayTerm(opens...)))))
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
	// key is the rule's chain as fwKey gives it.
	key string
	// dports are the rule's port ranges, negated when dportsNegated.
	dports        []portRange
	dportsNegated bool
}

// portRange is one of a rule's dports, its bounds as in the input.
type portRange struct{ from, to ast.Value }

// fwModel is what the model hands the policies.
type fwModel struct {
	accepting, dropping []int
	opens               []opening
}

// opening is an accepting rule (its index) that opens a protected port.
type opening struct {
	rule int
	port ast.Value
}

// matches mirrors lib_firewall.rego's matches_port: no port match, or p in
// a range; negated, p in none of them. Comparisons are Rego's (<=).
func (r *fwRule) matches(p ast.Value) bool {
	in := false
	for _, pr := range r.dports {
		if ast.Compare(pr.from, p) <= 0 && ast.Compare(p, pr.to) <= 0 {
			in = true
			break
		}
	}
	if r.dportsNegated {
		return !in
	}
	return len(r.dports) == 0 || in
}

// protectedPorts mirrors lib.rego's http_port, transport_port and hq_port
// (the spec's, or the default when it is not a number above zero).
func protectedPorts(in ast.Object) []ast.Value {
	spec := objOrEmpty(objOrEmpty(objOrEmpty(in.Get(factsKey)).Get(manifestKey)).Get(specKey))
	port := func(section, field string, def int) ast.Value {
		v := objOrEmpty(spec.Get(ast.StringTerm(section))).Get(ast.StringTerm(field))
		if v != nil {
			if n, ok := v.Value.(ast.Number); ok && ast.Compare(n, ast.Number("0")) > 0 {
				return n
			}
		}
		return ast.InternedTerm(def).Value
	}
	return []ast.Value{port("elasticsearch", "http_port", 9200), port("elasticsearch", "transport_port", 9300), port("elastichq", "port", 5000)}
}

// firewallModel mirrors lib_firewall.rego: roots are the input-hook chains
// (and chains of rules that carry the input hook) of deciding tables,
// input chains are the roots and every chain they reach by jumps, and a
// rule accepts (drops) when accepts_new (drops_all) holds. ok is false
// when a rule or chain is not in the shape the collector writes.
func firewallModel(in ast.Object) (m fwModel, ok bool) {
	fw := objOrEmpty(objOrEmpty(in.Get(factsKey)).Get(firewallKey))
	rules := arrOrEmpty(fw.Get(rulesKey))
	chains := arrOrEmpty(fw.Get(chainsKey))

	parsed := make([]fwRule, rules.Len())
	roots := map[string]bool{}
	jumps := map[string][]string{}
	for i := range rules.Len() {
		r, ok := readRule(rules.Elem(i).Value)
		if !ok {
			return fwModel{}, false
		}
		r.key = fwKey(r.family, r.table, r.chain)
		parsed[i] = r
		k := r.key
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
			return fwModel{}, false
		}
		var f [5]string
		for j, key := range []*ast.Term{backendKey, familyKey, tableKey, nameKey, hookKey} {
			v := c.Get(key)
			if v == nil && key == hookKey {
				continue
			}
			s, ok := stringOf(v)
			if !ok {
				return fwModel{}, false
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

	accept, drop := []int{}, []int{}
	for i, r := range parsed {
		tcp := r.proto == "" || r.proto == "tcp" || r.proto == "all" || r.proto == "6"
		if !tcp || !r.newConns || !reached[r.key] {
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

	// opened: each protected port an accepting rule matches, unless an
	// earlier dropping rule of its chain matches it too (shadowed).
	ports := protectedPorts(in)
	opens := []opening{}
	for _, i := range accept {
		r := &parsed[i]
		for _, p := range ports {
			if !r.matches(p) {
				continue
			}
			shadowed := false
			for _, j := range drop {
				d := &parsed[j]
				if j < i && d.key == r.key && d.matches(p) {
					shadowed = true
					break
				}
			}
			if !shadowed {
				opens = append(opens, opening{rule: i, port: p})
			}
		}
	}
	return fwModel{accepting: accept, dropping: drop, opens: opens}, true
}

// readRule reads a rule whose backend, family, table, chain and target are
// strings and whose hook, proto and in_interface are strings or absent.
func readRule(v ast.Value) (fwRule, bool) {
	o, ok := v.(ast.Object)
	if !ok {
		return fwRule{}, false
	}
	// The first five are required, the others optional (a fixed array
	// rather than pointers into r, which would put r on the heap).
	var f [8]string
	for j, key := range [8]*ast.Term{backendKey, familyKey, tableKey, chainKey, targetKey, hookKey, protoKey, inIfaceKey} {
		t := o.Get(key)
		if t == nil && j >= 5 {
			continue
		}
		s, ok := stringOf(t)
		if !ok {
			return fwRule{}, false
		}
		f[j] = s
	}
	r := fwRule{backend: f[0], family: f[1], table: f[2], chain: f[3], target: f[4], hook: f[5], proto: f[6], inIface: f[7]}
	// new_conns: no conntrack state match, or one that includes new.
	ct := arrOrEmpty(o.Get(ctstateKey))
	r.newConns = ct.Len() == 0
	for i := 0; i < ct.Len() && !r.newConns; i++ {
		s, isString := ct.Elem(i).Value.(ast.String)
		r.newConns = isString && s == "new"
	}
	// dports: absent, or ranges whose bounds are numbers; dports_negated
	// absent or a boolean. Anything else is left to the policies.
	if t := o.Get(dportsKey); t != nil {
		a, ok := t.Value.(*ast.Array)
		if !ok {
			return fwRule{}, false
		}
		for i := range a.Len() {
			pr, ok := a.Elem(i).Value.(ast.Object)
			if !ok {
				return fwRule{}, false
			}
			from, to := pr.Get(fromKey), pr.Get(toKey)
			if from == nil || to == nil {
				return fwRule{}, false
			}
			_, fromNum := from.Value.(ast.Number)
			_, toNum := to.Value.(ast.Number)
			if !fromNum || !toNum {
				return fwRule{}, false
			}
			r.dports = append(r.dports, portRange{from.Value, to.Value})
		}
	}
	if t := o.Get(dportsNegKey); t != nil {
		b, ok := t.Value.(ast.Boolean)
		if !ok {
			return fwRule{}, false
		}
		r.dportsNegated = bool(b)
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
	return emptyArray
}

// emptyArray is only read.
var emptyArray = ast.NewArray()

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
