package esbake.rules.security_test

import data.esbake.fixtures
import data.esbake.rules.security

xpack_ids(doc) := ids if {
	ids := fixtures.ids(security.deny) with input as doc
}

test_xpack_disabled_on_8_flagged if {
	"ES-SEC-003" in xpack_ids(fixtures.with_yml({"xpack.security.enabled": false}))
	"ES-SEC-003" in xpack_ids(fixtures.with_yml({"xpack.security.enabled": "false"}))
}

test_xpack_enabled_or_default_passes if {
	not "ES-SEC-003" in xpack_ids(fixtures.clean)
	not "ES-SEC-003" in xpack_ids(fixtures.with_yml({"xpack.security.enabled": null}))
}

test_xpack_disabled_on_7_passes if {
	doc := json.patch(fixtures.with_yml({"xpack.security.enabled": false}), [{"op": "replace", "path": "/facts/elasticsearch/version", "value": "7.17.25"}])
	not "ES-SEC-003" in xpack_ids(doc)
}

test_xpack_version_from_manifest_when_facts_lack_it if {
	doc := json.patch(fixtures.with_yml({"xpack.security.enabled": false}), [{"op": "replace", "path": "/facts/elasticsearch/version", "value": ""}])
	"ES-SEC-003" in xpack_ids(doc)
}
