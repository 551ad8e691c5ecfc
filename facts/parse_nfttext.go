package facts

import (
	"fmt"
	"strings"
)

// ParseNFTText parses the common subset of nft's text syntax, as in
// /etc/nftables.conf or `nft list ruleset`: tables, base and regular chains
// with their type/hook/policy, and rules matching iif/iifname, ip/ip6
// saddr/daddr, tcp/udp/th dport, ip protocol / meta l4proto and ct state,
// ending in a verdict. Sets, maps, `define`, `include` and other statements
// are not evaluated: a rule using them is marked Other, a block is skipped,
// and each is listed in problems.
func ParseNFTText(data string) (NFTRuleset, []string) {
	p := &nftTextParser{}
	p.lex(data)
	p.top()
	return p.rs, p.problems
}

type nftTok struct {
	s    string
	line int
}

type nftTextParser struct {
	toks     []nftTok
	i        int
	rs       NFTRuleset
	problems []string
}

// lex splits into words, quoted strings and the punctuation { } ; , and
// newline (as ";"); comments run to the end of the line.
func (p *nftTextParser) lex(data string) {
	line := 1
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			p.toks = append(p.toks, nftTok{cur.String(), line})
			cur.Reset()
		}
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '#':
			flush()
			for i < len(data) && data[i] != '\n' {
				i++
			}
			i--
		case c == '"':
			flush()
			j := strings.IndexByte(data[i+1:], '"')
			if j < 0 {
				p.problems = append(p.problems, fmt.Sprintf("line %d: unterminated string", line))
				return
			}
			p.toks = append(p.toks, nftTok{data[i : i+j+2], line})
			line += strings.Count(data[i:i+j+2], "\n")
			i += j + 1
		case c == '\\' && i+1 < len(data) && data[i+1] == '\n':
			flush()
			line++
			i++
		case c == '\n':
			flush()
			p.toks = append(p.toks, nftTok{";", line})
			line++
		case c == '{' || c == '}' || c == ';' || c == ',':
			flush()
			p.toks = append(p.toks, nftTok{string(c), line})
		case c == ' ' || c == '\t' || c == '\r':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
}

func (p *nftTextParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i].s
	}
	return ""
}

func (p *nftTextParser) line() int {
	if p.i < len(p.toks) {
		return p.toks[p.i].line
	}
	if len(p.toks) > 0 {
		return p.toks[len(p.toks)-1].line
	}
	return 1
}

func (p *nftTextParser) next() string {
	s := p.peek()
	if p.i < len(p.toks) {
		p.i++
	}
	return s
}

func (p *nftTextParser) problem(format string, a ...any) {
	p.problems = append(p.problems, fmt.Sprintf("line %d: ", p.line())+fmt.Sprintf(format, a...))
}

// statement returns the tokens up to the next ";" at this level, or up to
// (not including) a "{" or "}".
func (p *nftTextParser) statement() []string {
	var out []string
	for p.i < len(p.toks) {
		s := p.peek()
		if s == ";" {
			p.i++
			break
		}
		if s == "{" || s == "}" {
			break
		}
		out = append(out, p.next())
	}
	return out
}

// skipBlock skips a balanced { ... } starting at "{".
func (p *nftTextParser) skipBlock() {
	depth := 0
	for p.i < len(p.toks) {
		switch p.next() {
		case "{":
			depth++
		case "}":
			depth--
			if depth <= 0 {
				return
			}
		}
	}
}

var nftFamilies = map[string]bool{"ip": true, "ip6": true, "inet": true, "arp": true, "bridge": true, "netdev": true}

