# Input documents shared by the rule tests: a clean node baked and booted
# by esnode, and a node set up by the original bootstrap script (the seed).
# Tests patch them (json.patch) to make one thing wrong at a time.
package esbake.fixtures

ids(findings) := {f.id | some f in findings}

# patched applies JSON patch operations to the clean node.
patched(ops) := json.patch(clean, ops)

# with_yml is the clean node with elasticsearch.yml settings set; a null
# value removes the setting.
with_yml(settings) := json.patch(clean, [{"op": "add", "path": "/facts/elasticsearch/yml", "value": merged}]) if {
	removed := {k | some k, v in settings; v == null}
	merged := object.remove(object.union(clean.facts.elasticsearch.yml, settings), removed)
}

gib := 1073741824

mib := 1048576

spec := {
	"elasticsearch": {"version": "8.15.3", "http_port": 9200, "transport_port": 9300},
	"plugins": [{"name": "discovery-ec2"}],
	"elastichq": {"enabled": false, "port": 0},
	"cloudwatch_agent": {"enabled": false},
	"firewall": {
		"backend": "auto",
		"http_sources": ["subnet"],
		"transport_sources": ["subnet"],
		"hq_sources": null,
		"ssh_sources": ["vpc"],
	},
	"heap": {"percent": 50, "min_mb": 1024, "max_mb": 31744},
	"cluster": {"discovery_tag_key": "es_cluster"},
	"system": {"max_map_count": 262144, "nofile": 65535, "nproc": 4096, "memory_lock": false},
}

chain_rule(chain, extra) := object.union(
	{
		"backend": "iptables", "family": "ipv4", "table": "filter", "chain": chain,
		"dports": [], "sources": [], "target": "ACCEPT", "raw": "",
	},
	extra,
)

