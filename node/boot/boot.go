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
	"sync"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Paths boot reads and writes besides the rendered files.
const (
	ElasticsearchYML = "/etc/elasticsearch/elasticsearch.yml"
	StatePath        = "/etc/esnode/boot.json"
	// HQEnvFile is ElasticHQ's EnvironmentFile (install.HQEnvFile).
	HQEnvFile = "/etc/esnode/elastichq.env"
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
	// Secrets reads the spec's security material; default Parameter Store
	// (SSMEndpoint) and Secrets Manager (SecretsManagerEndpoint or
	// AWS_ENDPOINT_URL_SECRETS_MANAGER) in the instance's region.
	Secrets                SecretStore
	SecretsManagerEndpoint string
	// MemTotal returns the machine's memory in bytes; default reads
	// <Root>/proc/meminfo.
	MemTotal func() (uint64, error)
	// Now stamps boot.json; default time.Now.
	Now func() time.Time
	// Slots holds the first-cluster bootstrap slots; default Parameter
	// Store in the instance's region (as Params).
	Slots SlotStore
	// BootstrapPoll is how often boot re-reads the slots while it waits
	// for all of them to be owned (default 2s); BootstrapWait bounds that
	// wait (default: until ctx ends).
	BootstrapPoll, BootstrapWait time.Duration
	// EC2Endpoint replaces the regional https:// EC2 URL written as
	// discovery.ec2.endpoint (a VPC endpoint; AWS_ENDPOINT_URL_EC2 in esnode).
	EC2Endpoint string
	// agentStartsAfterBoot replaces the check of this machine's units
	// (tests: a root other than "/" never has the agent start after boot).
	agentStartsAfterBoot func() bool
}

// Result says what a boot did.
type Result struct {
	// Changed lists the node paths of files whose content changed (or, with
	// DryRun, would change). boot.json is rewritten every boot and not listed.
	Changed []string
	// Ran lists the commands run (or that would run), without their stdin.
	Ran   []string
	State *State
	// Stages is where the boot's wall time went, stage by stage
	// (FormatStages prints them).
	Stages []Stage
}

