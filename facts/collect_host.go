package facts

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

func (c *collector) users() {
	data, err := c.fs.ReadText("/etc/passwd")
	if err != nil {
		c.fail("users", fmt.Errorf("read /etc/passwd: %w", err))
	} else {
		users, problems := ParsePasswd(data)
		for _, p := range problems {
			c.failf("users", "/etc/passwd %s", p)
		}
		c.passwd = users
		for _, u := range users {
			if _, dup := c.uids[u.UID]; !dup {
				c.uids[u.UID] = u.Name
			}
		}
	}
	if data, err := c.fs.ReadText("/etc/group"); err == nil {
		c.gids = ParseGroup(data)
	} else {
		c.fail("users", fmt.Errorf("read /etc/group: %w", err))
	}
}

// reportUsers runs after services, so that their User= names are included.
func (c *collector) reportUsers() {
	want := map[string]bool{}
	for _, n := range serviceUsers {
		want[n] = true
	}
	for _, s := range c.f.Services {
		if s.User != "" {
			want[s.User] = true
		}
	}
	for _, u := range c.passwd {
		if want[u.Name] || u.UID == 0 {
			c.f.Users = append(c.f.Users, u)
		}
	}
}

func (c *collector) host() {
	h := &c.f.Host
	if s, err := c.firstText("/proc/sys/kernel/hostname", "/etc/hostname"); err == nil {
		h.Hostname = strings.TrimSpace(s)
	} else {
		c.fail("host.hostname", err)
	}
	if s, err := c.fs.ReadText("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(s)
	} else {
		c.fail("host.kernel", fmt.Errorf("read /proc/sys/kernel/osrelease: %w", err))
	}
	if s, err := c.fs.ReadText("/proc/meminfo"); err != nil {
		c.fail("host.mem_total_bytes", fmt.Errorf("read /proc/meminfo: %w", err))
	} else if n, err := ParseMeminfo(s); err != nil {
		c.fail("host.mem_total_bytes", fmt.Errorf("/proc/meminfo: %w", err))
	} else {
		h.MemTotalBytes = n
	}
	if s, err := c.firstText("/etc/os-release", "/usr/lib/os-release"); err == nil {
		h.OSRelease = ParseOSRelease(s)
	} else {
		c.fail("host.os_release", err)
	}
	if c.fs.Exists(BootStatePath) {
		if b, err := c.fs.ReadFile(BootStatePath); err != nil {
			c.fail("host.boot", err)
		} else {
			var bs BootState
			if err := json.Unmarshal(b, &bs); err != nil {
				c.fail("host.boot", fmt.Errorf("%s is not valid JSON: %w; rerun esnode boot", BootStatePath, err))
			} else {
				h.Boot = &bs
				h.Tags = bs.Tags
			}
		}
	}
	const cloudInit = "/var/lib/cloud/data/instance-id"
	if s, err := c.fs.ReadText(cloudInit); err == nil && strings.TrimSpace(s) != "" {
		h.InstanceID, h.InstanceIDSrc = strings.TrimSpace(s), cloudInit
	} else if h.Boot != nil && h.Boot.InstanceID != "" {
		h.InstanceID, h.InstanceIDSrc = h.Boot.InstanceID, BootStatePath
	}
}

// firstText reads the first of paths that exists.
func (c *collector) firstText(paths ...string) (string, error) {
	var errs []error
	for _, p := range paths {
		s, err := c.fs.ReadText(p)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("none readable: %w", errors.Join(errs...))
}
