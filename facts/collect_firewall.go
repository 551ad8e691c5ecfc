package facts

import (
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"regexp"
	"sort"
	"strings"
)

const maxRaw = 64 << 10

// iptablesNFTTables are the tables iptables-nft creates; they are the
// iptables ruleset seen through nft, not a separate nftables ruleset.
var iptablesNFTTables = map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}

func (c *collector) firewall() {
	fw := &c.f.Firewall
	fw.Source, fw.Chains, fw.Rules = []string{}, []Chain{}, []FirewallRule{}
	var raw strings.Builder
	addRaw := func(label, s string) {
		raw.WriteString("# " + label + "\n" + s)
		if !strings.HasSuffix(s, "\n") {
			raw.WriteString("\n")
		}
	}
	ipt := false
	v6seen := false
	addIPT := func(label, data, family string) {
		rs, problems := ParseIPTablesSave(data, family)
		for _, p := range problems {
			c.failf("firewall", "%s %s", label, p)
		}
		if len(rs.Rules) == 0 && allAccept(rs.Chains) {
			return // an empty ruleset: nothing this backend enforces
		}
		ipt = true
		if family == "ipv6" {
			v6seen = true
		}
		fw.Source = append(fw.Source, label)
		fw.Chains = append(fw.Chains, rs.Chains...)
		fw.Rules = append(fw.Rules, rs.Rules...)
		addRaw(label, data)
	}
	nft := false
	addNFT := func(label string, data []byte) {
		rs, problems := ParseNFTJSON(data)
		for _, p := range problems {
			c.failf("firewall", "%s: %s", label, p)
		}
		skip := func(family, table string) bool {
			return ipt && (family == "ipv4" || family == "ipv6") && iptablesNFTTables[table]
		}
		var chains []Chain
		var rules []FirewallRule
		for _, ch := range rs.Chains {
			if !skip(ch.Family, ch.Table) {
				chains = append(chains, ch)
			}
		}
		for _, r := range rs.Rules {
			if !skip(r.Family, r.Table) {
				rules = append(rules, r)
			}
		}
		if len(rules) == 0 && allAccept(chains) {
			return
		}
		nft = true
		for _, ch := range chains {
			if ch.Family == "ipv6" || ch.Family == "inet" {
				v6seen = true
			}
		}
		fw.Source = append(fw.Source, label)
		fw.Chains = append(fw.Chains, chains...)
		fw.Rules = append(fw.Rules, rules...)
		addRaw(label, string(data))
	}

	// nft text (/etc/nftables.conf) is read only under --root; live, the
	// kernel's ruleset comes from nft -j.
	addNFTText := func(label, data string) {
		rs, problems := ParseNFTText(data)
		for _, p := range problems {
			c.failf("firewall", "%s %s", label, p)
		}
		if len(rs.Rules) == 0 && allAccept(rs.Chains) {
			return
		}
		nft = true
		for _, ch := range rs.Chains {
			if ch.Family == "ipv6" || ch.Family == "inet" {
				v6seen = true
			}
		}
		fw.Source = append(fw.Source, label)
		fw.Chains = append(fw.Chains, rs.Chains...)
		fw.Rules = append(fw.Rules, rs.Rules...)
		addRaw(label, data)
	}
	if c.opts.Live {
		found := 0
		for _, cmd := range []struct{ name, family string }{{"iptables-save", "ipv4"}, {"ip6tables-save", "ipv6"}} {
			out, err := c.run(c.opts.CommandTimeout, cmd.name)
			if err != nil {
				if !errors.Is(err, exec.ErrNotFound) {
					found++
					c.fail("firewall", err)
				}
				continue
			}
			found++
			addIPT(cmd.name, string(out), cmd.family)
		}
		out, err := c.run(c.opts.CommandTimeout, "nft", "-j", "list", "ruleset")
		switch {
		case err == nil:
			found++
			addNFT("nft -j list ruleset", out)
		case !errors.Is(err, exec.ErrNotFound):
			found++
			c.fail("firewall", err)
		}
		if found == 0 {
			c.fail("firewall", fmt.Errorf("neither iptables-save nor nft is installed, so the live ruleset is unknown; install iptables or nftables"))
		}
	} else {
		for _, f := range []struct{ path, family string }{
			{"/etc/iptables/rules.v4", "ipv4"}, {"/etc/iptables/rules.v6", "ipv6"},
			{"/etc/sysconfig/iptables", "ipv4"}, {"/etc/sysconfig/ip6tables", "ipv6"},
		} {
			if !c.fs.Exists(f.path) {
				continue
			}
			s, err := c.fs.ReadText(f.path)
			if err != nil {
				c.fail("firewall", err)
				continue
			}
			addIPT(f.path, s, f.family)
		}
		if c.fs.Exists("/etc/nftables.json") {
			if b, err := c.fs.ReadFile("/etc/nftables.json"); err != nil {
				c.fail("firewall", err)
			} else {
				addNFT("/etc/nftables.json", b)
			}
		} else if c.fs.Exists("/etc/nftables.conf") {
			if s, err := c.fs.ReadText("/etc/nftables.conf"); err != nil {
				c.fail("firewall", err)
			} else {
				addNFTText("/etc/nftables.conf", c.expandNFTIncludes(s, 0))
			}
		}
	}
	switch {
	case ipt && nft:
		fw.Backend = "iptables+nftables"
	case ipt:
		fw.Backend = "iptables"
	case nft:
		fw.Backend = "nftables"
	default:
		fw.Backend = "none"
	}
	propagateHooks(fw.Chains, fw.Rules)
	fw.DefaultInputPolicy = inputPolicy(fw.Chains, "ipv4")
	if v6seen {
		fw.DefaultInputPolicy6 = inputPolicy(fw.Chains, "ipv6")
	}
	r := raw.String()
	if len(r) > maxRaw {
		r, fw.RawTruncated = r[:maxRaw], true
	}
	fw.Raw = r
}

