package facts

import (
	"fmt"
	"strconv"
	"strings"
)

// IPTablesRuleset is a parsed iptables-save (or ip6tables-save) dump.
type IPTablesRuleset struct {
	Chains []Chain
	Rules  []FirewallRule
}

var builtinHooks = map[string]string{
	"INPUT": "input", "FORWARD": "forward", "OUTPUT": "output",
	"PREROUTING": "prerouting", "POSTROUTING": "postrouting",
}

// ParseIPTablesSave parses iptables-save output; family is "ipv4" or
// "ipv6". Lines it cannot read are problems; the rest still count.
func ParseIPTablesSave(data, family string) (IPTablesRuleset, []string) {
	var rs IPTablesRuleset
	var problems []string
	table := ""
	for i, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		n := i + 1
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			table = strings.TrimSpace(line[1:])
		case line == "COMMIT":
			table = ""
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				problems = append(problems, fmt.Sprintf("line %d: chain line %q has no policy", n, truncate(line, 80)))
				continue
			}
			c := Chain{Backend: "iptables", Family: family, Table: table, Name: f[0], Hook: builtinHooks[f[0]]}
			if f[1] != "-" {
				c.Policy = strings.ToUpper(f[1])
			}
			rs.Chains = append(rs.Chains, c)
		case strings.HasPrefix(line, "-A ") || strings.HasPrefix(line, "-I "):
			if table == "" {
				problems = append(problems, fmt.Sprintf("line %d: rule outside a *table section", n))
				continue
			}
			r, err := parseIPTablesRule(line, table, family)
			if err != nil {
				problems = append(problems, fmt.Sprintf("line %d: %v", n, err))
				continue
			}
			rs.Rules = append(rs.Rules, r)
		default:
			problems = append(problems, fmt.Sprintf("line %d: %q is not iptables-save output", n, truncate(line, 80)))
		}
	}
	return rs, problems
}

func parseIPTablesRule(line, table, family string) (FirewallRule, error) {
	args, err := splitShellWords(line)
	if err != nil {
		return FirewallRule{}, err
	}
	r := FirewallRule{Backend: "iptables", Family: family, Table: table, DPorts: []PortRange{}, Sources: []string{}, Raw: line}
	neg := false
	next := func(i *int) (string, error) {
		if *i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value", args[*i])
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "!" {
			neg = true
			continue
		}
		var v string
		switch a {
		case "-A", "-I", "--append", "--insert":
			if v, err = next(&i); err != nil {
				return r, err
			}
			r.Chain = v
			r.Hook = builtinHooks[v]
			// -I CHAIN N: skip a rule number.
			if (a == "-I" || a == "--insert") && i+1 < len(args) && isDigits(args[i+1]) {
				i++
			}
		case "-p", "--protocol":
			if v, err = next(&i); err != nil {
				return r, err
			}
			if neg {
				r.Other = true
			} else {
				r.Proto = strings.ToLower(v)
			}
		case "-s", "--source", "--src":
			if v, err = next(&i); err != nil {
				return r, err
			}
			r.Sources = append(r.Sources, strings.Split(v, ",")...)
			r.SourcesNegated = neg
		case "-d", "--destination", "--dst":
			if v, err = next(&i); err != nil {
				return r, err
			}
			r.Destinations = append(r.Destinations, strings.Split(v, ",")...)
			r.DestinationNegated = neg
		case "-i", "--in-interface":
			if v, err = next(&i); err != nil {
				return r, err
			}
			if neg {
				v = "!" + v
			}
			r.InInterface = v
		case "--dport", "--destination-port", "--dports", "--destination-ports":
			if v, err = next(&i); err != nil {
				return r, err
			}
			for _, p := range strings.Split(v, ",") {
				pr, perr := parsePortRange(p, ":")
				if perr != nil {
					return r, perr
				}
				r.DPorts = append(r.DPorts, pr)
			}
			r.DPortsNegated = neg
		case "--state", "--ctstate":
			if v, err = next(&i); err != nil {
				return r, err
			}
			if neg {
				r.Other = true
			} else {
				r.CTState = strings.Split(strings.ToLower(v), ",")
			}
		case "-j", "--jump", "-g", "--goto":
			if v, err = next(&i); err != nil {
				return r, err
			}
			r.Target = v
			// Target options (--reject-with ...) follow; they do not change
			// what the rule matches.
			i = len(args)
		case "-m", "--match":
			if v, err = next(&i); err != nil {
				return r, err
			}
			switch v {
			case "state", "conntrack", "tcp", "udp", "multiport", "comment":
			default:
				r.Other = true
			}
		case "--comment":
			if _, err = next(&i); err != nil {
				return r, err
			}
		case "-c", "--set-counters":
			i += 2
		default:
			// An unmodelled match option; skip its value if it has one.
			r.Other = true
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && args[i+1] != "!" {
				i++
			}
		}
		neg = false
	}
	if r.Chain == "" {
		return r, fmt.Errorf("rule has no chain")
	}
	return r, nil
}

func parsePortRange(s, sep string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, sep)
	a, err := strconv.Atoi(lo)
	if err != nil || a < 0 || a > 65535 {
		return PortRange{}, fmt.Errorf("port %q is not a number 0-65535", s)
	}
	b := a
	if isRange {
		if hi == "" {
			b = 65535
		} else if b, err = strconv.Atoi(hi); err != nil || b < a || b > 65535 {
			return PortRange{}, fmt.Errorf("port range %q is invalid", s)
		}
	}
	return PortRange{From: a, To: b}, nil
}

func isDigits(s string) bool {
	return s != "" && strings.TrimLeft(s, "0123456789") == ""
}

// splitShellWords splits a line as iptables-save quotes it: words separated
// by blanks, double quotes group, backslash escapes inside quotes.
func splitShellWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (c == ' ' || c == '\t'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
