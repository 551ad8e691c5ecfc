package facts

import (
	"errors"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// tlsExtensions name the files the TLS collector reads in the
// configuration directory; files elasticsearch.yml names are read whatever
// their name.
var tlsExtensions = []string{".crt", ".cer", ".pem", ".key", ".p12", ".pfx"}

// maxTLSFiles bounds the files described (a directory of thousands of
// certificates is not a node's configuration).
const maxTLSFiles = 200

// tls describes the certificates and counts the keys in the configuration
// directory (two levels deep, as certs/ and certs/<sub>/) and in the files
// the xpack.security.*.ssl settings name.
func (c *collector) tls() {
	es := &c.f.Elasticsearch
	es.TLS.Files = []TLSFile{}
	seen := map[string]bool{}
	var paths []string
	var walk func(dir string, depth int)
	walk = func(dir string, depth int) {
		ents, err := c.fs.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range ents {
			p := path.Join(dir, e.Name())
			if e.IsDir() && depth < 2 {
				walk(p, depth+1)
				continue
			}
			if !e.Type().IsRegular() {
				continue
			}
			for _, ext := range tlsExtensions {
				if strings.HasSuffix(strings.ToLower(e.Name()), ext) && !seen[p] {
					seen[p] = true
					paths = append(paths, p)
				}
			}
		}
	}
	walk(es.ConfigDir, 0)
	for k, v := range es.YML {
		if !strings.HasPrefix(k, "xpack.security.") || !strings.Contains(k, ".ssl.") {
			continue
		}
		if !(strings.HasSuffix(k, ".key") || strings.HasSuffix(k, ".certificate") || strings.HasSuffix(k, ".certificate_authorities") || strings.HasSuffix(k, ".path")) {
			continue
		}
		vals := []any{v}
		if l, ok := v.([]any); ok {
			vals = l
		}
		for _, x := range vals {
			s, ok := x.(string)
			if !ok || s == "" {
				continue
			}
			p := s
			if !path.IsAbs(p) {
				p = path.Join(es.ConfigDir, p) // relative to the config dir, as Elasticsearch resolves them
			}
			p = path.Clean(p)
			if !seen[p] {
				seen[p] = true
				paths = append(paths, p)
			}
		}
	}
	sort.Strings(paths)
	if len(paths) > maxTLSFiles {
		c.failf("elasticsearch.tls", "%d TLS files found; described the first %d", len(paths), maxTLSFiles)
		paths = paths[:maxTLSFiles]
	}
	for _, p := range paths {
		fi, err := c.fs.Stat(p)
		if err != nil {
			if !errorsIsNotExist(err) {
				c.fail("elasticsearch.tls", err)
			}
			// A file elasticsearch.yml names but the disk lacks.
			es.TLS.Files = append(es.TLS.Files, TLSFile{Path: p, Format: "missing", Certificates: []Certificate{}, Error: "does not exist"})
			continue
		}
		if !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
			continue
		}
		b, err := c.fs.ReadFile(p)
		if err != nil {
			c.fail("elasticsearch.tls", err)
			continue
		}
		f := InspectTLS(p, b)
		f.Mode, f.Owner, f.Group = c.modeOwner(fi)
		es.TLS.Files = append(es.TLS.Files, f)
	}
}

func errorsIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
