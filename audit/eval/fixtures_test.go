package eval

import (
	"github.com/esbake/packer-plugin-elasticsearch/audit/internal/fleetfacts"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

const gib = int64(1) << 30

func intp(i int) *int { return &i }

// cleanNode is a node baked by esnode from a default spec and booted in
// subnet 10.0.1.0/24: it must pass every rule.
func cleanNode() Input {
	f := fleetfacts.Clean()
	return Input{
		Facts: f,
		Node: NodeInfo{
			Name: "ip-10-0-1-23", Address: "10.0.1.23", InstanceID: "i-0123456789abcdef0",
			Tags: map[string]string{"es_cluster": "aardvark-cluster", "Name": "es-data"},
			SecurityGroups: []SecurityGroup{{ID: "sg-0aaaaaaaaaaaaaaa1", Name: "es-nodes", Ingress: []IngressRule{
				{Proto: "tcp", FromPort: 9200, ToPort: 9200, CIDRs: []string{"10.0.1.0/24"}},
				{Proto: "tcp", FromPort: 9300, ToPort: 9300, CIDRs: []string{"10.0.1.0/24"}},
				{Proto: "tcp", FromPort: 22, ToPort: 22, CIDRs: []string{"10.0.0.0/16"}},
			}}},
		},
		Probes: &Probes{
			ReachablePorts:   []int{9200, 9300},
			ESAPI:            &ESAPI{Version: "8.15.3", ClusterName: "aardvark-cluster", NodeName: "i-0123456789abcdef0"},
			SnapshotPolicies: intp(1),
		},
		Policy: DefaultPolicyOptions(),
	}
}

// seedNode is a node the original bootstrap script set up (Elasticsearch
// 6.4.2 from the .deb, no esnode), as EC2 discovery and the API probe see it.
func seedNode() Input {
	jvm := "/etc/elasticsearch/jvm.options"
	f := &facts.Facts{
		SchemaVersion: facts.SchemaVersion,
		Root:          "/",
		Live:          true,
		// The script rounds MemTotal up to whole GiB before halving it:
		// 7.8 GiB gives a 4 GiB heap.
		Host: facts.Host{Hostname: "ip-10-0-1-57", InstanceID: "i-0fedcba9876543210", MemTotalBytes: 8167784 * 1024},
		Listeners: []facts.Listener{
			{Proto: "tcp", Address: "0.0.0.0", Port: 22, AllInterfaces: true, Process: "sshd", UID: 0, User: "root"},
			{Proto: "tcp", Address: "0.0.0.0", Port: 5000, AllInterfaces: true, Process: "python3", UID: 998, User: "elasticsearch-hq"},
			{Proto: "tcp6", Address: "::ffff:10.0.1.57", Port: 9200, Process: "java", UID: 113, User: "elasticsearch"},
			{Proto: "tcp6", Address: "::ffff:10.0.1.57", Port: 9300, Process: "java", UID: 113, User: "elasticsearch"},
		},
		Firewall: facts.Firewall{
			Backend:            "iptables",
			DefaultInputPolicy: "DROP",
			Chains:             []facts.Chain{{Backend: "iptables", Family: "ipv4", Table: "filter", Name: "INPUT", Hook: "input", Policy: "DROP"}},
			Rules: []facts.FirewallRule{
				seedRule(5000), seedRule(9200), seedRule(9300),
			},
		},
		Elasticsearch: facts.Elasticsearch{
			ConfigDir: "/etc/elasticsearch",
			YML: map[string]any{
				"cluster.name":                                    "aardvark-cluster",
				"network.host":                                    []any{"10.0.1.57"},
				"http.cors.enabled":                               true,
				"http.cors.allow-origin":                          "*",
				"discovery.zen.hosts_provider":                    "ec2",
				"discovery.ec2.any_group":                         true,
				"discovery.ec2.host_type":                         "private_ip",
				"cloud.node.auto_attributes":                      true,
				"discovery.ec2.tag.es_cluster":                    "aardvark-cluster",
				"discovery.ec2.endpoint":                          "ec2.eu-west-2.amazonaws.com",
				"reindex.remote.whitelist":                        "10.0.1.*:9200",
				"cluster.routing.allocation.awareness.attributes": "aws_availability_zone",
			},
			Version: "6.4.2",
			Keystore: facts.Keystore{
				Path: "/etc/elasticsearch/elasticsearch.keystore", Present: true, Mode: "0660", EntriesKnown: true,
				Entries: []string{"discovery.ec2.access_key", "discovery.ec2.secret_key", "keystore.seed"},
			},
			Heap: facts.Heap{
				JDKMajor: 8, Files: []string{jvm}, XmsBytes: 4 * gib,
				Sources: []facts.HeapSetting{
					{Kind: "xms", Option: "-Xms4g", Bytes: 4 * gib, Source: jvm + ":22"},
					{Kind: "xms", Option: "-Xms4g", Bytes: 4 * gib, Source: jvm + ":23"},
				},
				Duplicates: []facts.HeapDuplicate{{Kind: "xms", Count: 2, Sources: []string{jvm + ":22", jvm + ":23"}}},
				Missing:    []string{"xmx"},
			},
			// The command line carries -Xms4g and no -Xmx (HotSpot then
			// raises its maximum to 4 GiB, which the facts do not see).
			Process: &facts.Process{PID: 1201, User: "elasticsearch", UID: 113, XmsBytes: 4 * gib,
				Limits: map[string]facts.Limit{"nofile": {Soft: 65535, Hard: 65535}, "nproc": {Soft: 4096, Hard: 4096}}},
		},
		Sysctl:     map[string]any{"vm.max_map_count": 262144},
		SysctlConf: map[string]facts.SysctlSetting{"vm.max_map_count": {Value: "262144", Source: "/usr/lib/sysctl.d/elasticsearch.conf"}},
		Services: []facts.Service{
			{Name: "elasticsearch", Present: true, Enabled: true, Active: "active", User: "elasticsearch",
				Limits: map[string]facts.Limit{"nofile": {Soft: 65535, Hard: 65535}, "nproc": {Soft: 4096, Hard: 4096}}},
			{Name: "elastichq", Present: true, Enabled: true, Active: "active", User: "elasticsearch-hq"},
		},
		Paths: []facts.PathInfo{
			{Path: "/etc/elasticsearch", Exists: true, Type: "dir", Mode: "2750"},
			{Path: "/etc/elasticsearch/elasticsearch.keystore", Exists: true, Type: "file", Mode: "0660"},
			// chmod -R 777 /usr/share/elasticsearch-hq
			{Path: "/usr/share/elasticsearch-hq", Exists: true, Type: "dir", Mode: "0777", Owner: "root", WorldWritable: true, WorldReadable: true},
		},
		Manifest: facts.ManifestFacts{Path: spec.ManifestPath},
	}
	return Input{
		Facts: f,
		Node: NodeInfo{
			Name: "ip-10-0-1-57", Address: "10.0.1.57", InstanceID: "i-0fedcba9876543210",
			Tags: map[string]string{"es_cluster": "aardvark-cluster"},
			// "9200 from all downstream clients".
			SecurityGroups: []SecurityGroup{{ID: "sg-0bbbbbbbbbbbbbbb2", Name: "elasticsearch", Ingress: []IngressRule{
				{Proto: "tcp", FromPort: 9200, ToPort: 9200, CIDRs: []string{"0.0.0.0/0"}},
				{Proto: "tcp", FromPort: 9300, ToPort: 9300, CIDRs: []string{"10.0.1.0/24"}},
			}}},
		},
		Probes: &Probes{
			ReachablePorts:   []int{9200},
			ESAPI:            &ESAPI{Version: "6.4.2", ClusterName: "aardvark-cluster"},
			SnapshotPolicies: intp(0),
		},
		Policy: DefaultPolicyOptions(),
	}
}

// seedRule is the script's `iptables -A INPUT -p tcp -s $subnet_range
// --dport PORT -m state --state NEW -j ACCEPT`.
func seedRule(port int) facts.FirewallRule {
	return facts.FirewallRule{
		Backend: "iptables", Family: "ipv4", Table: "filter", Chain: "INPUT", Hook: "input",
		Proto: "tcp", DPorts: []facts.PortRange{{From: port, To: port}}, Sources: []string{"10.0.1.0/24"},
		CTState: []string{"new"}, Target: "ACCEPT",
	}
}

// seedIDs are the rules the seed node breaks.
var seedIDs = []string{
	"ES-CLU-003",  // no snapshot lifecycle policy
	"ES-FILE-002", // not baked by esnode
	"ES-HEAP-001", // -Xms twice, no -Xmx
	"ES-HEAP-002", // 4 GiB heap on 7.8 GiB
	"ES-NET-003",  // security group opens 9200 to 0.0.0.0/0
	"ES-NET-005",  // http.cors.allow-origin: '*'
	"ES-SEC-002",  // discovery keys in the keystore
	"ES-SEC-004",  // chmod -R 777 /usr/share/elasticsearch-hq
}
