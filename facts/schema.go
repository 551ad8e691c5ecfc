package facts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// SchemaVersion names the JSON schema of a Facts document. Bump it when a
// change is not backwards compatible; Parse refuses every other version.
const SchemaVersion = "esbake.facts/v1"

// Facts is everything an audit needs to know about one node. Every collector
// failure is an entry in Errors: a field left at its zero value with no error
// entry means "looked, found nothing".
type Facts struct {
	SchemaVersion string        `json:"schema_version"`
	CollectedAt   time.Time     `json:"collected_at"`
	Root          string        `json:"root"`
	Live          bool          `json:"live"`
	Host          Host          `json:"host"`
	Listeners     []Listener    `json:"listeners"`
	Firewall      Firewall      `json:"firewall"`
	Elasticsearch Elasticsearch `json:"elasticsearch"`
	// Sysctl holds kernel settings read from /proc/sys, keyed by their dotted
	// name; integers are numbers, anything else a string.
	Sysctl map[string]any `json:"sysctl"`
	// SysctlConf is what /etc/sysctl.conf and the sysctl.d directories set
	// (the value after the next boot), in systemd-sysctl order.
	SysctlConf map[string]SysctlSetting `json:"sysctl_conf"`
	Services   []Service                `json:"services"`
	Paths      []PathInfo               `json:"paths"`
	Manifest   ManifestFacts            `json:"manifest"`
	Users      []User                   `json:"users"`
	Errors     []FactError              `json:"errors"`
}

