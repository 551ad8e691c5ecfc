package esbake.rules.security

import data.esbake.lib

# Audit-stage TLS rules. tls_files and image_security are defined in
# security_image.rego (same package).

# tls_configured: esnode was told to give this node TLS material (the spec's
# security section, or what boot recorded). Rules about TLS being off apply
# to those nodes; an 8.x node with no material at all is refused by esnode
# boot (as real Elasticsearch refuses to start it).
tls_configured if count(lib.obj(object.get(lib.spec, "security", {}))) > 0

tls_configured if count(boot_security) > 0

boot_security := lib.obj(object.get(lib.boot, "security", {}))

transport_ssl_enabled if lib.truthy(object.get(lib.yml, "xpack.security.transport.ssl.enabled", false))

http_ssl_enabled if lib.truthy(object.get(lib.yml, "xpack.security.http.ssl.enabled", false))

security_on if not lib.falsy(object.get(lib.yml, "xpack.security.enabled", lib.es_major >= 8))

# METADATA
# title: Transport TLS off on Elasticsearch 8 or later
# description: >-
#   Security is on and the node has TLS material from esnode (spec
#   `security` or boot.json), but `xpack.security.transport.ssl.enabled` is
#   not true (turned off by hand, or the settings were lost):
#   Elasticsearch 8 refuses to start with that on a non-loopback address
#   (TransportTLSBootstrapCheck), and node-to-node traffic, including
#   every document and the cluster state, would cross the network in clear
#   text with no proof of who a peer is.
# custom:
#   id: ES-SEC-007
#   requires: [elasticsearch.yml, elasticsearch.version]
#   severity: high
#   remediation: >-
#     Give the cluster transport material in Parameter Store or Secrets
#     Manager (node spec security.transport_key/_certificate/_ca or
#     transport_pkcs12) and run `esnode boot` (or `esnode security-refresh`).
#   stage: [audit]
deny contains finding if {
	lib.es_major >= 8
	tls_configured
	security_on
	not transport_ssl_enabled
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("Elasticsearch %s has security on and transport TLS off", [lib.es_version]),
		"resource": "elasticsearch.yml:xpack.security.transport.ssl.enabled",
		"setting": "xpack.security.transport.ssl.enabled",
		"version": lib.es_version,
	}
}

# METADATA
# title: HTTP TLS off while security is on
# description: >-
#   Security is on (and the node gets TLS material from esnode) but
#   `xpack.security.http.ssl.enabled` is not true:
#   passwords and API keys cross the network in clear text on every
#   request.
# custom:
#   id: ES-SEC-008
#   requires: [elasticsearch.yml, elasticsearch.version]
#   severity: medium
#   remediation: >-
#     Give the cluster HTTP material (node spec security.http_key and
#     http_certificate, or http_pkcs12) and run `esnode boot`.
#   stage: [audit]
deny contains finding if {
	lib.es_major >= 7
	tls_configured
	security_on
	not http_ssl_enabled
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": "security is on and HTTP TLS is off: credentials cross the network in clear text",
		"resource": "elasticsearch.yml:xpack.security.http.ssl.enabled",
		"setting": "xpack.security.http.ssl.enabled",
	}
}

# ssl_files are the files the xpack.security.<layer>.ssl.* settings name,
# resolved as facts record them.
ssl_file_paths contains p if {
	some k, v in lib.yml
	startswith(k, "xpack.security.")
	contains(k, ".ssl.")
	some suffix in [".certificate", ".certificate_authorities", ".keystore.path", ".truststore.path"]
	endswith(k, suffix)
	some s in lib.list_of(v)
	is_string(s)
	p := resolve(s)
}

resolve(s) := s if startswith(s, "/")

resolve(s) := concat("/", [object.get(lib.es, "config_dir", "/etc/elasticsearch"), s]) if not startswith(s, "/")

in_use contains f if {
	some f in tls_files
	f.path in ssl_file_paths
}

# METADATA
# title: Node certificate or CA that came with the image
# description: >-
#   A certificate the node uses for TLS is one the bake manifest recorded in
#   the image (such as the 8.x package's auto-configured HTTP CA): every copy
#   of the image shares it, so it identifies no cluster and its key is as
#   widely held as the image.
# custom:
#   id: ES-SEC-009
#   requires: [elasticsearch.yml, elasticsearch.tls]
#   severity: high
#   remediation: >-
#     Issue each cluster its own CA and node certificates, store them in
#     Parameter Store or Secrets Manager (node spec `security`), and run
#     `esnode security-refresh` on every node.
#   stage: [audit]
deny contains finding if {
	some f in in_use
	some c in lib.arr(object.get(f, "certificates", []))
	c.sha256 in lib.arr(object.get(image_security, "image_certificates", []))
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("%s holds the certificate %s (%s) that was baked into the image", [f.path, c.subject, c.sha256]),
		"resource": sprintf("file:%s", [f.path]),
		"location": f.path,
	}
}

