package facts

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// JVMOption is one line of jvm.options that applies to the JDK in use.
type JVMOption struct {
	Option string
	Line   int
}

// jvmLine is Elasticsearch's own jvm.options grammar: an optional JDK
// version prefix (`8:`, `8-:`, `17-18:`) then an option starting with `-`.
// A line like `-9:-Xmx1g` has no prefix in that grammar: Elasticsearch hands
// it to the JVM verbatim, which refuses it.
var jvmLine = regexp.MustCompile(`^(?:(\d+)(-)?(\d+)?:)?(-.*)$`)

// ParseJVMOptions reads a jvm.options file for JDK major jdk. It returns the
// options that apply, those skipped by their version prefix, and lines
// Elasticsearch would refuse.
func ParseJVMOptions(data string, jdk int) (apply, skipped []JVMOption, invalid []string) {
	for i, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		n := i + 1
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := jvmLine.FindStringSubmatch(line)
		if m == nil {
			invalid = append(invalid, fmt.Sprintf("line %d: %q is not a JVM option (options start with -)", n, truncate(line, 80)))
			continue
		}
		opt := JVMOption{Option: m[4], Line: n}
		if m[1] == "" {
			if looksVersioned.MatchString(m[4]) {
				invalid = append(invalid, fmt.Sprintf("line %d: %q: a version prefix must start with a number (such as 8-:); the JVM will refuse this option", n, truncate(line, 80)))
				continue
			}
			apply = append(apply, opt)
			continue
		}
		lo, err1 := strconv.Atoi(m[1])
		hi := lo
		var err2 error
		switch {
		case m[2] == "-" && m[3] == "":
			hi = math.MaxInt
		case m[2] == "-":
			hi, err2 = strconv.Atoi(m[3])
		case m[3] != "":
			err2 = fmt.Errorf("bad range")
		}
		if err1 != nil || err2 != nil || hi < lo {
			invalid = append(invalid, fmt.Sprintf("line %d: %q has an invalid JDK version range", n, truncate(line, 80)))
			continue
		}
		if jdk >= lo && jdk <= hi {
			apply = append(apply, opt)
		} else {
			skipped = append(skipped, opt)
		}
	}
	return apply, skipped, invalid
}

var looksVersioned = regexp.MustCompile(`^-\d+:`)

// HeapOption says whether opt sets the heap: kind is "xms" or "xmx".
// -XX:InitialHeapSize and -XX:MaxHeapSize count too; ok is false for
// anything else, err for a heap option whose size does not parse.
func HeapOption(opt string) (kind string, bytes int64, ok bool, err error) {
	var size string
	switch {
	case strings.HasPrefix(opt, "-Xms"):
		kind, size = "xms", opt[4:]
	case strings.HasPrefix(opt, "-Xmx"):
		kind, size = "xmx", opt[4:]
	case strings.HasPrefix(opt, "-XX:InitialHeapSize="):
		kind, size = "xms", opt[len("-XX:InitialHeapSize="):]
	case strings.HasPrefix(opt, "-XX:MaxHeapSize="):
		kind, size = "xmx", opt[len("-XX:MaxHeapSize="):]
	default:
		return "", 0, false, nil
	}
	b, err := ParseJVMSize(size)
	return kind, b, true, err
}

// ParseJVMSize parses a JVM memory size: digits with an optional k, m, g or
// t suffix (either case); no suffix means bytes.
func ParseJVMSize(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	case 't', 'T':
		mult = 1 << 40
	}
	digits := s
	if mult != 1 {
		digits = s[:len(s)-1]
	}
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a JVM size (digits with k, m, g or t)", s)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return n * mult, nil
}

// ParseShellEnv reads a /etc/default file (KEY=value lines, optionally
// quoted, optionally `export`ed); later assignments win. It does not expand
// variables or run anything.
func ParseShellEnv(data string) map[string]string {
	env := map[string]string{}
	for _, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\"'") {
			continue
		}
		v = strings.TrimSpace(v)
		switch {
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			v = v[1 : len(v)-1]
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = v[1 : len(v)-1]
		default:
			if i := strings.Index(v, " #"); i >= 0 {
				v = strings.TrimSpace(v[:i])
			}
		}
		env[k] = v
	}
	return env
}

// HeapFromFiles combines the heap settings of jvm.options files (in the
// order given) and ES_JAVA_OPTS (applied last, as Elasticsearch does).
type jvmFile struct {
	Name string
	Data string
}

func computeHeap(files []jvmFile, esJavaOpts, esJavaOptsSource string, jdk int) Heap {
	h := Heap{JDKMajor: jdk, Files: []string{}, Sources: []HeapSetting{}, Duplicates: []HeapDuplicate{}, Missing: []string{}}
	add := func(opt, src string, skipped bool) {
		kind, b, ok, err := HeapOption(opt)
		if !ok {
			return
		}
		if err != nil {
			h.Invalid = append(h.Invalid, fmt.Sprintf("%s: %s: %v", src, opt, err))
			return
		}
		s := HeapSetting{Kind: kind, Option: opt, Bytes: b, Source: src}
		if skipped {
			h.Skipped = append(h.Skipped, s)
			return
		}
		h.Sources = append(h.Sources, s)
	}
	for _, f := range files {
		h.Files = append(h.Files, f.Name)
		apply, skipped, invalid := ParseJVMOptions(f.Data, jdk)
		for _, o := range apply {
			add(o.Option, fmt.Sprintf("%s:%d", f.Name, o.Line), false)
		}
		for _, o := range skipped {
			add(o.Option, fmt.Sprintf("%s:%d", f.Name, o.Line), true)
		}
		for _, s := range invalid {
			h.Invalid = append(h.Invalid, f.Name+": "+s)
		}
	}
	for _, opt := range strings.Fields(esJavaOpts) {
		add(opt, "ES_JAVA_OPTS ("+esJavaOptsSource+")", false)
	}
	counts := map[string][]string{}
	for _, s := range h.Sources {
		counts[s.Kind] = append(counts[s.Kind], s.Source)
		if s.Kind == "xms" {
			h.XmsBytes = s.Bytes
		} else {
			h.XmxBytes = s.Bytes
		}
	}
	for _, k := range []string{"xms", "xmx"} {
		switch n := len(counts[k]); {
		case n == 0:
			h.Missing = append(h.Missing, k)
		case n > 1:
			h.Duplicates = append(h.Duplicates, HeapDuplicate{Kind: k, Count: n, Sources: counts[k]})
		}
	}
	return h
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