// State is /etc/esnode/boot.json: what the last successful boot saw and wrote.
type State struct {
	APIVersion           string             `json:"api_version"`
	InstanceID           string             `json:"instance_id"`
	InstanceType         string             `json:"instance_type"`
	LocalIPv4            string             `json:"local_ipv4"`
	MAC                  string             `json:"mac"`
	SubnetCIDR           string             `json:"subnet_cidr"`
	VPCCIDR              string             `json:"vpc_cidr"`
	VPCCIDRs             []string           `json:"vpc_cidrs"`
	AvailabilityZone     string             `json:"az"`
	Region               string             `json:"region"`
	ElasticsearchVersion string             `json:"elasticsearch_version"`
	ClusterName          string             `json:"cluster_name"`
	ClusterNameSource    string             `json:"cluster_name_source"`
	TagsEnabled          bool               `json:"tags_enabled"`
	Tags                 map[string]string  `json:"tags"`
	Userdata             *Userdata          `json:"userdata"`
	Heap                 HeapPlan           `json:"heap"`
	Bootstrap            *BootstrapDecision `json:"bootstrap,omitempty"`
	FirewallBackend      string             `json:"firewall_backend"`
	FirewallRules        []Rule             `json:"firewall_rules"`
	Files                []StateFile        `json:"files"`
	// KeystoreKeys are the secure settings this boot put in the keystore,
	// so a later boot removes them once userdata stops naming them.
	KeystoreKeys []string `json:"keystore_keys"`
	// Security records the TLS material boot wrote: references and
	// fingerprints, never values.
	Security *SecurityState `json:"security,omitempty"`
	BootedAt time.Time      `json:"booted_at"`
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

// Run performs one boot as a pipeline of named stages:
//
//	gather -> plan -> render -> (dry run: report) -> prepare -> apply -> record
//
// gather reads the baked spec, instance metadata, userdata and the last
// boot's state; plan decides every setting, the heap and the firewall rules;
// render turns the plan into file contents; prepare reads what the commands
// need; apply changes the node (files, firewall, keystore, agent) and
// record writes boot.json. Each stage's time is in Result.Stages.
// Everything is read and rendered before anything is written, so a failure
// to reach metadata (or bad userdata) leaves the last good configuration
// as it was.
func Run(ctx context.Context, o Options) (*Result, error) {
	env := newBootEnv(o)
	res := &Result{}
	defer func() { res.Stages = env.clock.stages }()
	in, err := gather(ctx, env)
	if err != nil {
		return nil, err
	}
	p, err := plan(ctx, env, in)
	if err != nil {
		return nil, err
	}
	changes, err := render(env, in, p)
	if err != nil {
		return nil, err
	}
	env.clock.lap("render")
	for _, c := range changes {
		if c.changed() {
			res.Changed = append(res.Changed, c.Path)
		}
	}
	sort.Strings(res.Changed)
	cwChanged := cwConfigChanged(changes, in.prev)
	if o.DryRun {
		reportDryRun(env, p, changes, cwChanged, res)
		return res, nil
	}
	// The agent's own start reads its configuration when systemd starts it
	// after this boot (the first boot): no fetch-config, no restart.
	cwAtStart := in.node.CloudWatchAgent.Enabled && env.agentStartsAfterBoot()
	cmds, err := commands(ctx, env, in, p, cwChanged && !cwAtStart)
	if err != nil {
		return nil, err
	}
	env.clock.lap("prepare")
	if err := apply(ctx, env, p, changes, cmds, cwAtStart, res); err != nil {
		return nil, err
	}
	st, err := record(env, in, p, changes)
	if err != nil {
		return nil, err
	}
	env.clock.lap("record")
	res.State = st
	fmt.Fprintf(env.out, "esnode boot: node %s, cluster %s (name from %s), %s\n", in.md.InstanceID, in.cluster, in.source, in.md.AvailabilityZone)
	return res, nil
}

// bootEnv is the resolved Options: where the node is and how to act on it.
type bootEnv struct {
	o      Options
	root   string
	out    io.Writer
	runner Runner
	fw     Firewall
	now    func() time.Time
	clock  *stopwatch
	aws    *bootAWS
}

func newBootEnv(o Options) *bootEnv {
	e := &bootEnv{o: o, root: rootDir(o.Root), out: o.Out, runner: o.Runner, fw: o.Firewall, now: o.Now, clock: newStopwatch(), aws: &bootAWS{imdsEndpoint: o.IMDSEndpoint}}
	if e.out == nil {
		e.out = io.Discard
	}
	e.out = &lockedWriter{w: e.out}
	if e.runner == nil {
		if e.root == "/" {
			e.runner = ExecRunner{}
		} else {
			e.runner = printRunner{out: e.out, root: e.root}
		}
	}
	if e.fw == nil {
		e.fw = SystemFirewall{Runner: e.runner}
	}
	if e.now == nil {
		e.now = time.Now
	}
	return e
}

func (e *bootEnv) warn(format string, args ...any) {
	fmt.Fprintf(e.out, "esnode boot: warning: "+format+"\n", args...)
}

// gathered is everything boot reads before deciding anything.
type gathered struct {
	node            *spec.Node
	ver             spec.Version
	md              *Metadata
	ud              *Userdata
	cluster, source string
	mem             uint64
	backend         string
	prev            *State
	joined          *Joined
	// bootedThisKernel: an earlier boot ran since the kernel started (the
	// IPv6 firewall's first guess; nothing persists IPv6 rules).
	bootedThisKernel bool
}

// gather reads the baked spec, instance metadata and userdata, the
// machine's memory, the firewall backend and the last boot's state.
func gather(ctx context.Context, e *bootEnv) (*gathered, error) {
	node, err := readSpec(e.root)
	if err != nil {
		return nil, err
	}
	ver, err := spec.ParseVersion(node.Elasticsearch.Version)
	if err != nil {
		return nil, fmt.Errorf("manifest elasticsearch.version: %w", err)
	}
	md, err := newMetadataReader(e.o.IMDSEndpoint, e.o.IMDSTimeout).fetch(ctx)
	if err != nil {
		return nil, err
	}
	e.clock.lap("metadata")
	ud, err := ParseUserdata(md.UserData)
	if err != nil {
		return nil, fmt.Errorf("%w; the last good configuration was left untouched", err)
	}
	cluster, source, err := clusterName(ud, md, node)
	if err != nil {
		return nil, err
	}
	if tagKey := node.Cluster.DiscoveryTagKey; md.TagsEnabled {
		if tv, ok := md.Tags[tagKey]; !ok {
			e.warn("the instance has no %s tag; nodes discover each other by the tag %s=%s, so tag every node of the cluster (launch template) or discovery finds nobody", tagKey, tagKey, cluster)
		} else if tv != cluster {
			e.warn("the instance's %s tag is %q but the cluster name is %q (from %s); peers discover nodes by %s=%s, so this node will not be found: make them agree", tagKey, tv, cluster, source, tagKey, cluster)
		}
	}
	memTotal := e.o.MemTotal
	if memTotal == nil {
		memTotal = func() (uint64, error) { return ReadMemTotal(memInfoPath(e.root)) }
	}
	mem, err := memTotal()
	if err != nil {
		return nil, err
	}
	backend, err := DetectBackend(e.root, node.Firewall.Backend)
	if err != nil {
		return nil, err
	}
	prev, err := ReadState(e.root)
	if err != nil {
		e.warn("%v; treating this as a first boot", err)
		prev = nil
	}
	// A damaged joined record fails the boot: guessing "never joined" could
	// bootstrap a second cluster.
	joined, err := ReadJoined(e.root)
	if err != nil {
		return nil, err
	}
	procStat, _ := os.ReadFile(procStatPath(e.root)) // none: no guess
	e.clock.lap("gather")
	return &gathered{node: node, ver: ver, md: md, ud: ud, cluster: cluster, source: source, mem: mem, backend: backend, prev: prev, joined: joined,
		bootedThisKernel: bootedSinceKernelStart(prev, procStat)}, nil
}

// bootPlan is what this boot will write and run, before any file is read
// for rendering.
type bootPlan struct {
	settings  []setting
	bootstrap *BootstrapDecision
	heap      HeapPlan
	rules     []Rule
	fwRules   FirewallRules
	// Parameter Store names of the discovery keys; wantKeys when set.
	wantKeys                 bool
	accessParam, secretParam string
	// security is the cluster's TLS material and passwords (nil: none).
	security *securityPlan
}

// plan decides the managed settings, the heap and the firewall rules, and
// last (it may claim a bootstrap slot and wait for the other nodes) how the
// node forms or joins its cluster.
func plan(ctx context.Context, e *bootEnv, in *gathered) (*bootPlan, error) {
	node, md, ud := in.node, in.md, in.ud
	yc := ymlConfig{
		Version: in.ver, ClusterName: in.cluster, TagKey: node.Cluster.DiscoveryTagKey,
		InstanceID: md.InstanceID, LocalIPv4: md.LocalIPv4, Region: md.Region, SubnetCIDR: md.SubnetCIDR,
		VPCCIDRs: md.VPCCIDRs, AvailabilityZone: md.AvailabilityZone, EC2Endpoint: e.o.EC2Endpoint,
		HTTPPort: node.Elasticsearch.HTTPPort, TransportPort: node.Elasticsearch.TransportPort,
		Roles: node.Cluster.Roles, CORSAllowOrigin: node.Cluster.CORSAllowOrigin,
		MemoryLock: node.System.MemoryLock,
	}
	if ud.NodeRoles != nil {
		yc.Roles = ud.NodeRoles
	}
	if ud.CORSAllowOrigin != "" {
		yc.CORSAllowOrigin = ud.CORSAllowOrigin
	}
	fixed, fixedSource := node.Cluster.InitialMasterNodes, "spec"
	if ud.InitialMasterNodes != nil {
		fixed, fixedSource = ud.InitialMasterNodes, "userdata"
	}
	if in.ver.Major < 7 && len(fixed) > 0 {
		return nil, fmt.Errorf("initial_master_nodes applies to Elasticsearch 7 and later, not %s; remove it from %s", in.ver, fixedSource)
	}
	// A first check of the settings before any slot is claimed.
	if _, err := yc.settings(); err != nil {
		return nil, err
	}
	// Before any bootstrap slot is claimed: a node that cannot get its TLS
	// material must not take a seat in the first cluster.
	e.clock.lap("plan")
	sec, err := planSecurity(ctx, e, in)
	if err != nil {
		return nil, err
	}
	e.clock.lap("security")
	if err := checkWouldStart(e, in, yc, sec); err != nil {
		return nil, err
	}
	heap, err := HeapMB(in.mem, node.Heap, ud.HeapPercent, ud.HeapMB)
	if err != nil {
		return nil, err
	}
	if heap.MB >= heap.MemTotalM {
		return nil, fmt.Errorf("the heap (%d MiB, %s) is at least the instance's %d MiB of memory, so Elasticsearch could not start; use an instance with more memory or lower heap.min_mb", heap.MB, heap.Rule, heap.MemTotalM)
	}
	if heap.MB*100 > heap.MemTotalM*spec.MaxHeapPercent {
		e.warn("the heap (%d MiB) takes over %d%% of the instance's %d MiB; Elasticsearch needs the rest for the file cache: use a larger instance or lower heap.min_mb / heap_mb", heap.MB, spec.MaxHeapPercent, heap.MemTotalM)
	}
	rules, err := FirewallRuleSet(node, md.SubnetCIDR, md.VPCCIDRs)
	if err != nil {
		return nil, err
	}
	fwRules := FirewallRules{Backend: in.backend, Chain: Chain, Rules: rules}
	switch in.backend {
	case spec.FirewallIPTables:
		fwRules.Script = IPTablesChain(rules)
		// Nothing persists IPv6 rules: the first guess about INPUT's jump
		// is whether a boot ran since the kernel started.
		fwRules.JumpApplied6 = in.bootedThisKernel
	case spec.FirewallNFTables:
		fwRules.Script = NFTScript(rules)
	default:
		return nil, fmt.Errorf("firewall.backend %q is not iptables or nftables", in.backend)
	}
	e.clock.lap("plan")
	bo := bootstrapOptions{Store: e.o.Slots, Poll: e.o.BootstrapPoll, Wait: e.o.BootstrapWait, DryRun: e.o.DryRun,
		Progress: func(format string, args ...any) { fmt.Fprintf(e.out, "esnode boot: "+format+"\n", args...) }}
	if bo.Store == nil && in.ver.Major >= 7 && node.Cluster.MasterNodes > 0 && in.joined == nil {
		bo.Store, err = e.ssmParams(ctx, md.Region)
		if err != nil {
			return nil, err
		}
	}
	dec, err := decideBootstrap(ctx, in, yc.Roles, fixed, fixedSource, bo)
	if err != nil {
		return nil, err
	}
	e.clock.lap("bootstrap")
	fmt.Fprintf(e.out, "esnode boot: cluster formation: %s\n", dec.Reason)
	yc.InitialMasterNodes, yc.MinimumMasterNodes = dec.InitialMasterNodes, dec.MinimumMasterNodes
	settings, err := yc.settings()
	if err != nil {
		return nil, err
	}
	if sec != nil {
		settings = append(settings, sec.settings...)
	}
	return &bootPlan{security: sec, settings: settings, bootstrap: dec, heap: heap, rules: rules, fwRules: fwRules, wantKeys: ud.DiscoveryAccessKeyParam != "",
		accessParam: ud.DiscoveryAccessKeyParam, secretParam: ud.DiscoverySecretKeyParam}, nil
}

// checkWouldStart renders elasticsearch.yml as this boot would (before the
// bootstrap decision, which does not touch security) and refuses settings
// Elasticsearch would not start with. A file render cannot handle is left
// to render, which says why.
func checkWouldStart(e *bootEnv, in *gathered, yc ymlConfig, sec *securityPlan) error {
	old, exists, err := readExisting(e.root, ElasticsearchYML)
	if err != nil || !exists {
		return nil
	}
	settings, err := yc.settings()
	if err != nil {
		return nil
	}
	if sec != nil {
		settings = append(settings, sec.settings...)
	}
	b, err := renderElasticsearchYML(old, settings)
	if err != nil {
		return nil
	}
	flat, err := flattenYML(b)
	if err != nil {
		return nil
	}
	return checkTransportTLS(in.ver, flat, sec)
}

// render reads each file boot manages and computes its new content.
func render(e *bootEnv, in *gathered, p *bootPlan) ([]fileChange, error) {
	var changes []fileChange
	add := func(path string, render func(old []byte, exists bool) ([]byte, error), newMode fs.FileMode, dirGroup bool) error {
		old, exists, err := readExisting(e.root, path)
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
	installed := func(path string) error {
		return fmt.Errorf("%s does not exist under %s; is Elasticsearch installed (esnode install)?", path, e.root)
	}

	err := add(ElasticsearchYML, func(old []byte, exists bool) ([]byte, error) {
		if !exists {
			return nil, installed(ElasticsearchYML)
		}
		b, err := renderElasticsearchYML(old, p.settings)
		if err != nil {
			return nil, fmt.Errorf("%w (file %s)", err, ElasticsearchYML)
		}
		return b, nil
	}, 0o660, true)
	if err != nil {
		return nil, err
	}
	if in.ver.Major >= 7 {
		err = add(HeapFile, func([]byte, bool) ([]byte, error) { return RenderHeapFile(p.heap), nil }, 0o640, true)
	} else {
		err = add(JVMOptions, func(old []byte, exists bool) ([]byte, error) {
			if !exists {
				return nil, installed(JVMOptions)
			}
			return RenderJVMOptions6(old, p.heap)
		}, 0o660, true)
	}
	if err != nil {
		return nil, err
	}
	switch in.backend {
	case spec.FirewallIPTables:
		err = add(IPTablesRules, func(old []byte, _ bool) ([]byte, error) {
			// The image loads these rules at boot: the firewall's first
			// guess for IPv4.
			p.fwRules.JumpPersisted = hasInputJump(old, Chain)
			return MergeIPTablesRules(old, p.rules), nil
		}, 0o640, false)
	case spec.FirewallNFTables:
		err = add(NFTablesFile, func([]byte, bool) ([]byte, error) { return []byte(p.fwRules.Script), nil }, 0o640, false)
		if err == nil {
			err = add(NFTablesConf, func(old []byte, _ bool) ([]byte, error) { return MergeNFTablesConf(old), nil }, 0o755, false)
		}
	}
	if err != nil {
		return nil, err
	}
	if cw := in.node.CloudWatchAgent; cw.Enabled {
		err = add(CWAgentConfig, func([]byte, bool) ([]byte, error) {
			return RenderCWAgentConfig(in.cluster, in.md.InstanceID, cw.LogGroup, in.ver.Major)
		}, 0o644, false)
		if err != nil {
			return nil, err
		}
	}
	if hq := in.node.ElasticHQ; hq.Enabled {
		// HQ's first screen connects to HQ_DEFAULT_URL; Elasticsearch listens
		// on the private address only, not on localhost.
		err = add(HQEnvFile, func([]byte, bool) ([]byte, error) {
			return []byte(fmt.Sprintf("# Written by esnode boot: ElasticHQ connects to this node's own address.\nHQ_DEFAULT_URL=http://%s:%d\n", in.md.LocalIPv4, in.node.Elasticsearch.HTTPPort)), nil
		}, 0o644, false)
		if err != nil {
			return nil, err
		}
	}
	return changes, nil
}

// cwConfigChanged reports whether the CloudWatch agent must reload: its
// file changed now, or differs from what the last boot recorded (a boot
// that failed after writing it).
func cwConfigChanged(changes []fileChange, prev *State) bool {
	prevSum := map[string]string{}
	if prev != nil {
		for _, f := range prev.Files {
			prevSum[f.Path] = f.SHA256
		}
	}
	for _, c := range changes {
		if c.Path == CWAgentConfig && (c.changed() || prevSum[c.Path] != sha256Hex(c.New)) {
			return true
		}
	}
	return false
}

// reportDryRun prints the diff of every changed file and what would run.
func reportDryRun(e *bootEnv, p *bootPlan, changes []fileChange, cwChanged bool, res *Result) {
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
		fmt.Fprint(e.out, UnifiedDiff(c.Path, old, c.New))
	}
	backend := p.fwRules.Backend
	res.Ran = append(res.Ran, fmt.Sprintf("firewall (%s): replace chain/table %s with %d rules", backend, map[string]string{spec.FirewallIPTables: Chain, spec.FirewallNFTables: "inet " + NFTable}[backend], len(p.rules)))
	for _, c := range p.security.keystoreCommands() {
		res.Ran = append(res.Ran, c.String()+" (value from the security parameters, not shown)")
	}
	if p.security != nil && !p.security.kept {
		for _, f := range p.security.files {
			res.Ran = append(res.Ran, fmt.Sprintf("write %s root:elasticsearch 0640 (from %s, not shown)", f.Path, f.Param))
		}
	}
	if p.wantKeys {
		res.Ran = append(res.Ran,
			fmt.Sprintf("%s add --stdin --force discovery.ec2.access_key (value from SSM parameter %s)", KeystoreTool, p.accessParam),
			fmt.Sprintf("%s add --stdin --force discovery.ec2.secret_key (value from SSM parameter %s)", KeystoreTool, p.secretParam))
	}
	if cwChanged {
		res.Ran = append(res.Ran, cwFetchConfig().String(), cwRestart().String())
	}
	for _, r := range res.Ran {
		fmt.Fprintf(e.out, "would run: %s\n", r)
	}
}

// commands builds the commands apply runs. Secrets are read before
// anything is written, so a missing parameter also leaves the last good
// configuration.
func commands(ctx context.Context, e *bootEnv, in *gathered, p *bootPlan, cwReload bool) ([]Command, error) {
	var cmds []Command
	if ud := in.ud; ud.DiscoveryAccessKeyParam != "" {
		params := e.o.Params
		if params == nil {
			var err error
			params, err = e.ssmParams(ctx, in.md.Region)
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
	cmds = append(cmds, p.security.keystoreCommands()...)
	cmds = batchKeystoreAdds(cmds, in.ver)
	if stale := staleKeystoreKeys(in.prev, managedKeystoreKeys(in.ud, p)); len(stale) > 0 {
		list, err := e.runner.Run(ctx, keystoreList())
		if err != nil {
			return nil, fmt.Errorf("list the keystore to remove the discovery keys userdata no longer names (%s): %w: %s", strings.Join(stale, ", "), err, strings.TrimSpace(string(list)))
		}
		if rm := keystoreRemoveCommand(stale, list); rm != nil {
			cmds = append(cmds, *rm)
		}
	}
	if cwReload {
		cmds = append(cmds, cwFetchConfig(), cwRestart())
	}
	return cmds, nil
}

// agentStartsAfterBoot is agentStartsAfterBoot on this machine; never
// with another root.
func (e *bootEnv) agentStartsAfterBoot() bool {
	if e.o.agentStartsAfterBoot != nil {
		return e.o.agentStartsAfterBoot()
	}
	if e.root != "/" {
		return false
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	return err == nil && agentStartsAfterBoot(self, "/sys/fs/cgroup", "/")
}

// writeFiles replaces every changed file atomically, with one filesystem
// sync for all of them; the security material first (its own owner and
// mode).
func writeFiles(e *bootEnv, p *bootPlan, changes []fileChange) error {
	files, err := stageSecurityFiles(e, p.security)
	if err != nil {
		return err
	}
	for _, c := range changes {
		if c.changed() {
			files = append(files, stagedFile{Path: filepath.Join(e.root, c.Path), Data: c.New, NewMode: c.NewMode, DirGroup: c.DirGroup})
		}
	}
	return writeAllAtomic(files, e.printWritten)
}

// printWritten says a file was written: its node path and label, never
// its content.
func (e *bootEnv) printWritten(path, label string) {
	rel, err := filepath.Rel(e.root, path)
	if err != nil {
		rel = path
	}
	if label != "" {
		label = " (" + label + ")"
	}
	fmt.Fprintf(e.out, "esnode boot: wrote %s%s\n", filepath.Join("/", rel), label)
}

// apply writes the files, loads the firewall rules and runs the commands.
// The firewall and the keystore do not read the files boot writes, so
// they run while the files are written; the rest (the CloudWatch agent
// reading its new configuration, or with cwAtStart removing what its start
// would merge with it) runs once they are. Each lane runs its
// commands in order; the boot fails if any lane fails (the first failing
// lane in that order is reported), and a lane that already ran is not
// undone: the next boot applies everything again. The keystore tool is a
// JVM on a real node, the slowest of all.
func apply(ctx context.Context, e *bootEnv, p *bootPlan, changes []fileChange, cmds []Command, cwAtStart bool, res *Result) error {
	var keystore, other []Command
	for _, c := range cmds {
		if c.Name == KeystoreTool {
			keystore = append(keystore, c)
		} else {
			other = append(other, c)
		}
	}
	type lane struct {
		stages []Stage
		err    error
	}
	var write, firewall, keys, rest lane
	run := func(l *lane, cs []Command) {
		for _, c := range cs {
			t0 := time.Now()
			b, err := e.runner.Run(ctx, c)
			l.stages = append(l.stages, Stage{Name: commandStage(c), Took: time.Since(t0)})
			if err != nil {
				l.err = fmt.Errorf("%s: %w: %s", c, err, strings.TrimSpace(string(b)))
				return
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); run(&keys, keystore) }()
	go func() {
		defer wg.Done()
		t0 := time.Now()
		if err := e.fw.Apply(ctx, p.fwRules); err != nil {
			firewall.err = fmt.Errorf("apply firewall: %w", err)
		}
		firewall.stages = []Stage{{Name: "firewall", Took: time.Since(t0)}}
	}()
	t0 := time.Now()
	write.err = writeFiles(e, p, changes)
	write.stages = []Stage{{Name: "write", Took: time.Since(t0)}}
	if write.err == nil && cwAtStart {
		rest.err = removeFetchedCWConfig(e)
	}
	if write.err == nil && rest.err == nil {
		run(&rest, other)
	}
	wg.Wait()
	e.clock.lap("apply")
	for _, l := range []*lane{&write, &firewall, &keys, &rest} {
		for _, st := range l.stages {
			st.Within = "apply"
			e.clock.stages = append(e.clock.stages, st)
		}
	}
	for _, l := range []*lane{&write, &firewall, &keys, &rest} {
		if l.err != nil {
			return l.err
		}
	}
	res.Ran = append(res.Ran, fmt.Sprintf("firewall (%s): %d rules", p.fwRules.Backend, len(p.rules)))
	for _, c := range cmds {
		res.Ran = append(res.Ran, c.String())
	}
	return nil
}

// record writes boot.json, the last step of a successful boot.
func record(e *bootEnv, in *gathered, p *bootPlan, changes []fileChange) (*State, error) {
	md := in.md
	st := &State{
		APIVersion: StateAPIVersion,
		InstanceID: md.InstanceID, InstanceType: md.InstanceType, LocalIPv4: md.LocalIPv4, MAC: md.MAC,
		SubnetCIDR: md.SubnetCIDR, VPCCIDR: md.VPCCIDRs[0], VPCCIDRs: md.VPCCIDRs,
		AvailabilityZone: md.AvailabilityZone, Region: md.Region,
		ElasticsearchVersion: in.ver.String(),
		ClusterName:          in.cluster, ClusterNameSource: in.source,
		TagsEnabled: md.TagsEnabled, Tags: md.Tags, Userdata: in.ud, Heap: p.heap, Bootstrap: p.bootstrap,
		FirewallBackend: p.fwRules.Backend, FirewallRules: p.rules,
		BootedAt: e.now().UTC(), KeystoreKeys: managedKeystoreKeys(in.ud, p),
	}
	if p.security != nil {
		st.Security = p.security.record
	}
	if st.KeystoreKeys == nil {
		st.KeystoreKeys = []string{} // recorded as none, not unknown
	}
	for _, c := range changes {
		st.Files = append(st.Files, StateFile{Path: c.Path, SHA256: sha256Hex(c.New)})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode boot state: %w", err)
	}
	if err := writeAtomic(filepath.Join(e.root, StatePath), append(b, '\n'), 0o644, false, 0o755); err != nil {
		return nil, err
	}
	return st, nil
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
