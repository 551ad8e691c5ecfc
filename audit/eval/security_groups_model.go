package eval

import "github.com/open-policy-agent/opa/v1/ast"

// The engine also finds, in Go, the security group ingress rules with a
// world-open source and hands them to the policies as
// input.derived.security_groups: {"world_open": [[g, r, cidr]...]}, g and r
// indexing node.security_groups[g].ingress[r]. ES-NET-003 then checks ports
// only for those; without it (opa eval, conftest) its Rego finds them, with
// the same result (TestFirewallModelEquivalent compares the two).

var (
	securityGroupsKey = ast.InternedTerm("security_groups")
	ingressKey        = ast.InternedTerm("ingress")
	cidrsKey          = ast.InternedTerm("cidrs")
	ipv6CIDRsKey      = ast.InternedTerm("ipv6_cidrs")
	worldOpenKey      = ast.InternedTerm("world_open")
	nodeKey           = ast.InternedTerm("node")
)

// worldOpenIngress mirrors network_security_groups.rego's world_cidrs over
// every ingress rule: a group or rule that is not an object has none (its
// object.get fails), sources that are not strings are not the world.
func worldOpenIngress(in ast.Object) *ast.Term {
	var out []*ast.Term
	sgs := arrOrEmpty(objOrEmpty(in.Get(nodeKey)).Get(securityGroupsKey))
	for g := range sgs.Len() {
		sg, ok := sgs.Elem(g).Value.(ast.Object)
		if !ok {
			continue
		}
		rules := arrOrEmpty(sg.Get(ingressKey))
		for r := range rules.Len() {
			rule, ok := rules.Elem(r).Value.(ast.Object)
			if !ok {
				continue
			}
			var seen []string
			for _, key := range []*ast.Term{cidrsKey, ipv6CIDRsKey} {
				cidrs := arrOrEmpty(rule.Get(key))
				for i := range cidrs.Len() {
					c, ok := stringOf(cidrs.Elem(i))
					if !ok || !world(c) || slicesContains(seen, c) {
						continue
					}
					seen = append(seen, c)
					out = append(out, ast.ArrayTerm(ast.InternedTerm(g), ast.InternedTerm(r), cidrs.Elem(i)))
				}
			}
		}
	}
	return ast.ObjectTerm(ast.Item(worldOpenKey, ast.ArrayTerm(out...)))
}
