package facts

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
	"github.com/esbake/packer-plugin-elasticsearch/spec/essettings"
)

const esHome = "/usr/share/elasticsearch"

var esJar = regexp.MustCompile(`^elasticsearch-(\d+\.\d+\.\d+)\.jar$`)

func (c *collector) elasticsearch() {
	es := &c.f.Elasticsearch
	es.YML = map[string]any{}
	es.YMLErrors = []string{}
	es.UnknownSettings = []UnknownSetting{}
	env := map[string]string{}
	const defaults = "/etc/default/elasticsearch"
	if c.fs.Exists(defaults) {
		if s, err := c.fs.ReadText(defaults); err != nil {
			c.fail("elasticsearch.env", err)
		} else {
			env = ParseShellEnv(s)
		}
	}
	es.ConfigDir = "/etc/elasticsearch"
	if d := env["ES_PATH_CONF"]; d != "" && path.IsAbs(d) {
		es.ConfigDir = path.Clean(d)
	}

	// Version: the package database, then the jar, then the manifest.
	if s, err := c.fs.ReadText("/var/lib/dpkg/status"); err == nil {
		if v := DpkgVersion(s, "elasticsearch"); v != "" {
			es.Version, es.VersionSource = v, "/var/lib/dpkg/status"
		}
	}
	if es.Version == "" {
		if ents, err := c.fs.ReadDir(esHome + "/lib"); err == nil {
			for _, e := range ents {
				if m := esJar.FindStringSubmatch(e.Name()); m != nil {
					es.Version, es.VersionSource = m[1], esHome+"/lib/"+e.Name()
				}
			}
		}
	}
	if es.Version == "" {
		if m, err := c.readManifest(); err == nil && m.Spec.Elasticsearch.Version != "" {
			es.Version, es.VersionSource = m.Spec.Elasticsearch.Version, spec.ManifestPath
		}
	}
	if es.Version == "" && !c.fs.Exists(es.ConfigDir) {
		c.fail("elasticsearch", fmt.Errorf("Elasticsearch is not installed: no package in /var/lib/dpkg/status, no %s/lib/elasticsearch-X.Y.Z.jar, no manifest, no %s", esHome, es.ConfigDir))
		es.Keystore.Entries = []string{}
		es.TLS.Files = []TLSFile{}
		es.Heap = Heap{Files: []string{}, Sources: []HeapSetting{}, Duplicates: []HeapDuplicate{}, Missing: []string{}}
		c.esProcess()
		return
	}
	if es.Version == "" {
		c.fail("elasticsearch.version", fmt.Errorf("no elasticsearch package in /var/lib/dpkg/status, no %s/lib/elasticsearch-X.Y.Z.jar, no manifest", esHome))
	}

	ymlPath := es.ConfigDir + "/elasticsearch.yml"
	if b, err := c.fs.ReadFile(ymlPath); err != nil {
		c.fail("elasticsearch.yml", err)
	} else if bytes.IndexByte(b, 0) >= 0 {
		c.fail("elasticsearch.yml", fmt.Errorf("%s holds binary data (NUL bytes), not YAML", ymlPath))
	} else {
		es.YML, es.YMLErrors = FlattenYAML(b)
		if es.YMLErrors == nil {
			es.YMLErrors = []string{}
		}
	}
	es.UnknownSettings = []UnknownSetting{}
	if v, err := spec.ParseVersion(es.Version); err == nil && es.YML != nil {
		if t, err := essettings.For(v); err == nil {
			es.SettingsTable = t.Line
			keys := make([]string, 0, len(es.YML))
			for k := range es.YML {
				keys = append(keys, k)
			}
			for _, k := range t.Unknown(keys) {
				es.UnknownSettings = append(es.UnknownSettings, UnknownSetting{Key: k, Message: t.CheckFile(k).Error()})
			}
		}
	}

	c.heap(env, defaults)
	c.keystore()
	c.tls()
	c.esProcess()
}

func (c *collector) esMajor() int {
	v, err := spec.ParseVersion(c.f.Elasticsearch.Version)
	if err != nil {
		return 0
	}
	return v.Major
}

