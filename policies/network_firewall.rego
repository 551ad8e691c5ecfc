package esbake.rules.network

import data.esbake.lib.firewall

# METADATA
# title: Elasticsearch or ElasticHQ port open beyond its allowed sources (host firewall)
# description: >-
#   The host firewall lets new connections reach the HTTP (9200), transport
#   (9300) or ElasticHQ (5000) port from outside the sources the node spec
#   allows (by default the node's subnet). Either an ACCEPT rule in an input
#   chain (or a chain it jumps to) takes 0.0.0.0/0, any source, or a CIDR
#   outside the allowed ones; or the default input policy is ACCEPT (or
#   there is no firewall) while the port listens on a non-loopback address
#   and no rule drops it. When the subnet is unknown (no esnode boot state
#   and none from discovery) only rules open to every address count.
# custom:
#   id: ES-NET-002
#   requires: [firewall]
#   severity: high
#   remediation: >-
#     Remove the rule or narrow its source to the spec's sources, and keep
#     the INPUT policy at DROP. On esnode-baked nodes reboot (or run
#     `esnode boot`) to restore the managed chain; change who may connect
#     with the firewall sources of the node spec.
#   stage: [audit]
deny contains finding if {
	some e in firewall.exposures
	finding := object.union(e, {
		"id": rego.metadata.rule().custom.id,
		"resource": sprintf("tcp/%d", [e.port]),
	})
}
