// Package boot is `esnode boot`: on every boot, before Elasticsearch starts,
// it writes the per-boot part of a baked node's configuration from instance
// metadata (IMDSv2 only), userdata and the spec recorded at bake time in
// /etc/esnode/manifest.json. It reads and renders everything first and
// writes only then, so unreachable metadata or bad userdata leave the last
// good configuration untouched and fail the unit with a message.
//
// # Userdata
//
// Userdata stays minimal. Accepted forms:
//
// Empty: the cluster name comes from the instance's discovery tag
// (cluster.discovery_tag_key in the spec, default es_cluster; instance
// tags must be enabled in metadata), else from the spec's cluster.name,
// else boot fails saying how to set one.
//
// key=value lines; `#` starts a comment line; values may be quoted; lists
// are comma-separated:
//
//	cluster_name=logs-prod
//	node_roles=master,data
//	heap_percent=60
//
// A YAML mapping (lists as YAML lists or comma-separated strings):
//
//	# esnode settings
//	cluster_name: logs-prod
//	node_roles: [master, data]
//	cors_allow_origin: https://app.example.com
//
// #cloud-config with a top-level esnode: mapping (cloud-init ignores the
// unknown key; esnode ignores the rest):
//
//	#cloud-config
//	package_update: true
//	esnode:
//	  cluster_name: logs-prod
//	  heap_mb: 4096
//
// A shell script (#!...), a #cloud-config without esnode:, MIME multi-part
// and other cloud-init formats are not for esnode and are ignored, as if
// empty; a script that also has a top-level `esnode:` line is an error (it
// would be ignored silently otherwise). Gzip-compressed userdata is
// decompressed first.
//
// Keys (anything else is an error naming the unknown keys and listing
// these):
//
//	cluster_name                cluster name; overrides the tag and the spec
//	node_roles                  node roles (master, data, ingest, ...); overrides spec cluster.roles
//	heap_percent                heap as % of memory (1-75), clamped to the spec's heap.min_mb/max_mb
//	heap_mb                     exact heap in MiB (256-32767, below memory); not with heap_percent
//	cors_allow_origin           enables CORS for this origin; '*' and match-all patterns are refused
//	discovery_access_key_param  SSM parameter holding discovery.ec2.access_key  } both or neither;
//	discovery_secret_key_param  SSM parameter holding discovery.ec2.secret_key  } default: instance profile
//	initial_master_nodes        cluster.initial_master_nodes, 7.x and later; never written unless asked
//
// # Files
//
// elasticsearch.yml: boot owns one block between the lines
// "# BEGIN esnode boot (managed; edits are replaced at boot)" and
// "# END esnode boot", rewritten in place (appended the first time). It
// holds cluster.name, node.name (instance id), network.host (local IPv4),
// http.port, transport.port (transport.tcp.port on 6.x), node roles
// (node.roles from 7.9, node.master/data/ingest before), EC2 discovery
// (discovery.seed_providers, or discovery.zen.hosts_provider on 6.x,
// discovery.ec2.tag.<key>, any_group, host_type private_ip, the regional
// endpoint), cloud.node.auto_attributes with AZ awareness,
// reindex.remote.whitelist for the subnet (see ReindexWhitelist), and, only
// when configured, CORS, bootstrap.memory_lock and
// cluster.initial_master_nodes. Boot owns these keys (and every
// discovery.ec2.tag.* key) even when it does not write them: an active
// line setting one outside the block in flat form is commented out by
// prefixing "# esnode-boot-disabled: ", so Elasticsearch never sees a
// duplicate key nor a stale value (the bake script's network.host,
// cluster.name and CORS '*', or the 8.x auto-configured
// cluster.initial_master_nodes); a nested form is an error naming the
// line. Nothing else in the file changes.
//
// Heap: Xms = Xmx = percent of MemTotal clamped to [min_mb, max_mb] in
// jvm.options.d/esnode-heap.options (7.x and later; jvm.options is not
// touched). 6.x has no jvm.options.d: there boot owns a block between
// "## BEGIN esnode boot heap" and "## END esnode boot heap" in jvm.options
// and comments out every other active -Xms/-Xmx line, which also repairs
// the bake script's doubled -Xms.
//
// Firewall: the spec's ports (HTTP, transport, ElasticHQ when enabled)
// open only from their resolved sources (subnet and vpc from metadata) and
// SSH from firewall.ssh_sources; loopback and established traffic
// accepted; everything else dropped. With iptables the rules live in the
// chain ESNODE-INPUT, jumped to first from INPUT whose policy becomes
// DROP; rerunning flushes only that chain, never the image's own rules,
// and /etc/iptables/rules.v4 is edited the same way (other lines kept).
// With nftables they are the table inet esnode (replaced atomically),
// persisted in /etc/nftables.d/esnode.nft which /etc/nftables.conf
// includes.
//
// CloudWatch agent (when enabled): its JSON config ships the cluster's
// logs to the spec's log group, stream named by instance id. When systemd
// starts the agent after this boot anyway (agentStartsAfterBoot: the first
// boot), the agent's own start translates it, so nothing runs. Otherwise,
// when it changed, `amazon-cloudwatch-agent-ctl -a fetch-config` checks and
// installs it and a non-blocking `systemctl --no-block restart
// amazon-cloudwatch-agent` follows (not the ctl script's -s: its blocking
// restart would deadlock against the agent unit, which is ordered after
// esnode-boot).
//
// Discovery keys: only when userdata names both SSM parameters, their
// decrypted values are added to the Elasticsearch keystore through the
// tool's stdin; otherwise the instance profile is used and no long-lived
// key touches the disk.
//
// /etc/esnode/boot.json records what the boot saw and the sha256 of every
// file it rendered (see State). All writes are atomic (temporary file and
// rename) and keep the existing file's mode and owner. A second run with
// the same inputs changes no file.
package boot
