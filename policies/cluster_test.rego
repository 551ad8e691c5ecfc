package esbake.rules.cluster_test

import data.esbake.fixtures
import data.esbake.rules.cluster

clu_ids(doc) := ids if {
	ids := fixtures.ids(cluster.deny) with input as doc
}

test_cluster_clean_passes if {
	count(clu_ids(fixtures.clean)) == 0
}

test_initial_masters_auto_scaled_flagged if {
	"ES-CLU-001" in clu_ids(fixtures.with_yml({"cluster.initial_master_nodes": ["es-1", "es-2", "es-3"]}))
	"ES-CLU-001" in clu_ids(fixtures.with_yml({"cluster.initial_master_nodes": "es-1,es-2"}))
}

test_initial_masters_fixed_cluster_passes if {
	doc := json.patch(fixtures.with_yml({"cluster.initial_master_nodes": ["es-1"]}), [{"op": "replace", "path": "/policy/auto_scaled", "value": false}])
	not "ES-CLU-001" in clu_ids(doc)
	not "ES-CLU-001" in clu_ids(fixtures.with_yml({"cluster.initial_master_nodes": []}))
}

test_cluster_name_mismatch_flagged if {
	some f in cluster.deny with input as fixtures.with_yml({"cluster.name": "badger-cluster"})
	f.id == "ES-CLU-002"
	f.tag_value == "aardvark-cluster"
}

test_cluster_name_unset_is_default if {
	some f in cluster.deny with input as fixtures.with_yml({"cluster.name": null})
	f.id == "ES-CLU-002"
	f.cluster_name == "elasticsearch"
}

test_cluster_name_custom_tag_key if {
	doc := json.patch(fixtures.clean, [
		{"op": "replace", "path": "/facts/manifest/spec/cluster/discovery_tag_key", "value": "search_cluster"},
		{"op": "add", "path": "/node/tags/search_cluster", "value": "zebra"},
	])
	"ES-CLU-002" in clu_ids(doc)
}

test_cluster_name_no_tag_passes if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/node/tags", "value": {}},
		{"op": "replace", "path": "/facts/host/boot/tags", "value": {}},
	])
	not "ES-CLU-002" in clu_ids(json.patch(doc, [{"op": "replace", "path": "/facts/elasticsearch/yml/cluster.name", "value": "x"}]))
}

test_snapshots_none_flagged if {
	"ES-CLU-003" in clu_ids(fixtures.seed)
}

test_snapshots_unknown_or_no_api_passes if {
	not "ES-CLU-003" in clu_ids(json.patch(fixtures.seed, [{"op": "replace", "path": "/probes/snapshot_policies", "value": null}]))
	not "ES-CLU-003" in clu_ids(json.patch(fixtures.seed, [{"op": "replace", "path": "/probes/es_api", "value": null}]))
	not "ES-CLU-003" in clu_ids(json.patch(fixtures.seed, [{"op": "remove", "path": "/probes"}]))
}

test_cluster_name_unknown_yml_passes if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/elasticsearch/yml", "value": {}},
		{"op": "replace", "path": "/facts/errors", "value": [{"fact": "elasticsearch.yml", "error": "permission denied"}]},
	])
	not "ES-CLU-002" in clu_ids(doc)
	not "ES-CLU-002" in clu_ids({"facts": null, "node": {"tags": {"es_cluster": "a"}}})
}

test_unknown_setting_flagged if {
	doc := fixtures.patched([
		{"op": "add", "path": "/facts/elasticsearch/unknown_settings", "value": [{"key": "discovery.zen.minimum_master_nodes", "message": "unknown setting [discovery.zen.minimum_master_nodes] please check that any required plugins are installed, or check the breaking changes documentation for removed settings"}]},
		{"op": "add", "path": "/facts/elasticsearch/settings_table", "value": "8.x"},
	])
	some f in cluster.deny with input as doc
	f.id == "ES-CLU-004"
	f.setting == "discovery.zen.minimum_master_nodes"
	f.resource == "elasticsearch.yml:discovery.zen.minimum_master_nodes"
	contains(f.msg, "refuses at start: unknown setting [discovery.zen.minimum_master_nodes]")
}

test_unknown_setting_none_passes if {
	not "ES-CLU-004" in clu_ids(fixtures.clean)
	not "ES-CLU-004" in clu_ids(fixtures.patched([{"op": "add", "path": "/facts/elasticsearch/unknown_settings", "value": []}]))
}
