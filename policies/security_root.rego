package esbake.rules.security

import data.esbake.lib

# METADATA
# title: Elasticsearch or ElasticHQ runs as root
# description: >-
#   The Elasticsearch JVM, the elasticsearch or elastichq systemd service, or
#   the process listening on the Elasticsearch or ElasticHQ port runs as
#   root (a unit with no User= runs as root). A remote code execution bug in
#   either then owns the whole node.
# custom:
#   id: ES-SEC-001
#   requires: [services, listeners]
#   severity: high
#   remediation: >-
#     Run Elasticsearch as the package's `elasticsearch` user and ElasticHQ
#     as its own system user (the spec's elastichq.user): set User= in the
#     unit, fix file ownership, and restart.
#   stage: [bake, audit]
deny contains finding if {
	some r in root_runs
	finding := object.union(r, {"id": rego.metadata.rule().custom.id})
}

root_runs contains {
	"msg": sprintf("the Elasticsearch process (pid %d) runs as root", [object.get(p, "pid", 0)]),
	"resource": "process:elasticsearch",
	"service": "elasticsearch",
	"source": "process",
} if {
	p := lib.process
	is_root(object.get(p, "uid", -1), object.get(p, "user", ""))
}

root_runs contains {
	"msg": sprintf("systemd service %s runs as root%s", [name, default_note(s)]),
	"resource": sprintf("service:%s", [name]),
	"service": name,
	"source": "unit",
} if {
	some name in ["elasticsearch", "elastichq"]
	s := lib.service(name)
	is_root(-1, object.get(s, "user", ""))
}

root_runs contains {
	"msg": sprintf("%s listens on %s port %d as root", [object.get(l, "process", "a process"), kind, l.port]),
	"resource": sprintf("tcp/%d", [l.port]),
	"service": service_of[kind],
	"source": "listener",
} if {
	some l in root_listeners
	some pp in lib.protected
	l.port == pp.port
	kind := pp.kind
}

# root_listeners: root first, since few listeners run as root, and then no
# port is compared. Two comprehensions, not is_root per listener: cheaper.
root_listeners := {l | some l in lib.listeners; l.uid == 0} | {l | some l in lib.listeners; l.user == "root"}

service_of := {"http": "elasticsearch", "transport": "elasticsearch", "hq": "elastichq"}

is_root(uid, _) if uid == 0

is_root(_, user) if user == "root"

default_note(s) := " (the unit sets no User=)" if {
	s.user_default == true
} else := ""
