package esbake.rules.security

import data.esbake.lib

# Settings that hold long-lived AWS credentials for EC2 discovery
# (discovery-ec2 6.x-8.x; cloud.aws.* from 5.x and before).
credential_settings := {
	"discovery.ec2.access_key", "discovery.ec2.secret_key", "discovery.ec2.session_token",
	"cloud.aws.access_key", "cloud.aws.secret_key", "cloud.aws.ec2.access_key", "cloud.aws.ec2.secret_key",
}

# METADATA
# title: Long-lived AWS keys for EC2 discovery on the node
# description: >-
#   The Elasticsearch keystore (or, worse, elasticsearch.yml) holds AWS
#   access keys for EC2 discovery while the policy expects the instance
#   profile (policy.expect_instance_profile, on by default). Such keys do
#   not rotate, are copied into every image and snapshot of the node, and
#   outlive the instance.
# custom:
#   id: ES-SEC-002
#   requires: [elasticsearch.keystore, elasticsearch.yml]
#   severity: high
#   remediation: >-
#     Give the instance a role allowing ec2:DescribeInstances, remove the
#     entries with `elasticsearch-keystore remove discovery.ec2.access_key
#     discovery.ec2.secret_key`, and deactivate the IAM user's keys.
#   stage: [bake, audit]
deny contains finding if {
	lib.expect_instance_profile
	some c in credentials
	finding := object.union(c, {"id": rego.metadata.rule().custom.id})
}

credentials contains {
	"msg": sprintf("the keystore holds %s: discovery should use the instance profile", [e]),
	"resource": sprintf("keystore:%s", [e]),
	"setting": e,
	"location": object.get(lib.keystore, "path", "elasticsearch.keystore"),
} if {
	some e in lib.keystore_entries
	e in credential_settings
}

credentials contains {
	"msg": sprintf("elasticsearch.yml sets %s in plain text: discovery should use the instance profile", [k]),
	"resource": sprintf("elasticsearch.yml:%s", [k]),
	"setting": k,
	"location": "elasticsearch.yml",
} if {
	some k in (object.keys(lib.yml) & credential_settings)
}
