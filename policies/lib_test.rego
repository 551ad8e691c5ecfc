package esbake.lib_test

import data.esbake.fixtures
import data.esbake.lib

test_items if {
	lib.items("a, b,,c") == ["a", "b", "c"]
	lib.items(["a", "b,c", 3]) == ["a", "b", "c"]
	lib.items(null) == []
	lib.items(7) == []
}

test_value_treats_null_as_missing if {
	lib.value({"a": null}, ["a"], "d") == "d"
	lib.value({"a": {"b": false}}, ["a", "b"], true) == false
}

test_truthy_falsy if {
	lib.truthy(true)
	lib.truthy(" TRUE ")
	not lib.truthy("yes")
	lib.falsy("false")
	not lib.falsy(null)
}

test_spec_defaults_on_legacy_node if {
	lib.http_port == 9200 with input as fixtures.seed
	lib.allowed_ports == {22, 9200, 9300, 5000} with input as fixtures.seed
	lib.allowed_ports == {22, 9200, 9300} with input as fixtures.clean
}

test_allowed_cidrs if {
	lib.allowed_cidrs("http") == {"10.0.1.0/24"} with input as fixtures.clean
	lib.allowed_cidrs("ssh") == {"10.0.0.0/16"} with input as fixtures.clean
	not lib.allowed_cidrs("http") with input as fixtures.seed
	lib.allowed_cidrs("http") == {"10.0.1.0/25"} with input as json.patch(fixtures.seed, [{"op": "add", "path": "/node/subnet_cidr", "value": "10.0.1.0/25"}])
}

test_within_allowed if {
	lib.within_allowed("http", "10.0.1.7") with input as fixtures.clean
	not lib.within_allowed("http", "10.0.2.0/24") with input as fixtures.clean
	not lib.within_allowed("http", "0.0.0.0/0") with input as fixtures.clean
	lib.within_allowed("http", "10.0.2.0/24") with input as fixtures.seed
	not lib.within_allowed("http", "::/0") with input as fixtures.seed
}

test_versions if {
	lib.es_major == 8 with input as fixtures.clean
	lib.es_minor == 15 with input as fixtures.clean
	lib.es_major == 6 with input as fixtures.seed
	not lib.es_major with input as {"facts": {"elasticsearch": {"version": "unknown"}}}
}

test_tags_prefer_discovery if {
	doc := json.patch(fixtures.clean, [{"op": "replace", "path": "/node/tags/es_cluster", "value": "from-ec2"}])
	lib.tags.es_cluster == "from-ec2" with input as doc
	lib.tags.es_cluster == "aardvark-cluster" with input as json.patch(fixtures.clean, [{"op": "remove", "path": "/node"}])
}

test_failed_covers_parents if {
	doc := {"facts": {"errors": [{"fact": "elasticsearch", "error": "x"}]}}
	lib.failed("elasticsearch.heap") with input as doc
	lib.failed("elasticsearch") with input as doc
	not lib.failed("elasticsearchx") with input as doc
	not lib.failed("firewall") with input as doc
}

test_human_bytes if {
	lib.human_bytes(4 * lib.gib) == "4 GiB"
	lib.human_bytes(3906 * lib.mib) == "3906 MiB"
}
