package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Paths boot reads and writes besides the rendered files.
const (
	ElasticsearchYML = "/etc/elasticsearch/elasticsearch.yml"
	StatePath        = "/etc/esnode/boot.json"
	// StateAPIVersion names the boot.json schema.
	StateAPIVersion = "esbake/boot/v1"
)

// Options configure one boot.
type Options struct {
	// Root is the node's filesystem root; "" means "/". With another root,
	// commands are not run unless Runner is set: they are printed.
	Root string
	// IMDSEndpoint overrides the metadata endpoint (http://169.254.169.254).
	IMDSEndpoint string
	// IMDSTimeout bounds the wait for metadata; default DefaultIMDSTimeout.
	IMDSTimeout time.Duration
	// DryRun prints the diff of every file boot would change and the
	// commands it would run, and touches nothing.
	DryRun bool
	// Out receives the dry-run diff, warnings and progress; nil discards.
	Out io.Writer
	// Runner runs the CloudWatch agent control and keystore tools; default
	// ExecRunner when Root is "/".
	Runner Runner
	// Firewall applies the rules; default SystemFirewall with Runner.
	Firewall Firewall
	// Params reads discovery keys from Parameter Store; default SSM in the
	// instance's region (endpoint SSMEndpoint or AWS_ENDPOINT_URL_SSM).
	Params      ParamStore
	SSMEndpoint string
	// MemTotal returns the machine's memory in bytes; default reads
	// <Root>/proc/meminfo.
	MemTotal func() (uint64, error)
	// Now stamps boot.json; default time.Now.
	Now func() time.Time
}

// Result says what a boot did.
type Result struct {
	// Changed lists the node paths of files whose content changed (or, with
	// DryRun, would change). boot.json is rewritten every boot and not listed.
	Changed []string
	// Ran lists the commands run (or that would run), without their stdin.
	Ran   []string
	State *State
}

// State is /etc/esnode/boot.json: what the last successful boot saw and wrote.
type State struct {
	APIVersion           string            `json:"api_version"`
	InstanceID           string            `json:"instance_id"`
	InstanceType         string            `json:"instance_type"`
	LocalIPv4            string            `json:"local_ipv4"`
	MAC                  string            `json:"mac"`
	SubnetCIDR           string            `json:"subnet_cidr"`
	VPCCIDR              string            `json:"vpc_cidr"`
	VPCCIDRs             []string          `json:"vpc_cidrs"`
	AvailabilityZone     string            `json:"az"`
	Region               string            `json:"region"`
	ElasticsearchVersion string            `json:"elasticsearch_version"`
	ClusterName          string            `json:"cluster_name"`
	ClusterNameSource    string            `json:"cluster_name_source"`
	TagsEnabled          bool              `json:"tags_enabled"`
	Tags                 map[string]string `json:"tags"`
	Userdata             *Userdata         `json:"userdata"`
	Heap                 HeapPlan          `json:"heap"`
	FirewallBackend      string            `json:"firewall_backend"`
	FirewallRules        []Rule            `json:"firewall_rules"`
	Files                []StateFile       `json:"files"`
	BootedAt             time.Time         `json:"booted_at"`
}

// StateFile is one file boot rendered, with the sum of what it wrote.
type StateFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// ReadState reads boot.json under root; a missing file is (nil, nil).
func ReadState(root string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(rootDir(root), StatePath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read boot state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", StatePath, err)
	}
	return &s, nil
}

func rootDir(r string) string {
	if r == "" {
		return "/"
	}
	return r
}

