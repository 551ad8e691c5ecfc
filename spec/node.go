//go:generate ../internal/tools/packer-sdc.sh struct-markdown
//go:generate ../internal/tools/packer-sdc.sh mapstructure-to-hcl2 -type Node,Elasticsearch,Java,Plugin,ElasticHQ,CloudWatchAgent,Firewall,Heap,Cluster,System,Security,Lifecycle

package spec

// APIVersion names the JSON schema of Node and Manifest documents.
const APIVersion = "esbake/v1"

// Node describes one Elasticsearch node image: what is installed at bake time
// and the defaults that `esnode boot` applies on every boot.
type Node struct {
	// The Elasticsearch release to bake.
	Elasticsearch Elasticsearch `mapstructure:"elasticsearch" json:"elasticsearch" required:"true"`
	// The Java runtime. Used only for Elasticsearch 6.x: 7.0 and later ship
	// their own JDK, and a configured Java is then an error.
	Java Java `mapstructure:"java" json:"java"`
	// Elasticsearch plugins, installed offline at the exact Elasticsearch
	// version. Defaults to one `discovery-ec2` plugin; `repository-s3` is
	// optional on 6.x and 7.x and bundled from 8.0 on.
	Plugins []Plugin `mapstructure:"plugin" json:"plugins"`
	// ElasticHQ, the web UI the original bootstrap script ran beside
	// Elasticsearch. Off unless enabled.
	ElasticHQ ElasticHQ `mapstructure:"elastichq" json:"elastichq"`
	// The Amazon CloudWatch agent, shipping Elasticsearch's logs. Its
	// configuration is written at boot, when the instance id is known.
	CloudWatchAgent CloudWatchAgent `mapstructure:"cloudwatch_agent" json:"cloudwatch_agent"`
	// Which ports the node opens, and to whom.
	Firewall Firewall `mapstructure:"firewall" json:"firewall"`
	// How the JVM heap is sized at boot from the instance's memory.
	Heap Heap `mapstructure:"heap" json:"heap"`
	// Cluster defaults that userdata and instance tags may override at boot.
	Cluster Cluster `mapstructure:"cluster" json:"cluster"`
	// Kernel and process limits required by Elasticsearch's bootstrap checks.
	System System `mapstructure:"system" json:"system"`
	// Where each cluster's TLS material and `elastic` password live in AWS
	// (Parameter Store SecureString or Secrets Manager), fetched at boot.
	// The image holds none: the 8.x package's auto-configured certificates,
	// keystore passwords and password hash are removed at bake.
	Security Security `mapstructure:"security" json:"security,omitzero"`
	// Safe scale-in: the Auto Scaling termination lifecycle hook esnode
	// answers after draining the node.
	Lifecycle Lifecycle `mapstructure:"lifecycle" json:"lifecycle,omitzero"`
	// Base URL of an artifact mirror for air-gapped pipelines (https://,
	// http:// or file://). Every artifact is then fetched from
	// `<mirror_url>/<file name>` and must have an explicit `sha512`.
	MirrorURL string `mapstructure:"mirror_url" json:"mirror_url,omitempty"`
	// Allow checksum files (`sha512 = "file:http://..."`) over plain
	// http://. Default false: whoever can change the traffic could then
	// swap the package and its checksum together. Artifacts themselves may
	// come over http:// (a mirror) because each is checked against a
	// SHA-512 that did not. A redirect from https:// to http:// is always
	// refused.
	AllowInsecureHTTP bool `mapstructure:"allow_insecure_http" json:"allow_insecure_http,omitempty"`
}

// Elasticsearch selects the Elasticsearch release and its ports.
type Elasticsearch struct {
	// Full release version, such as `8.15.3`. Supported lines: 6.8, 7.17,
	// 8.x and 9.x.
	Version string `mapstructure:"version" json:"version" required:"true"`
	// Download URL of the Debian package. Defaults to the official
	// `https://artifacts.elastic.co/downloads/elasticsearch/` package for the
	// guest's architecture; `{arch}` in the URL is replaced by `amd64` or `arm64`.
	URL string `mapstructure:"url" json:"url,omitempty"`
	// SHA-512 of the package: 128 hex digits, or `file:<url>` naming a
	// checksum file (`sha512sum` format or a bare sum). Defaults to the
	// official `.sha512` file published beside the package; required with
	// `mirror_url` or a custom `url`.
	SHA512 string `mapstructure:"sha512" json:"sha512,omitempty"`
	// HTTP (REST) port. Default 9200.
	HTTPPort int `mapstructure:"http_port" json:"http_port"`
	// Transport (node-to-node) port. Default 9300.
	TransportPort int `mapstructure:"transport_port" json:"transport_port"`
}

