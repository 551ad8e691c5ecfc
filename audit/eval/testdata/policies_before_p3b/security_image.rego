package esbake.rules.security

import data.esbake.lib

# TLS material and passwords: facts.elasticsearch.tls describes the
# certificates (fingerprints, subjects, SANs, issuers, expiry) and counts
# keys, never their bytes; the manifest records what the bake left.

tls_files := lib.arr(object.get(object.get(lib.es, "tls", {}), "files", []))

image_security := lib.obj(object.get(lib.manifest, "security", {}))

# The keystore entries the 8.x package's auto-configuration adds.
image_secure_settings := {
	"autoconfiguration.password_hash",
	"xpack.security.http.ssl.keystore.secure_password",
	"xpack.security.transport.ssl.keystore.secure_password",
	"xpack.security.transport.ssl.truststore.secure_password",
}

# METADATA
# title: TLS keys, keystore passwords or a password hash in the image
# description: >-
#   The image about to be saved holds a TLS private key (PEM or PKCS#12),
#   a TLS keystore password or the `elastic` user's password hash (as the
#   8.x package's security auto-configuration leaves them). Every node of
#   every cluster launched from the image would share them: anyone with the
#   image can join those clusters at the transport layer or impersonate
#   their HTTPS endpoint.
# custom:
#   id: ES-SEC-006
#   requires: [elasticsearch.keystore, elasticsearch.tls]
#   severity: high
#   remediation: >-
#     Bake with `esnode install`, which removes the auto-configured
#     certs/*.p12, http_ca.crt, keystore passwords and password hash; remove
#     any other key from the image, and give each cluster its own material
#     in Parameter Store or Secrets Manager (node spec `security`).
#   stage: [bake]
deny contains finding if {
	# The image: esnode boot never ran (after it, a node holds its own
	# cluster's material legitimately).
	count(lib.boot) == 0
	some f in image_secrets
	finding := object.union(f, {"id": rego.metadata.rule().custom.id})
}

image_secrets contains {
	"msg": sprintf("the image holds TLS key material in %s (%s)", [f.path, key_words(f)]),
	"resource": sprintf("file:%s", [f.path]),
	"location": f.path,
} if {
	some f in tls_files
	key_material(f)
}

image_secrets contains {
	"msg": sprintf("the image's keystore holds %s", [e]),
	"resource": sprintf("keystore:%s", [e]),
	"setting": e,
	"location": object.get(lib.keystore, "path", "elasticsearch.keystore"),
} if {
	some e in lib.arr(object.get(lib.keystore, "entries", []))
	image_secret_entry(e)
}

image_secrets contains {
	"msg": "the bake manifest records TLS keys, keystore passwords or a password hash left in the image",
	"resource": "manifest:security",
	"location": "/etc/esnode/manifest.json",
} if {
	count(image_security) > 0
	not manifest_clean
}

manifest_clean if {
	count(lib.arr(object.get(image_security, "tls_keys", []))) == 0
	count(lib.arr(object.get(image_security, "ca_keys", []))) == 0
	count(lib.arr(object.get(image_security, "keystore_passwords", []))) == 0
	object.get(image_security, "password_hash", false) == false
}

image_secret_entry(e) if e in image_secure_settings

image_secret_entry(e) if {
	startswith(e, "xpack.security.")
	endswith(e, "secure_password")
}

image_secret_entry("bootstrap.password")

key_material(f) if object.get(f, "private_keys", 0) > 0

key_material(f) if object.get(f, "keys_unknown", false) == true

key_words(f) := sprintf("%d private key(s)", [f.private_keys]) if {
	object.get(f, "private_keys", 0) > 0
} else := "a PKCS#12 file whose encrypted contents may hold keys"
