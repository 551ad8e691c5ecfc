package esbake.rules.network

import data.esbake.lib

# METADATA
# title: Security group opens an Elasticsearch or ElasticHQ port to the internet
# description: >-
#   An ingress rule of one of the instance's EC2 security groups lets
#   0.0.0.0/0 or ::/0 reach the HTTP (9200), transport (9300) or ElasticHQ
#   (5000) port, directly or through a port range or an all-traffic rule.
#   Elasticsearch clusters reachable from the internet are a leading cause
#   of data breaches; the host firewall is then the only barrier.
# custom:
#   id: ES-NET-003
#   requires: [node.security_groups]
#   severity: critical
#   remediation: >-
#     Replace the world-open source with the clients' CIDRs or security
#     groups (the node's own group for transport), and put clients outside
#     the VPC behind a load balancer or API gateway with authentication.
#   stage: [audit]
deny contains finding if {
	some [sg, rule, cidr] in world_open
	some pp in lib.protected
	covers(rule, pp.port)
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("security group %s (%s) lets %s reach %s port %d (rule %s %s)", [
			object.get(sg, "id", ""), object.get(sg, "name", ""), cidr, pp.kind, pp.port,
			object.get(rule, "proto", ""), port_text(rule),
		]),
		"resource": sprintf("%s:tcp/%d", [object.get(sg, "id", ""), pp.port]),
		"security_group": object.get(sg, "id", ""),
		"security_group_name": object.get(sg, "name", ""),
		"port": pp.port,
		"kind": pp.kind,
		"cidr": cidr,
	}
}

# world_open holds [sg, rule, cidr] for each ingress rule of a security
# group with a world-open source cidr: the ports are checked only for
# those (most rules have none). esaudit finds them in Go
# (input.derived.security_groups.world_open: [group index, rule index,
# cidr], audit/eval/security_groups_model.go); without it (opa eval,
# conftest) world_cidrs does, with the same result.
world_open := {[sgs[g], sgs[g].ingress[r], cidr] | some [g, r, cidr] in input.derived.security_groups.world_open} if {
	is_object(input.derived.security_groups)
} else := {[sg, rule, cidr] |
	some sg in sgs
	some rule in lib.arr(object.get(sg, "ingress", []))
	some cidr in world_cidrs(rule)
}

sgs := lib.arr(object.get(lib.node, "security_groups", []))

# covers: the ingress rule admits TCP to port p ("-1" is all traffic).
covers(rule, _) if lower(object.get(rule, "proto", "")) in {"-1", "all"}

covers(rule, p) if {
	lower(object.get(rule, "proto", "")) in {"tcp", "6"}
	rule.from_port <= p
	p <= rule.to_port
}

covers(rule, _) if {
	lower(object.get(rule, "proto", "")) in {"tcp", "6"}
	rule.from_port == -1
}

world_cidrs(rule) := {c |
	some c in array.concat(lib.arr(object.get(rule, "cidrs", [])), lib.arr(object.get(rule, "ipv6_cidrs", [])))
	lib.world(c)
}

port_text(rule) := "all ports" if {
	lower(object.get(rule, "proto", "")) in {"-1", "all"}
} else := sprintf("%d-%d", [rule.from_port, rule.to_port])
