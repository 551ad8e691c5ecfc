package install

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Node paths install lays down.
const (
	EsnodePath       = "/usr/local/bin/esnode"
	BootUnit         = "esnode-boot.service"
	BootUnitPath     = "/etc/systemd/system/" + BootUnit
	ESUnit           = "elasticsearch.service"
	HQUnit           = "elastichq.service"
	HQUnitPath       = "/etc/systemd/system/" + HQUnit
	CWAgentUnit      = "amazon-cloudwatch-agent.service"
	SysctlPath       = "/etc/sysctl.d/60-elasticsearch.conf"
	LimitsDropInPath = "/etc/systemd/system/elasticsearch.service.d/esnode-limits.conf"
	TmpDropInPath    = "/etc/systemd/system/elasticsearch.service.d/esnode-tmpdir.conf"
	// ESBootDropInPath and HQBootDropInPath make Elasticsearch and ElasticHQ
	// require a successful esnode boot (fail closed).
	ESBootDropInPath = "/etc/systemd/system/elasticsearch.service.d/esnode-boot.conf"
	HQBootDropInPath = "/etc/systemd/system/elastichq.service.d/esnode-boot.conf"
	JoinedUnit       = "esnode-joined.service"
	JoinedUnitPath   = "/etc/systemd/system/" + JoinedUnit
	DrainUnit        = "esnode-drain.service"
	DrainUnitPath    = "/etc/systemd/system/" + DrainUnit
	// ESTmpDir is Elasticsearch's private temp dir: /tmp is noexec on CIS
	// images and the JVM loads JNA's native library from its temp dir.
	ESTmpDir   = "/var/cache/elasticsearch/tmp"
	HQBase     = "/usr/share/elastichq"
	HQVenv     = HQBase + "/venv"
	HQStateDir = "/var/lib/elastichq"
	// HQEnvFile is optional: boot may write HQ_DEFAULT_URL there once it
	// knows the node's address.
	HQEnvFile    = "/etc/esnode/elastichq.env"
	DownloadDir  = "/var/cache/esnode/downloads"
	ESHome       = "/usr/share/elasticsearch"
	ESPluginTool = ESHome + "/bin/elasticsearch-plugin"
	ESPluginsDir = ESHome + "/plugins"
	ESPackage    = "elasticsearch"
	CWAgentPkg   = "amazon-cloudwatch-agent"
	header       = "# Installed by esnode install at bake time; changes are reported as drift.\n"
)

func renderSysctl(n *spec.Node) []byte {
	return []byte(header + "# Elasticsearch's bootstrap checks need at least " + strconv.Itoa(spec.MinMaxMapCount) + ".\n" +
		"vm.max_map_count = " + strconv.Itoa(n.System.MaxMapCount) + "\n")
}

func renderLimits(n *spec.Node) []byte {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("# Limits of Elasticsearch's bootstrap checks (nofile, nproc, memlock).\n[Service]\n")
	fmt.Fprintf(&b, "LimitNOFILE=%d\n", n.System.NoFile)
	fmt.Fprintf(&b, "LimitNPROC=%d\n", n.System.NProc)
	if n.System.MemoryLock {
		b.WriteString("LimitMEMLOCK=infinity\n")
	}
	return []byte(b.String())
}

func renderTmpDropIn() []byte {
	return []byte(header + `# /tmp is mounted noexec on CIS images, and Elasticsearch loads native code
# (JNA) from its temp dir: give it a private one that allows exec.
[Service]
CacheDirectory=elasticsearch/tmp
CacheDirectoryMode=0750
Environment=ES_TMPDIR=` + ESTmpDir + `
`)
}

func renderBootUnit() []byte {
	return []byte(header + `[Unit]
Description=esnode boot: per-boot Elasticsearch node configuration from instance metadata
After=network-online.target
Wants=network-online.target
Before=elasticsearch.service elastichq.service amazon-cloudwatch-agent.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/esnode boot
# The first cluster's nodes wait here for each other (bootstrap slots); a
# failed boot keeps Elasticsearch and ElasticHQ down (their Requires=).
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
`)
}

// renderRequiresBoot is the drop-in that keeps a unit down unless esnode
// boot succeeded: with Requires= and After=, systemd does not start it when
// esnode-boot.service fails ("Dependency failed"), and esnode boot's own
// journal says why. On the stock unit a 7.x/8.x node that starts without
// its per-boot configuration can bootstrap a private one-node cluster and
// never join the real one.
func renderRequiresBoot(unit string) []byte {
	return []byte(header + "# " + unit + " starts only after a successful esnode boot (fail closed).\n[Unit]\nRequires=" + BootUnit + "\nAfter=" + BootUnit + "\n")
}

// renderJoinedUnit runs esnode joined beside Elasticsearch: once the node
// is in a cluster it records the cluster UUID and removes
// cluster.initial_master_nodes. Type=simple: the wait never holds up boot.
func renderJoinedUnit() []byte {
	return renderCompanionUnit("esnode joined: record the cluster this node joined and drop its bootstrap list", "joined")
}

// renderDrainUnit runs esnode drain beside Elasticsearch: it watches the
// Auto Scaling target lifecycle state and drains the node before a
// scale-in terminates it (it exits at once without lifecycle.termination_hook).
func renderDrainUnit() []byte {
	return renderCompanionUnit("esnode drain: move this node's shards away before its Auto Scaling group terminates it", "drain")
}

// renderCompanionUnit is an esnode verb that runs beside Elasticsearch
// after a successful esnode boot, restarted when it fails.
func renderCompanionUnit(description, verb string) []byte {
	return []byte(header + `[Unit]
Description=` + description + `
Requires=esnode-boot.service
After=esnode-boot.service elasticsearch.service

[Service]
Type=simple
ExecStart=/usr/local/bin/esnode ` + verb + `
Restart=on-failure
RestartSec=10

[Install]
WantedBy=multi-user.target
`)
}

func hqDir(version string) string { return HQBase + "/" + version }

func renderHQUnit(n *spec.Node) []byte {
	hq := n.ElasticHQ
	dir := hqDir(hq.Version)
	return []byte(fmt.Sprintf(header+`[Unit]
Description=ElasticHQ %[1]s, the Elasticsearch web UI
After=network-online.target esnode-boot.service elasticsearch.service
Wants=network-online.target

[Service]
Type=simple
User=%[2]s
Group=%[2]s
WorkingDirectory=%[3]s
Environment=HOME=%[4]s
EnvironmentFile=-%[5]s
ExecStart=%[6]s/bin/python %[3]s/application.py --host %[7]s --port %[8]d
Restart=on-failure
RestartSec=5
UMask=0027
StateDirectory=elastichq
StateDirectoryMode=0750
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes

[Install]
WantedBy=multi-user.target
`, hq.Version, hq.User, dir, HQStateDir, HQEnvFile, HQVenv, hq.BindAddress, hq.Port))
}
