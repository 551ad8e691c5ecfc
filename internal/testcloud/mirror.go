package testcloud

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// AptSource is one Debian repository entry read from the host's apt
// configuration.
type AptSource struct {
	URI        string
	Suites     []string
	Components []string
}

// aptConfigRoot lets tests point the parser at a fake /etc/apt.
var aptConfigRoot = "/etc/apt"

// HostSuite returns the host's Debian codename (VERSION_CODENAME in
// /etc/os-release), which is the suite images are built from.
func HostSuite() (string, error) {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "", fmt.Errorf("read /etc/os-release to find the Debian suite: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok {
			v = strings.Trim(v, `"'`)
			if v != "" {
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("no VERSION_CODENAME in /etc/os-release: images need a Debian host")
}

// ReadAptSources parses sources.list, sources.list.d/*.list (one-line
// format) and sources.list.d/*.sources (deb822) under root. Only "deb"
// entries are returned; disabled files (other suffixes) are ignored, as
// apt ignores them.
func ReadAptSources(root string) ([]AptSource, error) {
	var files []string
	if _, err := os.Stat(filepath.Join(root, "sources.list")); err == nil {
		files = append(files, filepath.Join(root, "sources.list"))
	}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, err := filepath.Glob(filepath.Join(root, "sources.list.d", pat))
		if err != nil {
			return nil, fmt.Errorf("list apt sources: %w", err)
		}
		sort.Strings(m)
		files = append(files, m...)
	}
	var out []AptSource
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read apt source %s: %w", f, err)
		}
		if strings.HasSuffix(f, ".sources") {
			out = append(out, parseDeb822(b)...)
		} else {
			out = append(out, parseOneLine(b)...)
		}
	}
	return out, nil
}

func parseOneLine(b []byte) []AptSource {
	var out []AptSource
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		// Skip an options block: [arch=amd64 signed-by=...].
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, AptSource{URI: f[0], Suites: []string{f[1]}, Components: f[2:]})
	}
	return out
}

func parseDeb822(b []byte) []AptSource {
	var out []AptSource
	for _, para := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n") {
		fields := map[string]string{}
		last := ""
		for _, line := range strings.Split(para, "\n") {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if (line[0] == ' ' || line[0] == '\t') && last != "" {
				fields[last] += " " + strings.TrimSpace(line)
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
		if e := strings.ToLower(fields["enabled"]); e == "no" || e == "false" {
			continue
		}
		if !contains(strings.Fields(fields["types"]), "deb") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			out = append(out, AptSource{
				URI:        uri,
				Suites:     strings.Fields(fields["suites"]),
				Components: strings.Fields(fields["components"]),
			})
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// DebianMirror returns the first configured apt URI that serves suite with
// the main component, so debootstrap uses the same mirror as the host.
func DebianMirror(suite string) (string, error) {
	srcs, err := ReadAptSources(aptConfigRoot)
	if err != nil {
		return "", err
	}
	for _, s := range srcs {
		if contains(s.Suites, suite) && contains(s.Components, "main") {
			return s.URI, nil
		}
	}
	return "", fmt.Errorf("no apt source in %s serves %q main: add one to /etc/apt/sources.list(.d) so debootstrap can fetch packages", aptConfigRoot, suite)
}
