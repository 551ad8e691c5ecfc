package boot

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Firewall file locations and names.
const (
	IPTablesRules = "/etc/iptables/rules.v4"
	NFTablesConf  = "/etc/nftables.conf"
	NFTablesFile  = "/etc/nftables.d/esnode.nft"
	Chain         = "ESNODE-INPUT"
	NFTable       = "esnode"
)

// Rule opens one TCP port to one IPv4 CIDR.
type Rule struct {
	Port int    `json:"port"`
	CIDR string `json:"cidr"`
	What string `json:"what"`
}

// FirewallRules is what a Firewall applies.
type FirewallRules struct {
	Backend string // spec.FirewallIPTables or spec.FirewallNFTables
	Chain   string // the iptables chain (iptables only)
	// Script is iptables-restore --noflush input that declares and fills
	// Chain (without touching INPUT), or an nft -f script that replaces
	// the esnode table.
	Script string
	Rules  []Rule
	// JumpPersisted says the persisted rules (rules.v4, which the image
	// loads at boot) already jump from INPUT to Chain, so the kernel most
	// likely has the IPv4 jump: SystemFirewall tries that guess first.
	JumpPersisted bool
	// JumpApplied6 says an earlier boot ran since the kernel started, so
	// the IPv6 jump it added is most likely there (no IPv6 rules are
	// persisted: a reboot starts without it).
	JumpApplied6 bool
}

// Firewall applies rules to the running kernel.
type Firewall interface {
	Apply(ctx context.Context, r FirewallRules) error
}

// SystemFirewall applies rules with iptables-restore / nft through a Runner.
type SystemFirewall struct {
	Runner Runner
	// IPv6 reports whether the kernel has IPv6 (default: /proc/net/if_inet6
	// exists).
	IPv6 func() bool
}

// IPv6 policy, the same on both backends: esnode's sources are IPv4 and
// Elasticsearch binds the instance's IPv4 address, so on IPv6 the managed
// ports are closed to everyone and everything else is left to the image
// (ICMPv6 neighbour discovery, SSH over IPv6, its own ip6tables rules).
// nftables did this in its inet table by dropping all IPv6 (breaking
// dual-stack instances); iptables left IPv6 wide open.

