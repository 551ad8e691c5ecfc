package esbake.rules.heap_test

import data.esbake.fixtures
import data.esbake.rules.heap

gib := 1073741824

heap_findings(doc, id) := fs if {
	fs := {f | some f in heap.deny with input as doc; f.id == id}
}

test_xms_xmx_seed_bug_flagged if {
	fs := heap_findings(fixtures.seed, "ES-HEAP-001")
	count(fs) == 1
	some f in fs
	contains(f.msg, "-Xmx is not set")
	contains(f.msg, "-Xms given 2 times")
	f.missing == ["xmx"]
}

test_xms_xmx_clean_passes if {
	count(heap_findings(fixtures.clean, "ES-HEAP-001")) == 0
}

test_xms_xmx_differ_flagged if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/elasticsearch/heap/xms_bytes", "value": 2 * gib}])
	some f in heap_findings(doc, "ES-HEAP-001")
	contains(f.msg, "differs")
}

test_xms_missing_flagged if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/elasticsearch/heap/xms_bytes", "value": 0},
		{"op": "replace", "path": "/facts/elasticsearch/heap/missing", "value": ["xms"]},
	])
	count(heap_findings(doc, "ES-HEAP-001")) == 1
}

test_neither_set_auto_heap_passes if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/elasticsearch/heap/xms_bytes", "value": 0},
		{"op": "replace", "path": "/facts/elasticsearch/heap/xmx_bytes", "value": 0},
		{"op": "replace", "path": "/facts/elasticsearch/heap/missing", "value": ["xmx", "xms"]},
	])
	count(heap_findings(doc, "ES-HEAP-001")) == 0
	old := json.patch(doc, [{"op": "replace", "path": "/facts/elasticsearch/version", "value": "6.8.23"}])
	count(heap_findings(old, "ES-HEAP-001")) == 1
}

test_xms_xmx_unknown_when_heap_not_collected if {
	doc := json.patch(fixtures.seed, [{"op": "replace", "path": "/facts/errors", "value": [{"fact": "elasticsearch", "error": "not collected: context canceled"}]}])
	count(heap_findings(doc, "ES-HEAP-001")) == 0
}
