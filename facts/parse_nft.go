package facts

import (
	"encoding/json"
	"fmt"
	"strings"
)

// NFTRuleset is a parsed `nft -j list ruleset`.
type NFTRuleset struct {
	Chains []Chain
	Rules  []FirewallRule
}

// ParseNFTJSON parses `nft -j list ruleset` output. Expressions it does not
// model set FirewallRule.Other; a rule it cannot read at all is a problem.
func ParseNFTJSON(data []byte) (NFTRuleset, []string) {
	var rs NFTRuleset
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return rs, []string{fmt.Sprintf("not nft JSON: %v", err)}
	}
	var problems []string
	hooks := map[string]string{} // family/table/chain -> hook
	type rawRule struct {
		Family, Table, Chain string
		Handle               json.RawMessage
		Expr                 []map[string]json.RawMessage
	}
	var rules []rawRule
	for i, obj := range doc.Nftables {
		if c, ok := obj["chain"]; ok {
			var ch struct {
				Family, Table, Name, Type, Hook, Policy string
			}
			if err := json.Unmarshal(c, &ch); err != nil {
				problems = append(problems, fmt.Sprintf("object %d: chain: %v", i, err))
				continue
			}
			out := Chain{Backend: "nftables", Family: nftFamily(ch.Family), Table: ch.Table, Name: ch.Name, Hook: ch.Hook}
			if ch.Hook != "" {
				out.Policy = strings.ToUpper(ch.Policy)
				if out.Policy == "" {
					out.Policy = "ACCEPT"
				}
			}
			hooks[ch.Family+"/"+ch.Table+"/"+ch.Name] = ch.Hook
			rs.Chains = append(rs.Chains, out)
		}
		if r, ok := obj["rule"]; ok {
			var rr rawRule
			if err := json.Unmarshal(r, &rr); err != nil {
				problems = append(problems, fmt.Sprintf("object %d: rule: %v", i, err))
				continue
			}
			rules = append(rules, rr)
		}
	}
	for _, rr := range rules {
		raw, _ := json.Marshal(rr.Expr)
		r := FirewallRule{
			Backend: "nftables", Family: nftFamily(rr.Family), Table: rr.Table, Chain: rr.Chain,
			Hook: hooks[rr.Family+"/"+rr.Table+"/"+rr.Chain], DPorts: []PortRange{}, Sources: []string{},
			Raw: truncate(string(raw), 2000),
		}
		for _, e := range rr.Expr {
			if err := nftExpr(&r, e); err != nil {
				problems = append(problems, fmt.Sprintf("rule in %s %s chain %s: %v", rr.Family, rr.Table, rr.Chain, err))
				r.Other = true
			}
		}
		rs.Rules = append(rs.Rules, r)
	}
	return rs, problems
}

func nftFamily(f string) string {
	switch f {
	case "ip":
		return "ipv4"
	case "ip6":
		return "ipv6"
	}
	return f
}

func nftExpr(r *FirewallRule, e map[string]json.RawMessage) error {
	for k, v := range e {
		switch k {
		case "match":
			return nftMatch(r, v)
		case "accept", "drop", "return", "reject", "queue":
			r.Target = strings.ToUpper(k)
		case "jump", "goto":
			var t struct{ Target string }
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			r.Target = t.Target
		case "counter", "log", "comment", "limit":
			if k == "limit" {
				r.Other = true
			}
		default:
			r.Other = true
		}
	}
	return nil
}

