package esbake.rules.security_test

import data.esbake.fixtures
import data.esbake.rules.security

tls_ids(doc) := ids if {
	ids := fixtures.ids(security.deny) with input as doc
}

tls_yml := {
	"xpack.security.transport.ssl.enabled": true,
	"xpack.security.transport.ssl.key": "certs/esnode/transport.key",
	"xpack.security.transport.ssl.certificate": "certs/esnode/transport.crt",
	"xpack.security.transport.ssl.certificate_authorities": ["certs/esnode/transport-ca.crt"],
	"xpack.security.http.ssl.enabled": true,
	"xpack.security.http.ssl.keystore.path": "certs/esnode/http.p12",
}

cert(not_after, sha) := {
	"sha256": sha, "subject": "CN=node.prod", "issuer": "CN=prod CA", "dns_names": ["node.prod"], "ip_addresses": [],
	"not_before": "2026-01-01T00:00:00Z", "not_after": not_after, "is_ca": false, "self_signed": false,
}

# collected 2026-11-25T02:00:00Z (the fixture's collected_at)
node_cert(not_after) := {"path": "/etc/elasticsearch/certs/esnode/transport.crt", "format": "pem", "private_keys": 0, "certificates": [cert(not_after, "aa11")]}

# secured is the clean node given TLS by esnode: spec security, boot record,
# settings, files, and the elastic password set at first boot.
secured(files, yml_over, extra_ops) := doc if {
	yml := object.union(object.union(fixtures.clean.facts.elasticsearch.yml, tls_yml), yml_over)
	ops := array.concat(
		[
			{"op": "add", "path": "/facts/elasticsearch/yml", "value": object.remove(yml, {k | some k, v in yml_over; v == null})},
			{"op": "add", "path": "/facts/elasticsearch/tls", "value": {"files": files}},
			{"op": "add", "path": "/facts/manifest/spec/security", "value": {"transport_key": "/es/{cluster}/transport/key"}},
			{"op": "add", "path": "/facts/host/boot/security", "value": {"transport_tls": true, "http_tls": true, "elastic_password_set": true}},
		],
		extra_ops,
	)
	doc := fixtures.patched(ops)
}

good := secured([node_cert("2027-06-01T00:00:00Z")], {}, [])

test_secured_node_passes if {
	ids := tls_ids(good)
	every id in ["ES-SEC-007", "ES-SEC-008", "ES-SEC-009", "ES-SEC-010", "ES-SEC-011", "ES-SEC-012", "ES-SEC-013"] {
		not id in ids
	}
}

# Nodes esnode gives no TLS (no spec security, no boot record) are left to
# esnode boot, which refuses them on 8.x: the clean fixture passes.
test_unconfigured_node_not_flagged_for_tls_off if {
	not "ES-SEC-007" in tls_ids(fixtures.clean)
	not "ES-SEC-008" in tls_ids(fixtures.clean)
	not "ES-SEC-013" in tls_ids(fixtures.clean)
}

test_transport_tls_turned_off_high if {
	"ES-SEC-007" in tls_ids(secured([node_cert("2027-06-01T00:00:00Z")], {"xpack.security.transport.ssl.enabled": false}, []))
	"ES-SEC-007" in tls_ids(secured([node_cert("2027-06-01T00:00:00Z")], {"xpack.security.transport.ssl.enabled": null}, []))
}

test_transport_tls_off_on_7_not_this_rule if {
	doc := json.patch(secured([], {"xpack.security.transport.ssl.enabled": false}, []), [{"op": "replace", "path": "/facts/elasticsearch/version", "value": "7.17.25"}])
	not "ES-SEC-007" in tls_ids(doc)
}

test_http_tls_off_medium if {
	"ES-SEC-008" in tls_ids(secured([node_cert("2027-06-01T00:00:00Z")], {"xpack.security.http.ssl.enabled": false}, []))
}

test_http_tls_off_with_security_off_not_this_rule if {
	not "ES-SEC-008" in tls_ids(secured([node_cert("2027-06-01T00:00:00Z")], {"xpack.security.http.ssl.enabled": false, "xpack.security.enabled": false}, []))
}

test_expiring_within_30_days_medium if {
	"ES-SEC-012" in tls_ids(secured([node_cert("2026-12-05T00:00:00Z")], {}, []))
	not "ES-SEC-011" in tls_ids(secured([node_cert("2026-12-05T00:00:00Z")], {}, []))
}

test_expiring_later_passes if {
	not "ES-SEC-012" in tls_ids(secured([node_cert("2026-12-26T00:00:00Z")], {}, []))
}

test_expired_high if {
	"ES-SEC-011" in tls_ids(secured([node_cert("2026-11-20T00:00:00Z")], {}, []))
	not "ES-SEC-012" in tls_ids(secured([node_cert("2026-11-20T00:00:00Z")], {}, []))
}

# A certificate nobody configured (a leftover file) does not count.
test_expiry_only_for_files_in_use if {
	f := object.union(node_cert("2026-11-20T00:00:00Z"), {"path": "/etc/elasticsearch/old/transport.crt"})
	not "ES-SEC-011" in tls_ids(secured([f], {}, []))
}

test_image_certificate_in_use if {
	doc := secured([node_cert("2027-06-01T00:00:00Z")], {}, [{"op": "add", "path": "/facts/manifest/security", "value": {"image_certificates": ["aa11"]}}])
	"ES-SEC-009" in tls_ids(doc)
}

test_own_certificate_passes if {
	doc := secured([node_cert("2027-06-01T00:00:00Z")], {}, [{"op": "add", "path": "/facts/manifest/security", "value": {"image_certificates": ["bb22"]}}])
	not "ES-SEC-009" in tls_ids(doc)
}

ca_file := {"path": "/etc/elasticsearch/certs/ca.pem", "format": "pem", "private_keys": 1, "ca_key": true, "certificates": []}

test_ca_key_on_data_node if {
	"ES-SEC-010" in tls_ids(secured([ca_file], {}, []))
	"ES-SEC-010" in tls_ids(secured([ca_file], {"node.roles": ["master", "data_hot"]}, []))
}

test_ca_key_on_dedicated_master_not_this_rule if {
	not "ES-SEC-010" in tls_ids(secured([ca_file], {"node.roles": ["master"]}, []))
}

test_elastic_password_never_set if {
	doc := secured([node_cert("2027-06-01T00:00:00Z")], {}, [{"op": "replace", "path": "/facts/host/boot/security/elastic_password_set", "value": false}])
	"ES-SEC-013" in tls_ids(doc)
}

test_elastic_password_in_keystore_passes if {
	doc := secured([node_cert("2027-06-01T00:00:00Z")], {}, [
		{"op": "replace", "path": "/facts/host/boot/security/elastic_password_set", "value": false},
		{"op": "add", "path": "/facts/elasticsearch/keystore/entries/-", "value": "bootstrap.password"},
	])
	not "ES-SEC-013" in tls_ids(doc)
}
