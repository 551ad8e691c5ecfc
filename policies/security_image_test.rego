package esbake.rules.security_test

import data.esbake.fixtures
import data.esbake.rules.security

image_ids(doc) := ids if {
	ids := fixtures.ids(security.deny) with input as doc
}

clean_record := {
	"tls_keys": [], "ca_keys": [], "keystore_passwords": [], "password_hash": false,
	"removed": ["/etc/elasticsearch/certs/http.p12"], "image_certificates": ["ab"],
}

# baked is the clean node as the bake leaves it: no TLS password yet.
baked_ops := [
	{"op": "add", "path": "/facts/elasticsearch/keystore/entries", "value": ["keystore.seed"]},
	{"op": "remove", "path": "/facts/host/boot"},
]

with_tls(files) := fixtures.patched(array.concat(baked_ops, [{"op": "add", "path": "/facts/elasticsearch/tls", "value": {"files": files}}]))

test_image_clean_passes if {
	not "ES-SEC-006" in image_ids(fixtures.patched(baked_ops))
	not "ES-SEC-006" in image_ids(fixtures.patched(array.concat(baked_ops, [{"op": "add", "path": "/facts/manifest/security", "value": clean_record}])))
	not "ES-SEC-006" in image_ids(with_tls([{"path": "/etc/elasticsearch/certs/ca.crt", "format": "pem", "private_keys": 0, "certificates": []}]))
}

test_image_pem_key_flagged if {
	"ES-SEC-006" in image_ids(with_tls([{"path": "/etc/elasticsearch/certs/node.key", "format": "pem", "private_keys": 1, "certificates": []}]))
}

test_image_pkcs12_flagged if {
	"ES-SEC-006" in image_ids(with_tls([{"path": "/etc/elasticsearch/certs/http.p12", "format": "pkcs12", "private_keys": 2, "certificates": []}]))
	"ES-SEC-006" in image_ids(with_tls([{"path": "/etc/elasticsearch/certs/x.p12", "format": "pkcs12", "private_keys": 0, "keys_unknown": true, "certificates": []}]))
}

test_image_keystore_secrets_flagged if {
	some e in ["autoconfiguration.password_hash", "xpack.security.transport.ssl.keystore.secure_password", "bootstrap.password"]
	doc := fixtures.patched([{"op": "add", "path": "/facts/elasticsearch/keystore/entries", "value": ["keystore.seed", e]}, {"op": "remove", "path": "/facts/host/boot"}])
	"ES-SEC-006" in image_ids(doc)
}

# After esnode boot, the node's own cluster material is expected.
test_booted_node_not_flagged if {
	doc := fixtures.patched([{"op": "add", "path": "/facts/elasticsearch/tls", "value": {"files": [{"path": "/etc/elasticsearch/certs/transport.key", "format": "pem", "private_keys": 1, "certificates": []}]}}])
	not "ES-SEC-006" in image_ids(doc)
}

test_image_manifest_record_flagged if {
	rec := object.union(clean_record, {"password_hash": true})
	"ES-SEC-006" in image_ids(fixtures.patched(array.concat(baked_ops, [{"op": "add", "path": "/facts/manifest/security", "value": rec}])))
}
