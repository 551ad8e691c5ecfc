package eval

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The engine judges each host firewall rule once, in Go, and hands the
// policies the result as input.derived.firewall: {"accepting": [i...],
// "dropping": [j...], "opens": [[i, port]...], "exposed": [[i, port,
// kind, source]...]}: the indices of facts.firewall.rules that
// lib_firewall.rego's accepts_new and drops_all hold for, the protected
// ports each accepting rule opens unshadowed (its opened), and the sources
// it opens them to beyond what the spec allows (its exposed). Matching
// every rule against every port, and every source against the allowed
// CIDRs, cost ~0.3 ms of Rego per node. In Rego those
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
	exposedKey   = ast.InternedTerm("exposed")
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

// withDerived sets input.derived to the firewall model (left out when the
// firewall is not in the collector's shape: the policies then judge the
// rules themselves) and the world-open security group rules. Whatever derived the
// input came with is replaced: only the engine writes it.
func withDerived(input ast.Value) ast.Value {
	in, ok := input.(ast.Object)
	if !ok {
		return input
	}
	derived := ast.NewObject(ast.Item(securityGroupsKey, worldOpenIngress(in)))
	if m, ok := firewallModel(in); ok {
		opens := make([]*ast.Term, len(m.opens))
		for i, o := range m.opens {
			opens[i] = ast.ArrayTerm(ast.InternedTerm(o.rule), ast.NewTerm(o.port))
		}
		exposed := make([]*ast.Term, len(m.exposed))
		for i, x := range m.exposed {
			exposed[i] = ast.ArrayTerm(ast.InternedTerm(x.rule), ast.NewTerm(x.port), ast.StringTerm(x.kind), ast.StringTerm(x.from))
		}
		derived.Insert(
			firewallKey, ast.ObjectTerm(
				ast.Item(acceptingKey, indexArray(m.accepting)),
				ast.Item(droppingKey, indexArray(m.dropping)),
				ast.Item(opensKey, ast.ArrayTerm(opens...)),
				ast.Item(exposedKey, ast.ArrayTerm(exposed...))))
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
	// sources are the rule's sources (strings), negated when
	// sourcesNegated.
	sources        []string
	sourcesNegated bool
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
	exposed             []exposure
}

// exposure is an opening's source outside what the spec allows for the
// kind of port (lib_firewall.rego's outside_sources), or "any source".
type exposure struct {
	rule       int
	port       ast.Value
	kind, from string
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

// protectedPort is one of lib.rego's protected: a port and its kind.
type protectedPort struct {
	port ast.Value
	kind string
}

// protectedPorts mirrors lib.rego's protected: http_port, transport_port
// and hq_port (the spec's, or the default when it is not a number above
// zero) and their kinds.
func protectedPorts(in ast.Object) []protectedPort {
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
	return []protectedPort{
		{port("elasticsearch", "http_port", 9200), "http"},
		{port("elasticsearch", "transport_port", 9300), "transport"},
		{port("elastichq", "port", 5000), "hq"},
	}
}

// allowedSet is lib.rego's allowed_cidrs for one kind of port; known is
// false where it is undefined (a subnet or VPC it needs is unknown).
type allowedSet struct {
	cidrs []string
	known bool
}

// allowedSources mirrors lib.rego's allowed_cidrs for each kind of
// protected port. ok is false when a setting it reads is not a string (or
// list of strings) as the spec and esnode boot write it: the policies then
// decide.
func allowedSources(in ast.Object) (map[string]allowedSet, bool) {
	facts := objOrEmpty(in.Get(factsKey))
	spec := objOrEmpty(objOrEmpty(facts.Get(manifestKey)).Get(specKey))
	boot := objOrEmpty(objOrEmpty(facts.Get(ast.StringTerm("host"))).Get(ast.StringTerm("boot")))
	node := objOrEmpty(in.Get(ast.StringTerm("node")))

	// text is lib.value(o, [key], ""): null and absent are "".
	text := func(o ast.Object, key string) (string, bool) {
		t := o.Get(ast.StringTerm(key))
		if t == nil || t.Value.Compare(ast.Null{}) == 0 {
			return "", true
		}
		return stringOf(t)
	}
	// texts are the non-empty strings of lib.arr(o[key]).
	texts := func(o ast.Object, key string) ([]string, bool) {
		var out []string
		a := arrOrEmpty(o.Get(ast.StringTerm(key)))
		for i := range a.Len() {
			s, ok := stringOf(a.Elem(i))
			if !ok {
				return nil, false
			}
			if s != "" && !slicesContains(out, s) {
				out = append(out, s)
			}
		}
		return out, true
	}

	subnet, ok := text(boot, "subnet_cidr")
	if !ok {
		return nil, false
	}
	if subnet == "" {
		if subnet, ok = text(node, "subnet_cidr"); !ok {
			return nil, false
		}
	}
	vpc, ok := texts(boot, "vpc_cidrs")
	if !ok {
		return nil, false
	}
	one, ok := text(boot, "vpc_cidr")
	if !ok {
		return nil, false
	}
	if one != "" && !slicesContains(vpc, one) {
		vpc = append(vpc, one)
	}
	if len(vpc) == 0 {
		if vpc, ok = texts(node, "vpc_cidrs"); !ok {
			return nil, false
		}
	}

	fw := objOrEmpty(spec.Get(firewallKey))
	out := map[string]allowedSet{}
	for _, kind := range []string{"http", "transport", "hq"} {
		// spec_sources: the spec's list, or ["subnet"] when it has none.
		srcs := []string{"subnet"}
		if t := fw.Get(ast.StringTerm(kind + "_sources")); t != nil && t.Value.Compare(ast.Null{}) != 0 {
			a, isArray := t.Value.(*ast.Array)
			if !isArray {
				return nil, false
			}
			if a.Len() > 0 {
				srcs = nil
				for i := range a.Len() {
					s, ok := stringOf(a.Elem(i))
					if !ok {
						return nil, false
					}
					srcs = append(srcs, s)
				}
			}
		}
		// resolve: subnet and vpc need the node's, other sources are CIDRs.
		set := allowedSet{known: true}
		for _, s := range srcs {
			var add []string
			switch s {
			case "subnet":
				if subnet == "" {
					set.known = false
				}
				add = []string{subnet}
			case "vpc":
				if len(vpc) == 0 {
					set.known = false
				}
				add = vpc
			default:
				add = []string{s}
			}
			for _, c := range add {
				if !slicesContains(set.cidrs, c) {
					set.cidrs = append(set.cidrs, c)
				}
			}
		}
		if !set.known {
			set.cidrs = nil
		}
		out[kind] = set
	}
	return out, true
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// world mirrors lib.rego's world: a source that matches every address.
func world(src string) bool {
	t := strings.TrimSpace(src)
	return strings.HasSuffix(t, "/0") || t == "0.0.0.0" || t == "::" || t == "any" || t == "*"
}

// netCIDRContains is OPA's own net.cidr_contains, so containment is
// decided exactly as in the policies (an error is a no).
var netCIDRContains = topdown.GetBuiltin("net.cidr_contains")

func cidrContains(cidr, src string) bool {
	contained := false
	err := netCIDRContains(topdown.BuiltinContext{}, []*ast.Term{ast.StringTerm(cidr), ast.StringTerm(src)}, func(t *ast.Term) error {
		contained = t.Value.Compare(ast.Boolean(true)) == 0
		return nil
	})
	return err == nil && contained
}

// outsideSources mirrors lib_firewall.rego's outside_sources: "any source"
// when the rule has no source match (or a negated one), and each source
// not within what the spec allows for that kind of port.
func outsideSources(r *fwRule, allowed allowedSet) []string {
	var out []string
	if len(r.sources) == 0 || r.sourcesNegated {
		out = append(out, "any source")
	}
	if r.sourcesNegated {
		return out
	}
	for _, s := range r.sources {
		within := false
		if !world(s) {
			within = !allowed.known
			for _, c := range allowed.cidrs {
				if within {
					break
				}
				within = cidrContains(c, s)
			}
		}
		if !within {
			out = append(out, s)
		}
	}
	return out
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
	protected := protectedPorts(in)
	allowed, ok := allowedSources(in)
	if !ok {
		return fwModel{}, false
	}
	opens := []opening{}
	for _, i := range accept {
		r := &parsed[i]
		for _, pp := range protected {
			p := pp.port
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
	// exposed: each opening's sources outside what the spec allows for
	// the kind of each protected port it is.
	exposed := []exposure{}
	for _, o := range opens {
		for _, pp := range protected {
			if ast.Compare(pp.port, o.port) != 0 {
				continue
			}
			for _, src := range outsideSources(&parsed[o.rule], allowed[pp.kind]) {
				exposed = append(exposed, exposure{rule: o.rule, port: o.port, kind: pp.kind, from: src})
			}
		}
	}
	return fwModel{accepting: accept, dropping: drop, opens: opens, exposed: exposed}, true
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
	srcs := arrOrEmpty(o.Get(sourcesKey))
	r.anySourceList = srcs.Len() == 0
	for i := range srcs.Len() {
		s, ok := stringOf(srcs.Elem(i))
		if !ok {
			return fwRule{}, false
		}
		r.sources = append(r.sources, s)
	}
	if t := o.Get(srcNegKey); t != nil {
		b, ok := t.Value.(ast.Boolean)
		if !ok {
			return fwRule{}, false
		}
		r.sourcesNegated = bool(b)
	}
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