// IP6TablesChain renders ip6tables-restore --noflush input for esnode's
// IPv6 chain: the managed ports dropped, nothing else.
func IP6TablesChain(rules []Rule) string {
	var b strings.Builder
	b.WriteString("*filter\n")
	b.WriteString(":" + Chain + " - [0:0]\n")
	for _, p := range managedPorts(rules) {
		fmt.Fprintf(&b, "-A %s -p tcp -m tcp --dport %d -j DROP\n", Chain, p)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// managedPorts are the rules' ports, once each, in order.
func managedPorts(rules []Rule) []int {
	var ports []int
	seen := map[int]bool{}
	for _, r := range rules {
		if !seen[r.Port] {
			seen[r.Port] = true
			ports = append(ports, r.Port)
		}
	}
	return ports
}

func hasIPv6() bool {
	_, err := os.Stat("/proc/net/if_inet6")
	return err == nil
}

// Apply replaces only esnode's chain (or table). For iptables each address
// family is one iptables-restore transaction: the chain, the jump to it as
// INPUT's only jump to it and first rule, and (IPv4) INPUT's policy DROP,
// applied at once, so established sessions (SSH) are never cut in between
// and no moment has the policy without the chain. IPv4 and IPv6 are
// independent and go at the same time.
func (f SystemFirewall) Apply(ctx context.Context, r FirewallRules) error {
	switch r.Backend {
	case spec.FirewallIPTables:
		ipv6 := f.IPv6
		if ipv6 == nil {
			ipv6 = hasIPv6
		}
		v4 := func() error {
			if err := f.applyIPTables(ctx, "iptables", r.Chain, r.Script, true, r.JumpPersisted); err != nil {
				return fmt.Errorf("apply firewall chain %s: %w", r.Chain, err)
			}
			return nil
		}
		if !ipv6() {
			return v4()
		}
		// IPv6: the managed ports closed, the rest (and the policy) left
		// to the image; see IP6TablesChain.
		v6err := make(chan error, 1)
		go func() {
			if err := f.applyIPTables(ctx, "ip6tables", r.Chain, IP6TablesChain(r.Rules), false, r.JumpApplied6); err != nil {
				v6err <- fmt.Errorf("apply IPv6 firewall chain %s (the kernel has IPv6; install ip6tables or disable IPv6): %w", r.Chain, err)
				return
			}
			v6err <- nil
		}()
		err := v4()
		if err6 := <-v6err; err == nil {
			err = err6
		}
		return err
	case spec.FirewallNFTables:
		c := Command{Name: "nft", Args: []string{"-f", "-"}, Stdin: []byte(r.Script)}
		if out, err := f.Runner.Run(ctx, c); err != nil {
			return fmt.Errorf("apply nftables table %s: %s: %w: %s", NFTable, c, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	return fmt.Errorf("unknown firewall backend %q", r.Backend)
}

// applyIPTables loads chainScript (IPTablesChain or IP6TablesChain) with
// tool's restore, with the INPUT jump and, with policyDrop, INPUT's policy
// DROP. A restore cannot say "add the jump if missing", but it fails as a
// whole, changing nothing, when one of its lines fails; so each guess about
// the jump is one restore that holds only if the guess was right:
//
//   - missing: the chain is declared, deleted and made again before it is
//     filled (-X fails while any rule jumps to it), then the jump inserted;
//   - there: the jump is deleted (-D fails when there is none) and
//     inserted again as INPUT's first rule.
//
// The likely guess goes first (jumpLikely: the persisted rules have the
// jump, or for IPv6 an earlier boot since the kernel started added it), so
// a boot usually starts one process per family. When neither
// holds (another rule references the chain) `tool -C` decides, as the
// only way to know, and that restore's failure is the one reported.
func (f SystemFirewall) applyIPTables(ctx context.Context, tool, chain, chainScript string, policyDrop, jumpLikely bool) error {
	guesses := []string{withNewInputJump(chainScript, chain, policyDrop), withMovedInputJump(chainScript, chain, policyDrop)}
	if jumpLikely {
		guesses[0], guesses[1] = guesses[1], guesses[0]
	}
	for _, in := range guesses {
		if _, err := f.Runner.Run(ctx, Command{Name: tool + "-restore", Args: []string{"--noflush"}, Stdin: []byte(in)}); err == nil {
			return nil
		}
	}
	_, missing := f.Runner.Run(ctx, Command{Name: tool, Args: []string{"-C", "INPUT", "-j", chain}})
	c := Command{Name: tool + "-restore", Args: []string{"--noflush"}, Stdin: []byte(WithInputJump(chainScript, chain, missing != nil, policyDrop))}
	if out, err := f.Runner.Run(ctx, c); err != nil {
		return fmt.Errorf("%s: %w: %s", c, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// WithInputJump adds INPUT's part to a chain's restore input: with
// policyDrop the policy line (a built-in chain's declaration sets its
// policy and, without -c, keeps its rules and counters under --noflush),
// with jump "-I INPUT 1 -j chain" before the COMMIT.
func WithInputJump(chainScript, chain string, jump, policyDrop bool) string {
	s := chainScript
	if policyDrop {
		s = strings.Replace(s, "*filter\n", "*filter\n:INPUT DROP [0:0]\n", 1)
	}
	if jump {
		s = strings.TrimSuffix(s, "COMMIT\n") + "-I INPUT 1 -j " + chain + "\nCOMMIT\n"
	}
	return s
}

// withNewInputJump is restore input that holds only while nothing jumps to
// chain: the chain made anew (declared, so it exists; deleted, which fails
// when referenced; made again), filled, and jumped to first from INPUT.
func withNewInputJump(chainScript, chain string, policyDrop bool) string {
	decl := ":" + chain + " - [0:0]\n"
	s := strings.Replace(chainScript, decl, decl+"-X "+chain+"\n-N "+chain+"\n", 1)
	return WithInputJump(s, chain, true, policyDrop)
}

// withMovedInputJump is restore input that holds only while INPUT jumps to
// chain: that jump deleted and inserted again as INPUT's first rule.
func withMovedInputJump(chainScript, chain string, policyDrop bool) string {
	s := strings.TrimSuffix(chainScript, "COMMIT\n") + "-D INPUT -j " + chain + "\nCOMMIT\n"
	return WithInputJump(s, chain, true, policyDrop)
}

// procStatPath is /proc/stat under root (its btime line: when the kernel started).
func procStatPath(root string) string { return filepath.Join(root, "proc", "stat") }

// bootedSinceKernelStart reports whether the previous boot ran after the
// kernel started (procStat is /proc/stat, whose btime is the kernel's start
// in Unix seconds); a guess only, wrong when the clock moved.
func bootedSinceKernelStart(prev *State, procStat []byte) bool {
	if prev == nil {
		return false
	}
	for _, l := range strings.Split(string(procStat), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			btime, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return err == nil && prev.BootedAt.Unix() > btime
		}
	}
	return false
}

// hasInputJump reports whether iptables-save text jumps from INPUT to chain.
func hasInputJump(saved []byte, chain string) bool {
	for _, l := range splitLines(string(saved)) {
		if strings.TrimSpace(l) == "-A INPUT -j "+chain {
			return true
		}
	}
	return false
}

// RecordingFirewall records what would be applied; for tests and --root.
type RecordingFirewall struct{ Applied []FirewallRules }

// Apply records r.
func (f *RecordingFirewall) Apply(_ context.Context, r FirewallRules) error {
	f.Applied = append(f.Applied, r)
	return nil
}

// ResolveSources turns spec sources (CIDRs, `subnet`, `vpc`) into IPv4
// CIDRs, deduplicated in order.
func ResolveSources(srcs []string, subnet string, vpc []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(c string) error {
		ip, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return fmt.Errorf("firewall source %q is not a CIDR such as 10.0.0.0/16, nor subnet or vpc", c)
		}
		if ip.To4() == nil {
			return fmt.Errorf("firewall source %q is IPv6; esnode boot manages the IPv4 firewall only (Elasticsearch binds the instance's IPv4): use IPv4 CIDRs", c)
		}
		s := n.String()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
		return nil
	}
	for _, s := range srcs {
		var err error
		switch s {
		case spec.SourceSubnet:
			err = add(subnet)
		case spec.SourceVPC:
			for _, c := range vpc {
				if err = add(c); err != nil {
					break
				}
			}
		default:
			err = add(s)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// FirewallRuleSet lists the node's open ports and who may reach them.
func FirewallRuleSet(n *spec.Node, subnet string, vpc []string) ([]Rule, error) {
	type port struct {
		port int
		what string
		srcs []string
	}
	ports := []port{
		{n.Elasticsearch.HTTPPort, "elasticsearch-http", n.Firewall.HTTPSources},
		{n.Elasticsearch.TransportPort, "elasticsearch-transport", n.Firewall.TransportSources},
	}
	if n.ElasticHQ.Enabled {
		ports = append(ports, port{n.ElasticHQ.Port, "elastichq", n.Firewall.HQSources})
	}
	ports = append(ports, port{22, "ssh", n.Firewall.SSHSources})
	var rules []Rule
	for _, p := range ports {
		cidrs, err := ResolveSources(p.srcs, subnet, vpc)
		if err != nil {
			return nil, fmt.Errorf("%s sources: %w", p.what, err)
		}
		for _, c := range cidrs {
			rules = append(rules, Rule{Port: p.port, CIDR: c, What: p.what})
		}
	}
	return rules, nil
}

// IPTablesChain renders iptables-restore --noflush input that (re)declares
// the esnode chain (flushing only it) and fills it. It does not touch
// INPUT; SystemFirewall adds the jump and the policy.
func IPTablesChain(rules []Rule) string {
	var b strings.Builder
	b.WriteString("*filter\n")
	b.WriteString(":" + Chain + " - [0:0]\n")
	for _, l := range chainRules(rules) {
		b.WriteString(l + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// chainRules are the chain's -A lines in iptables-save's canonical form, so
// a saved ruleset compares equal to what was written.
func chainRules(rules []Rule) []string {
	out := []string{
		"-A " + Chain + " -i lo -j ACCEPT",
		"-A " + Chain + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
	}
	var ports []int
	seen := map[int]bool{}
	for _, r := range rules {
		out = append(out, fmt.Sprintf("-A %s -s %s -p tcp -m tcp --dport %d -j ACCEPT", Chain, r.CIDR, r.Port))
		if !seen[r.Port] {
			seen[r.Port] = true
			ports = append(ports, r.Port)
		}
	}
	// The managed ports are closed to everyone else here, so that an accept
	// the base image keeps after the jump (SSH from anywhere, say) cannot
	// widen what the spec allows.
	for _, p := range ports {
		out = append(out, fmt.Sprintf("-A %s -p tcp -m tcp --dport %d -j DROP", Chain, p))
	}
	return out
}

// MergeIPTablesRules edits an iptables-save file (rules.v4) so that it
// holds esnode's chain, a jump to it as INPUT's first rule and INPUT
// policy DROP; every other line, table and counter is kept. An empty old
// file gets a filter table with INPUT and FORWARD DROP, OUTPUT ACCEPT.
func MergeIPTablesRules(old []byte, rules []Rule) []byte {
	lines := splitLines(string(old))
	if n := len(lines); n > 0 && !strings.HasSuffix(lines[n-1], "\n") {
		lines[n-1] += "\n"
	}
	start, end := -1, -1
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if t == "*filter" {
			start = i
			continue
		}
		if start >= 0 && end < 0 && t == "COMMIT" {
			end = i
			break
		}
	}
	if start < 0 || end < 0 {
		if len(lines) == 0 {
			lines = []string{"# Generated by esnode boot\n"}
		}
		lines = append(lines, "*filter\n", ":INPUT DROP [0:0]\n", ":FORWARD DROP [0:0]\n", ":OUTPUT ACCEPT [0:0]\n", "COMMIT\n")
		start, end = len(lines)-5, len(lines)-1
	}
	jump := "-A INPUT -j " + Chain
	var body []string
	hasInput := false
	for _, l := range lines[start+1 : end] {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, ":"+Chain+" "), strings.HasPrefix(t, "-A "+Chain+" "), t == jump:
			continue
		case strings.HasPrefix(t, ":INPUT "):
			f := strings.Fields(t)
			counters := "[0:0]"
			if len(f) >= 3 {
				counters = f[2]
			}
			l = ":INPUT DROP " + counters + "\n"
			hasInput = true
		}
		body = append(body, l)
	}
	if !hasInput {
		body = append([]string{":INPUT DROP [0:0]\n"}, body...)
	}
	lastDecl, firstRule := -1, -1
	for i, l := range body {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, ":") {
			lastDecl = i
		}
		if firstRule < 0 && strings.HasPrefix(t, "-A ") {
			firstRule = i
		}
	}
	var nb []string
	nb = append(nb, body[:lastDecl+1]...)
	nb = append(nb, ":"+Chain+" - [0:0]\n")
	rest := body[lastDecl+1:]
	if firstRule > lastDecl {
		k := firstRule - lastDecl - 1
		nb = append(nb, rest[:k]...)
		rest = rest[k:]
	}
	nb = append(nb, jump+"\n")
	nb = append(nb, rest...)
	for _, r := range chainRules(rules) {
		nb = append(nb, r+"\n")
	}
	out := append([]string{}, lines[:start+1]...)
	out = append(out, nb...)
	out = append(out, lines[end:]...)
	return []byte(strings.Join(out, ""))
}

// NFTScript renders the esnode table: declaring then deleting it first
// makes `nft -f` replace it atomically whether or not it exists. Its input
// hook drops what it does not accept; other tables are untouched.
func NFTScript(rules []Rule) string {
	var b strings.Builder
	b.WriteString("# Managed by esnode boot: rewritten on every boot.\n")
	b.WriteString("table inet " + NFTable + "\n")
	b.WriteString("delete table inet " + NFTable + "\n")
	b.WriteString("table inet " + NFTable + " {\n")
	b.WriteString("\tchain input {\n")
	b.WriteString("\t\ttype filter hook input priority 0; policy drop;\n")
	b.WriteString("\t\tiif \"lo\" accept\n")
	b.WriteString("\t\tct state established,related accept\n")
	// IPv6 as on iptables: the managed ports closed, the rest (neighbour
	// discovery first of all) left to the image's other tables.
	if ports := managedPorts(rules); len(ports) > 0 {
		ps := make([]string, len(ports))
		for i, p := range ports {
			ps[i] = strconv.Itoa(p)
		}
		fmt.Fprintf(&b, "\t\tmeta nfproto ipv6 tcp dport { %s } drop\n", strings.Join(ps, ", "))
	}
	b.WriteString("\t\tmeta nfproto ipv6 accept\n")
	for _, r := range rules {
		fmt.Fprintf(&b, "\t\tip saddr %s tcp dport %d accept comment %q\n", r.CIDR, r.Port, r.What)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

const nftInclude = `include "` + NFTablesFile + `"`

// MergeNFTablesConf makes /etc/nftables.conf include esnode's file: one
// appended line; an absent file gets a minimal one.
func MergeNFTablesConf(old []byte) []byte {
	for _, l := range splitLines(string(old)) {
		if strings.TrimSpace(l) == nftInclude {
			return old
		}
	}
	if len(old) == 0 {
		return []byte("#!/usr/sbin/nft -f\n\nflush ruleset\n\n" + nftInclude + "\n")
	}
	s := string(old)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return []byte(s + nftInclude + "\n")
}

// DetectBackend picks the firewall the image uses when the spec says auto:
// an existing rules.v4 means iptables; an enabled nftables.service means
// nftables; otherwise whichever tool is installed, iptables first.
func DetectBackend(root, configured string) (string, error) {
	if configured != "" && configured != spec.FirewallAuto {
		return configured, nil
	}
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(root, p)); return err == nil }
	if exists(IPTablesRules) {
		return spec.FirewallIPTables, nil
	}
	if m, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/*.wants/nftables.service")); len(m) > 0 {
		return spec.FirewallNFTables, nil
	}
	for _, d := range []string{"usr/sbin", "sbin", "usr/bin"} {
		if exists(filepath.Join(d, "iptables-restore")) {
			return spec.FirewallIPTables, nil
		}
	}
	for _, d := range []string{"usr/sbin", "sbin", "usr/bin"} {
		if exists(filepath.Join(d, "nft")) {
			return spec.FirewallNFTables, nil
		}
	}
	return "", fmt.Errorf("no firewall found in the image (neither iptables-restore nor nft); install iptables or nftables at bake, or set firewall.backend")
}
