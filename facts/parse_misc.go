package facts

import (
	"fmt"
	"strconv"
	"strings"
)

// ParsePasswd parses /etc/passwd. Malformed lines are problems.
func ParsePasswd(data string) ([]User, []string) {
	var out []User
	var problems []string
	for i, line := range strings.Split(data, "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 7 {
			problems = append(problems, fmt.Sprintf("line %d: %d fields, want 7", i+1, len(f)))
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || uid < 0 || gid < 0 {
			problems = append(problems, fmt.Sprintf("line %d: uid/gid %q/%q are not numbers", i+1, f[2], f[3]))
			continue
		}
		out = append(out, User{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]})
	}
	return out, problems
}

// ParseGroup parses /etc/group into gid -> name.
func ParseGroup(data string) map[int]string {
	out := map[int]string{}
	for _, line := range strings.Split(data, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 {
			continue
		}
		if gid, err := strconv.Atoi(f[2]); err == nil {
			if _, dup := out[gid]; !dup {
				out[gid] = f[0]
			}
		}
	}
	return out
}

// Unit is a parsed systemd unit file: section -> key -> values in order.
// An empty assignment (`User=`) resets a key, as systemd does.
type Unit map[string]map[string][]string

// ParseUnit parses a systemd unit file or drop-in, merging into u (pass nil
// for a fresh unit). Backslash continuation lines are joined.
func ParseUnit(u Unit, data string) (Unit, []string) {
	if u == nil {
		u = Unit{}
	}
	var problems []string
	section := ""
	lines := strings.Split(data, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		n := i + 1
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				problems = append(problems, fmt.Sprintf("line %d: bad section header %q", n, truncate(line, 60)))
				section = ""
				continue
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				problems = append(problems, fmt.Sprintf("line %d: %q is not key=value in a section", n, truncate(line, 60)))
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if v == "" {
				delete(u[section], k)
				continue
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u, problems
}

// Last is the effective value of a single-valued key.
func (u Unit) Last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// All is every value of a list-valued key, split on blanks.
func (u Unit) All(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// unitLimit parses LimitNOFILE= style values: N, soft:hard, infinity.
func unitLimit(v string) (Limit, error) {
	soft, hard, pair := strings.Cut(v, ":")
	if !pair {
		hard = soft
	}
	s, err1 := parseLimitValue(soft)
	h, err2 := parseLimitValue(hard)
	if err1 != nil || err2 != nil {
		return Limit{}, fmt.Errorf("limit %q is not N, soft:hard or infinity", v)
	}
	return Limit{Soft: s, Hard: h}, nil
}

// ParseOSRelease reads /etc/os-release.
func ParseOSRelease(data string) OSRelease {
	env := ParseShellEnv(data)
	return OSRelease{ID: env["ID"], VersionID: env["VERSION_ID"], PrettyName: env["PRETTY_NAME"]}
}

// DpkgVersion returns the installed version of pkg from /var/lib/dpkg/status.
func DpkgVersion(status, pkg string) string {
	for _, stanza := range strings.Split(status, "\n\n") {
		var name, version, state string
		for _, line := range strings.Split(stanza, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(line, " ") {
				continue
			}
			switch k {
			case "Package":
				name = strings.TrimSpace(v)
			case "Version":
				version = strings.TrimSpace(v)
			case "Status":
				state = strings.TrimSpace(v)
			}
		}
		if name == pkg && strings.HasSuffix(state, " installed") {
			return version
		}
	}
	return ""
}

// ParseSysctlConf parses a sysctl.conf-format file into key -> value.
// Keys may use / or . as separator; "-" prefixes (ignore errors) are dropped.
func ParseSysctlConf(data string) map[string]string {
	out := map[string]string{}
	for _, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimPrefix(strings.TrimSpace(k), "-")
		if strings.Contains(k, "/") && !strings.Contains(k, ".") {
			k = strings.ReplaceAll(k, "/", ".")
		}
		out[k] = strings.TrimSpace(v)
	}
	return out
}

// splitSystemdWords splits an Environment= value: blank-separated words,
// each optionally in double or single quotes.
func splitSystemdWords(s string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == '"' && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
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
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
