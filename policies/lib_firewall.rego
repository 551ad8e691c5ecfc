# Host firewall helpers over facts.firewall (iptables and nftables rules,
# normalized by the facts collector). The model is deliberately simple and
# errs towards reporting: rule order is honoured only within a chain, and an
# ACCEPT with matches the parser does not model still counts as opening.
package esbake.lib.firewall

import data.esbake.lib

fw := lib.obj(object.get(lib.facts, "firewall", {}))

rules := lib.arr(object.get(fw, "rules", []))

chains := lib.arr(object.get(fw, "chains", []))

verdicts := {"", "ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "QUEUE", "NFQUEUE", "CONTINUE", "MARK", "CT", "NOTRACK", "AUDIT"}

key(family, table, chain) := concat("/", [family, table, chain])

rule_key(r) := key(r.family, r.table, r.chain)

# In iptables only the filter table decides: an ACCEPT in raw or mangle
# still passes filter. Every nftables table with an input hook decides.
deciding(x) if x.backend == "nftables"

deciding(x) if {
	x.backend == "iptables"
	x.table == "filter"
}

roots contains key(c.family, c.table, c.name) if {
	some c in chains
	c.hook == "input"
	deciding(c)
}

roots contains rule_key(r) if {
	some r in rules
	object.get(r, "hook", "") == "input"
	deciding(r)
}

# jumps maps a chain to the chains its rules jump to, grouped in one pass
# over the rules (comparing every pair of rules was quadratic in the size
# of the ruleset; hosts with Docker or fail2ban carry hundreds of rules).
# graph.reachable reports only vertices that are keys, so every root and
# every jump target is one, jumping on or not; chains no root can reach
# need not be.
jumps := {k: object.get(jump_targets, k, set()) | some k in vertices}

vertices := (roots | object.keys(jump_targets)) | union({t | some t in jump_targets})

jump_targets[rule_key(r)] contains key(r.family, r.table, r.target) if {
	some r in rules
	not r.target in verdicts
}

# input_chains are the input hook chains and every chain they jump to.
input_chains := graph.reachable(jumps, roots)

in_input(r) if rule_key(r) in input_chains

tcp(r) if object.get(r, "proto", "") in {"", "tcp", "all", "6"}

dports(r) := lib.arr(object.get(r, "dports", []))

sources(r) := lib.arr(object.get(r, "sources", []))

in_ranges(p, ranges) if {
	some pr in ranges
	pr.from <= p
	p <= pr.to
}

matches_port(r, _) if {
	not r.dports_negated
	count(dports(r)) == 0
}

matches_port(r, p) if {
	not r.dports_negated
	in_ranges(p, dports(r))
}

matches_port(r, p) if {
	r.dports_negated == true
	not in_ranges(p, dports(r))
}

# new_conns: the rule can match a new connection (no conntrack state
# match, or one that includes new); established-only rules open nothing.
new_conns(r) if count(lib.arr(object.get(r, "ctstate", []))) == 0

new_conns(r) if "new" in lib.arr(object.get(r, "ctstate", []))

loopback_only(r) if object.get(r, "in_interface", "") == "lo"

any_source(r) if count(sources(r)) == 0

any_source(r) if r.sources_negated == true

# Each rule is judged once, whatever the port, and only the few rules that
# accept or drop new TCP connections in an input chain are looked at per
# protected port: the cost grows with the ruleset by a small constant.
# Conditions run cheapest first (most rules fail on their target).

# accepts_new: r accepts new TCP connections from beyond loopback in an
# input chain (to the ports matches_port says).
accepts_new(r) if {
	r.target == "ACCEPT"
	not loopback_only(r)
	tcp(r)
	new_conns(r)
	in_input(r)
}

# drops_all: r drops every new TCP connection to the ports it matches,
# whatever its source, in an input chain.
drops_all(r) if {
	r.target in {"DROP", "REJECT"}
	not r.sources_negated
	not r.other_matches
	object.get(r, "in_interface", "") == ""
	count(sources(r)) == 0
	tcp(r)
	new_conns(r)
	in_input(r)
}

# accepting and dropping are those rules, with their index. esaudit judges
# every rule once in Go and passes the indices as input.derived.firewall
# (audit/eval/firewall_model.go: ~25 µs per rule less); without it (opa
# eval, conftest, a firewall not in the collector's shape) the rules above
# decide, with the same result.
model := m if {
	m := input.derived.firewall
	is_object(m)
}

accepting := [[i, rules[i]] | some i in model.accepting] if {
	is_object(model)
} else := [[i, r] | some i, r in rules; accepts_new(r)]

dropping := [[j, rules[j]] | some j in model.dropping] if {
	is_object(model)
} else := [[j, r] | some j, r in rules; drops_all(r)]

# opens: r accepts new TCP connections to port p in an input chain.
opens(r, p) if {
	accepts_new(r)
	matches_port(r, p)
}

# closes_all: r drops every new TCP connection to port p, whatever its
# source.
closes_all(r, p) if {
	drops_all(r)
	matches_port(r, p)
}

# shadowed: an earlier rule of the same chain already drops port p for
# every source, so the ACCEPT at index i is never reached for it.
shadowed(i, r, p) if {
	some [j, q] in closers[rule_key(r)]
	q == p
	j < i
}

# closers holds, per chain, the index of each rule that drops a protected
# port for every source, and that port, so shadowed looks only at a
# chain's few closing rules.
closers[rule_key(d)] contains [j, pp.port] if {
	some [j, d] in dropping
	some pp in lib.protected
	matches_port(d, pp.port)
}

# outside_sources(r, kind) are the sources of an opening rule that lie
# outside what the spec allows for that kind of port.
outside_sources(r, kind) := {"any source" | any_source(r)} | {s |
	not r.sources_negated
	some s in sources(r)
	not lib.within_allowed(kind, s)
}

# ---- default policies ----

policy_accepts("ipv4") if no_firewall

policy_accepts("ipv4") if object.get(fw, "default_input_policy", "") == "ACCEPT"

policy_accepts("ipv6") if no_firewall

# no_firewall: the collector looked and found no ruleset (not: it failed).
no_firewall if {
	fw.backend == "none"
	not lib.failed("firewall")
}

policy_accepts("ipv6") if object.get(fw, "default_input_policy6", "") == "ACCEPT"

family_applies(rule_family, family) if rule_family == family

family_applies("inet", _)

# closed_by_rule: some input rule of that family drops port p for every
# source, so a default ACCEPT policy does not apply to it.
closed_by_rule(p, family) if {
	some [_, r] in dropping
	family_applies(r.family, family)
	matches_port(r, p)
}

# listener_families: the address families a listening socket takes
# connections from (a tcp6 socket on :: takes IPv4 too, and one on an
# IPv4-mapped address such as ::ffff:10.0.1.23, as Java binds, only IPv4).
listener_families(l) := {f | some f in ["ipv4", "ipv6"]; listens(l, f)}

listens(l, "ipv4") if l.proto == "tcp"

listens(l, "ipv4") if {
	l.proto == "tcp6"
	l.all_interfaces == true
}

listens(l, "ipv4") if {
	l.proto == "tcp6"
	startswith(lower(l.address), "::ffff:")
}

listens(l, "ipv6") if {
	l.proto == "tcp6"
	not startswith(lower(l.address), "::ffff:")
}

# ---- exposures: what ES-NET-002 reports ----

# An ACCEPT rule takes new connections to a protected port from outside
# its allowed sources.
exposures contains {
	"msg": sprintf("host firewall accepts %s port %d from %s, outside the allowed sources %v: %s", [
		pp.kind, pp.port, src, allowed_text(pp.kind), object.get(r, "raw", ""),
	]),
	"port": pp.port,
	"kind": pp.kind,
	"source": src,
	"family": r.family,
	"chain": r.chain,
	"rule": object.get(r, "raw", ""),
} if {
	some [r, pp, src] in exposed
}

# exposed holds [r, pp, src]: the accepting rule r opens protected port pp
# to source src, outside what the spec allows for its kind. esaudit's Go
# model lists them (input.derived.firewall.exposed: [index, port, kind,
# source]); without it the rules above decide, with the same result.
exposed := {[rules[i], {"port": port, "kind": kind}, src] | some [i, port, kind, src] in model.exposed} if {
	is_object(model)
} else := {[r, pp, src] |
	some [r, port] in opened
	some pp in lib.protected
	pp.port == port
	some src in outside_sources(r, pp.kind)
}

# opened holds [r, p] for each accepting rule r that takes new connections
# to protected port p and that no earlier rule of its chain shadows for p.
# esaudit's Go model lists them (input.derived.firewall.opens: [index,
# port] pairs); without it the rules above decide, with the same result.
opened := {[rules[i], port] | some [i, port] in model.opens} if {
	is_object(model)
} else := {[r, pp.port] |
	some [i, r] in accepting
	some pp in lib.protected
	matches_port(r, pp.port)
	not shadowed(i, r, pp.port)
}

# The default policy accepts and nothing drops a protected port that
# listens beyond loopback.
exposures contains {
	"msg": sprintf("%s port %d listens on %s and the %s input policy accepts by default (backend %q), so any address that routes to the node reaches it", [
		pp.kind, pp.port, l.address, family, object.get(fw, "backend", ""),
	]),
	"port": pp.port,
	"kind": pp.kind,
	"source": "default policy",
	"family": family,
	"address": l.address,
} if {
	accepts_by_default
	some pp in lib.protected
	some l in lib.listeners
	l.port == pp.port
	not l.loopback
	some family in listener_families(l)
	policy_accepts(family)
	not closed_by_rule(pp.port, family)
}

# accepts_by_default: some family's input policy accepts. The exposure
# above checks it first: most hosts drop by default, and then no listener
# is looked at.
accepts_by_default if policy_accepts("ipv4")

accepts_by_default if policy_accepts("ipv6")

allowed_text(kind) := sort([c | some c in lib.allowed_cidrs(kind)]) if {
	lib.allowed_cidrs(kind)
} else := sprintf("%v (subnet/vpc unknown)", [lib.spec_sources(kind)])
