package report

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// resourceKeys are the details keys that name what a finding is about, in
// order of preference ("resource" is the policies' convention).
var resourceKeys = []string{"resource", "file", "path", "setting", "key", "port"}

// volatileResource matches resources that change on every restart (a pid).
var volatileResource = regexp.MustCompile(`^process:[0-9]+$`)

// Identify fills f.Resource (from the details when empty) and f.ID, the
// finding's identity: node + rule + resource. The message never counts, as
// it may hold pids, sizes or counts that change while the problem stays.
func Identify(node string, f *Finding) {
	if f.Resource == "" {
		f.Resource = ResourceOf(f.Details)
	}
	sum := sha256.Sum256([]byte("esaudit-finding/v1\x00" + node + "\x00" + f.RuleID + "\x00" + f.Resource))
	f.ID = hex.EncodeToString(sum[:12])
}

// ResourceOf derives a stable resource name from a finding's details: the
// first of resourceKeys present, with pids replaced and lists of files
// sorted and joined by ",".
func ResourceOf(details map[string]any) string {
	for _, k := range resourceKeys {
		v, ok := details[k]
		if !ok || v == nil {
			continue
		}
		s := strings.TrimSpace(fmt.Sprint(v))
		if s == "" {
			continue
		}
		return normalizeResource(s)
	}
	return ""
}

func normalizeResource(s string) string {
	if volatileResource.MatchString(s) {
		return "process:elasticsearch"
	}
	if strings.Contains(s, ", ") {
		parts := strings.Split(s, ", ")
		for i := range parts {
			parts[i] = stripLine(strings.TrimSpace(parts[i]))
		}
		sort.Strings(parts)
		return strings.Join(parts, ",")
	}
	return stripLine(s)
}

// stripLine drops a ":<line>" suffix of an absolute path: lines move when
// a file is edited, the finding stays the same.
func stripLine(s string) string {
	if !strings.HasPrefix(s, "/") {
		return s
	}
	if i := strings.LastIndexByte(s, ':'); i > 0 && isDigits(s[i+1:]) {
		return s[:i]
	}
	return s
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Sanitize makes text from nodes safe for a terminal: control characters
// (C0 other than tab, DEL, C1, and the Unicode bidirectional overrides a
// line could be reordered with) are shown escaped, so a hostile node cannot
// move the cursor, set the window title or rewrite earlier lines.
func Sanitize(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case unsafeRune(r):
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f:
		return true
	case r == 0xfeff:
		return true
	}
	return false
}
