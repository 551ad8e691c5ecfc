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
# title: Index replicas cannot survive the loss of one availability zone
# description: >-
#   The auditor read the cluster's indices, allocation awareness and data
#   nodes from the API, and an AZ outage (or, for the same reason, an Auto
#   Scaling group removing the instances of one zone) would take every copy
#   of some shard: an index has no replica (number_of_replicas 0) while the
#   cluster has several data nodes; or allocation awareness is off
#   (cluster.routing.allocation.awareness.attributes) while a zone holds
#   more than one data node, or the zones are unknown, so Elasticsearch may
#   put a shard's primary and replica in one zone (it spreads copies by
#   node, not zone, without awareness: AwarenessAllocationDecider); or the
#   data nodes that can hold shards all sit in one zone. With awareness on
#   and one replica in two zones, each zone holds a copy of every shard.
# custom:
#   id: ES-CLU-005
#   requires: [probes.cluster]
#   severity: high
#   remediation: >-
#     Give every index at least one replica (PUT <index>/_settings
#     {"index.number_of_replicas": 1}); turn on zone awareness (the node
#     spec's AZ awareness: esnode boot writes node.attr.aws_availability_zone
#     and cluster.routing.allocation.awareness.attributes); and spread the
#     Auto Scaling group's data nodes over at least two availability zones
#     (two subnets).
#   stage: [audit]
deny contains finding if {
	some f in zone_loss
	finding := object.union(f, {"id": rego.metadata.rule().custom.id})
}

# zone_loss are ES-CLU-005's findings, one reason each.
zone_loss contains finding if {
	c := cluster_layout
	count(lib.arr(object.get(c, "data_nodes", []))) > 1
	some idx in lib.arr(object.get(c, "indices", []))
	object.get(idx, "replicas", 0) == 0
	finding := {
		"msg": sprintf("index %s has no replica: the zone (or node) holding one of its primaries takes that shard with it", [object.get(idx, "name", "")]),
		"resource": sprintf("index:%s", [object.get(idx, "name", "")]),
		"index": object.get(idx, "name", ""),
		"replicas": 0,
	}
}

zone_loss contains finding if {
	c := cluster_layout
	count(lib.arr(object.get(c, "awareness_attributes", []))) == 0
	nodes := lib.arr(object.get(c, "data_nodes", []))
	count(nodes) > 1
	replicated_indices(c)
	crowded := [z | some z in node_zones(nodes, zone_attribute(c)); count([n | some n in nodes; object.get(lib.obj(object.get(n, "attributes", {})), zone_attribute(c), "") == z]) > 1]
	unknown := [n | some n in nodes; object.get(lib.obj(object.get(n, "attributes", {})), zone_attribute(c), "") == ""]
	count(crowded) + count(unknown) > 0
	finding := {
		"msg": sprintf("allocation awareness is off and %s: Elasticsearch may place a shard's primary and replica in the same availability zone", [awareness_off_reason(crowded, unknown)]),
		"resource": "_cluster/settings:cluster.routing.allocation.awareness.attributes",
		"zones_with_several_data_nodes": sort(crowded),
		"data_nodes_without_zone": count(unknown),
	}
}

zone_loss contains finding if {
	c := cluster_layout
	aware := lib.arr(object.get(c, "awareness_attributes", []))
	count(aware) > 0
	attr := aware[0]
	nodes := lib.arr(object.get(c, "data_nodes", []))
	zoned := [n | some n in nodes; object.get(lib.obj(object.get(n, "attributes", {})), attr, "") != ""]
	count(zoned) > 0
	zones := node_zones(zoned, attr)
	count(zones) < 2
	replicated_indices(c)
	finding := {
		"msg": sprintf("every data node that can hold shards is in %s %v: losing that zone loses every copy", [attr, sort([z | some z in zones])]),
		"resource": sprintf("node.attr.%s", [attr]),
		"zones": sort([z | some z in zones]),
	}
}

cluster_layout := c if {
	c := object.get(lib.probes, "cluster", null)
	is_object(c)
}

replicated_indices(c) if {
	some idx in lib.arr(object.get(c, "indices", []))
	object.get(idx, "replicas", 0) > 0
}

# The zone attribute: the first awareness attribute, else the one esnode
# boot writes.
zone_attribute(c) := a if {
	a := lib.arr(object.get(c, "awareness_attributes", []))[0]
} else := "aws_availability_zone"

node_zones(nodes, attr) := {z |
	some n in nodes
	z := object.get(lib.obj(object.get(n, "attributes", {})), attr, "")
	z != ""
}

awareness_off_reason(crowded, unknown) := sprintf("zone(s) %v hold several data nodes", [sort(crowded)]) if {
	count(crowded) > 0
} else := sprintf("%d data node(s) report no zone", [count(unknown)])

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