// Host identifies the machine.
type Host struct {
	Hostname      string            `json:"hostname"`
	InstanceID    string            `json:"instance_id"`
	InstanceIDSrc string            `json:"instance_id_source,omitempty"`
	MemTotalBytes int64             `json:"mem_total_bytes"`
	Kernel        string            `json:"kernel"`
	OSRelease     OSRelease         `json:"os_release"`
	Boot          *BootState        `json:"boot,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
}

// OSRelease is the part of /etc/os-release an audit reads.
type OSRelease struct {
	ID         string `json:"id"`
	VersionID  string `json:"version_id"`
	PrettyName string `json:"pretty_name"`
}

// BootState is the part of /etc/esnode/boot.json (node/boot.State, what
// `esnode boot` last saw and wrote) that audits use. Unknown fields are
// ignored, so boot may record more.
type BootState struct {
	APIVersion           string            `json:"api_version,omitempty"`
	InstanceID           string            `json:"instance_id"`
	InstanceType         string            `json:"instance_type,omitempty"`
	LocalIPv4            string            `json:"local_ipv4"`
	SubnetCIDR           string            `json:"subnet_cidr"`
	VPCCIDR              string            `json:"vpc_cidr"`
	VPCCIDRs             []string          `json:"vpc_cidrs,omitempty"`
	AZ                   string            `json:"az"`
	Region               string            `json:"region"`
	ElasticsearchVersion string            `json:"elasticsearch_version,omitempty"`
	ClusterName          string            `json:"cluster_name"`
	ClusterNameSource    string            `json:"cluster_name_source,omitempty"`
	TagsEnabled          bool              `json:"tags_enabled"`
	Tags                 map[string]string `json:"tags,omitempty"`
	FirewallBackend      string            `json:"firewall_backend,omitempty"`
	BootedAt             string            `json:"booted_at,omitempty"`
	// Files are the files boot rendered, with the sum of what it wrote.
	Files []BootFile `json:"files,omitempty"`
	// Security is what boot recorded of the cluster's TLS material
	// (node/boot.SecurityState; added within v1): whether it configured
	// each layer and set the elastic password. Never values.
	Security *BootSecurity `json:"security,omitempty"`
}

// BootSecurity is the part of boot.json's security record audits use.
type BootSecurity struct {
	TransportTLS       bool `json:"transport_tls"`
	HTTPTLS            bool `json:"http_tls"`
	ElasticPasswordSet bool `json:"elastic_password_set"`
}

// BootFile is one file boot wrote.
type BootFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Listener is one listening TCP socket.
type Listener struct {
	Proto   string `json:"proto"` // tcp or tcp6
	Address string `json:"address"`
	Port    int    `json:"port"`
	// AllInterfaces is true for 0.0.0.0 and :: (which also takes IPv4 unless
	// the socket is v6-only); Loopback for 127/8 and ::1.
	AllInterfaces bool   `json:"all_interfaces"`
	Loopback      bool   `json:"loopback"`
	Inode         uint64 `json:"inode"`
	PID           int    `json:"pid,omitempty"`
	Process       string `json:"process,omitempty"`
	Exe           string `json:"exe,omitempty"`
	// UID owns the socket (from /proc/net/tcp), or the process when known.
	UID  int    `json:"uid"`
	User string `json:"user,omitempty"`
}

// Firewall is the host firewall as parsed from iptables-save or nft JSON.
type Firewall struct {
	// Backend is iptables, nftables or none (nothing found: the kernel
	// accepts everything).
	Backend string `json:"backend"`
	// Source says where the rules came from: a command or a file.
	Source []string `json:"source"`
	// DefaultInputPolicy is ACCEPT or DROP for IPv4 input; DefaultInputPolicy6
	// for IPv6 (empty when no IPv6 ruleset was found).
	DefaultInputPolicy  string         `json:"default_input_policy"`
	DefaultInputPolicy6 string         `json:"default_input_policy6,omitempty"`
	Chains              []Chain        `json:"chains"`
	Rules               []FirewallRule `json:"rules"`
	// Raw is the ruleset text, cut at 64 KiB (RawTruncated).
	Raw          string `json:"raw"`
	RawTruncated bool   `json:"raw_truncated,omitempty"`
}

// Chain is a firewall chain and its default verdict.
type Chain struct {
	Backend string `json:"backend"`
	Family  string `json:"family"` // ipv4, ipv6, inet, arp, bridge, netdev
	Table   string `json:"table"`
	Name    string `json:"name"`
	// Hook is input, forward, output, prerouting or postrouting for base
	// chains (iptables' built-in INPUT is hook input), empty otherwise.
	Hook   string `json:"hook,omitempty"`
	Policy string `json:"policy,omitempty"` // ACCEPT or DROP
}

// FirewallRule is one rule, normalized across iptables and nftables.
type FirewallRule struct {
	Backend string `json:"backend"`
	Family  string `json:"family"`
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Hook    string `json:"hook,omitempty"`
	Proto   string `json:"proto,omitempty"` // empty: any protocol
	// DPorts are destination port ranges; empty means any port.
	DPorts        []PortRange `json:"dports"`
	DPortsNegated bool        `json:"dports_negated,omitempty"`
	// Sources are addresses or CIDRs; empty means any source.
	Sources            []string `json:"sources"`
	SourcesNegated     bool     `json:"sources_negated,omitempty"`
	Destinations       []string `json:"destinations,omitempty"`
	DestinationNegated bool     `json:"destinations_negated,omitempty"`
	InInterface        string   `json:"in_interface,omitempty"`
	// CTState is the conntrack state match, lower case (new, established...).
	CTState []string `json:"ctstate,omitempty"`
	// Target is ACCEPT, DROP, REJECT, RETURN, LOG, or a chain name (jump or
	// goto); empty when the rule only counts or logs.
	Target string `json:"target"`
	// Other is true when the rule has matches this parser does not model;
	// then the rule may match less than the fields say.
	Other bool   `json:"other_matches,omitempty"`
	Raw   string `json:"raw"`
}

// PortRange is an inclusive port range; a single port has From == To.
type PortRange struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// Elasticsearch is the node's Elasticsearch installation.
type Elasticsearch struct {
	ConfigDir string `json:"config_dir"`
	// YML is elasticsearch.yml flattened to dotted keys: `a: {b: 1}` and
	// `a.b: 1` are both "a.b". Scalars keep their YAML type; lists stay lists.
	YML       map[string]any `json:"yml"`
	YMLErrors []string       `json:"yml_errors"`
	// UnknownSettings are the elasticsearch.yml keys this Elasticsearch
	// version would refuse at its next start (unregistered, or keystore-only),
	// from spec/essettings; empty when none or when the version or the file
	// is unknown (SettingsTable is then ""). Added within v1.
	UnknownSettings []UnknownSetting `json:"unknown_settings"`
	// SettingsTable is the registered-settings table used ("8.x", "7.17").
	SettingsTable string   `json:"settings_table,omitempty"`
	Version       string   `json:"version"`
	VersionSource string   `json:"version_source,omitempty"`
	Keystore      Keystore `json:"keystore"`
	// TLS describes the certificates (fingerprints, subjects, SANs,
	// issuers, expiry) and counts the keys; added within v1.
	TLS     TLS      `json:"tls"`
	Heap    Heap     `json:"heap"`
	Process *Process `json:"process"`
}

// UnknownSetting is one elasticsearch.yml key Elasticsearch refuses, with
// Elastic's own message.
type UnknownSetting struct {
	Key     string `json:"key"`
	Message string `json:"message"`
}

// Keystore is the Elasticsearch keystore: its entry names, never values.
type Keystore struct {
	Path    string `json:"path"`
	Present bool   `json:"present"`
	Mode    string `json:"mode,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Group   string `json:"group,omitempty"`
	// FormatVersion is the keystore file format (3: Elasticsearch 6.3+,
	// 4: 6.8/7.x, 5: 8.0+, 6: 8.14+); 0 when unread.
	FormatVersion int  `json:"format_version,omitempty"`
	HasPassword   bool `json:"has_password"`
	// EntriesKnown is false when the entries could not be listed (a
	// password-protected keystore under --root, or a corrupt one); Entries
	// is then empty. EntriesSource says how they were listed: "file" (read
	// and decrypted with the empty password, as Elasticsearch does) or
	// "elasticsearch-keystore list".
	EntriesKnown  bool     `json:"entries_known"`
	EntriesSource string   `json:"entries_source,omitempty"`
	Entries       []string `json:"entries"`
}

