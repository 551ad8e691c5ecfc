package spec

import (
	"fmt"
	"net"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"
)

// CheckCORSOrigin refuses an http.cors.allow-origin value that lets web
// pages of domains the user cannot own call the cluster. It reads the value
// as Elasticsearch does (RestUtils.checkCorsSettingForRegex and
// corsSettingAsArray, CorsHandler.buildConfig): exactly "*" is any origin;
// a value longer than two characters that starts and ends with "/" is a
// java.util.regex.Pattern matched against the whole Origin header
// (matcher(origin).matches()); anything else is a comma-separated list of
// literal origins.
//
// A regex is checked in Go, so it must stay inside the syntax both engines
// read the same way (javaCompatible); anything else fails closed, such as
// Java's possessive /.*+/, which Go cannot compile. An accepted regex
// matches no origin whose registrable domain (eTLD+1) is not spelled out in
// it: esnode enumerates what each wildcard in the pattern can produce
// (attacker host names among them) and refuses the pattern when one of
// those reaches the registrable domain, or when it matches "null" (the
// Origin of every sandboxed page).
func CheckCORSOrigin(value string) error {
	if value == "" {
		return nil
	}
	if strings.TrimSpace(value) == "*" {
		return fmt.Errorf("%q lets every web origin call the cluster; list the origins that need it, such as https://app.example.com", value)
	}
	if v := strings.TrimSpace(value); len(v) > 2 && strings.HasPrefix(v, "/") && strings.HasSuffix(v, "/") {
		return checkCORSRegex(v[1 : len(v)-1])
	}
	for _, o := range strings.Split(value, ",") {
		switch strings.TrimSpace(o) {
		case "null":
			return fmt.Errorf("%q allows the origin \"null\", which every sandboxed iframe and file:// page sends; remove it", value)
		case "*":
			return fmt.Errorf("%q: inside a list Elasticsearch reads * as a literal origin, not a wildcard; list the origins that need CORS", value)
		}
	}
	return nil
}

// attackerOrigins are origins nobody running a cluster owns; a pattern
// matching one is open whatever else it does.
var attackerOrigins = []string{"https://attacker.invalid", "http://x", "https://a.b.example:8443", "null", "https://evil.com", "http://localhost.attacker.test"}

// maxCORSCandidates bounds the enumeration; a larger pattern fails closed.
const maxCORSCandidates = 20000

func checkCORSRegex(pat string) error {
	if err := javaCompatible(pat); err != nil {
		return fmt.Errorf("CORS pattern /%s/ %v, so esnode cannot tell which origins Elasticsearch's Java regex admits; use only literals, \\-escaped punctuation, \\d \\w \\s, ., [...] classes, (...), (?:...), |, ?, *, +, {n,m} and (?i), or list the origins", pat, err)
	}
	re, err := regexp.Compile("^(?:" + pat + ")$")
	if err != nil {
		return fmt.Errorf("CORS pattern /%s/ does not compile (%v), so esnode cannot check it; fix the pattern or list the origins", pat, err)
	}
	for _, o := range attackerOrigins {
		if re.MatchString(o) {
			return corsOpen(pat, o)
		}
	}
	tree, err := syntax.Parse(pat, syntax.Perl)
	if err != nil {
		return fmt.Errorf("CORS pattern /%s/: %v", pat, err)
	}
	g := &corsGen{}
	cands := g.gen(tree) // not Simplify: it unrolls x{n,m} into n..m single wildcards
	if g.overflow {
		return fmt.Errorf("CORS pattern /%s/ has too many alternatives for esnode to check (over %d); split it or list the origins", pat, maxCORSCandidates)
	}
	for _, c := range cands {
		s := string(c.text)
		if !re.MatchString(s) {
			continue
		}
		if openOrigin(c) {
			return corsOpen(pat, s)
		}
	}
	return nil
}

func corsOpen(pat, origin string) error {
	return fmt.Errorf("CORS pattern /%s/ admits %q: Elasticsearch matches the whole Origin against it, so pages of domains you do not own could call the cluster; spell out every domain, such as /https:\\/\\/(app|admin)\\.example\\.com/", pat, origin)
}