func nftMatch(r *FirewallRule, raw json.RawMessage) error {
	var m struct {
		Op    string
		Left  map[string]json.RawMessage
		Right json.RawMessage
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("match: %w", err)
	}
	neg := m.Op == "!="
	if m.Op != "==" && m.Op != "!=" && m.Op != "in" && m.Op != "" {
		r.Other = true
		return nil
	}
	if p, ok := m.Left["payload"]; ok {
		var pl struct{ Protocol, Field string }
		if err := json.Unmarshal(p, &pl); err != nil {
			return fmt.Errorf("payload: %w", err)
		}
		switch {
		case (pl.Protocol == "tcp" || pl.Protocol == "udp" || pl.Protocol == "th") && pl.Field == "dport":
			if pl.Protocol != "th" {
				r.Proto = pl.Protocol
			}
			ports, err := nftPorts(m.Right)
			if err != nil {
				return err
			}
			r.DPorts = append(r.DPorts, ports...)
			r.DPortsNegated = neg
		case (pl.Protocol == "ip" || pl.Protocol == "ip6") && pl.Field == "saddr":
			addrs, err := nftAddrs(m.Right)
			if err != nil {
				return err
			}
			r.Sources = append(r.Sources, addrs...)
			r.SourcesNegated = neg
		case (pl.Protocol == "ip" || pl.Protocol == "ip6") && pl.Field == "daddr":
			addrs, err := nftAddrs(m.Right)
			if err != nil {
				return err
			}
			r.Destinations = append(r.Destinations, addrs...)
			r.DestinationNegated = neg
		case (pl.Protocol == "ip" && pl.Field == "protocol") || (pl.Protocol == "ip6" && pl.Field == "nexthdr"):
			return nftProto(r, m.Right, neg)
		default:
			r.Other = true
		}
		return nil
	}
	if c, ok := m.Left["ct"]; ok {
		var ct struct{ Key string }
		if err := json.Unmarshal(c, &ct); err != nil {
			return fmt.Errorf("ct: %w", err)
		}
		if ct.Key != "state" || neg {
			r.Other = true
			return nil
		}
		states, err := nftStrings(m.Right)
		if err != nil {
			return fmt.Errorf("ct state: %w", err)
		}
		r.CTState = append(r.CTState, states...)
		return nil
	}
	if mt, ok := m.Left["meta"]; ok {
		var meta struct{ Key string }
		if err := json.Unmarshal(mt, &meta); err != nil {
			return fmt.Errorf("meta: %w", err)
		}
		switch meta.Key {
		case "l4proto":
			return nftProto(r, m.Right, neg)
		case "iifname", "iif":
			names, err := nftStrings(m.Right)
			if err != nil || len(names) != 1 {
				r.Other = true
				return nil
			}
			if neg {
				names[0] = "!" + names[0]
			}
			r.InInterface = names[0]
		default:
			r.Other = true
		}
		return nil
	}
	r.Other = true
	return nil
}

func nftProto(r *FirewallRule, right json.RawMessage, neg bool) error {
	var s string
	if err := json.Unmarshal(right, &s); err != nil || neg {
		r.Other = true
		return nil
	}
	r.Proto = s
	return nil
}

// nftSetItems unwraps {"set": [...]} into its items, or returns the value.
func nftSetItems(right json.RawMessage) ([]json.RawMessage, error) {
	var set struct {
		Set []json.RawMessage `json:"set"`
	}
	if len(right) > 0 && right[0] == '{' {
		if err := json.Unmarshal(right, &set); err == nil && set.Set != nil {
			return set.Set, nil
		}
	}
	if len(right) > 0 && right[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(right, &list); err != nil {
			return nil, err
		}
		return list, nil
	}
	return []json.RawMessage{right}, nil
}

func nftPorts(right json.RawMessage) ([]PortRange, error) {
	items, err := nftSetItems(right)
	if err != nil {
		return nil, fmt.Errorf("dport: %w", err)
	}
	var out []PortRange
	for _, it := range items {
		var n int
		if err := json.Unmarshal(it, &n); err == nil {
			if n < 0 || n > 65535 {
				return nil, fmt.Errorf("dport %d out of range", n)
			}
			out = append(out, PortRange{n, n})
			continue
		}
		var rg struct {
			Range [2]int `json:"range"`
		}
		if err := json.Unmarshal(it, &rg); err == nil && rg.Range[0] >= 0 && rg.Range[1] >= rg.Range[0] && rg.Range[1] <= 65535 {
			out = append(out, PortRange{rg.Range[0], rg.Range[1]})
			continue
		}
		return nil, fmt.Errorf("dport %s is not a port, range or set of them (named sets are not resolved)", truncate(string(it), 60))
	}
	return out, nil
}

func nftAddrs(right json.RawMessage) ([]string, error) {
	items, err := nftSetItems(right)
	if err != nil {
		return nil, fmt.Errorf("address: %w", err)
	}
	var out []string
	for _, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err == nil {
			if strings.HasPrefix(s, "@") {
				return nil, fmt.Errorf("named set %s is not resolved", s)
			}
			out = append(out, s)
			continue
		}
		var p struct {
			Prefix struct {
				Addr string `json:"addr"`
				Len  int    `json:"len"`
			} `json:"prefix"`
		}
		if err := json.Unmarshal(it, &p); err == nil && p.Prefix.Addr != "" {
			out = append(out, fmt.Sprintf("%s/%d", p.Prefix.Addr, p.Prefix.Len))
			continue
		}
		var rg struct {
			Range [2]string `json:"range"`
		}
		if err := json.Unmarshal(it, &rg); err == nil && rg.Range[0] != "" {
			out = append(out, rg.Range[0]+"-"+rg.Range[1])
			continue
		}
		return nil, fmt.Errorf("address %s is not an address, prefix or range", truncate(string(it), 60))
	}
	return out, nil
}

func nftStrings(right json.RawMessage) ([]string, error) {
	items, err := nftSetItems(right)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			return nil, fmt.Errorf("%s is not a string", truncate(string(it), 60))
		}
		out = append(out, s)
	}
	return out, nil
}
