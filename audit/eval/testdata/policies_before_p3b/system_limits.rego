package esbake.rules.system

import data.esbake.lib

min_max_map_count := max([262144, lib.positive(lib.value(lib.spec, ["system", "max_map_count"], 0), 262144)])

min_nofile := max([65535, lib.positive(lib.value(lib.spec, ["system", "nofile"], 0), 65535)])

min_nproc := max([4096, lib.positive(lib.value(lib.spec, ["system", "nproc"], 0), 4096)])

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
	v := object.get(lib.obj(object.get(lib.facts, "sysctl", {})), "vm.max_map_count", null)
	is_number(v)
}

map_counts contains {"value": to_number(s.value), "source": sprintf("set by %s", [s.source])} if {
	s := object.get(lib.obj(object.get(lib.facts, "sysctl_conf", {})), "vm.max_map_count", null)
	is_object(s)
	regex.match(`^\s*\d+\s*$`, s.value)
}

# limit_problems lists the process limits below a minimum: the running
# JVM's, and the unit's (what the next start gets).
limit_problems(name, minimum) := {x |
	some x in process_limit_problems(name, minimum)
} | {x |
	some x in unit_limit_problems(name, minimum)
}

process_limit_problems(name, minimum) := {{"source": "running process", "soft": l.soft} |
	l := lib.obj(object.get(lib.obj(object.get(lib.process, "limits", {})), name, {}))
	below(l.soft, minimum)
}

unit_limit_problems(name, minimum) := {{"source": "elasticsearch.service", "soft": l.soft} |
	s := lib.service("elasticsearch")
	l := lib.obj(object.get(lib.obj(object.get(s, "limits", {})), name, {}))
	below(l.soft, minimum)
}

# below: a soft limit under the minimum; -1 is unlimited.
below(soft, minimum) if {
	is_number(soft)
	soft >= 0
	soft < minimum
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
	some p in limit_problems("nofile", min_nofile)
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
	some p in limit_problems("nproc", min_nproc)
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("process limit of the %s is %d; Elasticsearch needs at least %d", [p.source, p.soft, min_nproc]),
		"resource": sprintf("%s:nproc", [p.source]),
		"source": p.source,
		"soft": p.soft,
		"minimum": min_nproc,
	}
}
