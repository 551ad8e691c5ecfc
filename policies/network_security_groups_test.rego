package esbake.rules.network_test

import data.esbake.fixtures
import data.esbake.rules.network

add_ingress(rule) := fixtures.patched([{"op": "add", "path": "/node/security_groups/0/ingress/-", "value": rule}])

sg_findings(doc) := fs if {
	fs := {f | some f in network.deny with input as doc; f.id == "ES-NET-003"}
}

test_sg_clean_node_passes if {
	count(sg_findings(fixtures.clean)) == 0
}

test_sg_world_http_flagged if {
	fs := sg_findings(add_ingress({"proto": "tcp", "from_port": 9200, "to_port": 9200, "cidrs": ["0.0.0.0/0"], "ipv6_cidrs": []}))
	{[f.port, f.cidr, f.security_group] | some f in fs} == {[9200, "0.0.0.0/0", "sg-0aaaaaaaaaaaaaaa1"]}
}

test_sg_world_ipv6_range_flagged if {
	fs := sg_findings(add_ingress({"proto": "tcp", "from_port": 5000, "to_port": 9300, "cidrs": [], "ipv6_cidrs": ["::/0"]}))
	{f.port | some f in fs} == {5000, 9200, 9300}
}

test_sg_all_traffic_flagged if {
	fs := sg_findings(add_ingress({"proto": "-1", "from_port": -1, "to_port": -1, "cidrs": ["0.0.0.0/0"], "ipv6_cidrs": []}))
	count(fs) == 3
}

test_sg_world_ssh_only_passes if {
	# SSH from anywhere is another matter; this rule is about ES and HQ.
	count(sg_findings(add_ingress({"proto": "tcp", "from_port": 22, "to_port": 22, "cidrs": ["0.0.0.0/0"], "ipv6_cidrs": []}))) == 0
}

test_sg_udp_passes if {
	count(sg_findings(add_ingress({"proto": "udp", "from_port": 9200, "to_port": 9300, "cidrs": ["0.0.0.0/0"], "ipv6_cidrs": []}))) == 0
}

test_sg_seed_flagged if {
	fs := sg_findings(fixtures.seed)
	{f.port | some f in fs} == {9200}
}

test_sg_no_discovery_passes if {
	doc := json.patch(fixtures.seed, [{"op": "replace", "path": "/node", "value": {"name": "facts-file"}}])
	count(sg_findings(doc)) == 0
}