func allAccept(chains []Chain) bool {
	for _, ch := range chains {
		if ch.Policy != "" && ch.Policy != "ACCEPT" {
			return false
		}
	}
	return true
}

// inputPolicy is DROP when any filtering input hook for the family drops by
// default (a packet must pass every base chain), ACCEPT otherwise.
func inputPolicy(chains []Chain, family string) string {
	for _, ch := range chains {
		if ch.Hook != "input" || (ch.Family != family && ch.Family != "inet") {
			continue
		}
		if ch.Backend == "iptables" && ch.Table != "filter" {
			continue
		}
		if ch.Policy == "DROP" {
			return "DROP"
		}
	}
	return "ACCEPT"
}

var nftIncludeLine = regexp.MustCompile(`^\s*include\s+"([^"]+)"\s*;?\s*(#.*)?$`)

// expandNFTIncludes replaces `include "path"` lines (globs allowed) with the
// files' text, read under the root, as nft does when loading the file.
func (c *collector) expandNFTIncludes(text string, depth int) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		m := nftIncludeLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		pattern := m[1]
		if !path.IsAbs(pattern) {
			pattern = "/etc/" + pattern // nft's default include path
		}
		if depth >= 8 {
			c.failf("firewall", "nft include %q: includes nest deeper than 8", m[1])
			lines[i] = ""
			continue
		}
		files := []string{pattern}
		if strings.ContainsAny(path.Base(pattern), "*?[") {
			files = nil
			ents, err := c.fs.ReadDir(path.Dir(pattern))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.failf("firewall", "nft include %q: %v", m[1], err)
			}
			for _, e := range ents {
				if ok, _ := path.Match(path.Base(pattern), e.Name()); ok && !e.IsDir() {
					files = append(files, path.Join(path.Dir(pattern), e.Name()))
				}
			}
			sort.Strings(files)
		}
		var b strings.Builder
		for _, f := range files {
			data, err := c.fs.ReadText(f)
			if err != nil {
				c.failf("firewall", "nft include %q: %v", m[1], err)
				continue
			}
			b.WriteString(c.expandNFTIncludes(data, depth+1))
			b.WriteString("\n")
		}
		lines[i] = b.String()
	}
	out := strings.Join(lines, "\n")
	if len(out) > DefaultMaxFileBytes {
		c.failf("firewall", "nftables configuration with its includes is larger than %d bytes; only the first part is read", DefaultMaxFileBytes)
		out = out[:DefaultMaxFileBytes]
	}
	return out
}

// propagateHooks gives rules in regular chains the hook of the base chains
// that jump (or go) to them, so `hook == "input"` finds every rule an
// incoming packet can meet. The jump's own matches are not carried over, so
// such a rule may match less than its fields say.
func propagateHooks(chains []Chain, rules []FirewallRule) {
	key := func(backend, family, table, chain string) string {
		return backend + "\x00" + family + "\x00" + table + "\x00" + chain
	}
	hook := map[string]string{}
	for _, ch := range chains {
		if ch.Hook != "" {
			hook[key(ch.Backend, ch.Family, ch.Table, ch.Name)] = ch.Hook
		}
	}
	// Iterate to a fixed point; chains form a DAG in valid rulesets, and the
	// bound stops a cycle in a broken one.
	for range 32 {
		changed := false
		for _, r := range rules {
			h := hook[key(r.Backend, r.Family, r.Table, r.Chain)]
			if h == "" || r.Target == "" {
				continue
			}
			k := key(r.Backend, r.Family, r.Table, r.Target)
			if _, ok := hook[k]; !ok && isChainTarget(r.Target) {
				hook[k] = h
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	for i := range rules {
		if rules[i].Hook == "" {
			rules[i].Hook = hook[key(rules[i].Backend, rules[i].Family, rules[i].Table, rules[i].Chain)]
		}
	}
}

func isChainTarget(t string) bool {
	switch t {
	case "ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "QUEUE", "MASQUERADE", "DNAT", "SNAT", "REDIRECT", "MARK", "CT", "NOTRACK":
		return false
	}
	return true
}
