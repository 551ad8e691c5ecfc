package esbake.rules.heap

import data.esbake.lib

# METADATA
# title: Heap minimum and maximum differ
# description: >-
#   The JVM options files set -Xms and -Xmx to different values, or set one
#   without the other (the original bootstrap script's sed wrote -Xms twice
#   and no -Xmx). The heap then resizes under load, pausing the node, and
#   Elasticsearch's heap-size bootstrap check fails in production mode.
#   Setting neither is fine from 7.11 on (Elasticsearch sizes the heap
#   itself); before 7.11 it leaves the JVM's unequal defaults.
# custom:
#   id: ES-HEAP-001
#   requires: [elasticsearch.heap]
#   severity: medium
#   remediation: >-
#     Set -Xms and -Xmx to the same value once, in jvm.options.d (7.x and
#     later) or jvm.options (6.x); on esnode-baked nodes reboot or run
#     `esnode boot` to rewrite the managed heap file.
#   stage: [bake, audit]
deny contains finding if {
	not lib.failed("elasticsearch.heap")
	some p in problems
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("heap: %s%s", [p, duplicates_note]),
		"resource": files_text,
		"xms_bytes": object.get(lib.heap, "xms_bytes", 0),
		"xmx_bytes": object.get(lib.heap, "xmx_bytes", 0),
		"missing": missing,
		"duplicates": lib.arr(object.get(lib.heap, "duplicates", [])),
	}
}

missing := sort([m | some m in lib.arr(object.get(lib.heap, "missing", []))])

problems contains sprintf("-Xms is %s but -Xmx is not set, so the JVM picks its own maximum", [lib.human_bytes(lib.heap.xms_bytes)]) if {
	missing == ["xmx"]
}

problems contains sprintf("-Xmx is %s but -Xms is not set, so the heap starts small and grows", [lib.human_bytes(lib.heap.xmx_bytes)]) if {
	missing == ["xms"]
}

problems contains sprintf("-Xms %s differs from -Xmx %s", [lib.human_bytes(xms), lib.human_bytes(xmx)]) if {
	xms := object.get(lib.heap, "xms_bytes", 0)
	xmx := object.get(lib.heap, "xmx_bytes", 0)
	xms > 0
	xmx > 0
	xms != xmx
}

problems contains sprintf("neither -Xms nor -Xmx is set, and Elasticsearch %s (before 7.11) does not size the heap itself", [lib.es_version]) if {
	missing == ["xms", "xmx"]
	before_auto_heap
}

before_auto_heap if lib.es_major < 7

before_auto_heap if {
	lib.es_major == 7
	lib.es_minor < 11
}

duplicates_note := sprintf(" (%s)", [concat("; ", [sprintf("-%s given %d times: %s", [upper_kind(d.kind), d.count, concat(", ", lib.arr(d.sources))]) |
	some d in lib.arr(object.get(lib.heap, "duplicates", []))
])]) if {
	count(lib.arr(object.get(lib.heap, "duplicates", []))) > 0
} else := ""

upper_kind("xms") := "Xms"

upper_kind("xmx") := "Xmx"

files_text := concat(", ", lib.arr(object.get(lib.heap, "files", [])))
