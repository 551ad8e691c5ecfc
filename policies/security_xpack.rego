package esbake.rules.security

import data.esbake.lib

# METADATA
# title: Security turned off on Elasticsearch 8 or later
# description: >-
#   `xpack.security.enabled: false` on Elasticsearch 8.0 or later, where
#   security (authentication, TLS on HTTP and transport) is on by default:
#   anyone who reaches the HTTP port can read, change or delete every index.
# custom:
#   id: ES-SEC-003
#   requires: [elasticsearch.yml, elasticsearch.version]
#   severity: critical
#   remediation: >-
#     Remove `xpack.security.enabled: false` (or set it to true), configure
#     TLS and users, and give clients credentials or API keys.
#   stage: [bake, audit]
deny contains finding if {
	enabled := object.get(lib.yml, "xpack.security.enabled", true)
	enabled != true
	lib.falsy(enabled)
	lib.es_major >= 8
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("Elasticsearch %s has xpack.security.enabled: false; the cluster accepts unauthenticated requests", [lib.es_version]),
		"resource": "elasticsearch.yml:xpack.security.enabled",
		"setting": "xpack.security.enabled",
		"version": lib.es_version,
	}
}
