package esbake.rules.network

import data.esbake.lib

# Origins no deliberate allow-list matches; a pattern that matches them
# all matches every web origin.
stranger_origins := ["https://attacker.example.net", "http://203.0.113.7:8080", "https://a"]

# METADATA
# title: CORS allows every origin
# description: >-
#   `http.cors.enabled` is true and `http.cors.allow-origin` is `*` or a
#   regular expression (`/.../`) that matches every origin, so any web page
#   a user of the cluster opens can read from and write to Elasticsearch
#   through the user's browser.
# custom:
#   id: ES-NET-005
#   requires: [elasticsearch.yml]
#   severity: high
#   remediation: >-
#     Set `http.cors.allow-origin` to the exact origin of the front end (the
#     node spec's cluster.cors_allow_origin), or turn CORS off and let the
#     API gateway answer preflight requests.
#   stage: [bake, audit]
deny contains finding if {
	lib.truthy(object.get(lib.yml, "http.cors.enabled", false))
	origin := object.get(lib.yml, "http.cors.allow-origin", "")
	is_string(origin)
	matches_everything(origin)
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("CORS is enabled with http.cors.allow-origin %q, which allows every origin", [origin]),
		"resource": "elasticsearch.yml:http.cors.allow-origin",
		"setting": "http.cors.allow-origin",
		"value": origin,
	}
}

matches_everything(origin) if {
	some o in split(origin, ",")
	trim_space(o) == "*"
}

# Elasticsearch reads /.../ as a Java regex matched against the whole
# origin.
matches_everything(origin) if {
	o := trim_space(origin)
	count(o) > 2
	startswith(o, "/")
	endswith(o, "/")
	pattern := sprintf("^(?:%s)$", [substring(o, 1, count(o) - 2)])
	every s in stranger_origins {
		regex.match(pattern, s)
	}
}