// Java is the runtime for Elasticsearch 6.x.
type Java struct {
	// Debian package that provides Java. Default `openjdk-11-jre-headless`:
	// Elasticsearch 6.8 runs on Java 8 or 11 only (its SecurityManager use
	// fails on Java 18 and later), so packages of Java 18 and later are
	// refused. Check that your distribution has it (Debian 11, Ubuntu 22.04).
	Package string `mapstructure:"package" json:"package,omitempty"`
	// URL of a JDK `.deb` (for example Amazon Corretto) to install instead
	// of `package`. Needs `sha512`.
	URL string `mapstructure:"url" json:"url,omitempty"`
	// SHA-512 of the `.deb` at `url`: 128 hex digits or `file:<url>`.
	SHA512 string `mapstructure:"sha512" json:"sha512,omitempty"`
}

// Plugin is one Elasticsearch plugin.
type Plugin struct {
	// Plugin name, such as `discovery-ec2`.
	Name string `mapstructure:"name" json:"name" required:"true"`
	// Download URL of the plugin zip. Defaults to the official
	// `https://artifacts.elastic.co/downloads/elasticsearch-plugins/` zip at
	// the Elasticsearch version; required for plugins Elastic does not publish.
	URL string `mapstructure:"url" json:"url,omitempty"`
	// SHA-512 of the zip: 128 hex digits or `file:<url>`. Defaults to the
	// official `.sha512` file; required with `mirror_url` or a custom `url`.
	SHA512 string `mapstructure:"sha512" json:"sha512,omitempty"`
}

// ElasticHQ is the ElasticHQ monitoring UI.
type ElasticHQ struct {
	// Install ElasticHQ. Default false.
	Enabled bool `mapstructure:"enabled" json:"enabled"`
	// Release to install. Default `3.5.12`.
	Version string `mapstructure:"version" json:"version,omitempty"`
	// Download URL of the release tarball. Defaults to the GitHub release
	// archive of `version`.
	URL string `mapstructure:"url" json:"url,omitempty"`
	// SHA-512 of the tarball: 128 hex digits or `file:<url>`. Required when
	// enabled: GitHub publishes no checksum for archives. Compute it once with
	// `curl -sL <url> | sha512sum`.
	SHA512 string `mapstructure:"sha512" json:"sha512,omitempty"`
	// TCP port of the UI. Default 5000.
	Port int `mapstructure:"port" json:"port"`
	// Address the UI binds to. Default `0.0.0.0`; the firewall limits who
	// reaches it.
	BindAddress string `mapstructure:"bind_address" json:"bind_address,omitempty"`
	// Dedicated system user that runs the UI (no login shell). Default
	// `elastichq`; never `root`.
	User string `mapstructure:"user" json:"user,omitempty"`
}

// CloudWatchAgent is the Amazon CloudWatch agent.
type CloudWatchAgent struct {
	// Install the agent. Default false.
	Enabled bool `mapstructure:"enabled" json:"enabled"`
	// Agent release in the download path. Default `latest`: pin a release
	// so that `sha512` stays valid.
	Version string `mapstructure:"version" json:"version,omitempty"`
	// Download URL of the agent `.deb`. Defaults to the official
	// `amazoncloudwatch-agent` package for the guest's architecture; `{arch}`
	// and `{version}` are replaced.
	URL string `mapstructure:"url" json:"url,omitempty"`
	// SHA-512 of the `.deb`: 128 hex digits or `file:<url>`. Required when
	// enabled: AWS publishes signatures, not checksums.
	SHA512 string `mapstructure:"sha512" json:"sha512,omitempty"`
	// CloudWatch Logs group for Elasticsearch's logs. Default `elasticsearch`.
	// Streams are named after the instance id.
	LogGroup string `mapstructure:"log_group" json:"log_group,omitempty"`
}

