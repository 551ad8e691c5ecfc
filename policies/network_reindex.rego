package esbake.rules.network

import data.esbake.lib

# METADATA
# title: Reindex-from-remote allows any host
# description: >-
#   `reindex.remote.whitelist` (`reindex.remote.allowlist` from 7.16) has an
#   entry whose host part is only wildcards or an all-addresses value (`*`,
#   `*:*`, `*.*.*.*:9200`, `0.0.0.0/0`), so anyone who may call the reindex
#   API can make the node connect to any host: server-side request forgery
#   from inside the VPC. Entries restricted to a subnet pattern such as
#   `10.0.1.*:9200` pass.
# custom:
#   id: ES-NET-006
#   requires: [elasticsearch.yml]
#   severity: medium
#   remediation: >-
#     List the remote clusters' host:port pairs explicitly, or remove the
#     setting when no reindex from a remote cluster is planned.
#   stage: [bake, audit]
deny contains finding if {
	some key in ["reindex.remote.whitelist", "reindex.remote.allowlist"]
	setting := lib.yml[key] # only the keys set: a missing one has no items
	some entry in lib.items(setting)
	wildcard_host(host_of(entry))
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("elasticsearch.yml %s has %q, which lets reindex reach any host", [key, entry]),
		"resource": sprintf("elasticsearch.yml:%s", [key]),
		"setting": key,
		"value": entry,
	}
}

# host_of drops a trailing :port (digits or *).
host_of(entry) := m[0][1] if {
	m := regex.find_all_string_submatch_n(`^(.*):(\d+|\*)$`, entry, 1)
	count(m) > 0
} else := entry

wildcard_host(h) if regex.match(`^[*.]+$`, h)

wildcard_host(h) if trim(h, "[]") in {"0.0.0.0", "::", "0.0.0.0/0", "::/0", ""}
