package esbake.rules.system

import data.esbake.lib

# The spec's minimums, never below Elasticsearch's bootstrap checks (a
# spec field that is missing, not a number or not above the check's
# minimum leaves the check's). Written as plain refs rather than the
# lib.value/lib.positive helpers: evaluated on every node, this is cheaper.
min_max_map_count := n if {
	n := lib.spec.system.max_map_count
	is_number(n)
	n > 262144
} else := 262144

min_nofile := n if {
	n := lib.spec.system.nofile
	is_number(n)
	n > 65535
} else := 65535

min_nproc := n if {
	n := lib.spec.system.nproc
	is_number(n)
	n > 4096
} else := 4096

# METADATA
# title: vm.max_map_count below the bootstrap check
# description: >-
#   The kernel's vm.max_map_count (now, or as sysctl.d sets it for the next
#   boot) is below 262144 (or the spec's system.max_map_count).
#   Elasticsearch memory-maps its indices and refuses to start in production
#   mode below this, or runs out of mappings under load.
# custom:
#   id: ES-SYS-001
#   requires: [sysctl]
#   severity: medium
#   remediation: >-
#     Set vm.max_map_count=262144 in /etc/sysctl.d/ (the Debian package
#     ships /usr/lib/sysctl.d/elasticsearch.conf) and run `sysctl --system`.
#   stage: [bake, audit]
deny contains finding if {
	some s in map_counts
	s.value < min_max_map_count
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("vm.max_map_count is %d (%s); Elasticsearch needs at least %d", [s.value, s.source, min_max_map_count]),
		"resource": "sysctl:vm.max_map_count",
		"value": s.value,
		"source": s.source,
		"minimum": min_max_map_count,
	}
}

map_counts contains {"value": v, "source": "running kernel"} if {
	v := lib.facts.sysctl["vm.max_map_count"]
	is_number(v)
}

map_counts contains {"value": to_number(s.value), "source": sprintf("set by %s", [s.source])} if {
	s := lib.facts.sysctl_conf["vm.max_map_count"]
	is_object(s)
	regex.match(`^\s*\d+\s*$`, s.value)
}

minimums := {"nofile": min_nofile, "nproc": min_nproc}

# limit_problems lists the process limits below their minimum: the running
# JVM's, and the unit's (what the next start gets). A soft limit of -1 is
# unlimited.
limit_problems contains {"limit": name, "source": "running process", "soft": soft} if {
	limits := lib.process.limits
	some name, minimum in minimums
	soft := limits[name].soft
	soft < minimum
	is_number(soft)
	soft >= 0
}

limit_problems contains {"limit": name, "source": "elasticsearch.service", "soft": soft} if {
	limits := lib.service("elasticsearch").limits
	some name, minimum in minimums
	soft := limits[name].soft
	soft < minimum
	is_number(soft)
	soft >= 0
}

# METADATA
# title: Open-file limit below the bootstrap check
# description: >-
#   The Elasticsearch process (or its systemd unit, for the next start) may
#   open fewer than 65535 files (or the spec's system.nofile). Elasticsearch
#   refuses to start in production mode, or fails with "too many open
#   files" as shards grow. A unit that sets no LimitNOFILE gets systemd's
#   default soft limit of 1024.
# custom:
#   id: ES-SYS-002
#   requires: [services]
#   severity: medium
#   remediation: >-
#     Set LimitNOFILE=65535 in the elasticsearch unit (the Debian package's
#     unit does) or a drop-in, then `systemctl daemon-reload` and restart.
#   stage: [bake, audit]
deny contains finding if {
	some p in nofile_problems
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": p.msg,
		"resource": sprintf("%s:nofile", [p.source]),
		"source": p.source,
		"soft": p.soft,
		"minimum": min_nofile,
	}
}

nofile_problems contains object.union(p, {"msg": msg}) if {
	some p in limit_problems
	p.limit == "nofile"
	msg := sprintf("open-file limit of the %s is %d; Elasticsearch needs at least %d", [p.source, p.soft, min_nofile])
}

nofile_problems contains {
	"source": "elasticsearch.service",
	"soft": null,
	"msg": sprintf("elasticsearch.service sets no LimitNOFILE, so it starts with systemd's default soft limit (1024); Elasticsearch needs at least %d", [min_nofile]),
} if {
	s := lib.service("elasticsearch")
	not lib.obj(object.get(s, "limits", {})).nofile
}

# METADATA
# title: Process limit below the bootstrap check
# description: >-
#   The Elasticsearch process (or its systemd unit, for the next start) may
#   create fewer than 4096 threads (or the spec's system.nproc);
#   Elasticsearch refuses to start in production mode.
# custom:
#   id: ES-SYS-003
#   requires: [services]
#   severity: medium
#   remediation: >-
#     Set LimitNPROC=4096 in the elasticsearch unit or a drop-in, then
#     `systemctl daemon-reload` and restart.
#   stage: [bake, audit]
deny contains finding if {
	some p in limit_problems
	p.limit == "nproc"
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("process limit of the %s is %d; Elasticsearch needs at least %d", [p.source, p.soft, min_nproc]),
		"resource": sprintf("%s:nproc", [p.source]),
		"source": p.source,
		"soft": p.soft,
		"minimum": min_nproc,
	}
}
