package esbake.rules.heap_test

import data.esbake.fixtures

mib := 1048576

set_heap(b) := fixtures.patched([
	{"op": "replace", "path": "/facts/elasticsearch/heap/xms_bytes", "value": b},
	{"op": "replace", "path": "/facts/elasticsearch/heap/xmx_bytes", "value": b},
	{"op": "replace", "path": "/facts/elasticsearch/process/xms_bytes", "value": b},
	{"op": "replace", "path": "/facts/elasticsearch/process/xmx_bytes", "value": b},
])

test_heap_share_seed_rounding_flagged if {
	# int(7.8 GiB + 0.9) / 2 = 4 GiB on an instance with 7.8 GiB MemTotal.
	fs := heap_findings(fixtures.seed, "ES-HEAP-002")
	{f.source | some f in fs} == {"jvm options", "running process"}
}

test_heap_share_half_passes if {
	count(heap_findings(fixtures.clean, "ES-HEAP-002")) == 0
}

test_heap_share_over_half_flagged if {
	count(heap_findings(set_heap(5 * gib), "ES-HEAP-002")) == 2
}

test_heap_share_spec_percent_raises_limit if {
	doc := json.patch(set_heap(5 * gib), [{"op": "replace", "path": "/facts/manifest/spec/heap/percent", "value": 65}])
	count(heap_findings(doc, "ES-HEAP-002")) == 0
}

test_heap_share_min_floor_passes if {
	doc := json.patch(set_heap(1024 * mib), [{"op": "replace", "path": "/facts/host/mem_total_bytes", "value": 1900 * mib}])
	count(heap_findings(doc, "ES-HEAP-002")) == 0
}

test_compressed_oops_flagged if {
	doc := json.patch(set_heap(32 * gib), [{"op": "replace", "path": "/facts/host/mem_total_bytes", "value": 128 * gib}])
	count(heap_findings(doc, "ES-HEAP-003")) == 2
}

test_compressed_oops_31g_passes if {
	doc := json.patch(set_heap(31 * gib), [{"op": "replace", "path": "/facts/host/mem_total_bytes", "value": 128 * gib}])
	count(heap_findings(doc, "ES-HEAP-003")) == 0
	count(heap_findings(doc, "ES-HEAP-002")) == 0
}

test_live_heap_differs_flagged if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/elasticsearch/heap/xmx_bytes", "value": 3 * gib}])
	fs := heap_findings(doc, "ES-HEAP-004")
	{f.kind | some f in fs} == {"xmx"}
}

test_live_heap_same_passes if {
	count(heap_findings(fixtures.clean, "ES-HEAP-004")) == 0
	count(heap_findings(fixtures.seed, "ES-HEAP-004")) == 0
}

test_live_heap_no_process_passes if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/elasticsearch/process", "value": null},
		{"op": "replace", "path": "/facts/elasticsearch/heap/xmx_bytes", "value": 3 * gib},
	])
	count(heap_findings(doc, "ES-HEAP-004")) == 0
}