# METADATA
# title: CA private key on a data node
# description: >-
#   A CA's private key lies on a node that holds data. Whoever reads that
#   node's disk (a snapshot of its volume, a compromised plugin) can mint
#   certificates every node of the cluster trusts.
# custom:
#   id: ES-SEC-010
#   requires: [elasticsearch.tls]
#   severity: high
#   remediation: >-
#     Keep CA keys off the nodes (sign certificates where the CA lives, store
#     only node keys, certificates and CA certificates in Parameter Store),
#     delete the key file and rotate the CA if it was exposed.
#   stage: [audit]
deny contains finding if {
	data_node
	some f in tls_files
	object.get(f, "ca_key", false) == true
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("%s holds a CA private key on a data node", [f.path]),
		"resource": sprintf("file:%s", [f.path]),
		"location": f.path,
	}
}

data_node if object.get(lib.yml, "node.roles", null) == null

data_node if {
	some r in lib.items(object.get(lib.yml, "node.roles", null))
	startswith(r, "data")
}

now_ns := time.parse_rfc3339_ns(object.get(lib.facts, "collected_at", "1970-01-01T00:00:00Z"))

day_ns := 86400000000000

expiring(c) := (time.parse_rfc3339_ns(c.not_after) - now_ns) / day_ns

# METADATA
# title: TLS certificate expired
# description: >-
#   A certificate the node uses for TLS has expired: peers and clients
#   refuse the connection, so the node cannot join its cluster or serve
#   requests.
# custom:
#   id: ES-SEC-011
#   requires: [elasticsearch.yml, elasticsearch.tls]
#   severity: high
#   remediation: >-
#     Put a renewed certificate in Parameter Store or Secrets Manager and run
#     `esnode security-refresh` on every node (Elasticsearch reloads
#     changed certificate files without a restart).
#   stage: [audit]
deny contains finding if {
	some f in in_use
	some c in lib.arr(object.get(f, "certificates", []))
	expiring(c) < 0
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("%s: the certificate %s expired on %s", [f.path, c.subject, c.not_after]),
		"resource": sprintf("file:%s", [f.path]),
		"location": f.path,
	}
}

# METADATA
# title: TLS certificate expires within 30 days
# description: >-
#   A certificate the node uses for TLS expires within 30 days; after that
#   the node's peers and clients refuse it.
# custom:
#   id: ES-SEC-012
#   requires: [elasticsearch.yml, elasticsearch.tls]
#   severity: medium
#   remediation: >-
#     Put a renewed certificate in Parameter Store or Secrets Manager and run
#     `esnode security-refresh` on every node before it expires.
#   stage: [audit]
deny contains finding if {
	some f in in_use
	some c in lib.arr(object.get(f, "certificates", []))
	d := expiring(c)
	d >= 0
	d < 30
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("%s: the certificate %s expires on %s (in %d days)", [f.path, c.subject, c.not_after, floor(d)]),
		"resource": sprintf("file:%s", [f.path]),
		"location": f.path,
	}
}

# METADATA
# title: The elastic user's password was never set
# description: >-
#   Security is on and esnode configures the node's TLS, but the keystore
#   has no `bootstrap.password` and esnode boot never set one: with the auto-configured hash
#   removed, nobody knows the `elastic` superuser's password, so the
#   cluster cannot be administered (or someone reset it out of band).
# custom:
#   id: ES-SEC-013
#   requires: [elasticsearch.yml, elasticsearch.keystore]
#   severity: medium
#   remediation: >-
#     Store the password as a SecureString (node spec
#     security.elastic_password) before the cluster's first nodes boot, or
#     set it with `elasticsearch-reset-password -u elastic -i` and store it
#     there.
#   stage: [audit]
deny contains finding if {
	lib.es_major >= 8
	tls_configured
	security_on
	not elastic_password_set
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": "the elastic user's password was never set from Parameter Store or Secrets Manager",
		"resource": "keystore:bootstrap.password",
		"setting": "bootstrap.password",
	}
}

elastic_password_set if "bootstrap.password" in lib.arr(object.get(lib.keystore, "entries", []))

elastic_password_set if object.get(boot_security, "elastic_password_set", false) == true