func (p *nftTextParser) top() {
	for p.i < len(p.toks) {
		ln := p.line()
		st := p.statement()
		if len(st) == 0 {
			if p.peek() == "{" {
				p.problem("unexpected block")
				p.skipBlock()
			} else if p.peek() == "}" {
				p.problem("unbalanced }")
				p.i++
			}
			continue
		}
		switch st[0] {
		case "flush", "delete", "destroy":
			continue
		case "table", "add", "create":
			if st[0] != "table" {
				if len(st) < 2 || st[1] != "table" {
					p.problems = append(p.problems, fmt.Sprintf("line %d: %q is not read", ln, truncate(strings.Join(st, " "), 60)))
					continue
				}
				st = st[1:]
			}
			family, name := "ip", ""
			switch {
			case len(st) >= 3 && nftFamilies[st[1]]:
				family, name = st[1], st[2]
			case len(st) >= 2:
				name = st[1]
			}
			if name == "" {
				p.problems = append(p.problems, fmt.Sprintf("line %d: table without a name", ln))
				if p.peek() == "{" {
					p.skipBlock()
				}
				continue
			}
			if p.peek() != "{" {
				continue // `table inet x` alone declares it (esnode's atomic replace)
			}
			p.i++ // {
			p.table(family, name)
		default:
			p.problems = append(p.problems, fmt.Sprintf("line %d: %q is not read (define, include and commands are not evaluated)", ln, truncate(strings.Join(st, " "), 60)))
			if p.peek() == "{" {
				p.skipBlock()
			}
		}
	}
}

func (p *nftTextParser) table(family, name string) {
	for p.i < len(p.toks) {
		if p.peek() == "}" {
			p.i++
			return
		}
		ln := p.line()
		st := p.statement()
		if len(st) == 0 {
			if p.peek() == "{" {
				p.problem("unexpected block")
				p.skipBlock()
			}
			continue
		}
		if st[0] == "chain" && len(st) == 2 && p.peek() == "{" {
			p.i++
			p.chain(family, name, st[1])
			continue
		}
		p.problems = append(p.problems, fmt.Sprintf("line %d: %q in table %s %s is not read", ln, truncate(strings.Join(st, " "), 60), family, name))
		if p.peek() == "{" {
			p.skipBlock()
		}
	}
	p.problem("table %s %s is not closed", family, name)
}

func (p *nftTextParser) chain(family, table, name string) {
	ch := Chain{Backend: "nftables", Family: nftFamily(family), Table: table, Name: name}
	idx := len(p.rs.Chains)
	p.rs.Chains = append(p.rs.Chains, ch)
	for p.i < len(p.toks) {
		if p.peek() == "}" {
			p.i++
			return
		}
		ln := p.line()
		st := p.statement()
		if len(st) == 0 {
			if p.peek() == "{" {
				p.problem("unexpected block")
				p.skipBlock()
			}
			continue
		}
		// Anonymous sets: gather { a, b } into the statement.
		for p.peek() == "{" {
			p.i++
			var items []string
			for p.i < len(p.toks) && p.peek() != "}" {
				t := p.next()
				if t != ";" && t != "," {
					items = append(items, t)
				}
			}
			p.i++ // }
			st = append(st, "{"+strings.Join(items, ",")+"}")
			st = append(st, p.statement()...)
		}
		switch st[0] {
		case "type":
			c := &p.rs.Chains[idx]
			for j := 0; j+1 < len(st); j++ {
				if st[j] == "hook" {
					c.Hook = st[j+1]
				}
			}
			if c.Policy == "" {
				c.Policy = "ACCEPT"
			}
			continue
		case "policy":
			if len(st) >= 2 {
				p.rs.Chains[idx].Policy = strings.ToUpper(st[1])
			}
			continue
		case "comment", "devices":
			continue
		}
		r, err := nftTextRule(st)
		r.Family, r.Table, r.Chain = nftFamily(family), table, name
		r.Hook = p.rs.Chains[idx].Hook
		if err != nil {
			p.problems = append(p.problems, fmt.Sprintf("line %d: %v", ln, err))
		}
		p.rs.Rules = append(p.rs.Rules, r)
	}
	p.problem("chain %s is not closed", name)
}

