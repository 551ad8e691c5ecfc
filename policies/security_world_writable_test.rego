package esbake.rules.security_test

import data.esbake.fixtures
import data.esbake.rules.security

ww_paths(doc, id) := ps if {
	ps := {f.path | some f in security.deny with input as doc; f.id == id}
}

test_world_writable_seed_hq_tree_flagged if {
	ww_paths(fixtures.seed, "ES-SEC-004") == {"/usr/share/elasticsearch-hq"}
}

test_world_writable_clean_passes if {
	count(ww_paths(fixtures.clean, "ES-SEC-004")) == 0
}

test_world_writable_config_dir_flagged if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/paths/0/mode", "value": "0777"},
		{"op": "replace", "path": "/facts/paths/0/world_writable", "value": true},
	])
	ww_paths(doc, "ES-SEC-004") == {"/etc/elasticsearch"}
}

test_world_writable_missing_path_passes if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/paths/3/world_writable", "value": true}])
	count(ww_paths(doc, "ES-SEC-004")) == 0
}

test_keystore_world_readable_flagged if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/paths/2/mode", "value": "0664"},
		{"op": "replace", "path": "/facts/paths/2/world_readable", "value": true},
	])
	ww_paths(doc, "ES-SEC-005") == {"/etc/elasticsearch/elasticsearch.keystore"}
}

test_keystore_private_passes if {
	count(ww_paths(fixtures.clean, "ES-SEC-005")) == 0
	count(ww_paths(fixtures.seed, "ES-SEC-005")) == 0
}

test_world_readable_other_file_not_keystore_rule if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/paths/1/world_readable", "value": true}])
	count(ww_paths(doc, "ES-SEC-005")) == 0
}