// Firewall says who may reach each port. Sources are CIDRs, or the words
// `subnet` and `vpc`, which `esnode boot` resolves from instance metadata.
type Firewall struct {
	// `iptables`, `nftables` or `auto` (default: whichever the image uses).
	Backend string `mapstructure:"backend" json:"backend,omitempty"`
	// Who may reach the HTTP port (clients). Default `["vpc"]`: an EC2
	// subnet lives in one availability zone, and clients and nodes span them.
	HTTPSources []string `mapstructure:"http_sources" json:"http_sources"`
	// Who may reach the transport port (other nodes). Default `["vpc"]`:
	// nodes in the other zones' subnets must reach it.
	TransportSources []string `mapstructure:"transport_sources" json:"transport_sources"`
	// Who may reach ElasticHQ. Default `["subnet"]`.
	HQSources []string `mapstructure:"hq_sources" json:"hq_sources"`
	// Who may reach SSH (port 22). Default `["vpc"]`.
	SSHSources []string `mapstructure:"ssh_sources" json:"ssh_sources"`
}

// Heap sizes the JVM heap at boot: Xms = Xmx = percent of RAM, clamped to
// [min_mb, max_mb].
type Heap struct {
	// Share of the instance's memory for the heap, in percent. Default 50;
	// at most 75 (Lucene needs the file cache).
	Percent int `mapstructure:"percent" json:"percent"`
	// Smallest heap in MiB. Default 1024.
	MinMB int `mapstructure:"min_mb" json:"min_mb"`
	// Largest heap in MiB. Default 31744 (31 GiB), below the JVM's
	// compressed-oops threshold of 32 GiB; must stay under it.
	MaxMB int `mapstructure:"max_mb" json:"max_mb"`
}

// Cluster holds the cluster defaults.
type Cluster struct {
	// Cluster name used when neither userdata nor the discovery tag gives
	// one.
	Name string `mapstructure:"name" json:"name,omitempty"`
	// EC2 tag key that discovery filters on; its value on the instance is the
	// cluster name. Default `es_cluster`.
	DiscoveryTagKey string `mapstructure:"discovery_tag_key" json:"discovery_tag_key"`
	// Node roles (`master`, `data`, `ingest`, ...). Empty keeps Elasticsearch's
	// default of every role.
	Roles []string `mapstructure:"roles" json:"roles,omitempty"`
	// Value of `http.cors.allow-origin`. Empty leaves CORS off; `*`, `null`
	// and any /regex/ that admits a domain it does not spell out (such as
	// /https:\/\/.*example\.com/) are refused, and so is regex syntax Java
	// and Go read differently (possessive `*+`, lookarounds, `&&` classes).
	CORSAllowOrigin string `mapstructure:"cors_allow_origin" json:"cors_allow_origin,omitempty"`
	// Bootstrap a fixed cluster with these master-eligible node names. Leave
	// empty for auto-scaled clusters, which must not set it.
	InitialMasterNodes []string `mapstructure:"initial_master_nodes" json:"initial_master_nodes,omitempty"`
	// Number of master-eligible nodes the cluster is launched with (1-9; 3
	// is usual). Required for 6.x, where `discovery.zen.minimum_master_nodes`
	// is written as its quorum (master_nodes / 2 + 1). On 7.x and later it
	// turns on the first-cluster bootstrap of auto-scaling groups: the first
	// master_nodes master-eligible nodes to claim a Parameter Store slot
	// bootstrap the cluster together (see docs/esnode.md). 0 (the default
	// on 7.x and later): nodes only join an existing cluster.
	MasterNodes int `mapstructure:"master_nodes" json:"master_nodes,omitempty"`
}

// System holds the kernel and process limits of Elasticsearch's bootstrap
// checks.
type System struct {
	// `vm.max_map_count`. Default and minimum 262144.
	MaxMapCount int `mapstructure:"max_map_count" json:"max_map_count"`
	// Open-file limit of the Elasticsearch service. Default and minimum 65535.
	NoFile int `mapstructure:"nofile" json:"nofile"`
	// Process limit of the Elasticsearch service. Default and minimum 4096.
	NProc int `mapstructure:"nproc" json:"nproc"`
	// Lock the heap in memory (`bootstrap.memory_lock` and an unlimited
	// memlock limit). Default false.
	MemoryLock bool `mapstructure:"memory_lock" json:"memory_lock"`
}
