package testcloud

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Names of everything a Cloud creates on the host start with this prefix,
// followed by the cloud id, so leftovers of a crashed run can be found.
const namePrefix = "esbtc"

// Config configures a Cloud.
type Config struct {
	// Subnet is the host-side bridge subnet instances get addresses from;
	// the bridge takes the first address. Zero picks a free
	// 10.213.N.0/24 on this host.
	Subnet netip.Prefix
	// Zones lays Subnet out as a VPC with one subnet per availability zone:
	// 0 or 1 is one subnet (the whole prefix, one L2 segment); 2 splits it
	// into halves, zones a and b, each with its own gateway address on the
	// host, which routes between them as the VPC router does. Traffic
	// between zones keeps its source address, so a firewall rule by source
	// CIDR on a guest really decides who reaches it.
	Zones int
}

// Zone is one subnet of the cloud, in one availability zone.
type Zone struct {
	Letter   string       // the AZ is <region><letter>: "a", "b"
	CIDR     netip.Prefix // the subnet
	Gateway  netip.Addr   // the host's address in it, instances' default route
	SubnetID string       // reported by IMDS unless the LaunchSpec names another; "" with one zone
}

// Cloud owns a bridge, the instances on it and everything they started.
// Close removes all of it; NewCloud first removes what crashed runs left.
type Cloud struct {
	id      string
	dir     string // <cache>/run/<id>: instance layers, pid files, logs
	subnet  netip.Prefix
	gateway netip.Addr
	zones   []Zone
	bridge  string
	alive   func() // releases the liveness lock

	mu        sync.Mutex
	instances []*Instance
	usedIPs   map[netip.Addr]bool
	next      int
	closed    bool
}

// RunDir is where clouds keep per-run state: <cache>/run.
func RunDir() string { return filepath.Join(CacheDir(), "run") }

// hostRunDir holds what must be host-wide whatever ESBAKE_CACHE says: the
// lock around reaping and choosing a subnet, and one liveness lock per
// cloud. Network namespaces, links and subnets are host-wide, so a run
// with another cache must see this run's clouds as alive.
const hostRunDir = "/run/esbake-testcloud"

