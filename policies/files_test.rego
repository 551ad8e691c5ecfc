package esbake.rules.files_test

import data.esbake.fixtures
import data.esbake.rules.files

file_ids(doc) := ids if {
	ids := fixtures.ids(files.deny) with input as doc
}

test_files_clean_passes if {
	count(file_ids(fixtures.clean)) == 0
}

test_drift_flagged if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/manifest/drift", "value": [
		{"path": "/etc/elasticsearch/elasticsearch.yml", "stage": "boot", "missing": false, "changed": ["content"], "expected_sha256": "aa", "actual_sha256": "bb"},
		{"path": "/usr/local/bin/esnode", "stage": "install", "missing": true, "changed": [], "expected_sha256": "cc"},
	]}])
	fs := {f | some f in files.deny with input as doc; f.id == "ES-FILE-001"}
	{f.path | some f in fs} == {"/etc/elasticsearch/elasticsearch.yml", "/usr/local/bin/esnode"}
	some f in fs
	f.path == "/usr/local/bin/esnode"
	contains(f.msg, "is missing")
}

test_no_manifest_flagged if {
	file_ids(fixtures.seed) == {"ES-FILE-002"}
}

test_manifest_present_passes if {
	not "ES-FILE-002" in file_ids(fixtures.clean)
}

test_no_manifest_unknown_passes if {
	# The manifest could not be read, or no facts came at all: unknown.
	doc := json.patch(fixtures.seed, [{"op": "replace", "path": "/facts/errors", "value": [{"fact": "manifest", "error": "permission denied"}]}])
	count(file_ids(doc)) == 0
	count(file_ids({"facts": null, "node": {"name": "x"}})) == 0
}