func (c *collector) heap(env map[string]string, envFile string) {
	es := &c.f.Elasticsearch
	jdk, src := c.opts.JDKMajor, "option"
	if jdk <= 0 {
		jdk, src = 0, ""
		if s, err := c.fs.ReadText(esHome + "/jdk/release"); err == nil {
			if n := javaMajor(ParseShellEnv(s)["JAVA_VERSION"]); n > 0 {
				jdk, src = n, esHome+"/jdk/release"
			}
		}
	}
	if jdk <= 0 {
		switch m := c.esMajor(); {
		case m == 6:
			jdk = 8
		case m == 7:
			jdk = 11
		default:
			jdk = 17
		}
		src = "default for Elasticsearch " + orUnknown(es.Version)
	}
	var files []jvmFile
	main := es.ConfigDir + "/jvm.options"
	if s, err := c.fs.ReadText(main); err != nil {
		c.fail("elasticsearch.heap", err)
	} else {
		files = append(files, jvmFile{main, s})
	}
	dir := es.ConfigDir + "/jvm.options.d"
	var ignored []string
	if ents, err := c.fs.ReadDir(dir); err == nil {
		var names []string
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".options") && !e.IsDir() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		v, verr := spec.ParseVersion(es.Version)
		oldES := verr == nil && (v.Major < 7 || (v.Major == 7 && v.Minor < 7))
		for _, n := range names {
			p := dir + "/" + n
			if oldES {
				ignored = append(ignored, p)
				continue
			}
			if s, err := c.fs.ReadText(p); err != nil {
				c.fail("elasticsearch.heap", err)
			} else {
				files = append(files, jvmFile{p, s})
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		c.fail("elasticsearch.heap", fmt.Errorf("list %s: %w", dir, err))
	}
	// systemd lets EnvironmentFile= (/etc/default/elasticsearch) override
	// Environment=; either may carry ES_JAVA_OPTS.
	javaOpts, javaOptsSrc := env["ES_JAVA_OPTS"], envFile
	if _, set := env["ES_JAVA_OPTS"]; !set {
		if v, ok := c.unitEnv["elasticsearch"]["ES_JAVA_OPTS"]; ok {
			javaOpts, javaOptsSrc = v, "Environment= of elasticsearch.service"
		}
	}
	es.Heap = computeHeap(files, javaOpts, javaOptsSrc, jdk)
	es.Heap.JDKMajorSource = src
	for _, p := range ignored {
		es.Heap.Invalid = append(es.Heap.Invalid, fmt.Sprintf("%s: Elasticsearch %s ignores jvm.options.d (read from 7.7 on)", p, es.Version))
	}
}

// javaMajor reads "17.0.2" or "1.8.0_212" as 17 or 8.
func javaMajor(v string) int {
	v = strings.Trim(v, `"`)
	if strings.HasPrefix(v, "1.") {
		v = v[2:]
	}
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		v = v[:end]
	}
	n, _ := strconv.Atoi(v)
	return n
}

func orUnknown(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}

func (c *collector) keystore() {
	es := &c.f.Elasticsearch
	ks := &es.Keystore
	ks.Path = es.ConfigDir + "/elasticsearch.keystore"
	ks.Entries = []string{}
	fi, err := c.fs.Stat(ks.Path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.fail("elasticsearch.keystore", err)
		}
		ks.EntriesKnown = true // no keystore, no entries
		return
	}
	ks.Present = true
	ks.Mode, ks.Owner, ks.Group = c.modeOwner(fi)
	// Read the file itself first: no JVM to start, and it works under --root.
	if b, err := c.fs.ReadFile(ks.Path); err != nil {
		c.fail("elasticsearch.keystore", err)
	} else {
		kc, err := ParseKeystore(b)
		ks.FormatVersion, ks.HasPassword = kc.FormatVersion, kc.HasPassword
		switch {
		case err == nil:
			ks.Entries, ks.EntriesKnown, ks.EntriesSource = kc.Entries, true, "file"
			return
		case errors.Is(err, errKeystorePassword):
			if !c.opts.Live {
				return // names are encrypted; nothing more to learn offline
			}
		default:
			c.fail("elasticsearch.keystore", fmt.Errorf("%s: %w", ks.Path, err))
		}
	}
	if !c.opts.Live {
		return
	}
	out, err := c.run(max(c.opts.CommandTimeout, 60*time.Second), esHome+"/bin/elasticsearch-keystore", "list")
	if err != nil {
		c.fail("elasticsearch.keystore", fmt.Errorf("list entries: %w", err))
		return
	}
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, " ") {
			ks.Entries = append(ks.Entries, l)
		}
	}
	ks.EntriesKnown, ks.EntriesSource = true, "elasticsearch-keystore list"
}

func (c *collector) modeOwner(fi fs.FileInfo) (mode, owner, group string) {
	mode = fmt.Sprintf("%04o", unixMode(fi))
	if uid, gid, ok := fileOwner(fi); ok {
		owner = c.uids[uid]
		if owner == "" {
			owner = strconv.Itoa(uid)
		}
		group = c.gids[gid]
		if group == "" {
			group = strconv.Itoa(gid)
		}
	}
	return mode, owner, group
}

// unixMode is the permission bits plus setuid/setgid/sticky, as chmod
// writes them.
func unixMode(fi fs.FileInfo) uint32 {
	m := uint32(fi.Mode().Perm())
	if fi.Mode()&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}