// holdAlive takes cloud id's host-wide liveness lock for the cloud's
// life; ok is false when another live cloud holds it.
func holdAlive(id string) (release func(), ok bool, err error) {
	if err := os.MkdirAll(hostRunDir, 0o755); err != nil {
		return nil, false, fmt.Errorf("create %s: %w", hostRunDir, err)
	}
	f, err := os.OpenFile(filepath.Join(hostRunDir, id+".alive"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("create cloud liveness lock: %w", err)
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		f.Close()
		return nil, false, nil
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { _ = os.Remove(f.Name()); f.Close() }, true, nil
}

// aliveAnywhere reports whether a live process on this host holds cloud
// id's liveness lock, whichever cache it runs with.
func aliveAnywhere(id string) bool {
	f, err := os.Open(filepath.Join(hostRunDir, id+".alive"))
	if err != nil {
		return false
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// NewCloud creates a cloud: cleans leftovers of dead runs, then creates
// the bridge. Needs root.
func NewCloud(ctx context.Context, cfg Config) (*Cloud, error) {
	if m := Requirements(); len(m) > 0 {
		return nil, fmt.Errorf("testcloud cannot run here: %s", strings.Join(m, "; "))
	}
	if err := os.MkdirAll(RunDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create run dir: %w", err)
	}
	// One host-wide lock around reaping, creating and locking the run dir,
	// and choosing the subnet: otherwise a cloud starting in another
	// process could take our run dir for a dead one before we lock it, or
	// pick the same subnet.
	unlock, err := LockFile(ctx, filepath.Join(hostRunDir, "reap.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := reapLeftoversLocked(ctx); err != nil {
		return nil, fmt.Errorf("clean leftovers of a previous run: %w", err)
	}
	c := &Cloud{usedIPs: map[netip.Addr]bool{}}
	var releaseAlive func()
	for {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		c.id = hex.EncodeToString(b)
		release, ok, err := holdAlive(c.id)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // a live cloud of another run has this id
		}
		c.dir = filepath.Join(RunDir(), c.id)
		err = os.Mkdir(c.dir, 0o755)
		if err == nil {
			releaseAlive = release
			break
		}
		release()
		if !os.IsExist(err) {
			return nil, fmt.Errorf("create cloud dir: %w", err)
		}
	}
	c.bridge = namePrefix + c.id + "br"
	if err := os.Mkdir(filepath.Join(c.dir, "pids"), 0o755); err != nil {
		releaseAlive()
		return nil, fmt.Errorf("create cloud dir: %w", err)
	}
	// Held for the cloud's life: a run dir whose lock can be taken
	// belongs to a dead process and may be reaped.
	lf, err := os.OpenFile(filepath.Join(c.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		releaseAlive()
		return nil, fmt.Errorf("create cloud lock: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		releaseAlive()
		return nil, fmt.Errorf("lock cloud dir: %w", err)
	}
	fmt.Fprintf(lf, "%d\n", os.Getpid())
	c.alive = func() { lf.Close(); releaseAlive() }

	err = ensureNspawnRuntimeDir()
	if err == nil {
		err = c.setupBridge(ctx, cfg.Subnet, cfg.Zones)
	}
	if err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

func (c *Cloud) abort() {
	_ = reapCloud(context.Background(), c.id, c.dir)
	c.alive()
}

func (c *Cloud) setupBridge(ctx context.Context, want netip.Prefix, zones int) error {
	if !want.IsValid() {
		p, err := pickFreeSubnet(ctx)
		if err != nil {
			return err
		}
		want = p
	}
	want = want.Masked()
	if want.Bits() > 29 || !want.Addr().Is4() {
		return fmt.Errorf("subnet %s: need an IPv4 prefix of /29 or larger", want)
	}
	c.subnet = want
	c.gateway = want.Addr().Next()
	switch zones {
	case 0, 1:
		c.zones = []Zone{{Letter: "a", CIDR: want, Gateway: c.gateway}}
	case 2:
		if want.Bits() > 28 {
			return fmt.Errorf("subnet %s: two zones need a /28 or larger", want)
		}
		lo, hi := splitPrefix(want)
		for i, p := range []netip.Prefix{lo, hi} {
			letter := string(rune('a' + i))
			c.zones = append(c.zones, Zone{Letter: letter, CIDR: p, Gateway: p.Addr().Next(),
				SubnetID: "subnet-0" + c.id + "00000000000" + letter})
		}
	default:
		return fmt.Errorf("%d zones: a cloud has one or two", zones)
	}
	steps := [][]string{{"link", "add", c.bridge, "type", "bridge"}}
	for _, z := range c.zones {
		c.usedIPs[z.Gateway] = true
		steps = append(steps, []string{"addr", "add", fmt.Sprintf("%s/%d", z.Gateway, z.CIDR.Bits()), "dev", c.bridge})
	}
	steps = append(steps, []string{"link", "set", c.bridge, "up"})
	for _, s := range steps {
		if _, err := run(ctx, "ip", s...); err != nil {
			return fmt.Errorf("create bridge %s for %s: %w", c.bridge, want, err)
		}
	}
	if len(c.zones) > 1 {
		// Forwarding on this bridge only (not the host-wide ip_forward):
		// the host is the router between the zones' subnets.
		f := "/proc/sys/net/ipv4/conf/" + c.bridge + "/forwarding"
		if err := os.WriteFile(f, []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("route between zones (%s): %w", f, err)
		}
	}
	return nil
}

// splitPrefix returns the two halves of p.
func splitPrefix(p netip.Prefix) (lo, hi netip.Prefix) {
	lo = netip.PrefixFrom(p.Addr(), p.Bits()+1)
	a := p.Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n += uint32(1) << (32 - p.Bits() - 1)
	return lo, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), p.Bits()+1)
}

// pickFreeSubnet returns the first 10.213.N.0/24 no host route overlaps.
func pickFreeSubnet(ctx context.Context) (netip.Prefix, error) {
	out, err := run(ctx, "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return netip.Prefix{}, err
	}
	var used []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		tok := f[0]
		if tok == "local" || tok == "broadcast" || tok == "unicast" {
			if len(f) < 2 {
				continue
			}
			tok = f[1]
		}
		if p, err := netip.ParsePrefix(tok); err == nil {
			used = append(used, p)
		} else if a, err := netip.ParseAddr(tok); err == nil {
			used = append(used, netip.PrefixFrom(a, 32))
		}
	}
	for n := 0; n < 256; n++ {
		cand := netip.MustParsePrefix(fmt.Sprintf("10.213.%d.0/24", n))
		free := true
		for _, u := range used {
			if u.Bits() > 0 && u.Overlaps(cand) {
				free = false
				break
			}
		}
		if free {
			return cand, nil
		}
	}
	return netip.Prefix{}, errors.New("no free 10.213.N.0/24 subnet on this host: pass Config.Subnet")
}

// New returns a Cloud for a test, closed by t.Cleanup even when the test
// fails. Without root or the needed tools it skips the test, except in CI
// (CI=true), where it fails saying what is missing.
func New(t testing.TB) *Cloud {
	t.Helper()
	RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := NewCloud(ctx, Config{})
	if err != nil {
		t.Fatalf("testcloud: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("testcloud close: %v", err)
		}
	})
	return c
}

// RequireHost skips t (or fails it when CI=true) if this machine cannot
// run instances.
func RequireHost(t testing.TB) {
	t.Helper()
	if m := Requirements(); len(m) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testcloud needs: %s", strings.Join(m, "; "))
		}
		t.Skipf("testcloud needs: %s (set CI=true to make this a failure)", strings.Join(m, "; "))
	}
}

// ID is the cloud's short id, part of every host-side name it creates.
func (c *Cloud) ID() string { return c.id }

// Subnet is the prefix all instances live in: the one subnet, or the VPC
// the zones' subnets divide.
func (c *Cloud) Subnet() netip.Prefix { return c.subnet }

// Gateway is the host's first address on the bridge (zone a's gateway);
// services the host binds there are reachable from every zone.
func (c *Cloud) Gateway() netip.Addr { return c.gateway }

// Zones are the cloud's subnets, one per availability zone, in order.
func (c *Cloud) Zones() []Zone { return append([]Zone(nil), c.zones...) }

// zoneFor picks the zone a launch goes to: the one holding the requested
// address, else the one named by SubnetCIDR, SubnetID or AZ letter, else
// the first.
func (c *Cloud) zoneFor(s LaunchSpec, ip netip.Addr) (int, error) {
	if ip.IsValid() {
		for i, z := range c.zones {
			if z.CIDR.Contains(ip) {
				return i, nil
			}
		}
		return 0, fmt.Errorf("private IP %s is not a host address in the cloud subnet %s", ip, c.subnet)
	}
	for i, z := range c.zones {
		if s.SubnetCIDR == z.CIDR.String() || s.SubnetID != "" && s.SubnetID == z.SubnetID {
			return i, nil
		}
	}
	if len(c.zones) > 1 && s.AZ != "" {
		for i, z := range c.zones {
			if strings.HasSuffix(s.AZ, z.Letter) {
				return i, nil
			}
		}
		return 0, fmt.Errorf("availability zone %q: this cloud has zones %s", s.AZ, c.zoneLetters())
	}
	return 0, nil
}

func (c *Cloud) zoneLetters() string {
	var l []string
	for _, z := range c.zones {
		l = append(l, z.Letter)
	}
	return strings.Join(l, ", ")
}

// Instances returns the cloud's instances that are not terminated.
func (c *Cloud) Instances() []*Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Instance
	for _, i := range c.instances {
		if i.State() != StateTerminated {
			out = append(out, i)
		}
	}
	return out
}