// Run performs one boot: read the baked spec and instance metadata, parse
// userdata, render every per-boot file, then write, apply and record. It
// reads and renders everything before writing anything, so a failure to
// reach metadata (or bad userdata) leaves the last good configuration as it
// was.
func Run(ctx context.Context, o Options) (*Result, error) {
	root := rootDir(o.Root)
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	warn := func(format string, args ...any) { fmt.Fprintf(out, "esnode boot: warning: "+format+"\n", args...) }
	runner := o.Runner
	if runner == nil {
		if root == "/" {
			runner = ExecRunner{}
		} else {
			runner = printRunner{out: out, root: root}
		}
	}
	fw := o.Firewall
	if fw == nil {
		fw = SystemFirewall{Runner: runner}
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}

	node, err := readSpec(root)
	if err != nil {
		return nil, err
	}
	ver, err := spec.ParseVersion(node.Elasticsearch.Version)
	if err != nil {
		return nil, fmt.Errorf("manifest elasticsearch.version: %w", err)
	}

	md, err := newMetadataReader(o.IMDSEndpoint, o.IMDSTimeout).fetch(ctx)
	if err != nil {
		return nil, err
	}
	ud, err := ParseUserdata(md.UserData)
	if err != nil {
		return nil, fmt.Errorf("%w; the last good configuration was left untouched", err)
	}

	tagKey := node.Cluster.DiscoveryTagKey
	cluster, source, err := clusterName(ud, md, node)
	if err != nil {
		return nil, err
	}
	if md.TagsEnabled {
		if tv, ok := md.Tags[tagKey]; !ok {
			warn("the instance has no %s tag; nodes discover each other by the tag %s=%s, so tag every node of the cluster (launch template) or discovery finds nobody", tagKey, tagKey, cluster)
		} else if tv != cluster {
			warn("the instance's %s tag is %q but the cluster name is %q (from %s); peers discover nodes by %s=%s, so this node will not be found: make them agree", tagKey, tv, cluster, source, tagKey, cluster)
		}
	}

	yc := ymlConfig{
		Version: ver, ClusterName: cluster, TagKey: tagKey,
		InstanceID: md.InstanceID, LocalIPv4: md.LocalIPv4, Region: md.Region, SubnetCIDR: md.SubnetCIDR,
		HTTPPort: node.Elasticsearch.HTTPPort, TransportPort: node.Elasticsearch.TransportPort,
		Roles: node.Cluster.Roles, CORSAllowOrigin: node.Cluster.CORSAllowOrigin,
		MemoryLock: node.System.MemoryLock, InitialMasterNodes: node.Cluster.InitialMasterNodes,
	}
	if ud.NodeRoles != nil {
		yc.Roles = ud.NodeRoles
	}
	if ud.CORSAllowOrigin != "" {
		yc.CORSAllowOrigin = ud.CORSAllowOrigin
	}
	if ud.InitialMasterNodes != nil {
		yc.InitialMasterNodes = ud.InitialMasterNodes
	}
	settings, err := yc.settings()
	if err != nil {
		return nil, err
	}

	var changes []fileChange
	add := func(path string, render func(old []byte, exists bool) ([]byte, error), newMode fs.FileMode, dirGroup bool) error {
		old, exists, err := readExisting(root, path)
		if err != nil {
			return err
		}
		nb, err := render(old, exists)
		if err != nil {
			return err
		}
		changes = append(changes, fileChange{Path: path, Old: old, New: nb, Exists: exists, NewMode: newMode, DirGroup: dirGroup})
		return nil
	}

	err = add(ElasticsearchYML, func(old []byte, exists bool) ([]byte, error) {
		if !exists {
			return nil, fmt.Errorf("%s does not exist under %s; is Elasticsearch installed (esnode install)?", ElasticsearchYML, root)
		}
		b, err := renderElasticsearchYML(old, settings)
		if err != nil {
			return nil, fmt.Errorf("%w (file %s)", err, ElasticsearchYML)
		}
		return b, nil
	}, 0o660, true)
	if err != nil {
		return nil, err
	}

	memTotal := o.MemTotal
	if memTotal == nil {
		memTotal = func() (uint64, error) { return ReadMemTotal(memInfoPath(root)) }
	}
	mem, err := memTotal()
	if err != nil {
		return nil, err
	}
	heap, err := HeapMB(mem, node.Heap, ud.HeapPercent, ud.HeapMB)
	if err != nil {
		return nil, err
	}
	if heap.MB*100 > heap.MemTotalM*spec.MaxHeapPercent {
		warn("the heap (%d MiB) takes over %d%% of the instance's %d MiB; Elasticsearch needs the rest for the file cache: use a larger instance or lower heap.min_mb / heap_mb", heap.MB, spec.MaxHeapPercent, heap.MemTotalM)
	}
	if ver.Major >= 7 {
		err = add(HeapFile, func([]byte, bool) ([]byte, error) { return RenderHeapFile(heap), nil }, 0o640, true)
	} else {
		err = add(JVMOptions, func(old []byte, exists bool) ([]byte, error) {
			if !exists {
				return nil, fmt.Errorf("%s does not exist under %s; is Elasticsearch installed (esnode install)?", JVMOptions, root)
			}
			return RenderJVMOptions6(old, heap)
		}, 0o660, true)
	}
	if err != nil {
		return nil, err
	}

	backend, err := DetectBackend(root, node.Firewall.Backend)
	if err != nil {
		return nil, err
	}
	rules, err := FirewallRuleSet(node, md.SubnetCIDR, md.VPCCIDRs)
	if err != nil {
		return nil, err
	}
	fwRules := FirewallRules{Backend: backend, Chain: Chain, Rules: rules}
	switch backend {
	case spec.FirewallIPTables:
		fwRules.Script = IPTablesChain(rules)
		err = add(IPTablesRules, func(old []byte, _ bool) ([]byte, error) { return MergeIPTablesRules(old, rules), nil }, 0o640, false)
	case spec.FirewallNFTables:
		fwRules.Script = NFTScript(rules)
		err = add(NFTablesFile, func([]byte, bool) ([]byte, error) { return []byte(fwRules.Script), nil }, 0o640, false)
		if err == nil {
			err = add(NFTablesConf, func(old []byte, _ bool) ([]byte, error) { return MergeNFTablesConf(old), nil }, 0o755, false)
		}
	default:
		err = fmt.Errorf("firewall.backend %q is not iptables or nftables", backend)
	}
	if err != nil {
		return nil, err
	}

	cw := node.CloudWatchAgent
	if cw.Enabled {
		err = add(CWAgentConfig, func([]byte, bool) ([]byte, error) {
			return RenderCWAgentConfig(cluster, md.InstanceID, cw.LogGroup)
		}, 0o644, false)
		if err != nil {
			return nil, err
		}
	}

	prev, err := ReadState(root)
	if err != nil {
		warn("%v; treating this as a first boot", err)
		prev = nil
	}
	prevSum := map[string]string{}
	if prev != nil {
		for _, f := range prev.Files {
			prevSum[f.Path] = f.SHA256
		}
	}

	res := &Result{}
	for _, c := range changes {
		if c.changed() {
			res.Changed = append(res.Changed, c.Path)
		}
	}
	sort.Strings(res.Changed)

	var cmds []Command
	var cwChanged bool
	for _, c := range changes {
		if c.Path == CWAgentConfig && (c.changed() || prevSum[c.Path] != sha256Hex(c.New)) {
			cwChanged = true
		}
	}
	wantKeys := ud.DiscoveryAccessKeyParam != ""

	if o.DryRun {
		for _, c := range changes {
			if !c.changed() {
				continue
			}
			var old []byte
			if c.Exists {
				old = c.Old
				if old == nil {
					old = []byte{}
				}
			}
			fmt.Fprint(out, UnifiedDiff(c.Path, old, c.New))
		}
		res.Ran = append(res.Ran, fmt.Sprintf("firewall (%s): replace chain/table %s with %d rules", backend, map[string]string{spec.FirewallIPTables: Chain, spec.FirewallNFTables: "inet " + NFTable}[backend], len(rules)))
		if wantKeys {
			res.Ran = append(res.Ran,
				fmt.Sprintf("%s add --stdin --force discovery.ec2.access_key (value from SSM parameter %s)", KeystoreTool, ud.DiscoveryAccessKeyParam),
				fmt.Sprintf("%s add --stdin --force discovery.ec2.secret_key (value from SSM parameter %s)", KeystoreTool, ud.DiscoverySecretKeyParam))
		}
		if cwChanged {
			res.Ran = append(res.Ran, cwFetchConfig().String(), cwRestart().String())
		}
		for _, r := range res.Ran {
			fmt.Fprintf(out, "would run: %s\n", r)
		}
		return res, nil
	}

	// Secrets are read before anything is written, so a missing parameter
	// also leaves the last good configuration.
	if wantKeys {
		params := o.Params
		if params == nil {
			params, err = NewSSMParams(ctx, md.Region, o.SSMEndpoint, o.IMDSEndpoint)
			if err != nil {
				return nil, err
			}
		}
		access, err := params.GetParameter(ctx, ud.DiscoveryAccessKeyParam)
		if err != nil {
			return nil, err
		}
		secret, err := params.GetParameter(ctx, ud.DiscoverySecretKeyParam)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, keystoreAdd("discovery.ec2.access_key", access), keystoreAdd("discovery.ec2.secret_key", secret))
	}
	if cwChanged {
		cmds = append(cmds, cwFetchConfig(), cwRestart())
	}

	for _, c := range changes {
		if !c.changed() {
			continue
		}
		if err := writeAtomic(filepath.Join(root, c.Path), c.New, c.NewMode, c.DirGroup, 0o755); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "esnode boot: wrote %s\n", c.Path)
	}
	if err := fw.Apply(ctx, fwRules); err != nil {
		return nil, fmt.Errorf("apply firewall: %w", err)
	}
	res.Ran = append(res.Ran, fmt.Sprintf("firewall (%s): %d rules", backend, len(rules)))
	for _, c := range cmds {
		if b, err := runner.Run(ctx, c); err != nil {
			return nil, fmt.Errorf("%s: %w: %s", c, err, strings.TrimSpace(string(b)))
		}
		res.Ran = append(res.Ran, c.String())
	}

	st := &State{
		APIVersion: StateAPIVersion,
		InstanceID: md.InstanceID, InstanceType: md.InstanceType, LocalIPv4: md.LocalIPv4, MAC: md.MAC,
		SubnetCIDR: md.SubnetCIDR, VPCCIDR: md.VPCCIDRs[0], VPCCIDRs: md.VPCCIDRs,
		AvailabilityZone: md.AvailabilityZone, Region: md.Region,
		ElasticsearchVersion: ver.String(),
		ClusterName:          cluster, ClusterNameSource: source,
		TagsEnabled: md.TagsEnabled, Tags: md.Tags, Userdata: ud, Heap: heap,
		FirewallBackend: backend, FirewallRules: rules,
		BootedAt: now().UTC(),
	}
	for _, c := range changes {
		st.Files = append(st.Files, StateFile{Path: c.Path, SHA256: sha256Hex(c.New)})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode boot state: %w", err)
	}
	if err := writeAtomic(filepath.Join(root, StatePath), append(b, '\n'), 0o644, false, 0o755); err != nil {
		return nil, err
	}
	res.State = st
	fmt.Fprintf(out, "esnode boot: node %s, cluster %s (name from %s), %s\n", md.InstanceID, cluster, source, md.AvailabilityZone)
	return res, nil
}

