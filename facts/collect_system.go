package facts

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

var sysctlKeys = []string{"vm.max_map_count", "vm.swappiness", "vm.overcommit_memory", "fs.file-max", "net.ipv4.ip_forward", "net.ipv4.tcp_retries2"}

func (c *collector) sysctl() {
	if _, err := c.fs.Stat("/proc/sys"); err != nil {
		c.fail("sysctl", fmt.Errorf("/proc/sys: %w (an image has no /proc; see sysctl_conf for the persisted values)", err))
	} else {
		for _, k := range sysctlKeys {
			s, err := c.fs.ReadText("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					c.fail("sysctl."+k, err)
				}
				continue
			}
			s = strings.TrimSpace(s)
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				c.f.Sysctl[k] = n
			} else {
				c.f.Sysctl[k] = s
			}
		}
	}
	// systemd-sysctl order: files from all directories sorted by name, a
	// name in an earlier directory hiding the same name in later ones.
	dirs := []string{"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"}
	byName := map[string]string{}
	for i := len(dirs) - 1; i >= 0; i-- {
		ents, err := c.fs.ReadDir(dirs[i])
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".conf") {
				byName[e.Name()] = dirs[i] + "/" + e.Name()
			}
		}
	}
	files := make([]string, 0, len(byName)+1)
	for _, n := range sortedKeys(byName) {
		files = append(files, byName[n])
	}
	files = append(files, "/etc/sysctl.conf")
	for _, p := range files {
		if !c.fs.Exists(p) {
			continue
		}
		s, err := c.fs.ReadText(p)
		if err != nil {
			c.fail("sysctl_conf", err)
			continue
		}
		for k, v := range ParseSysctlConf(s) {
			c.f.SysctlConf[k] = SysctlSetting{Value: v, Source: p}
		}
	}
}

var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

func (c *collector) services() {
	for _, name := range c.opts.Services {
		c.f.Services = append(c.f.Services, c.service(name))
	}
	c.reportUsers()
}

func (c *collector) service(name string) Service {
	unit := name + ".service"
	s := Service{Name: name, Active: "unknown"}
	fact := "services." + name
	for _, d := range unitDirs {
		p := d + "/" + unit
		if !c.fs.Exists(p) {
			continue
		}
		if t, err := c.fs.Readlink(p); err == nil && t == "/dev/null" {
			s.Masked, s.UnitFile = true, p
			break
		}
		s.UnitFile = p
		break
	}
	var u Unit
	if s.UnitFile != "" && !s.Masked {
		s.Present = true
		if data, err := c.fs.ReadText(s.UnitFile); err != nil {
			c.fail(fact, err)
		} else {
			var problems []string
			u, problems = ParseUnit(nil, data)
			for _, p := range problems {
				c.failf(fact, "%s %s", s.UnitFile, p)
			}
		}
		// Drop-ins: all directories, sorted by file name, earlier
		// directories hiding the same name in later ones.
		byName := map[string]string{}
		for i := len(unitDirs) - 1; i >= 0; i-- {
			dd := unitDirs[i] + "/" + unit + ".d"
			ents, err := c.fs.ReadDir(dd)
			if err != nil {
				continue
			}
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".conf") {
					byName[e.Name()] = dd + "/" + e.Name()
				}
			}
		}
		for _, n := range sortedKeys(byName) {
			p := byName[n]
			data, err := c.fs.ReadText(p)
			if err != nil {
				c.fail(fact, err)
				continue
			}
			var problems []string
			u, problems = ParseUnit(u, data)
			for _, pr := range problems {
				c.failf(fact, "%s %s", p, pr)
			}
			s.DropIns = append(s.DropIns, p)
		}
		s.User = u.Last("Service", "User")
		s.Group = u.Last("Service", "Group")
		if s.User == "" {
			s.User, s.UserDefault = "root", true
		}
		s.WantedBy = u.All("Install", "WantedBy")
		env := map[string]string{}
		for _, v := range u["Service"]["Environment"] {
			for _, w := range splitSystemdWords(v) {
				if k, val, ok := strings.Cut(w, "="); ok && k != "" {
					env[k] = val
				}
			}
		}
		if c.unitEnv == nil {
			c.unitEnv = map[string]map[string]string{}
		}
		c.unitEnv[name] = env
		s.ExecStart = u["Service"]["ExecStart"]
		for key, short := range map[string]string{"LimitNOFILE": "nofile", "LimitNPROC": "nproc", "LimitMEMLOCK": "memlock"} {
			if v := u.Last("Service", key); v != "" {
				l, err := unitLimit(v)
				if err != nil {
					c.failf(fact, "%s=%s: %v", key, v, err)
					continue
				}
				if s.Limits == nil {
					s.Limits = map[string]Limit{}
				}
				s.Limits[short] = l
			}
		}
	}
	// Enabled: a symlink in some *.wants or *.requires directory under /etc.
	if ents, err := c.fs.ReadDir("/etc/systemd/system"); err == nil {
		for _, e := range ents {
			if !e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			if !strings.HasSuffix(e.Name(), ".wants") && !strings.HasSuffix(e.Name(), ".requires") {
				continue
			}
			if _, err := c.fs.Lstat("/etc/systemd/system/" + e.Name() + "/" + unit); err == nil {
				s.Enabled = !s.Masked
			}
		}
	}
	switch {
	case !c.opts.Live:
	case !s.Present:
		s.Active = "inactive" // no unit, nothing to run
	case c.systemctlErr != nil:
		// systemctl already failed (no systemd as PID 1): one error is enough.
	default:
		out, err := c.run(c.opts.CommandTimeout, "systemctl", "is-active", unit)
		// is-active exits non-zero for inactive units but still answers.
		if a := strings.TrimSpace(string(out)); a != "" {
			s.Active = a
		} else if err != nil {
			c.systemctlErr = err
			c.fail("services", fmt.Errorf("systemctl is-active %s: %w; service states are unknown", unit, err))
		}
	}
	return s
}