// Heap is the heap the configuration files ask for.
type Heap struct {
	JDKMajor       int    `json:"jdk_major"`
	JDKMajorSource string `json:"jdk_major_source"`
	// Files are the files read, in the order Elasticsearch applies them.
	Files []string `json:"files"`
	// XmsBytes and XmxBytes are the effective values (the JVM takes the last
	// one); 0 when not set.
	XmsBytes int64 `json:"xms_bytes"`
	XmxBytes int64 `json:"xmx_bytes"`
	// Sources lists every heap setting that applies, in order.
	Sources []HeapSetting `json:"sources"`
	// Skipped are heap settings whose version prefix excludes the JDK.
	Skipped []HeapSetting `json:"skipped,omitempty"`
	// Duplicates counts settings given more than once (the seed's sed writes
	// -Xms twice); Missing names xms/xmx when unset.
	Duplicates []HeapDuplicate `json:"duplicates"`
	Missing    []string        `json:"missing"`
	// Invalid are lines Elasticsearch would refuse or pass to the JVM broken.
	Invalid []string `json:"invalid,omitempty"`
}

// HeapSetting is one -Xms/-Xmx (or InitialHeapSize/MaxHeapSize) setting.
type HeapSetting struct {
	Kind   string `json:"kind"` // xms or xmx
	Option string `json:"option"`
	Bytes  int64  `json:"bytes"`
	Source string `json:"source"` // file:line or ES_JAVA_OPTS (file)
}

// HeapDuplicate says a heap setting was given Count times.
type HeapDuplicate struct {
	Kind    string   `json:"kind"`
	Count   int      `json:"count"`
	Sources []string `json:"sources"`
}

// Process is the running Elasticsearch JVM.
type Process struct {
	PID      int              `json:"pid"`
	User     string           `json:"user"`
	UID      int              `json:"uid"`
	XmsBytes int64            `json:"xms_bytes"`
	XmxBytes int64            `json:"xmx_bytes"`
	Limits   map[string]Limit `json:"limits"`
}

// Limit is one resource limit; -1 means unlimited.
type Limit struct {
	Soft  int64  `json:"soft"`
	Hard  int64  `json:"hard"`
	Units string `json:"units,omitempty"`
}

// SysctlSetting is a persisted kernel setting and the file that set it last.
type SysctlSetting struct {
	Value  string `json:"value"`
	Source string `json:"source"`
}

// Service is a systemd service.
type Service struct {
	Name     string   `json:"name"`
	Present  bool     `json:"present"`
	UnitFile string   `json:"unit_file,omitempty"`
	DropIns  []string `json:"drop_ins,omitempty"`
	Enabled  bool     `json:"enabled"`
	Masked   bool     `json:"masked,omitempty"`
	// Active is systemctl is-active's answer when live, "unknown" otherwise.
	Active string `json:"active"`
	// User runs the service; "root" with UserDefault when the unit sets none.
	User        string           `json:"user"`
	UserDefault bool             `json:"user_default,omitempty"`
	Group       string           `json:"group,omitempty"`
	WantedBy    []string         `json:"wanted_by,omitempty"`
	ExecStart   []string         `json:"exec_start,omitempty"`
	Limits      map[string]Limit `json:"limits,omitempty"`
}