clean := {
	"facts": {
		"schema_version": "esbake.facts/v1",
		"collected_at": "2026-11-25T02:00:00Z",
		"root": "/",
		"live": true,
		"host": {
			"hostname": "ip-10-0-1-23",
			"instance_id": "i-0123456789abcdef0",
			"mem_total_bytes": 8 * gib,
			"kernel": "6.1.0-27-cloud-amd64",
			"os_release": {"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)"},
			"boot": {
				"instance_id": "i-0123456789abcdef0",
				"local_ipv4": "10.0.1.23",
				"subnet_cidr": "10.0.1.0/24",
				"vpc_cidr": "10.0.0.0/16",
				"az": "eu-west-2a",
				"region": "eu-west-2",
				"cluster_name": "aardvark-cluster",
				"tags": {"es_cluster": "aardvark-cluster"},
			},
		},
		"listeners": [
			{"proto": "tcp", "address": "0.0.0.0", "port": 22, "all_interfaces": true, "loopback": false, "inode": 1, "process": "sshd", "uid": 0, "user": "root"},
			{"proto": "tcp", "address": "127.0.0.53", "port": 53, "all_interfaces": false, "loopback": true, "inode": 2, "process": "systemd-resolve", "uid": 991, "user": "systemd-resolve"},
			{"proto": "tcp6", "address": "::ffff:10.0.1.23", "port": 9200, "all_interfaces": false, "loopback": false, "inode": 3, "process": "java", "uid": 112, "user": "elasticsearch"},
			{"proto": "tcp6", "address": "::ffff:10.0.1.23", "port": 9300, "all_interfaces": false, "loopback": false, "inode": 4, "process": "java", "uid": 112, "user": "elasticsearch"},
		],
		"firewall": {
			"backend": "iptables",
			"source": ["iptables-save", "ip6tables-save"],
			"default_input_policy": "DROP",
			"default_input_policy6": "DROP",
			"chains": [
				{"backend": "iptables", "family": "ipv4", "table": "filter", "name": "INPUT", "hook": "input", "policy": "DROP"},
				{"backend": "iptables", "family": "ipv4", "table": "filter", "name": "FORWARD", "hook": "forward", "policy": "DROP"},
				{"backend": "iptables", "family": "ipv4", "table": "filter", "name": "OUTPUT", "hook": "output", "policy": "ACCEPT"},
				{"backend": "iptables", "family": "ipv4", "table": "filter", "name": "ESNODE-INPUT"},
				{"backend": "iptables", "family": "ipv6", "table": "filter", "name": "INPUT", "hook": "input", "policy": "DROP"},
			],
			"rules": [
				chain_rule("INPUT", {"hook": "input", "target": "ESNODE-INPUT", "raw": "-A INPUT -j ESNODE-INPUT"}),
				chain_rule("ESNODE-INPUT", {"in_interface": "lo", "raw": "-A ESNODE-INPUT -i lo -j ACCEPT"}),
				chain_rule("ESNODE-INPUT", {"ctstate": ["related", "established"], "raw": "-A ESNODE-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"}),
				chain_rule("ESNODE-INPUT", {"proto": "tcp", "dports": [{"from": 9200, "to": 9200}], "sources": ["10.0.1.0/24"], "raw": "-A ESNODE-INPUT -s 10.0.1.0/24 -p tcp -m tcp --dport 9200 -j ACCEPT"}),
				chain_rule("ESNODE-INPUT", {"proto": "tcp", "dports": [{"from": 9300, "to": 9300}], "sources": ["10.0.1.0/24"], "raw": "-A ESNODE-INPUT -s 10.0.1.0/24 -p tcp -m tcp --dport 9300 -j ACCEPT"}),
				chain_rule("ESNODE-INPUT", {"proto": "tcp", "dports": [{"from": 22, "to": 22}], "sources": ["10.0.0.0/16"], "raw": "-A ESNODE-INPUT -s 10.0.0.0/16 -p tcp -m tcp --dport 22 -j ACCEPT"}),
			],
			"raw": "",
		},
		"elasticsearch": {
			"config_dir": "/etc/elasticsearch",
			"yml": {
				"cluster.name": "aardvark-cluster",
				"node.name": "i-0123456789abcdef0",
				"network.host": "10.0.1.23",
				"discovery.seed_providers": "ec2",
				"discovery.ec2.tag.es_cluster": "aardvark-cluster",
				"path.data": "/var/lib/elasticsearch",
				"path.logs": "/var/log/elasticsearch",
				"xpack.security.enabled": true,
			},
			"yml_errors": [],
			"version": "8.15.3",
			"keystore": {
				"path": "/etc/elasticsearch/elasticsearch.keystore",
				"present": true,
				"mode": "0660",
				"owner": "root",
				"group": "elasticsearch",
				"entries_known": true,
				"entries": ["keystore.seed", "xpack.security.http.ssl.keystore.secure_password"],
			},
			"heap": {
				"jdk_major": 21,
				"jdk_major_source": "/usr/share/elasticsearch/jdk/release",
				"files": ["/etc/elasticsearch/jvm.options", "/etc/elasticsearch/jvm.options.d/esnode-heap.options"],
				"xms_bytes": 4096 * mib,
				"xmx_bytes": 4096 * mib,
				"sources": [
					{"kind": "xms", "option": "-Xms4096m", "bytes": 4096 * mib, "source": "/etc/elasticsearch/jvm.options.d/esnode-heap.options:3"},
					{"kind": "xmx", "option": "-Xmx4096m", "bytes": 4096 * mib, "source": "/etc/elasticsearch/jvm.options.d/esnode-heap.options:4"},
				],
				"duplicates": [],
				"missing": [],
			},
			"process": {
				"pid": 812,
				"user": "elasticsearch",
				"uid": 112,
				"xms_bytes": 4096 * mib,
				"xmx_bytes": 4096 * mib,
				"limits": {
					"nofile": {"soft": 65535, "hard": 65535, "units": "files"},
					"nproc": {"soft": 4096, "hard": 4096, "units": "processes"},
					"memlock": {"soft": 8388608, "hard": 8388608, "units": "bytes"},
				},
			},
		},
		"sysctl": {"vm.max_map_count": 262144, "vm.swappiness": 1},
		"sysctl_conf": {"vm.max_map_count": {"value": "262144", "source": "/usr/lib/sysctl.d/elasticsearch.conf"}},
		"services": [
			{
				"name": "elasticsearch", "present": true, "unit_file": "/usr/lib/systemd/system/elasticsearch.service",
				"enabled": true, "active": "active", "user": "elasticsearch", "group": "elasticsearch",
				"limits": {"nofile": {"soft": 65535, "hard": 65535}, "nproc": {"soft": 4096, "hard": 4096}},
			},
			{"name": "elastichq", "present": false, "enabled": false, "active": "inactive", "user": ""},
			{"name": "esnode-boot", "present": true, "unit_file": "/etc/systemd/system/esnode-boot.service", "enabled": true, "active": "inactive", "user": "root", "user_default": true},
		],
		"paths": [
			{"path": "/etc/elasticsearch", "exists": true, "type": "dir", "mode": "2750", "owner": "root", "group": "elasticsearch", "uid": 0, "gid": 112, "world_writable": false, "world_readable": false},
			{"path": "/etc/elasticsearch/elasticsearch.yml", "exists": true, "type": "file", "mode": "0660", "owner": "root", "group": "elasticsearch", "uid": 0, "gid": 112, "world_writable": false, "world_readable": false},
			{"path": "/etc/elasticsearch/elasticsearch.keystore", "exists": true, "type": "file", "mode": "0660", "owner": "root", "group": "elasticsearch", "uid": 0, "gid": 112, "world_writable": false, "world_readable": false},
			{"path": "/usr/share/elastichq", "exists": false, "uid": -1, "gid": -1, "world_writable": false, "world_readable": false},
			{"path": "/var/lib/elasticsearch", "exists": true, "type": "dir", "mode": "2750", "owner": "elasticsearch", "group": "elasticsearch", "uid": 112, "gid": 112, "world_writable": false, "world_readable": false},
		],
		"manifest": {
			"present": true,
			"path": "/etc/esnode/manifest.json",
			"spec_hash": "sha256:0f3a",
			"es_version": "8.15.3",
			"esnode_version": "0.1.0",
			"spec": spec,
			"files_checked": 12,
			"drift": [],
		},
		"users": [{"name": "elasticsearch", "uid": 112, "gid": 112, "home": "/nonexistent", "shell": "/bin/false"}],
		"errors": [],
	},
	"node": {
		"name": "ip-10-0-1-23",
		"address": "10.0.1.23",
		"instance_id": "i-0123456789abcdef0",
		"tags": {"es_cluster": "aardvark-cluster", "Name": "es-data"},
		"security_groups": [{
			"id": "sg-0aaaaaaaaaaaaaaa1",
			"name": "es-nodes",
			"ingress": [
				{"proto": "tcp", "from_port": 9200, "to_port": 9200, "cidrs": ["10.0.1.0/24"], "ipv6_cidrs": []},
				{"proto": "tcp", "from_port": 9300, "to_port": 9300, "cidrs": ["10.0.1.0/24"], "ipv6_cidrs": []},
				{"proto": "tcp", "from_port": 22, "to_port": 22, "cidrs": ["10.0.0.0/16"], "ipv6_cidrs": []},
			],
		}],
	},
	"probes": {
		"reachable_ports": [9200, 9300],
		"es_api": {"version": "8.15.3", "cluster_name": "aardvark-cluster", "node_name": "i-0123456789abcdef0"},
		"snapshot_policies": 1,
	},
	"policy": {"expect_instance_profile": true, "auto_scaled": true},
}