// allocate reserves an index, a zone and an address (s.PrivateIP, or the
// next free one in the zone zoneFor picks).
func (c *Cloud) allocate(s LaunchSpec) (int, int, netip.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, 0, netip.Addr{}, errors.New("cloud is closed")
	}
	var ip netip.Addr
	if s.PrivateIP != "" {
		a, err := netip.ParseAddr(s.PrivateIP)
		if err != nil {
			return 0, 0, netip.Addr{}, fmt.Errorf("private IP %q: %w", s.PrivateIP, err)
		}
		ip = a
	}
	zi, err := c.zoneFor(s, ip)
	if err != nil {
		return 0, 0, netip.Addr{}, err
	}
	z := c.zones[zi]
	if ip.IsValid() {
		if ip == z.CIDR.Addr() || !z.CIDR.Contains(ip.Next()) {
			return 0, 0, netip.Addr{}, fmt.Errorf("private IP %s is not a host address in the cloud subnet %s", ip, z.CIDR)
		}
		if c.usedIPs[ip] {
			return 0, 0, netip.Addr{}, fmt.Errorf("private IP %s is already in use", ip)
		}
	} else {
		// Skip the first addresses like AWS reserves the first of a subnet.
		skip := 0
		if z.CIDR.Bits() <= 25 {
			skip = 9
		}
		n := 0
		for a := z.CIDR.Addr().Next(); z.CIDR.Contains(a.Next()); a = a.Next() { // not the broadcast
			if n++; n <= skip || c.usedIPs[a] {
				continue
			}
			ip = a
			break
		}
		if !ip.IsValid() {
			return 0, 0, netip.Addr{}, fmt.Errorf("subnet %s is full", z.CIDR)
		}
	}
	c.usedIPs[ip] = true
	c.next++
	return c.next, zi, ip, nil
}

func (c *Cloud) release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.usedIPs, ip)
}