// PathInfo is the owner and mode of a file or directory that matters.
type PathInfo struct {
	Path          string `json:"path"`
	Exists        bool   `json:"exists"`
	Type          string `json:"type,omitempty"` // file, dir, symlink, other
	Mode          string `json:"mode,omitempty"` // octal, such as "0750"
	Owner         string `json:"owner,omitempty"`
	Group         string `json:"group,omitempty"`
	UID           int    `json:"uid"`
	GID           int    `json:"gid"`
	WorldWritable bool   `json:"world_writable"`
	WorldReadable bool   `json:"world_readable"`
}

// ManifestFacts compares the bake manifest with the disk.
type ManifestFacts struct {
	Present       bool       `json:"present"`
	Path          string     `json:"path"`
	SpecHash      string     `json:"spec_hash,omitempty"`
	ESVersion     string     `json:"es_version,omitempty"`
	EsnodeVersion string     `json:"esnode_version,omitempty"`
	BakedAt       *time.Time `json:"baked_at,omitempty"`
	// Spec is the node spec the image was baked from (ports, heap share,
	// firewall sources, limits): what policies compare the node against.
	Spec *spec.Node `json:"spec,omitempty"`
	// Security is what the bake recorded of TLS material and passwords left
	// in the image (added within v1; absent in older manifests).
	Security     *spec.ImageSecurity `json:"security,omitempty"`
	FilesChecked int                 `json:"files_checked"`
	Drift        []Drift             `json:"drift"`
}

// Drift is a managed file that differs from the manifest (or, for stage
// "boot" files, from what boot last recorded).
type Drift struct {
	Path           string   `json:"path"`
	Stage          string   `json:"stage"`
	Missing        bool     `json:"missing"`
	Changed        []string `json:"changed"` // content, mode, owner, group
	ExpectedSHA256 string   `json:"expected_sha256"`
	ActualSHA256   string   `json:"actual_sha256,omitempty"`
	ExpectedMode   string   `json:"expected_mode,omitempty"`
	ActualMode     string   `json:"actual_mode,omitempty"`
	ExpectedOwner  string   `json:"expected_owner,omitempty"`
	ActualOwner    string   `json:"actual_owner,omitempty"`
	ExpectedGroup  string   `json:"expected_group,omitempty"`
	ActualGroup    string   `json:"actual_group,omitempty"`
}

// User is an account from /etc/passwd.
type User struct {
	Name  string `json:"name"`
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	Home  string `json:"home"`
	Shell string `json:"shell"`
}

// FactError is a collector that failed; the rest of the document stands.
type FactError struct {
	Fact  string `json:"fact"`
	Error string `json:"error"`
}

// JSON encodes the document, indented, with its schema version.
func (f *Facts) JSON() ([]byte, error) {
	if f.SchemaVersion == "" {
		f.SchemaVersion = SchemaVersion
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode facts: %w", err)
	}
	return append(b, '\n'), nil
}

// Parse reads a facts document of this schema version and refuses others,
// so an auditor never checks a document it misreads.
func Parse(data []byte) (*Facts, error) {
	// The usual document decodes once; only a failed or foreign one is
	// read again for the schema version, whose message comes first.
	var f Facts
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := dec.Decode(&f)
	if err == nil && f.SchemaVersion == SchemaVersion && !trailingData(dec) {
		return &f, nil
	}
	var probe struct {
		SchemaVersion *string `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("facts document is not valid JSON: %w", err)
	}
	switch {
	case probe.SchemaVersion == nil:
		return nil, fmt.Errorf("facts document has no schema_version; this tool reads %q: collect with a matching esnode", SchemaVersion)
	case *probe.SchemaVersion != SchemaVersion:
		return nil, fmt.Errorf("facts schema_version is %q; this tool reads %q: collect with a matching esnode", *probe.SchemaVersion, SchemaVersion)
	}
	if err != nil {
		return nil, fmt.Errorf("facts document does not match %s: %w", SchemaVersion, err)
	}
	return &f, nil
}

// trailingData reports whether more than white space follows the first
// JSON value (json.Unmarshal, which the schema probe uses, refuses that).
func trailingData(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err != io.EOF
}