# seed is a node the original bootstrap script set up: Elasticsearch 6.4.2
# from the .deb, no esnode, CORS for everyone, -Xms written twice, long-lived
# discovery keys in the keystore, ElasticHQ under a chmod 777 tree, and a
# security group that opens 9200 to all downstream clients.
seed := {
	"facts": {
		"schema_version": "esbake.facts/v1",
		"root": "/",
		"live": true,
		"host": {"hostname": "ip-10-0-1-57", "instance_id": "i-0fedcba9876543210", "mem_total_bytes": 8167784 * 1024},
		"listeners": [
			{"proto": "tcp", "address": "0.0.0.0", "port": 22, "all_interfaces": true, "loopback": false, "process": "sshd", "uid": 0, "user": "root"},
			{"proto": "tcp", "address": "0.0.0.0", "port": 5000, "all_interfaces": true, "loopback": false, "process": "python3", "uid": 998, "user": "elasticsearch-hq"},
			{"proto": "tcp6", "address": "::ffff:10.0.1.57", "port": 9200, "all_interfaces": false, "loopback": false, "process": "java", "uid": 113, "user": "elasticsearch"},
			{"proto": "tcp6", "address": "::ffff:10.0.1.57", "port": 9300, "all_interfaces": false, "loopback": false, "process": "java", "uid": 113, "user": "elasticsearch"},
		],
		"firewall": {
			"backend": "iptables",
			"default_input_policy": "DROP",
			"chains": [{"backend": "iptables", "family": "ipv4", "table": "filter", "name": "INPUT", "hook": "input", "policy": "DROP"}],
			"rules": [
				chain_rule("INPUT", {"hook": "input", "proto": "tcp", "dports": [{"from": 5000, "to": 5000}], "sources": ["10.0.1.0/24"], "ctstate": ["new"]}),
				chain_rule("INPUT", {"hook": "input", "proto": "tcp", "dports": [{"from": 9200, "to": 9200}], "sources": ["10.0.1.0/24"], "ctstate": ["new"]}),
				chain_rule("INPUT", {"hook": "input", "proto": "tcp", "dports": [{"from": 9300, "to": 9300}], "sources": ["10.0.1.0/24"], "ctstate": ["new"]}),
			],
		},
		"elasticsearch": {
			"config_dir": "/etc/elasticsearch",
			"yml": {
				"cluster.name": "aardvark-cluster",
				"network.host": ["10.0.1.57"],
				"http.cors.enabled": true,
				"http.cors.allow-origin": "*",
				"discovery.zen.hosts_provider": "ec2",
				"discovery.ec2.any_group": true,
				"discovery.ec2.host_type": "private_ip",
				"discovery.ec2.tag.es_cluster": "aardvark-cluster",
				"reindex.remote.whitelist": "10.0.1.*:9200",
			},
			"version": "6.4.2",
			"keystore": {
				"path": "/etc/elasticsearch/elasticsearch.keystore", "present": true, "mode": "0660",
				"entries_known": true, "entries": ["discovery.ec2.access_key", "discovery.ec2.secret_key", "keystore.seed"],
			},
			"heap": {
				"jdk_major": 8,
				"files": ["/etc/elasticsearch/jvm.options"],
				"xms_bytes": 4 * gib,
				"xmx_bytes": 0,
				"sources": [
					{"kind": "xms", "option": "-Xms4g", "bytes": 4 * gib, "source": "/etc/elasticsearch/jvm.options:22"},
					{"kind": "xms", "option": "-Xms4g", "bytes": 4 * gib, "source": "/etc/elasticsearch/jvm.options:23"},
				],
				"duplicates": [{"kind": "xms", "count": 2, "sources": ["/etc/elasticsearch/jvm.options:22", "/etc/elasticsearch/jvm.options:23"]}],
				"missing": ["xmx"],
			},
			"process": {
				"pid": 1201, "user": "elasticsearch", "uid": 113, "xms_bytes": 4 * gib, "xmx_bytes": 0,
				"limits": {"nofile": {"soft": 65535, "hard": 65535}, "nproc": {"soft": 4096, "hard": 4096}},
			},
		},
		"sysctl": {"vm.max_map_count": 262144},
		"sysctl_conf": {"vm.max_map_count": {"value": "262144", "source": "/usr/lib/sysctl.d/elasticsearch.conf"}},
		"services": [
			{"name": "elasticsearch", "present": true, "enabled": true, "active": "active", "user": "elasticsearch", "limits": {"nofile": {"soft": 65535, "hard": 65535}, "nproc": {"soft": 4096, "hard": 4096}}},
			{"name": "elastichq", "present": true, "enabled": true, "active": "active", "user": "elasticsearch-hq"},
		],
		"paths": [
			{"path": "/etc/elasticsearch", "exists": true, "type": "dir", "mode": "2750", "world_writable": false},
			{"path": "/etc/elasticsearch/elasticsearch.keystore", "exists": true, "type": "file", "mode": "0660", "world_writable": false, "world_readable": false},
			{"path": "/usr/share/elasticsearch-hq", "exists": true, "type": "dir", "mode": "0777", "owner": "root", "world_writable": true, "world_readable": true},
		],
		"manifest": {"present": false, "path": "/etc/esnode/manifest.json", "files_checked": 0, "drift": null},
		"errors": [],
	},
	"node": {
		"name": "ip-10-0-1-57",
		"address": "10.0.1.57",
		"instance_id": "i-0fedcba9876543210",
		"tags": {"es_cluster": "aardvark-cluster"},
		"security_groups": [{
			"id": "sg-0bbbbbbbbbbbbbbb2",
			"name": "elasticsearch",
			"ingress": [
				{"proto": "tcp", "from_port": 9200, "to_port": 9200, "cidrs": ["0.0.0.0/0"], "ipv6_cidrs": []},
				{"proto": "tcp", "from_port": 9300, "to_port": 9300, "cidrs": ["10.0.1.0/24"], "ipv6_cidrs": []},
			],
		}],
	},
	"probes": {"reachable_ports": [9200], "es_api": {"version": "6.4.2", "cluster_name": "aardvark-cluster"}, "snapshot_policies": 0},
	"policy": {"expect_instance_profile": true, "auto_scaled": true},
}