var originForm = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?)(?::[0-9]{1,5})?$`)

// openOrigin reports whether a candidate is a web origin whose registrable
// domain (or public IP) holds a character a wildcard produced.
func openOrigin(c cand) bool {
	s := string(c.text)
	m := originForm.FindStringSubmatchIndex(s)
	if m == nil {
		return false // no browser sends it
	}
	hostStart, hostEnd := m[2], m[3]
	host := strings.ToLower(s[hostStart:hostEnd])
	regStart := hostStart
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsPrivate() || ip.IsLoopback() {
			return false
		}
	} else if reg, err := publicsuffix.EffectiveTLDPlusOne(strings.TrimSuffix(host, ".")); err == nil {
		regStart = hostStart + strings.LastIndex(host, reg)
	}
	// c.wild is per rune; convert byte offsets.
	i := 0
	for off := range s {
		if off >= regStart && off < hostEnd && c.wild[i] {
			return true
		}
		i++
	}
	return false
}

// javaCompatible accepts the syntax java.util.regex and Go's RE2 read
// the same way for whole-string matching of ASCII origins.
func javaCompatible(pat string) error {
	inClass := false
	classStart := 0
	for i := 0; i < len(pat); {
		r, size := utf8.DecodeRuneInString(pat[i:])
		switch {
		case r == '\\':
			if i+1 >= len(pat) {
				return fmt.Errorf("ends with a lone backslash")
			}
			e := pat[i+1]
			if !strings.ContainsRune("dDwWsS", rune(e)) && !(e < 0x80 && isPunct(e)) {
				return fmt.Errorf("uses the escape \\%c, which the two regex engines read differently or only one knows", e)
			}
			i += 2
			continue
		case inClass:
			switch {
			case r == '[':
				return fmt.Errorf("nests [ inside a character class (a union in Java, a literal in Go)")
			case r == '&' && strings.HasPrefix(pat[i:], "&&"):
				return fmt.Errorf("uses && inside a character class (an intersection in Java only)")
			case r == ']' && i == classStart:
				return fmt.Errorf("starts a character class with ]; escape it as \\]")
			case r == ']':
				inClass = false
			}
		case r == '[':
			inClass = true
			classStart = i + 1
			if strings.HasPrefix(pat[i+1:], "^") {
				classStart++
			}
		case r == '(' && strings.HasPrefix(pat[i:], "(?"):
			rest := pat[i+2:]
			if !strings.HasPrefix(rest, ":") && !strings.HasPrefix(rest, "i)") && !strings.HasPrefix(rest, "i:") {
				return fmt.Errorf("uses the group or flag syntax %q (only (?:...) and (?i) read the same in Java and Go)", trunc(pat[i:], 5))
			}
		case r == '{':
			if !quantifier.MatchString(pat[i:]) {
				return fmt.Errorf("uses { outside a {n}, {n,} or {n,m} repetition (an error in Java, a literal in Go); escape it as \\{")
			}
		case (r == '+') && i > 0 && strings.ContainsRune("*+?}", rune(pat[i-1])) && (i < 2 || pat[i-2] != '\\'):
			return fmt.Errorf("uses a possessive quantifier (%s+), which only Java knows", string(pat[i-1]))
		}
		i += size
	}
	if inClass {
		return fmt.Errorf("leaves a character class open")
	}
	return nil
}

var quantifier = regexp.MustCompile(`^\{[0-9]+(,[0-9]*)?\}`)

func isPunct(b byte) bool {
	return b >= '!' && b <= '/' || b >= ':' && b <= '@' || b >= '[' && b <= '`' || b >= '{' && b <= '~'
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// cand is a string a pattern may match; wild marks the runes a wildcard
// (., a wide class) produced.
type cand struct {
	text []rune
	wild []bool
}

// wildFillers are what a repeated wildcard is asked to produce: whole
// attacker hosts and origins, label boundaries, short runs.
var wildFillers = []string{"z", "zz", "attacker", "attacker.test", ".attacker.test", "-attacker.test", "attacker.test.", "//attacker.test", "https://attacker.test", "http://attacker.test", "attacker.test:8443", "8443", "1"}

// corsGen enumerates candidates; work bounds the runes it builds, so a
// pattern such as a{1000}{1000} fails closed instead of running long.
type corsGen struct {
	overflow bool
	work     int
}

const maxCORSWork = 4 << 20

func (g *corsGen) limit(out []cand) []cand {
	if len(out) > maxCORSCandidates {
		g.overflow = true
		return out[:maxCORSCandidates]
	}
	return out
}

// classRunes lists a class's runes up to max+1 (to tell small from wide).
func classRunes(re *syntax.Regexp, max int) []rune {
	var out []rune
	switch re.Op {
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return nil
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				out = append(out, r)
				if len(out) > max {
					return out
				}
			}
		}
	}
	return out
}

