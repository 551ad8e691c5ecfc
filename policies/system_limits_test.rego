package esbake.rules.system_test

import data.esbake.fixtures
import data.esbake.rules.system

sys_findings(doc, id) := fs if {
	fs := {f | some f in system.deny with input as doc; f.id == id}
}

test_limits_clean_and_seed_pass if {
	count(system.deny) == 0 with input as fixtures.clean
	count(system.deny) == 0 with input as fixtures.seed
}

test_max_map_count_live_low_flagged if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/sysctl/vm.max_map_count", "value": 65530}])
	fs := sys_findings(doc, "ES-SYS-001")
	{f.source | some f in fs} == {"running kernel"}
}

test_max_map_count_persisted_low_flagged if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/sysctl_conf/vm.max_map_count", "value": {"value": "65530", "source": "/etc/sysctl.d/99-local.conf"}}])
	some f in sys_findings(doc, "ES-SYS-001")
	f.source == "set by /etc/sysctl.d/99-local.conf"
}

test_max_map_count_unknown_passes if {
	doc := fixtures.patched([
		{"op": "replace", "path": "/facts/sysctl", "value": {}},
		{"op": "replace", "path": "/facts/sysctl_conf", "value": {}},
	])
	count(sys_findings(doc, "ES-SYS-001")) == 0
}

test_max_map_count_spec_minimum if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/manifest/spec/system/max_map_count", "value": 524288}])
	count(sys_findings(doc, "ES-SYS-001")) == 2
}

test_nofile_process_low_flagged if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/elasticsearch/process/limits/nofile", "value": {"soft": 4096, "hard": 4096}}])
	{f.source | some f in sys_findings(doc, "ES-SYS-002")} == {"running process"}
}

test_nofile_unit_unset_flagged if {
	doc := fixtures.patched([{"op": "remove", "path": "/facts/services/0/limits/nofile"}])
	some f in sys_findings(doc, "ES-SYS-002")
	contains(f.msg, "sets no LimitNOFILE")
}

test_nofile_unlimited_passes if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/elasticsearch/process/limits/nofile", "value": {"soft": -1, "hard": -1}}])
	count(sys_findings(doc, "ES-SYS-002")) == 0
}

test_nproc_unit_low_flagged if {
	doc := fixtures.patched([{"op": "replace", "path": "/facts/services/0/limits/nproc", "value": {"soft": 1024, "hard": 1024}}])
	{f.source | some f in sys_findings(doc, "ES-SYS-003")} == {"elasticsearch.service"}
}

test_nproc_unit_unset_passes if {
	doc := fixtures.patched([{"op": "remove", "path": "/facts/services/0/limits/nproc"}])
	count(sys_findings(doc, "ES-SYS-003")) == 0
}
