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

# ES-CLU-005: replicas versus availability zones.

dn(name, zone) := {"name": name, "attributes": {"aws_availability_zone": zone}} if zone != ""

dn(name, "") := {"name": name, "attributes": {}}

with_cluster(c) := fixtures.patched([{"op": "add", "path": "/probes/cluster", "value": c}])

layout(indices, aware, nodes) := {"indices": indices, "awareness_attributes": aware, "awareness_source": "node", "forced_awareness": {}, "data_nodes": nodes}

two_zones := [dn("es-1", "us-east-1a"), dn("es-2", "us-east-1b"), dn("es-3", "us-east-1a")]

clu005(doc) := {f | some f in cluster.deny with input as doc; f.id == "ES-CLU-005"}

test_replicas_aware_two_zones_passes if {
	count(clu005(with_cluster(layout([{"name": "logs", "replicas": 1}], ["aws_availability_zone"], two_zones)))) == 0
}

test_unknown_cluster_layout_passes if {
	# Not read (no API, no monitor privilege): the engine reports the rule as not evaluated.
	count(clu005(fixtures.clean)) == 0
}

test_index_without_replica_flagged if {
	fs := clu005(with_cluster(layout([{"name": "logs", "replicas": 1}, {"name": "raw", "replicas": 0}], ["aws_availability_zone"], two_zones)))
	{f.resource | some f in fs} == {"index:raw"}
}

test_index_without_replica_single_node_passes if {
	count(clu005(with_cluster(layout([{"name": "raw", "replicas": 0}], [], [dn("es-1", "us-east-1a")])))) == 0
}

test_awareness_off_with_crowded_zone_flagged if {
	fs := clu005(with_cluster(layout([{"name": "logs", "replicas": 1}], [], two_zones)))
	{[f.resource, f.zones_with_several_data_nodes] | some f in fs} == {["_cluster/settings:cluster.routing.allocation.awareness.attributes", ["us-east-1a"]]}
}

test_awareness_off_zones_unknown_flagged if {
	fs := clu005(with_cluster(layout([{"name": "logs", "replicas": 1}], [], [dn("es-1", ""), dn("es-2", "")])))
	{f.data_nodes_without_zone | some f in fs} == {2}
}

test_awareness_off_one_node_per_zone_passes if {
	count(clu005(with_cluster(layout([{"name": "logs", "replicas": 1}], [], [dn("es-1", "us-east-1a"), dn("es-2", "us-east-1b")])))) == 0
}

test_all_data_nodes_in_one_zone_flagged if {
	fs := clu005(with_cluster(layout([{"name": "logs", "replicas": 2}], ["aws_availability_zone"], [dn("es-1", "us-east-1a"), dn("es-2", "us-east-1a"), dn("es-3", "")])))
	{[f.resource, f.zones] | some f in fs} == {["node.attr.aws_availability_zone", ["us-east-1a"]]}
}

test_no_replicated_index_no_zone_finding if {
	# Nothing to spread: only the no-replica finding, per index.
	fs := clu005(with_cluster(layout([{"name": "raw", "replicas": 0}], [], two_zones)))
	{f.resource | some f in fs} == {"index:raw"}
}
