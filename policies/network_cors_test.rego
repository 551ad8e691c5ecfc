package esbake.rules.network_test

import data.esbake.fixtures
import data.esbake.rules.network

cors_ids(origin) := ids if {
	ids := fixtures.ids(network.deny) with input as fixtures.with_yml({"http.cors.enabled": true, "http.cors.allow-origin": origin})
}

test_cors_star_flagged if {
	"ES-NET-005" in cors_ids("*")
	"ES-NET-005" in fixtures.ids(network.deny) with input as fixtures.seed
}

test_cors_match_all_regex_flagged if {
	"ES-NET-005" in cors_ids("/.*/")
	"ES-NET-005" in cors_ids("/.+/")
	"ES-NET-005" in cors_ids("/https?:\\/\\/.*/")
}

test_cors_exact_origin_passes if {
	not "ES-NET-005" in cors_ids("https://search.example.com")
	not "ES-NET-005" in cors_ids("/https:\\/\\/(www\\.)?example\\.com/")
}

test_cors_disabled_passes if {
	doc := fixtures.with_yml({"http.cors.enabled": "false", "http.cors.allow-origin": "*"})
	not "ES-NET-005" in fixtures.ids(network.deny) with input as doc
	not "ES-NET-005" in fixtures.ids(network.deny) with input as fixtures.clean
}

test_cors_string_true_flagged if {
	doc := fixtures.with_yml({"http.cors.enabled": "true", "http.cors.allow-origin": "*"})
	"ES-NET-005" in fixtures.ids(network.deny) with input as doc
}