// nftTextRule reads one rule's words; sets arrive as "{a,b}".
func nftTextRule(st []string) (FirewallRule, error) {
	r := FirewallRule{Backend: "nftables", DPorts: []PortRange{}, Sources: []string{}, Raw: truncate(strings.Join(st, " "), 2000)}
	var errs []string
	i := 0
	arg := func() (string, bool) {
		neg := false
		if i < len(st) && (st[i] == "!=" || st[i] == "==") {
			neg = st[i] == "!="
			i++
		}
		if i >= len(st) {
			return "", neg
		}
		v := st[i]
		i++
		return v, neg
	}
	values := func(v string) []string {
		v = strings.TrimSuffix(strings.TrimPrefix(v, "{"), "}")
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	for i < len(st) {
		w := st[i]
		i++
		switch {
		case w == "iif" || w == "iifname" || (w == "meta" && i < len(st) && (st[i] == "iif" || st[i] == "iifname")):
			if w == "meta" {
				i++
			}
			v, neg := arg()
			v = strings.Trim(v, `"`)
			if neg {
				v = "!" + v
			}
			r.InInterface = v
		case (w == "ip" || w == "ip6") && i < len(st) && (st[i] == "saddr" || st[i] == "daddr"):
			field := st[i]
			i++
			v, neg := arg()
			if strings.HasPrefix(v, "@") || strings.HasPrefix(v, "$") {
				r.Other = true
				errs = append(errs, fmt.Sprintf("%s %s %s: named sets and variables are not resolved", w, field, v))
				continue
			}
			if field == "saddr" {
				r.Sources, r.SourcesNegated = append(r.Sources, values(v)...), neg
			} else {
				r.Destinations, r.DestinationNegated = append(r.Destinations, values(v)...), neg
			}
		case (w == "ip" && i < len(st) && st[i] == "protocol") || (w == "ip6" && i < len(st) && st[i] == "nexthdr") || (w == "meta" && i < len(st) && st[i] == "l4proto"):
			i++
			v, neg := arg()
			if neg || strings.HasPrefix(v, "{") {
				r.Other = true
			} else {
				r.Proto = v
			}
		case (w == "tcp" || w == "udp" || w == "th") && i < len(st) && st[i] == "dport":
			i++
			if w != "th" {
				r.Proto = w
			}
			v, neg := arg()
			if strings.HasPrefix(v, "@") || strings.HasPrefix(v, "$") {
				r.Other = true
				errs = append(errs, fmt.Sprintf("dport %s: named sets and variables are not resolved", v))
				continue
			}
			for _, s := range values(v) {
				pr, err := parsePortRange(s, "-")
				if err != nil {
					r.Other = true
					errs = append(errs, fmt.Sprintf("dport: %v (service names are not resolved)", err))
					continue
				}
				r.DPorts = append(r.DPorts, pr)
			}
			r.DPortsNegated = neg
		case w == "ct" && i < len(st) && st[i] == "state":
			i++
			v, neg := arg()
			if neg {
				r.Other = true
				continue
			}
			r.CTState = append(r.CTState, values(v)...)
		case w == "accept" || w == "drop" || w == "return" || w == "queue":
			r.Target = strings.ToUpper(w)
		case w == "reject":
			r.Target = "REJECT"
			if i < len(st) && st[i] == "with" {
				i = len(st)
			}
		case w == "jump" || w == "goto":
			if i < len(st) {
				r.Target = st[i]
				i++
			}
		case w == "counter":
			for i+1 < len(st) && (st[i] == "packets" || st[i] == "bytes") {
				i += 2
			}
		case w == "log" || w == "comment":
			for i < len(st) && (st[i] == "prefix" || st[i] == "level" || st[i] == "flags" || strings.HasPrefix(st[i], `"`)) {
				if st[i] == "prefix" || st[i] == "level" || st[i] == "flags" {
					i++
				}
				i++
			}
		default:
			r.Other = true
		}
	}
	if len(errs) > 0 {
		return r, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return r, nil
}
