package esbake.rules.scale_in

import data.esbake.lib

# METADATA
# title: Auto Scaling group terminates nodes without a drain
# description: >-
#   The node's Auto Scaling group has no termination lifecycle hook
#   (autoscaling:EC2_INSTANCE_TERMINATING), so a scale-in or an instance
#   refresh terminates the node at once, with its shards: with one replica,
#   losing two nodes together, or one while the cluster is yellow, loses
#   data, and removing master-eligible nodes without voting exclusions can
#   cost 7.x/8.x its quorum. esnode drain moves the shards away first, but
#   only a hook gives it the time.
# custom:
#   id: ES-ASG-001
#   requires: [node.auto_scaling]
#   severity: high
#   remediation: >-
#     Add a termination lifecycle hook to the group (`aws autoscaling
#     put-lifecycle-hook --lifecycle-transition
#     autoscaling:EC2_INSTANCE_TERMINATING --heartbeat-timeout 900`) and set
#     the same name as `lifecycle.termination_hook` in the node spec, so
#     esnode-drain.service drains the node before it terminates
#     (docs/esnode.md, Safe scale-in).
#   stage: [audit]
deny contains finding if {
	asg := lib.node.auto_scaling
	is_object(asg)
	group := object.get(asg, "group", "")
	group != ""
	count(termination_hooks(asg)) == 0
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("Auto Scaling group %s has no termination lifecycle hook: a scale-in terminates this node without draining it", [group]),
		"resource": sprintf("autoscaling-group:%s", [group]),
		"group": group,
	}
}

# METADATA
# title: Termination hook times out before a heartbeat
# description: >-
#   The group's termination lifecycle hook has a heartbeat timeout shorter
#   than esnode drain's default heartbeat interval (5 minutes): the hook
#   times out between two heartbeats and the instance terminates while its
#   shards are still moving.
# custom:
#   id: ES-ASG-002
#   requires: [node.auto_scaling]
#   severity: medium
#   remediation: >-
#     Raise the hook's heartbeat timeout (`aws autoscaling put-lifecycle-hook
#     ... --heartbeat-timeout 900`) or set `lifecycle.heartbeat_interval` in
#     the node spec below it (at least 10s).
#   stage: [audit]
deny contains finding if {
	asg := lib.node.auto_scaling
	is_object(asg)
	some h in termination_hooks(asg)
	timeout := object.get(h, "heartbeat_timeout", 0)
	timeout < 300
	finding := {
		"id": rego.metadata.rule().custom.id,
		"msg": sprintf("termination hook %s of Auto Scaling group %s times out after %ds, before esnode drain's first heartbeat (300s by default)", [object.get(h, "name", ""), object.get(asg, "group", ""), timeout]),
		"resource": sprintf("lifecycle-hook:%s", [object.get(h, "name", "")]),
		"group": object.get(asg, "group", ""),
		"hook": object.get(h, "name", ""),
		"heartbeat_timeout": timeout,
	}
}

termination_hooks(asg) := [h |
	some h in lib.arr(object.get(asg, "lifecycle_hooks", []))
	object.get(h, "transition", "") == "autoscaling:EC2_INSTANCE_TERMINATING"
]
