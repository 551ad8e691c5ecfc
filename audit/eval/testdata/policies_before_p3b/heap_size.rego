package esbake.rules.heap

import data.esbake.lib

# heap_sizes are the largest heap each source asks for: the options files
# (the larger of -Xms and -Xmx: the seed's doubled -Xms sizes the heap too)
# and the running JVM.
heap_sizes contains {"source": "jvm options", "bytes": b, "resource": concat(", ", lib.arr(object.get(lib.heap, "files", [])))} if {
	b := max([object.get(lib.heap, "xms_bytes", 0), object.get(lib.heap, "xmx_bytes", 0)])
	b > 0
}

heap_sizes contains {"source": "running process", "bytes": b, "resource": sprintf("process:%d", [object.get(lib.process, "pid", 0)])} if {
	b := max([object.get(lib.process, "xms_bytes", 0), object.get(lib.process, "xmx_bytes", 0)])
	b > 0
}

# share_percent is the heap share of memory allowed: 50 % (Elastic's advice:
# the rest is Lucene's file cache), or the spec's heap.percent when the
# image was baked to use more.
share_percent := max([50, lib.positive(lib.value(lib.spec, ["heap", "percent"], 0), 50)])

min_heap_bytes := lib.positive(lib.value(lib.spec, ["heap", "min_mb"], 0), 1024) * lib.mib

# METADATA
# title: Heap over half of the memory
# description: >-
#   The heap (from the JVM options or the running JVM) is larger than 50 %
#   of the node's memory (or the larger share the node spec's heap.percent
#   chose), leaving too little for the operating system's file cache that
#   Lucene relies on. A heap at the spec's heap.min_mb floor is allowed.
# custom:
#   id: ES-HEAP-002
#   requires: [elasticsearch.heap, host.mem_total_bytes]
#   severity: medium
#   remediation: >-
#     Lower -Xms/-Xmx to at most half of the memory; on esnode-baked nodes
#     drop a heap_mb/heap_percent userdata override and reboot.
#   stage: [audit]
deny contains finding if {
	mem := object.get(lib.host, "mem_total_bytes", 0)
	mem > 0
	limit := max([floor((mem * share_percent) / 100), min_heap_bytes])
	some h in heap_sizes
	h.bytes > limit
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("heap of %s (%s) is %.1f %% of the node's %s of memory; at most %d %% is allowed", [
			lib.human_bytes(h.bytes), h.source, (h.bytes * 100) / mem, lib.human_bytes(mem), share_percent,
		]),
		"resource": h.resource,
		"source": h.source,
		"heap_bytes": h.bytes,
		"mem_total_bytes": mem,
		"limit_bytes": limit,
	}
}

# METADATA
# title: Heap at or over the compressed-oops threshold
# description: >-
#   The heap is 32 GiB or more, where the JVM stops using compressed object
#   pointers: every reference doubles in size, so a 32 GiB heap holds less
#   than a 31 GiB one.
# custom:
#   id: ES-HEAP-003
#   requires: [elasticsearch.heap]
#   severity: medium
#   remediation: >-
#     Keep -Xms/-Xmx at 31 GiB or less (the spec's heap.max_mb default is
#     31744); scale out with more nodes instead.
#   stage: [bake, audit]
deny contains finding if {
	some h in heap_sizes
	h.bytes >= 32 * lib.gib
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("heap of %s (%s) is at or over 32 GiB, where the JVM turns compressed object pointers off", [lib.human_bytes(h.bytes), h.source]),
		"resource": h.resource,
		"source": h.source,
		"heap_bytes": h.bytes,
	}
}

# METADATA
# title: Running heap differs from the configuration files
# description: >-
#   The running Elasticsearch JVM's -Xms or -Xmx differs from what the JVM
#   options files now say: the files changed since the last restart (the
#   next restart changes the heap), or ES_JAVA_OPTS overrides them.
# custom:
#   id: ES-HEAP-004
#   requires: [elasticsearch.heap]
#   severity: low
#   remediation: >-
#     Restart Elasticsearch in a maintenance window to apply the files, or
#     revert the files to what the node runs with; look for ES_JAVA_OPTS in
#     /etc/default/elasticsearch and the unit's drop-ins.
#   stage: [audit]
deny contains finding if {
	p := lib.process
	some kind in ["xms", "xmx"]
	field := sprintf("%s_bytes", [kind])
	file_bytes := object.get(lib.heap, field, 0)
	live_bytes := object.get(p, field, 0)
	file_bytes > 0
	live_bytes > 0
	file_bytes != live_bytes
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("the running JVM has -%s %s but the options files say %s", [
			upper_kind(kind), lib.human_bytes(live_bytes), lib.human_bytes(file_bytes),
		]),
		"resource": sprintf("process:%d", [object.get(p, "pid", 0)]),
		"kind": kind,
		"live_bytes": live_bytes,
		"file_bytes": file_bytes,
	}
}
