package eval

import (
	"github.com/esbake/packer-plugin-elasticsearch/audit/probe"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

// Input is the document the policies see as `input` (policies/README.md
// describes it field by field).
type Input struct {
	// Facts are the node's facts; nil when none could be collected (rules
	// then see null and report nothing from facts).
	Facts *facts.Facts `json:"facts"`
	// Node is how the auditor found the node.
	Node NodeInfo `json:"node"`
	// Probes are checks made from the auditor's side; nil when none ran.
	Probes *Probes `json:"probes"`
	// Policy tunes rules that depend on how the fleet is run.
	Policy PolicyOptions `json:"policy"`
}

// NodeInfo is what discovery knows about a node.
type NodeInfo struct {
	Name       string            `json:"name"`
	Address    string            `json:"address"`
	InstanceID string            `json:"instance_id,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	// SecurityGroups are the instance's EC2 security groups (EC2 discovery
	// only).
	SecurityGroups []SecurityGroup `json:"security_groups,omitempty"`
	// SubnetCIDR and VPCCIDRs let firewall rules judge sources on nodes
	// whose facts carry no esnode boot state (legacy nodes); EC2 discovery
	// fills them from DescribeSubnets/DescribeVpcs.
	SubnetCIDR string   `json:"subnet_cidr,omitempty"`
	VPCCIDRs   []string `json:"vpc_cidrs,omitempty"`
	// AutoScaling is the instance's Auto Scaling group ("" when in none)
	// and the group's lifecycle hooks (EC2 discovery only).
	AutoScaling *AutoScaling `json:"auto_scaling,omitempty"`
}

// AutoScaling is an instance's Auto Scaling group and its lifecycle hooks.
type AutoScaling struct {
	Group string          `json:"group"`
	Hooks []LifecycleHook `json:"lifecycle_hooks"`
}

// LifecycleHook is one lifecycle hook of the group.
type LifecycleHook struct {
	Name             string `json:"name"`
	Transition       string `json:"transition"`
	DefaultResult    string `json:"default_result"`
	HeartbeatTimeout int    `json:"heartbeat_timeout"`
}

// SecurityGroup is an EC2 security group and its ingress rules.
type SecurityGroup struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	Ingress []IngressRule `json:"ingress"`
}

// IngressRule is one ingress permission. Proto is "tcp", "udp", "icmp" or
// "-1" (all traffic, ports -1).
type IngressRule struct {
	Proto     string   `json:"proto"`
	FromPort  int      `json:"from_port"`
	ToPort    int      `json:"to_port"`
	CIDRs     []string `json:"cidrs"`
	IPv6CIDRs []string `json:"ipv6_cidrs"`
}

// Probes are what the auditor saw from outside the node.
type Probes struct {
	// ReachablePorts are the spec's ports a TCP connect reached.
	ReachablePorts []int `json:"reachable_ports"`
	// ESAPI is the Elasticsearch HTTP API's answer; nil when it was not
	// reachable or not asked.
	ESAPI *ESAPI `json:"es_api"`
	// SnapshotPolicies counts SLM policies; nil when unknown (no API,
	// Elasticsearch before 7.4, or not allowed to ask).
	SnapshotPolicies *int `json:"snapshot_policies"`
	// Cluster is the indices' replicas, the allocation awareness in effect
	// and the data nodes' attributes; nil when unknown.
	Cluster *probe.Cluster `json:"cluster"`
}

// ESAPI is what /_nodes/_local/settings,jvm reported.
type ESAPI struct {
	Version     string `json:"version,omitempty"`
	ClusterName string `json:"cluster_name,omitempty"`
	NodeName    string `json:"node_name,omitempty"`
	// Settings are the node's effective settings, flattened to dotted keys.
	Settings      map[string]any `json:"settings,omitempty"`
	HeapInitBytes int64          `json:"heap_init_bytes,omitempty"`
	HeapMaxBytes  int64          `json:"heap_max_bytes,omitempty"`
}

// PolicyOptions tune rules to how the fleet is run. The policies treat a
// missing option as true; DefaultPolicyOptions gives the same in Go.
type PolicyOptions struct {
	// ExpectInstanceProfile: discovery must use the instance's role, so
	// access keys in the keystore are findings (ES-SEC-002).
	ExpectInstanceProfile bool `json:"expect_instance_profile"`
	// AutoScaled: nodes are replaced by an auto-scaling group, so
	// cluster.initial_master_nodes is a finding (ES-CLU-001).
	AutoScaled bool `json:"auto_scaled"`
}

// DefaultPolicyOptions are the options esaudit uses unless told otherwise.
func DefaultPolicyOptions() PolicyOptions {
	return PolicyOptions{ExpectInstanceProfile: true, AutoScaled: true}
}
