package esbake.rules.network

import data.esbake.lib

# bind_keys are the settings that choose the addresses Elasticsearch binds.
bind_keys := ["network.host", "network.bind_host", "http.host", "http.bind_host", "transport.host", "transport.bind_host"]

# METADATA
# title: Elasticsearch binds to every interface or to public addresses
# description: >-
#   `network.host` (or a bind_host/http.host/transport.host setting) is
#   0.0.0.0, ::, or `_global_`, so Elasticsearch listens on every interface
#   or on public addresses instead of the node's private address. Any
#   interface added later (a second ENI, a public IP) exposes it.
# custom:
#   id: ES-NET-004
#   requires: [elasticsearch.yml]
#   severity: medium
#   remediation: >-
#     Bind to the node's private address (esnode boot writes the instance's
#     local IPv4) or `_site_`; remove the override from elasticsearch.yml.
#   stage: [audit]
deny contains finding if {
	some key in bind_keys
	some v in lib.items(object.get(lib.yml, key, null))
	wildcard_bind(v)
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("elasticsearch.yml sets %s: %s, which binds every interface or public addresses", [key, v]),
		"resource": sprintf("elasticsearch.yml:%s", [key]),
		"setting": key,
		"value": v,
	}
}

wildcard_bind(v) if trim(v, "[]") in {"0.0.0.0", "::", "0", "::0"}

wildcard_bind(v) if regex.match(`^_global(:ipv[46])?_$`, v)
