package esbake.rules.cluster

import data.esbake.lib

# METADATA
# title: cluster.initial_master_nodes set on an auto-scaled node
# description: >-
#   `cluster.initial_master_nodes` bootstraps a brand-new cluster from a
#   fixed list of master names. On nodes an auto-scaling group replaces, a
#   node that starts with it set and cannot find its cluster can bootstrap
#   a second, empty cluster (split brain, apparent data loss). It applies
#   when policy.auto_scaled is true (the default).
# custom:
#   id: ES-CLU-001
#   requires: [elasticsearch.yml]
#   severity: high
#   remediation: >-
#     Remove cluster.initial_master_nodes from elasticsearch.yml once the
#     cluster has formed, and never bake it into auto-scaled images (leave
#     the spec's cluster.initial_master_nodes empty).
#   stage: [bake, audit]
deny contains finding if {
	lib.auto_scaled
	masters := lib.items(object.get(lib.yml, "cluster.initial_master_nodes", null))
	count(masters) > 0
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("cluster.initial_master_nodes is %v on an auto-scaled node; a replacement node can bootstrap a second cluster", [masters]),
		"resource": "elasticsearch.yml:cluster.initial_master_nodes",
		"setting": "cluster.initial_master_nodes",
		"value": masters,
	}
}

# METADATA
# title: cluster.name does not match the node's cluster tag
# description: >-
#   The node's discovery tag (the spec's cluster.discovery_tag_key, default
#   es_cluster) names one cluster and elasticsearch.yml's cluster.name
#   another (unset means "elasticsearch"). EC2 discovery finds the tagged
#   nodes, but they refuse to join a cluster of another name, so the node
#   runs alone or joins the wrong cluster.
# custom:
#   id: ES-CLU-002
#   requires: [elasticsearch.yml]
#   severity: medium
#   remediation: >-
#     Make cluster.name equal the tag value: on esnode-baked nodes reboot or
#     run `esnode boot` (it writes cluster.name from the tag), else fix the
#     tag or elasticsearch.yml and restart.
#   stage: [audit]
deny contains finding if {
	tag := lib.tags[lib.tag_key]
	tag != ""
	count(lib.yml) > 0
	not lib.failed("elasticsearch.yml")
	name := object.get(lib.yml, "cluster.name", "elasticsearch")
	name != tag
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("cluster.name is %q but the node's %s tag is %q", [name, lib.tag_key, tag]),
		"resource": "elasticsearch.yml:cluster.name",
		"cluster_name": name,
		"tag_key": lib.tag_key,
		"tag_value": tag,
	}
}

# METADATA
# title: No snapshot lifecycle policy
# description: >-
#   The Elasticsearch API answered the auditor and the cluster has no
#   snapshot lifecycle (SLM) policy, so nothing takes regular snapshots: a
#   lost cluster cannot be restored (the original setup relied on an
#   external daily backup plan). Checked only when the API probe ran and
#   could count the policies.
# custom:
#   id: ES-CLU-003
#   requires: [probes.snapshot_policies]
#   severity: medium
#   remediation: >-
#     Register a snapshot repository (repository-s3) and create an SLM
#     policy with PUT _slm/policy/<name> (schedule, retention).
#   stage: [audit]
deny contains finding if {
	is_object(object.get(lib.probes, "es_api", null))
	object.get(lib.probes, "snapshot_policies", null) == 0
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": "the cluster has no snapshot lifecycle policy; nothing takes regular snapshots",
		"resource": "_slm/policy",
		"snapshot_policies": 0,
	}
}

# METADATA
# title: Setting that this Elasticsearch version does not register
# description: >-
#   elasticsearch.yml holds a key the node's Elasticsearch version does not
#   register (a typo, a setting of another major such as discovery.zen.* on
#   8.x, a plugin's setting without the plugin) or a secure setting that
#   belongs in the keystore. Elasticsearch refuses to start on it
#   (AbstractScopedSettings.validate), so the node stays down at its next
#   restart or reboot, however long it has run. The keys come from the
#   facts (elasticsearch.unknown_settings, computed from the registered
#   settings table per major in spec/essettings).
# custom:
#   id: ES-CLU-004
#   requires: [elasticsearch.yml, elasticsearch.version]
#   severity: high
#   remediation: >-
#     Remove or correct the key in elasticsearch.yml (on esnode-baked nodes
#     the managed block is rewritten at boot; fix the spec or the lines
#     outside the block), move secure settings into the keystore with
#     elasticsearch-keystore add, then restart Elasticsearch.
#   stage: [bake, audit]
deny contains finding if {
	some u in object.get(lib.es, "unknown_settings", [])
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("elasticsearch.yml sets %s, which Elasticsearch %s refuses at start: %s", [u.key, object.get(lib.es, "version", "?"), u.message]),
		"resource": sprintf("elasticsearch.yml:%s", [u.key]),
		"setting": u.key,
		"settings_table": object.get(lib.es, "settings_table", ""),
	}
}
