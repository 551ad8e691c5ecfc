package esbake.rules.security

import data.esbake.lib

# METADATA
# title: World-writable Elasticsearch configuration, data or tool files
# description: >-
#   A file or directory whose owner and mode matter (the Elasticsearch
#   config dir and files, its keystore, data and log dirs, the installation,
#   ElasticHQ, esnode's state) is writable by every user, so any local
#   account or compromised service can change settings, plant code that
#   Elasticsearch or ElasticHQ runs, or read secrets (the original bootstrap
#   script used chmod 777).
# custom:
#   id: ES-SEC-004
#   requires: [paths]
#   severity: high
#   remediation: >-
#     chmod o-w the path (the Debian package uses 2750 root:elasticsearch for
#     /etc/elasticsearch and 0660 for its files), and check nothing was
#     planted there.
#   stage: [bake, audit]
deny contains finding if {
	some p in lib.paths
	p.exists == true
	p.world_writable == true
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("%s is world-writable (mode %s, owner %s)", [p.path, object.get(p, "mode", "?"), object.get(p, "owner", "?")]),
		"resource": p.path,
		"path": p.path,
		"mode": object.get(p, "mode", ""),
	}
}

# METADATA
# title: Elasticsearch keystore readable by every user
# description: >-
#   The keystore holds secure settings (passwords, keys) and is at best
#   obfuscated; readable by others, any local account can copy them.
# custom:
#   id: ES-SEC-005
#   requires: [paths]
#   severity: medium
#   remediation: >-
#     chmod 0660 the keystore, owned root:elasticsearch.
#   stage: [bake, audit]
deny contains finding if {
	some p in lib.paths
	p.exists == true
	endswith(p.path, "/elasticsearch.keystore")
	p.world_readable == true
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("the keystore %s is readable by every user (mode %s)", [p.path, object.get(p, "mode", "?")]),
		"resource": p.path,
		"path": p.path,
		"mode": object.get(p, "mode", ""),
	}
}