// AuditedPaths are the files and directories whose owner and mode matter.
var AuditedPaths = []string{
	"/etc/elasticsearch",
	"/etc/elasticsearch/elasticsearch.yml",
	"/etc/elasticsearch/jvm.options",
	"/etc/elasticsearch/jvm.options.d",
	"/etc/elasticsearch/elasticsearch.keystore",
	"/etc/default/elasticsearch",
	"/var/lib/elasticsearch",
	"/var/log/elasticsearch",
	"/usr/share/elasticsearch",
	"/usr/share/elastichq",
	"/usr/share/elasticsearch-hq",
	"/etc/esnode",
	spec.ManifestPath,
	BootStatePath,
	"/etc/iptables/rules.v4",
}

func (c *collector) paths() {
	list := AuditedPaths
	if d := c.f.Elasticsearch.ConfigDir; d != "" && d != "/etc/elasticsearch" {
		list = append(append([]string{}, list...), d, d+"/elasticsearch.yml", d+"/jvm.options.d", d+"/elasticsearch.keystore")
	}
	for _, p := range list {
		pi := PathInfo{Path: p, UID: -1, GID: -1}
		fi, err := c.fs.Lstat(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				c.fail("paths", err)
			}
			c.f.Paths = append(c.f.Paths, pi)
			continue
		}
		pi.Exists = true
		switch {
		case fi.Mode().IsRegular():
			pi.Type = "file"
		case fi.IsDir():
			pi.Type = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			pi.Type = "symlink"
		default:
			pi.Type = "other"
		}
		pi.Mode, pi.Owner, pi.Group = c.modeOwner(fi)
		if uid, gid, ok := fileOwner(fi); ok {
			pi.UID, pi.GID = uid, gid
		}
		perm := fi.Mode().Perm()
		pi.WorldWritable = perm&0o002 != 0 && pi.Type != "symlink"
		pi.WorldReadable = perm&0o004 != 0
		c.f.Paths = append(c.f.Paths, pi)
	}
}