func readSpec(root string) (*spec.Node, error) {
	b, err := os.ReadFile(filepath.Join(root, spec.ManifestPath))
	if err != nil {
		return nil, fmt.Errorf("read the bake manifest: %w; boot runs only on a node baked by esnode install", err)
	}
	m, err := spec.ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.ManifestPath, err)
	}
	n := m.Spec
	n.SetDefaults()
	if err := n.Validate(); err != nil {
		return nil, fmt.Errorf("%s holds an invalid node spec:\n%w", spec.ManifestPath, err)
	}
	return &n, nil
}

// clusterName picks the cluster: userdata, else the discovery tag, else the
// spec.
func clusterName(ud *Userdata, md *Metadata, n *spec.Node) (name, source string, err error) {
	key := n.Cluster.DiscoveryTagKey
	if ud.ClusterName != "" {
		return ud.ClusterName, "userdata cluster_name", nil
	}
	if v, ok := md.Tags[key]; ok && strings.TrimSpace(v) != "" {
		v = strings.TrimSpace(v)
		if !clusterNameR.MatchString(v) {
			return "", "", fmt.Errorf("the instance tag %s=%q is not a usable cluster name (letters, digits, _ and -, at most 255); fix the tag", key, v)
		}
		return v, "tag " + key, nil
	}
	if n.Cluster.Name != "" {
		return n.Cluster.Name, "spec cluster.name", nil
	}
	hint := ""
	if !md.TagsEnabled {
		hint = " (instance tags are not visible in metadata: enable them with --metadata-options InstanceMetadataTags=enabled)"
	}
	return "", "", fmt.Errorf("no cluster name: tag the instance %s=<cluster>%s, or put cluster_name=<cluster> in userdata, or set cluster.name in the node spec at bake", key, hint)
}

// printRunner prints commands instead of running them: with --root the
// tools would act on this machine, not on the root.
type printRunner struct {
	out  io.Writer
	root string
}

func (p printRunner) Run(_ context.Context, c Command) ([]byte, error) {
	fmt.Fprintf(p.out, "esnode boot: not run (root is %s): %s\n", p.root, c)
	return nil, nil
}
