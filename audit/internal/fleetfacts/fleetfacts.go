// Package fleetfacts builds realistic facts documents for tests and
// benchmarks: the clean node (baked by esnode, booted in 10.0.1.0/24) and
// the firewall a long-lived CIS-hardened host carries (Docker's chains,
// fail2ban bans, CIS loopback and ICMP rules), so fleet-scale figures are
// measured on what the policies really judge.
package fleetfacts

import (
	"fmt"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// Clean is a node baked by esnode from a default spec and booted in subnet
// 10.0.1.0/24: it passes every rule. Its firewall has 6 rules.
func Clean() *facts.Facts {
	n := spec.Node{Elasticsearch: spec.Elasticsearch{Version: "8.15.3"}}
	n.SetDefaults()
	baked := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	heapFile := "/etc/elasticsearch/jvm.options.d/esnode-heap.options"
	rule := func(chain string, r facts.FirewallRule) facts.FirewallRule {
		r.Backend, r.Family, r.Table, r.Chain = "iptables", "ipv4", "filter", chain
		if r.Target == "" {
			r.Target = "ACCEPT"
		}
		if r.DPorts == nil {
			r.DPorts = []facts.PortRange{}
		}
		if r.Sources == nil {
			r.Sources = []string{}
		}
		return r
	}
	tcpFrom := func(port int, src string) facts.FirewallRule {
		return rule("ESNODE-INPUT", facts.FirewallRule{Proto: "tcp", DPorts: []facts.PortRange{{From: port, To: port}}, Sources: []string{src}})
	}
	f := &facts.Facts{
		SchemaVersion: facts.SchemaVersion,
		CollectedAt:   time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC),
		Root:          "/",
		Live:          true,
		Host: facts.Host{
			Hostname:      "ip-10-0-1-23",
			InstanceID:    "i-0123456789abcdef0",
			MemTotalBytes: 8 * gib,
			Kernel:        "6.1.0-27-cloud-amd64",
			OSRelease:     facts.OSRelease{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
			Boot: &facts.BootState{
				InstanceID: "i-0123456789abcdef0", LocalIPv4: "10.0.1.23",
				SubnetCIDR: "10.0.1.0/24", VPCCIDR: "10.0.0.0/16",
				AZ: "eu-west-2a", Region: "eu-west-2", ClusterName: "aardvark-cluster",
				Tags: map[string]string{"es_cluster": "aardvark-cluster"},
			},
		},
		Listeners: []facts.Listener{
			{Proto: "tcp", Address: "0.0.0.0", Port: 22, AllInterfaces: true, Process: "sshd", UID: 0, User: "root"},
			{Proto: "tcp", Address: "127.0.0.53", Port: 53, Loopback: true, Process: "systemd-resolve", UID: 991},
			{Proto: "tcp6", Address: "::ffff:10.0.1.23", Port: 9200, Process: "java", UID: 112, User: "elasticsearch"},
			{Proto: "tcp6", Address: "::ffff:10.0.1.23", Port: 9300, Process: "java", UID: 112, User: "elasticsearch"},
		},
		Firewall: facts.Firewall{
			Backend:             "iptables",
			Source:              []string{"iptables-save", "ip6tables-save"},
			DefaultInputPolicy:  "DROP",
			DefaultInputPolicy6: "DROP",
			Chains: []facts.Chain{
				{Backend: "iptables", Family: "ipv4", Table: "filter", Name: "INPUT", Hook: "input", Policy: "DROP"},
				{Backend: "iptables", Family: "ipv4", Table: "filter", Name: "OUTPUT", Hook: "output", Policy: "ACCEPT"},
				{Backend: "iptables", Family: "ipv4", Table: "filter", Name: "ESNODE-INPUT"},
			},
			Rules: []facts.FirewallRule{
				rule("INPUT", facts.FirewallRule{Hook: "input", Target: "ESNODE-INPUT"}),
				rule("ESNODE-INPUT", facts.FirewallRule{InInterface: "lo"}),
				rule("ESNODE-INPUT", facts.FirewallRule{CTState: []string{"related", "established"}}),
				tcpFrom(9200, "10.0.1.0/24"),
				tcpFrom(9300, "10.0.1.0/24"),
				tcpFrom(22, "10.0.0.0/16"),
			},
		},
		Elasticsearch: facts.Elasticsearch{
			ConfigDir: "/etc/elasticsearch",
			YML: map[string]any{
				"cluster.name":                 "aardvark-cluster",
				"node.name":                    "i-0123456789abcdef0",
				"network.host":                 "10.0.1.23",
				"discovery.seed_providers":     "ec2",
				"discovery.ec2.tag.es_cluster": "aardvark-cluster",
				"xpack.security.enabled":       true,
			},
			YMLErrors: []string{},
			Version:   "8.15.3",
			Keystore: facts.Keystore{
				Path: "/etc/elasticsearch/elasticsearch.keystore", Present: true, Mode: "0660",
				Owner: "root", Group: "elasticsearch", EntriesKnown: true,
				Entries: []string{"keystore.seed", "xpack.security.http.ssl.keystore.secure_password"},
			},
			Heap: facts.Heap{
				JDKMajor: 21, Files: []string{"/etc/elasticsearch/jvm.options", heapFile},
				XmsBytes: 4096 * mib, XmxBytes: 4096 * mib,
				Sources: []facts.HeapSetting{
					{Kind: "xms", Option: "-Xms4096m", Bytes: 4096 * mib, Source: heapFile + ":3"},
					{Kind: "xmx", Option: "-Xmx4096m", Bytes: 4096 * mib, Source: heapFile + ":4"},
				},
				Duplicates: []facts.HeapDuplicate{},
				Missing:    []string{},
			},
			Process: &facts.Process{
				PID: 812, User: "elasticsearch", UID: 112, XmsBytes: 4096 * mib, XmxBytes: 4096 * mib,
				Limits: map[string]facts.Limit{
					"nofile": {Soft: 65535, Hard: 65535, Units: "files"},
					"nproc":  {Soft: 4096, Hard: 4096, Units: "processes"},
				},
			},
		},
		Sysctl:     map[string]any{"vm.max_map_count": 262144},
		SysctlConf: map[string]facts.SysctlSetting{"vm.max_map_count": {Value: "262144", Source: "/usr/lib/sysctl.d/elasticsearch.conf"}},
		Services: []facts.Service{
			{Name: "elasticsearch", Present: true, UnitFile: "/usr/lib/systemd/system/elasticsearch.service", Enabled: true, Active: "active",
				User: "elasticsearch", Group: "elasticsearch",
				Limits: map[string]facts.Limit{"nofile": {Soft: 65535, Hard: 65535}, "nproc": {Soft: 4096, Hard: 4096}}},
			{Name: "elastichq", Active: "inactive"},
			{Name: "esnode-boot", Present: true, Enabled: true, Active: "inactive", User: "root", UserDefault: true},
		},
		Paths: []facts.PathInfo{
			{Path: "/etc/elasticsearch", Exists: true, Type: "dir", Mode: "2750", Owner: "root", Group: "elasticsearch", GID: 112},
			{Path: "/etc/elasticsearch/elasticsearch.keystore", Exists: true, Type: "file", Mode: "0660", Owner: "root", Group: "elasticsearch", GID: 112},
			{Path: "/usr/share/elastichq", UID: -1, GID: -1},
		},
		Manifest: facts.ManifestFacts{
			Present: true, Path: spec.ManifestPath, SpecHash: n.Hash(), ESVersion: "8.15.3", EsnodeVersion: "0.1.0",
			BakedAt: &baked, Spec: &n, FilesChecked: 12, Drift: []facts.Drift{},
		},
		Users:  []facts.User{{Name: "elasticsearch", UID: 112, GID: 112, Home: "/nonexistent", Shell: "/bin/false"}},
		Errors: []facts.FactError{},
	}
	return f
}

// WithFirewallRules returns f with its firewall grown to at least n rules
// the way real hosts grow it, none of which opens a protected port: a
// CIS input baseline (loopback, spoofed loopback source, ICMP), Docker's
// FORWARD chains with a published port per container, and a fail2ban chain
// jumped to from INPUT for SSH that rejects one banned address per rule.
// f's own rules stay first and in order. f is modified and returned.
func WithFirewallRules(f *facts.Facts, n int) *facts.Facts {
	fw := &f.Firewall
	rule := func(chain string, r facts.FirewallRule) {
		r.Backend, r.Family, r.Table, r.Chain = "iptables", "ipv4", "filter", chain
		if r.DPorts == nil {
			r.DPorts = []facts.PortRange{}
		}
		if r.Sources == nil {
			r.Sources = []string{}
		}
		fw.Rules = append(fw.Rules, r)
	}
	chain := func(name, hook, policy string) {
		for _, c := range fw.Chains {
			if c.Name == name && c.Family == "ipv4" && c.Table == "filter" {
				return
			}
		}
		fw.Chains = append(fw.Chains, facts.Chain{Backend: "iptables", Family: "ipv4", Table: "filter", Name: name, Hook: hook, Policy: policy})
	}
	if len(fw.Rules) >= n {
		return f
	}
	chain("FORWARD", "forward", "DROP")
	for _, c := range []string{"f2b-sshd", "DOCKER-USER", "DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"} {
		chain(c, "", "")
	}
	ssh := []facts.PortRange{{From: 22, To: 22}}
	rule("INPUT", facts.FirewallRule{Hook: "input", Proto: "tcp", DPorts: ssh, Target: "f2b-sshd", Raw: "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd"})
	rule("INPUT", facts.FirewallRule{Hook: "input", Sources: []string{"127.0.0.0/8"}, Target: "DROP", Raw: "-A INPUT -s 127.0.0.0/8 ! -i lo -j DROP", Other: true})
	rule("INPUT", facts.FirewallRule{Hook: "input", Proto: "icmp", Target: "ACCEPT", Raw: "-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT", Other: true})
	rule("FORWARD", facts.FirewallRule{Hook: "forward", Target: "DOCKER-USER", Raw: "-A FORWARD -j DOCKER-USER"})
	rule("FORWARD", facts.FirewallRule{Hook: "forward", Target: "DOCKER-ISOLATION-STAGE-1", Raw: "-A FORWARD -j DOCKER-ISOLATION-STAGE-1"})
	rule("FORWARD", facts.FirewallRule{Hook: "forward", CTState: []string{"related", "established"}, Target: "ACCEPT", Raw: "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", Other: true})
	rule("FORWARD", facts.FirewallRule{Hook: "forward", Target: "DOCKER", Raw: "-A FORWARD -o docker0 -j DOCKER", Other: true})
	rule("DOCKER-USER", facts.FirewallRule{Target: "RETURN", Raw: "-A DOCKER-USER -j RETURN"})
	rule("DOCKER-ISOLATION-STAGE-1", facts.FirewallRule{InInterface: "docker0", Target: "DOCKER-ISOLATION-STAGE-2", Raw: "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2", Other: true})
	rule("DOCKER-ISOLATION-STAGE-2", facts.FirewallRule{Target: "DROP", Raw: "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP", Other: true})
	// One published container port per eight rules, the rest fail2ban bans.
	for i := 0; len(fw.Rules) < n-1; i++ {
		if i%8 == 0 {
			port := 8080 + i/8
			ip := fmt.Sprintf("172.17.%d.%d", i/8/250, 2+i/8%250)
			rule("DOCKER", facts.FirewallRule{InInterface: "", Proto: "tcp", DPorts: []facts.PortRange{{From: port, To: port}},
				Destinations: []string{ip + "/32"}, Target: "ACCEPT", Other: true,
				Raw: fmt.Sprintf("-A DOCKER -d %s/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport %d -j ACCEPT", ip, port)})
			continue
		}
		src := fmt.Sprintf("203.0.%d.%d/32", 113+i/250%10, 1+i%250)
		rule("f2b-sshd", facts.FirewallRule{Sources: []string{src}, Target: "REJECT", Other: true,
			Raw: fmt.Sprintf("-A f2b-sshd -s %s -j REJECT --reject-with icmp-port-unreachable", src)})
	}
	rule("f2b-sshd", facts.FirewallRule{Target: "RETURN", Raw: "-A f2b-sshd -j RETURN"})
	return f
}
