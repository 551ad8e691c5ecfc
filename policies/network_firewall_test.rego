package esbake.rules.network_test

import data.esbake.fixtures
import data.esbake.rules.network

fw_ids(doc) := ids if {
	ids := fixtures.ids(network.deny) with input as doc
}

add_rule(r) := fixtures.patched([{"op": "add", "path": "/facts/firewall/rules/-", "value": r}])

open_rule(extra) := fixtures.chain_rule("ESNODE-INPUT", object.union({"proto": "tcp", "dports": [{"from": 9200, "to": 9200}]}, extra))

test_firewall_clean_node_passes if {
	not "ES-NET-002" in fw_ids(fixtures.clean)
}

test_firewall_world_source_flagged if {
	doc := add_rule(open_rule({"sources": ["0.0.0.0/0"]}))
	some f in network.deny with input as doc
	f.id == "ES-NET-002"
	f.port == 9200
	f.source == "0.0.0.0/0"
}

test_firewall_any_source_flagged if {
	some f in network.deny with input as add_rule(open_rule({}))
	f.id == "ES-NET-002"
	f.source == "any source"
}

test_firewall_cidr_outside_subnet_flagged if {
	"ES-NET-002" in fw_ids(add_rule(open_rule({"sources": ["10.0.0.0/16"]})))
}

test_firewall_cidr_inside_subnet_passes if {
	not "ES-NET-002" in fw_ids(add_rule(open_rule({"sources": ["10.0.1.128/25"]})))
}

test_firewall_spec_allows_vpc_for_http if {
	doc := json.patch(add_rule(open_rule({"sources": ["10.0.0.0/16"]})), [{"op": "replace", "path": "/facts/manifest/spec/firewall/http_sources", "value": ["vpc"]}])
	not "ES-NET-002" in fw_ids(doc)
}

test_firewall_port_range_covering_transport_flagged if {
	r := fixtures.chain_rule("INPUT", {"hook": "input", "proto": "tcp", "dports": [{"from": 9000, "to": 9400}], "sources": ["192.0.2.0/24"]})
	findings := network.deny with input as add_rule(r)
	ports := {f.port | some f in findings; f.id == "ES-NET-002"}
	ports == {9200, 9300}
}

test_firewall_established_only_passes if {
	not "ES-NET-002" in fw_ids(add_rule(open_rule({"ctstate": ["established", "related"]})))
}

test_firewall_loopback_interface_passes if {
	not "ES-NET-002" in fw_ids(add_rule(open_rule({"in_interface": "lo"})))
}

test_firewall_unreached_chain_passes if {
	# A chain nothing jumps to from INPUT does not decide anything.
	r := fixtures.chain_rule("UNUSED", {"proto": "tcp", "dports": [{"from": 9200, "to": 9200}]})
	not "ES-NET-002" in fw_ids(add_rule(r))
}

test_firewall_output_chain_passes if {
	r := fixtures.chain_rule("OUTPUT", {"hook": "output", "proto": "tcp", "dports": [{"from": 9200, "to": 9200}]})
	not "ES-NET-002" in fw_ids(add_rule(r))
}

test_firewall_shadowed_by_earlier_drop_passes if {
	drop := open_rule({"target": "DROP"})
	doc := fixtures.patched([
		{"op": "add", "path": "/facts/firewall/rules/-", "value": drop},
		{"op": "add", "path": "/facts/firewall/rules/-", "value": open_rule({"sources": ["0.0.0.0/0"]})},
	])
	not "ES-NET-002" in fw_ids(doc)
}

test_firewall_default_accept_flagged if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/firewall/default_input_policy", "value": "ACCEPT"},
		{"op": "replace", "path": "/facts/firewall/rules", "value": []},
	])
	findings := {f | some f in network.deny with input as doc; f.id == "ES-NET-002"}
	{f.port | some f in findings} == {9200, 9300}
	every f in findings {
		f.source == "default policy"
	}
}

test_firewall_default_accept_with_catch_all_drop_passes if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/firewall/default_input_policy", "value": "ACCEPT"},
		{"op": "add", "path": "/facts/firewall/rules/-", "value": fixtures.chain_rule("INPUT", {"hook": "input", "target": "DROP"})},
	])
	not "ES-NET-002" in fw_ids(doc)
}

test_firewall_no_firewall_flagged if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/firewall", "value": {"backend": "none", "rules": [], "chains": []}}])
	"ES-NET-002" in fw_ids(doc)
}

test_firewall_default_accept_loopback_listener_passes if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/firewall", "value": {"backend": "none", "rules": [], "chains": []}},
		{"op": "replace", "path": "/facts/listeners", "value": [{"proto": "tcp", "address": "127.0.0.1", "port": 9200, "loopback": true, "all_interfaces": false, "uid": 112}]},
	])
	not "ES-NET-002" in fw_ids(doc)
}

test_firewall_unknown_subnet_only_world_counts if {
	# The seed's rules from 10.0.1.0/24 cannot be judged without the subnet.
	not "ES-NET-002" in fw_ids(fixtures.seed)
	world := json.patch(fixtures.seed, [{"op": "replace", "path": "/facts/firewall/rules/1/sources", "value": ["0.0.0.0/0"]}])
	"ES-NET-002" in fw_ids(world)
}

test_firewall_subnet_from_discovery if {
	narrow := json.patch(fixtures.seed, [{"op": "add", "path": "/node/subnet_cidr", "value": "10.0.1.0/25"}])
	some f in network.deny with input as narrow
	f.id == "ES-NET-002"
	f.source == "10.0.1.0/24"
}

test_firewall_nftables_inet_table if {
	base := {"backend": "nftables", "family": "inet", "table": "esnode", "chain": "input", "hook": "input", "dports": [], "sources": [], "target": "ACCEPT", "raw": ""}
	doc := fixtures.patched([{"op": "replace", "path": "/facts/firewall", "value": {
		"backend": "nftables",
		"default_input_policy": "DROP",
		"default_input_policy6": "DROP",
		"chains": [{"backend": "nftables", "family": "inet", "table": "esnode", "name": "input", "hook": "input", "policy": "DROP"}],
		"rules": [
			object.union(base, {"proto": "tcp", "dports": [{"from": 9200, "to": 9200}], "sources": ["10.0.1.0/24"]}),
			object.union(base, {"proto": "tcp", "dports": [{"from": 9300, "to": 9300}], "sources": ["::/0"]}),
		],
	}}])
	findings := {f | some f in network.deny with input as doc; f.id == "ES-NET-002"}
	{f.port | some f in findings} == {9300}
}

test_firewall_collection_failed_is_not_open if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/firewall", "value": {"backend": "none", "rules": [], "chains": []}},
		{"op": "replace", "path": "/facts/errors", "value": [{"fact": "firewall", "error": "iptables-save: exit status 1"}]},
	])
	not "ES-NET-002" in fw_ids(doc)
}
