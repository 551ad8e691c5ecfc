package esbake.rules.network

import data.esbake.lib

# METADATA
# title: Listening port outside the node spec
# description: >-
#   A TCP socket listens on a non-loopback address on a port the node spec
#   does not name. The spec allows the Elasticsearch HTTP and transport
#   ports, ElasticHQ's port when HQ is enabled, and SSH (22); without a bake
#   manifest the spec's defaults apply (9200, 9300, 22, and 5000 when an
#   elastichq service is installed). Loopback listeners are allowed.
# custom:
#   id: ES-NET-001
#   requires: [listeners]
#   severity: medium
#   remediation: >-
#     Stop or uninstall the service that owns the socket, or bind it to
#     loopback. If the port is needed, add it to the node spec and rebake.
#   stage: [bake, audit]
deny contains finding if {
	some l in lib.listeners
	not l.loopback
	not l.port in lib.allowed_ports
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("%s listens on %s port %d, which the node spec does not allow (allowed: %v)", [
			process_name(l), l.address, l.port, sort([p | some p in lib.allowed_ports]),
		]),
		"resource": sprintf("tcp/%d", [l.port]),
		"port": l.port,
		"address": l.address,
		"process": object.get(l, "process", ""),
		"user": object.get(l, "user", ""),
	}
}

process_name(l) := sprintf("process %s (uid %d)", [l.process, l.uid]) if {
	object.get(l, "process", "") != ""
} else := sprintf("a socket owned by uid %d", [object.get(l, "uid", -1)])
