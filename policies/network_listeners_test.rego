package esbake.rules.network_test

import data.esbake.fixtures
import data.esbake.rules.network

add_listener(l) := fixtures.patched([{"op": "add", "path": "/facts/listeners/-", "value": l}])

test_listener_outside_spec_flagged if {
	doc := add_listener({"proto": "tcp", "address": "0.0.0.0", "port": 111, "all_interfaces": true, "loopback": false, "process": "rpcbind", "uid": 0})
	some f in network.deny with input as doc
	f.id == "ES-NET-001"
	f.port == 111
	contains(f.msg, "rpcbind")
}

test_listener_clean_node_passes if {
	not "ES-NET-001" in fixtures.ids(network.deny) with input as fixtures.clean
}

test_listener_loopback_allowed if {
	doc := add_listener({"proto": "tcp", "address": "127.0.0.1", "port": 25888, "all_interfaces": false, "loopback": true, "uid": 0})
	not "ES-NET-001" in fixtures.ids(network.deny) with input as doc
}

test_listener_hq_port_needs_hq_enabled if {
	hq := {"proto": "tcp", "address": "0.0.0.0", "port": 5000, "all_interfaces": true, "loopback": false, "process": "python3", "uid": 998}
	"ES-NET-001" in fixtures.ids(network.deny) with input as add_listener(hq)
	enabled := json.patch(add_listener(hq), [{"op": "add", "path": "/facts/manifest/spec/elastichq", "value": {"enabled": true, "port": 5000}}])
	not "ES-NET-001" in fixtures.ids(network.deny) with input as enabled
}

test_listener_custom_http_port_from_spec if {
	doc := json.patch(fixtures.clean, [{"op": "replace", "path": "/facts/manifest/spec/elasticsearch/http_port", "value": 9201}])

	# 9200 is now outside the spec; 9201 would be inside.
	"ES-NET-001" in fixtures.ids(network.deny) with input as doc
}

test_listener_legacy_node_uses_defaults_and_hq_service if {
	not "ES-NET-001" in fixtures.ids(network.deny) with input as fixtures.seed
}
