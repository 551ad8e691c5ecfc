package facts

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// scanProcs reads every /proc/<pid>: comm, uid, exe, cmdline, socket fds.
func (c *collector) scanProcs() {
	if c.procsDone {
		return
	}
	c.procsDone = true
	c.procs = map[int]*procInfo{}
	ents, err := c.fs.ReadDir("/proc")
	if err != nil {
		c.fail("proc", fmt.Errorf("list /proc: %w (an image has no /proc; capture one from a running node)", err))
		return
	}
	unreadable := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		base := "/proc/" + e.Name()
		p := &procInfo{pid: pid, uid: -1}
		if s, err := c.fs.ReadText(base + "/status"); err == nil {
			p.comm, p.uid, _ = ParseStatus(s)
		} else {
			continue // gone, or not a process directory
		}
		if b, err := c.fs.ReadFile(base + "/cmdline"); err == nil {
			p.cmdline = ParseCmdline(b)
		}
		p.exe, _ = c.fs.Readlink(base + "/exe")
		fds, err := c.fs.ReadDir(base + "/fd")
		if err != nil {
			unreadable++
		}
		for _, fd := range fds {
			t, err := c.fs.Readlink(base + "/fd/" + fd.Name())
			if err != nil || !strings.HasPrefix(t, "socket:[") || !strings.HasSuffix(t, "]") {
				continue
			}
			if ino, err := strconv.ParseUint(t[len("socket:["):len(t)-1], 10, 64); err == nil {
				p.sockets = append(p.sockets, ino)
			}
		}
		c.procs[pid] = p
	}
	if unreadable > 0 {
		c.failf("proc", "could not read the open files of %d processes; run as root to map every socket to its process", unreadable)
	}
}

func (c *collector) sortedPIDs() []int {
	pids := make([]int, 0, len(c.procs))
	for pid := range c.procs {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

// esMainClass marks the Elasticsearch server JVM (not its CLI launcher).
const esMainClass = "org.elasticsearch.bootstrap.Elasticsearch"

func (c *collector) esProcess() {
	c.scanProcs()
	for _, pid := range c.sortedPIDs() {
		p := c.procs[pid]
		found := false
		for _, a := range p.cmdline {
			if a == esMainClass {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		proc := &Process{PID: pid, UID: p.uid, User: c.userName(p.uid), Limits: map[string]Limit{}}
		proc.XmsBytes, proc.XmxBytes = CmdlineHeap(p.cmdline)
		if s, err := c.fs.ReadText(fmt.Sprintf("/proc/%d/limits", pid)); err != nil {
			c.fail("elasticsearch.process.limits", err)
		} else {
			limits, problems := ParseLimits(s)
			proc.Limits = limits
			for _, pr := range problems {
				c.failf("elasticsearch.process.limits", "/proc/%d/limits %s", pid, pr)
			}
		}
		c.f.Elasticsearch.Process = proc
		return
	}
}

func (c *collector) listeners() {
	type src struct {
		file, proto string
		v6          bool
	}
	var socks []struct {
		TCPSocket
		proto string
	}
	for _, s := range []src{{"/proc/net/tcp", "tcp", false}, {"/proc/net/tcp6", "tcp6", true}} {
		data, err := c.fs.ReadText(s.file)
		if err != nil {
			if !(s.v6 && errors.Is(err, fs.ErrNotExist)) { // IPv6 may be disabled
				c.fail("listeners", fmt.Errorf("read %s: %w", s.file, err))
			}
			continue
		}
		rows, problems := ParseProcNetTCP(data, s.v6)
		for _, p := range problems {
			c.failf("listeners", "%s %s", s.file, p)
		}
		for _, r := range rows {
			if r.State == tcpListen {
				socks = append(socks, struct {
					TCPSocket
					proto string
				}{r, s.proto})
			}
		}
	}
	if len(socks) == 0 {
		return
	}
	c.scanProcs()
	owner := map[uint64]*procInfo{}
	for _, pid := range c.sortedPIDs() {
		p := c.procs[pid]
		for _, ino := range p.sockets {
			if _, ok := owner[ino]; !ok {
				owner[ino] = p
			}
		}
	}
	for _, s := range socks {
		l := Listener{Proto: s.proto, Address: s.Address, Port: s.Port, Inode: s.Inode, UID: s.UID}
		l.AllInterfaces = s.Address == "0.0.0.0" || s.Address == "::"
		l.Loopback = strings.HasPrefix(s.Address, "127.") || s.Address == "::1" || strings.HasPrefix(s.Address, "::ffff:127.")
		if p := owner[s.Inode]; p != nil && s.Inode != 0 {
			l.PID, l.Process, l.Exe = p.pid, p.comm, p.exe
			if p.uid >= 0 {
				l.UID = p.uid
			}
		}
		l.User = c.userName(l.UID)
		c.f.Listeners = append(c.f.Listeners, l)
	}
	sort.SliceStable(c.f.Listeners, func(i, j int) bool {
		a, b := c.f.Listeners[i], c.f.Listeners[j]
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		return a.Address < b.Address
	})
}
