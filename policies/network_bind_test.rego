package esbake.rules.network_test

import data.esbake.fixtures
import data.esbake.rules.network

bind_ids(settings) := ids if {
	ids := fixtures.ids(network.deny) with input as fixtures.with_yml(settings)
}

test_bind_private_address_passes if {
	not "ES-NET-004" in bind_ids({})
	not "ES-NET-004" in bind_ids({"network.host": "_site_"})
	not "ES-NET-004" in bind_ids({"network.host": ["_local_", "10.0.1.23"]})
}

test_bind_all_interfaces_flagged if {
	"ES-NET-004" in bind_ids({"network.host": "0.0.0.0"})
	"ES-NET-004" in bind_ids({"network.host": "::"})
	"ES-NET-004" in bind_ids({"http.host": "[::]"})
}

test_bind_global_flagged if {
	"ES-NET-004" in bind_ids({"network.host": "_global_"})
	"ES-NET-004" in bind_ids({"network.bind_host": ["_local_", "_global:ipv4_"]})
	"ES-NET-004" in bind_ids({"transport.host": "_local_,_global_"})
}

test_bind_finding_names_setting if {
	some f in network.deny with input as fixtures.with_yml({"http.bind_host": "0.0.0.0"})
	f.id == "ES-NET-004"
	f.setting == "http.bind_host"
	f.value == "0.0.0.0"
}