// Close terminates every instance and removes the bridge and run dir.
// Safe to call more than once.
func (c *Cloud) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	insts := append([]*Instance(nil), c.instances...)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, i := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := i.Terminate(ctx); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Whatever Terminate missed (and the bridge) goes by name.
	if err := reapCloud(ctx, c.id, c.dir); err != nil {
		errs = append(errs, err)
	}
	c.alive()
	return errors.Join(errs...)
}

// ReapLeftovers removes what dead runs left behind: processes recorded in
// their pid files, mounts under their run dirs, and network namespaces
// and links named with their id. Runs still alive (lock held) are left
// alone, so parallel test binaries do not disturb each other.
func ReapLeftovers(ctx context.Context) error {
	if err := os.MkdirAll(RunDir(), 0o755); err != nil {
		return fmt.Errorf("create run dir: %w", err)
	}
	unlock, err := LockFile(ctx, filepath.Join(hostRunDir, "reap.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	return reapLeftoversLocked(ctx)
}

func reapLeftoversLocked(ctx context.Context) error {
	ents, err := os.ReadDir(RunDir())
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("list %s: %w", RunDir(), err)
	}
	live := map[string]bool{}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(RunDir(), e.Name())
		lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
		if err == nil {
			if syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
				live[e.Name()] = true
				lf.Close()
				continue
			}
		}
		if err := reapCloud(ctx, e.Name(), dir); err != nil {
			errs = append(errs, err)
		}
		if lf != nil {
			lf.Close()
		}
	}
	// Namespaces and links whose run dir is gone entirely.
	for _, id := range orphanIDs(ctx, live) {
		if err := reapCloud(ctx, id, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// orphanIDs lists cloud ids seen in netns or link names that are not live.
func orphanIDs(ctx context.Context, live map[string]bool) []string {
	seen := map[string]bool{}
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if rest, ok := strings.CutPrefix(e.Name(), namePrefix+"-"); ok && len(rest) >= 4 {
				seen[rest[:4]] = true
			}
		}
	}
	if ents, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, e := range ents {
			if rest, ok := strings.CutPrefix(e.Name(), namePrefix); ok && len(rest) >= 4 {
				seen[rest[:4]] = true
			}
		}
	}
	var out []string
	for id := range seen {
		// Clouds of runs with another ESBAKE_CACHE have no run dir here.
		if !live[id] && !aliveAnywhere(id) {
			out = append(out, id)
		}
	}
	return out
}

// reapCloud removes every trace of cloud id. dir may be empty.
func reapCloud(ctx context.Context, id, dir string) error {
	var errs []error
	if dir != "" {
		pids, _ := filepath.Glob(filepath.Join(dir, "pids", "*"))
		for _, p := range pids {
			killPidFile(p)
		}
		if err := unmountUnder(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), namePrefix+"-"+id+"-") {
				if _, err := run(ctx, "ip", "netns", "delete", e.Name()); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if ents, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), namePrefix+id) {
				if _, err := run(ctx, "ip", "link", "delete", e.Name()); err != nil && linkExists(e.Name()) {
					errs = append(errs, err)
				}
			}
		}
	}
	removeCgroupsWithPrefix(namePrefix + "-" + id + "-")
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// pid files hold "PID START" where START is the process start time from
// /proc/PID/stat, so a recycled pid is never killed.
func writePidFile(path string, pid int) error {
	st, err := ProcStartTime(pid)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(fmt.Sprintf("%d %s\n", pid, st)), 0o644)
}

func killPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		_ = os.Remove(path)
		return
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		_ = os.Remove(path)
		return
	}
	if st, err := ProcStartTime(pid); err == nil && st == f[1] {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100; i++ {
			if st2, err := ProcStartTime(pid); err != nil || st2 != st {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	_ = os.Remove(path)
}

// ProcStartTime is a process's start time (field 22 of /proc/pid/stat):
// with the pid it names a process uniquely across pid reuse.
func ProcStartTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// Field 22 (starttime) is index 19 after the comm field.
	if len(f) < 20 {
		return "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	return f[19], nil
}

// ensureNspawnRuntimeDir mounts a tmpfs on /run/systemd/nspawn when it is
// not one: nspawn keeps per-machine propagation mounts there, which fails
// when /run is not a tmpfs (as on these hosts without systemd as PID 1).
// It is left mounted: other clouds may be using it.
func ensureNspawnRuntimeDir() error {
	const d = "/run/systemd/nspawn"
	if isMountPoint(d) {
		return nil
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", d, err)
	}
	if err := syscall.Mount("tmpfs", d, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s (systemd-nspawn needs it): %w", d, err)
	}
	return nil
}