// matchesRune reports whether a single-character node matches r.
func matchesRune(re *syntax.Regexp, r rune) bool {
	switch re.Op {
	case syntax.OpAnyChar:
		return true
	case syntax.OpAnyCharNotNL:
		return r != '\n'
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if r >= re.Rune[i] && r <= re.Rune[i+1] {
				return true
			}
		}
	case syntax.OpLiteral:
		return len(re.Rune) == 1 && (re.Rune[0] == r || re.Flags&syntax.FoldCase != 0 && strings.EqualFold(string(re.Rune[0]), string(r)))
	}
	return false
}

const smallClass = 4

func isWide(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpCharClass:
		return len(classRunes(re, smallClass)) > smallClass
	}
	return false
}

func lit(s string, wild bool) cand {
	c := cand{text: []rune(s)}
	c.wild = make([]bool, len(c.text))
	for i := range c.wild {
		c.wild[i] = wild
	}
	return c
}

func (g *corsGen) concat(a, b []cand) []cand {
	if g.overflow {
		return nil
	}
	out := make([]cand, 0, min(len(a)*len(b), maxCORSCandidates+1))
	for _, x := range a {
		for _, y := range b {
			if g.work += len(x.text) + len(y.text) + 1; g.work > maxCORSWork {
				g.overflow = true
				return out
			}
			out = append(out, cand{text: append(append([]rune{}, x.text...), y.text...), wild: append(append([]bool{}, x.wild...), y.wild...)})
			if len(out) > maxCORSCandidates {
				return out
			}
		}
	}
	return out
}

func (g *corsGen) gen(re *syntax.Regexp) []cand {
	if g.overflow {
		return nil
	}
	switch re.Op {
	case syntax.OpNoMatch:
		return nil
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return []cand{lit("", false)}
	case syntax.OpLiteral:
		return []cand{lit(string(re.Rune), false)}
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL, syntax.OpCharClass:
		if !isWide(re) {
			var out []cand
			for _, r := range classRunes(re, smallClass) {
				out = append(out, lit(string(r), false))
			}
			return out
		}
		var out []cand
		for _, r := range "z.-/:1" {
			if matchesRune(re, r) {
				out = append(out, lit(string(r), true))
			}
		}
		if len(out) == 0 {
			if rs := classRunes(re, 1); len(rs) > 0 {
				out = append(out, lit(string(rs[0]), true))
			}
		}
		return out
	case syntax.OpCapture:
		return g.gen(re.Sub[0])
	case syntax.OpConcat:
		out := []cand{lit("", false)}
		for _, s := range re.Sub {
			out = g.limit(g.concat(out, g.gen(s)))
		}
		return out
	case syntax.OpAlternate:
		var out []cand
		for _, s := range re.Sub {
			out = append(out, g.gen(s)...)
		}
		return g.limit(out)
	case syntax.OpQuest:
		return g.limit(append([]cand{lit("", false)}, g.gen(re.Sub[0])...))
	case syntax.OpStar, syntax.OpPlus, syntax.OpRepeat:
		min, max := 0, -1
		switch re.Op {
		case syntax.OpPlus:
			min = 1
		case syntax.OpRepeat:
			min, max = re.Min, re.Max
		}
		sub := re.Sub[0]
		if isWide(sub) {
			return g.wideRepeat(sub, min, max)
		}
		// Counts min, min+1, min+2 (within max) of the sub's candidates.
		var out []cand
		one := g.gen(sub)
		for n := min; n <= min+2 && (max < 0 || n <= max); n++ {
			rep := []cand{lit("", false)}
			for k := 0; k < n && !g.overflow; k++ {
				rep = g.limit(g.concat(rep, one))
			}
			out = append(out, rep...)
		}
		return g.limit(out)
	}
	g.overflow = true // an operator this generator does not know: fail closed
	return nil
}

// wideRepeat lists what a repeated wildcard can produce: each filler whose
// every rune it matches, within the counts.
func (g *corsGen) wideRepeat(sub *syntax.Regexp, min, max int) []cand {
	fits := func(s string) bool {
		n := utf8.RuneCountInString(s)
		if n < min || max >= 0 && n > max {
			return false
		}
		for _, r := range s {
			if !matchesRune(sub, r) {
				return false
			}
		}
		return true
	}
	var out []cand
	if fits("") {
		out = append(out, lit("", false))
	}
	for _, f := range wildFillers {
		if fits(f) {
			out = append(out, lit(f, true))
		}
	}
	// The shortest run, in case no filler fits the counts.
	if rs := classRunes(sub, 1); len(rs) > 0 || sub.Op != syntax.OpCharClass {
		r := 'z'
		if !matchesRune(sub, r) && len(rs) > 0 {
			r = rs[0]
		}
		n := min
		if n == 0 {
			n = 1
		}
		if max < 0 || n <= max {
			out = append(out, lit(strings.Repeat(string(r), n), true))
		}
	}
	return out
}
