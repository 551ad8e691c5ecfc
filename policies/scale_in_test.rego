package esbake.rules.scale_in_test

import data.esbake.fixtures
import data.esbake.rules.scale_in

with_as(asg) := fixtures.patched([{"op": "add", "path": "/node/auto_scaling", "value": asg}])

ids(doc) := {f.id | some f in scale_in.deny with input as doc}

hook(name, transition, timeout) := {"name": name, "transition": transition, "default_result": "CONTINUE", "heartbeat_timeout": timeout}

test_no_auto_scaling_info_passes if {
	# Not read (no EC2 discovery): the engine reports the rules as not evaluated.
	count(ids(fixtures.clean)) == 0
}

test_not_in_a_group_passes if {
	count(ids(with_as({"group": "", "lifecycle_hooks": []}))) == 0
}

test_group_without_hook_flagged if {
	fs := {f | some f in scale_in.deny with input as with_as({"group": "es-prod", "lifecycle_hooks": []})}
	{[f.id, f.group] | some f in fs} == {["ES-ASG-001", "es-prod"]}
}

test_launch_hook_only_flagged if {
	ids(with_as({"group": "es-prod", "lifecycle_hooks": [hook("warm", "autoscaling:EC2_INSTANCE_LAUNCHING", 900)]})) == {"ES-ASG-001"}
}

test_termination_hook_passes if {
	count(ids(with_as({"group": "es-prod", "lifecycle_hooks": [hook("es-drain", "autoscaling:EC2_INSTANCE_TERMINATING", 900)]}))) == 0
}

test_short_heartbeat_timeout_flagged if {
	fs := {f | some f in scale_in.deny with input as with_as({"group": "es-prod", "lifecycle_hooks": [hook("es-drain", "autoscaling:EC2_INSTANCE_TERMINATING", 60)]})}
	{[f.id, f.hook, f.heartbeat_timeout] | some f in fs} == {["ES-ASG-002", "es-drain", 60]}
}
