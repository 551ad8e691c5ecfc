package esbake.rules.files

import data.esbake.lib

# METADATA
# title: Managed file drifted from the bake manifest
# description: >-
#   A file esnode laid down at bake (or wrote at the last boot) is missing
#   or differs from what the manifest (or boot state) recorded: its
#   content, mode, owner or group changed by hand or by another tool, so
#   the node no longer is what was baked and reviewed.
# custom:
#   id: ES-FILE-001
#   requires: [manifest]
#   severity: medium
#   remediation: >-
#     Review the change (facts show expected and actual sums and modes). To
#     keep it, put it in the node spec and rebake; otherwise replace the
#     node, or reboot to restore boot-managed files.
#   stage: [bake, audit]
deny contains finding if {
	some d in lib.arr(object.get(lib.manifest, "drift", []))
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("%s (%s file) %s", [d.path, object.get(d, "stage", "managed"), drift_text(d)]),
		"resource": d.path,
		"path": d.path,
		"stage": object.get(d, "stage", ""),
		"missing": object.get(d, "missing", false),
		"changed": lib.arr(object.get(d, "changed", [])),
	}
}

drift_text(d) := "is missing" if {
	d.missing == true
} else := sprintf("changed: %s", [concat(", ", lib.arr(object.get(d, "changed", [])))])

# METADATA
# title: Node not baked by esnode (no bake manifest)
# description: >-
#   The node has no esnode bake manifest, so it was not built from a node
#   spec (a legacy node, such as one set up by the original bootstrap
#   script) or the manifest was removed: drift cannot be checked, and rules
#   fall back to the spec's defaults.
# custom:
#   id: ES-FILE-002
#   requires: [manifest]
#   severity: low
#   remediation: >-
#     Replace the node with one launched from an image baked by the
#     elasticsearch-ami builder.
#   stage: [bake, audit]
deny contains finding if {
	lib.has_facts
	not lib.failed("manifest")
	not lib.manifest.present
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("no bake manifest at %s: the node was not baked by esnode, so drift cannot be checked", [object.get(lib.manifest, "path", "/etc/esnode/manifest.json")]),
		"resource": object.get(lib.manifest, "path", "/etc/esnode/manifest.json"),
	}
}
