package esbake.rules.security_test

import data.esbake.fixtures
import data.esbake.rules.security

root_sources(doc) := srcs if {
	srcs := {[f.service, f.source] | some f in security.deny with input as doc; f.id == "ES-SEC-001"}
}

test_root_clean_and_seed_pass if {
	count(root_sources(fixtures.clean)) == 0
	count(root_sources(fixtures.seed)) == 0
}

test_root_process_flagged if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/elasticsearch/process/uid", "value": 0},
		{"op": "replace", "path": "/facts/elasticsearch/process/user", "value": "root"},
	])
	["elasticsearch", "process"] in root_sources(doc)
}

test_root_unit_without_user_flagged if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/services/1", "value": {"name": "elastichq", "present": true, "user": "root", "user_default": true}},
	])
	root_sources(doc) == {["elastichq", "unit"]}
	some f in security.deny with input as doc
	contains(f.msg, "no User=")
}

test_root_absent_service_passes if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/services/1", "value": {"name": "elastichq", "present": false, "user": "root", "user_default": true}}])
	count(root_sources(doc)) == 0
}

test_root_hq_listener_flagged if {
	doc := json.patch(fixtures.seed, [{"op": "replace", "path": "/facts/listeners/1/uid", "value": 0}])
	root_sources(doc) == {["elastichq", "listener"]}
}
