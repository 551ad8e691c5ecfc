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

jumps := {k: targets |
	some r0 in rules
	k := rule_key(r0)
	targets := {key(r.family, r.table, r.target) |
		some r in rules
		rule_key(r) == k
		not r.target in verdicts
	}
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

# opens: r accepts new TCP connections to port p in an input chain.
opens(r, p) if {
	in_input(r)
	r.target == "ACCEPT"
	tcp(r)
	matches_port(r, p)
	new_conns(r)
	not loopback_only(r)
}

# closes_all: r drops every new TCP connection to port p, whatever its
# source.
closes_all(r, p) if {
	in_input(r)
	r.target in {"DROP", "REJECT"}
	tcp(r)
	matches_port(r, p)
	new_conns(r)
	object.get(r, "in_interface", "") == ""
	count(sources(r)) == 0
	not r.sources_negated
	not r.other_matches
}

# shadowed: an earlier rule of the same chain already drops port p for
# every source, so the ACCEPT at index i is never reached for it.
shadowed(i, r, p) if {
	some j, d in rules
	j < i
	rule_key(d) == rule_key(r)
	closes_all(d, p)
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
	some r in rules
	family_applies(r.family, family)
	closes_all(r, p)
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
	some pp in lib.protected
	some i, r in rules
	opens(r, pp.port)
	not shadowed(i, r, pp.port)
	some src in outside_sources(r, pp.kind)
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
	some pp in lib.protected
	some l in lib.listeners
	l.port == pp.port
	not l.loopback
	some family in listener_families(l)
	policy_accepts(family)
	not closed_by_rule(pp.port, family)
}

allowed_text(kind) := sort([c | some c in lib.allowed_cidrs(kind)]) if {
	lib.allowed_cidrs(kind)
} else := sprintf("%v (subnet/vpc unknown)", [lib.spec_sources(kind)])
