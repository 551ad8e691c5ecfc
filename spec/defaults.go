package spec

// Defaults of the node spec; documented on the fields they fill.
const (
	DefaultHTTPPort        = 9200
	DefaultTransportPort   = 9300
	DefaultHQVersion       = "3.5.12"
	DefaultHQPort          = 5000
	DefaultHQUser          = "elastichq"
	DefaultHQBindAddress   = "0.0.0.0"
	DefaultJavaPackage     = "openjdk-11-jre-headless"
	DefaultCWAgentVersion  = "latest"
	DefaultLogGroup        = "elasticsearch"
	DefaultDiscoveryTagKey = "es_cluster"
	DefaultHeapPercent     = 50
	DefaultHeapMinMB       = 1024
	DefaultHeapMaxMB       = 31744
	// CompressedOopsMB is where the JVM stops using compressed object
	// pointers; a heap at or over it holds less than one just under it.
	CompressedOopsMB = 32768
	MaxHeapPercent   = 75
	MinMaxMapCount   = 262144
	MinNoFile        = 65535
	MinNProc         = 4096
	// MaxMasterNodes bounds cluster.master_nodes: a voting configuration
	// larger than 9 only slows elections, and the bootstrap slots are read
	// in one GetParameters call (10 names at most).
	MaxMasterNodes     = 9
	SourceSubnet       = "subnet"
	SourceVPC          = "vpc"
	FirewallAuto       = "auto"
	FirewallIPTables   = "iptables"
	FirewallNFTables   = "nftables"
	PluginDiscoveryEC2 = "discovery-ec2"
)

// SetDefaults fills every unset field with its documented default. It is
// idempotent, and Validate expects a defaulted spec.
func (n *Node) SetDefaults() {
	es := &n.Elasticsearch
	if es.HTTPPort == 0 {
		es.HTTPPort = DefaultHTTPPort
	}
	if es.TransportPort == 0 {
		es.TransportPort = DefaultTransportPort
	}
	if n.Plugins == nil {
		n.Plugins = []Plugin{{Name: PluginDiscoveryEC2}}
	}
	if n.needsJava() && n.Java.Package == "" && n.Java.URL == "" {
		n.Java.Package = DefaultJavaPackage
	}
	hq := &n.ElasticHQ
	if hq.Enabled {
		setString(&hq.Version, DefaultHQVersion)
		setString(&hq.BindAddress, DefaultHQBindAddress)
		setString(&hq.User, DefaultHQUser)
		if hq.Port == 0 {
			hq.Port = DefaultHQPort
		}
	}
	cw := &n.CloudWatchAgent
	if cw.Enabled {
		setString(&cw.Version, DefaultCWAgentVersion)
		setString(&cw.LogGroup, DefaultLogGroup)
	}
	fw := &n.Firewall
	setString(&fw.Backend, FirewallAuto)
	setList(&fw.HTTPSources, SourceVPC)
	setList(&fw.TransportSources, SourceVPC)
	setList(&fw.SSHSources, SourceVPC)
	if hq.Enabled {
		setList(&fw.HQSources, SourceSubnet)
	}
	h := &n.Heap
	if h.Percent == 0 {
		h.Percent = DefaultHeapPercent
	}
	if h.MinMB == 0 {
		h.MinMB = DefaultHeapMinMB
	}
	if h.MaxMB == 0 {
		h.MaxMB = DefaultHeapMaxMB
	}
	setString(&n.Cluster.DiscoveryTagKey, DefaultDiscoveryTagKey)
	s := &n.System
	if s.MaxMapCount == 0 {
		s.MaxMapCount = MinMaxMapCount
	}
	if s.NoFile == 0 {
		s.NoFile = MinNoFile
	}
	if s.NProc == 0 {
		s.NProc = MinNProc
	}
}

// MasterQuorum is the majority of n master-eligible nodes, the 6.x
// discovery.zen.minimum_master_nodes.
func MasterQuorum(n int) int { return n/2 + 1 }

// needsJava reports whether the Elasticsearch release needs a separate Java:
// only 6.x does. An unparsable version needs none here; Validate reports it.
func (n *Node) needsJava() bool {
	v, err := ParseVersion(n.Elasticsearch.Version)
	return err == nil && v.Major < 7
}

func setString(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func setList(p *[]string, def ...string) {
	if len(*p) == 0 {
		*p = append([]string(nil), def...)
	}
}
