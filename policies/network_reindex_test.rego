package esbake.rules.network_test

import data.esbake.fixtures
import data.esbake.rules.network

reindex_ids(key, value) := ids if {
	ids := fixtures.ids(network.deny) with input as fixtures.with_yml({key: value})
}

test_reindex_wildcards_flagged if {
	"ES-NET-006" in reindex_ids("reindex.remote.whitelist", "*")
	"ES-NET-006" in reindex_ids("reindex.remote.whitelist", "*:*")
	"ES-NET-006" in reindex_ids("reindex.remote.whitelist", "*.*.*.*:9200")
	"ES-NET-006" in reindex_ids("reindex.remote.allowlist", ["old.example.com:9200", "0.0.0.0/0"])
	"ES-NET-006" in reindex_ids("reindex.remote.whitelist", "old.example.com:9200, *:9200")
}

test_reindex_explicit_hosts_pass if {
	not "ES-NET-006" in reindex_ids("reindex.remote.whitelist", "old.example.com:9200")
	not "ES-NET-006" in reindex_ids("reindex.remote.allowlist", ["10.0.2.15:9200", "*.search.example.com:9200"])
	not "ES-NET-006" in fixtures.ids(network.deny) with input as fixtures.clean
}

test_reindex_seed_subnet_pattern_passes if {
	not "ES-NET-006" in fixtures.ids(network.deny) with input as fixtures.seed
}
