package testcloud

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// State is an instance's lifecycle state, named as EC2 names them.
type State string

const (
	StatePending    State = "pending"
	StateRunning    State = "running"
	StateStopping   State = "stopping"
	StateStopped    State = "stopped"
	StateTerminated State = "terminated"
)

// IMDSAddr is where every instance finds its metadata service.
const IMDSAddr = "169.254.169.254"

// LaunchSpec describes one instance. Only Image is required; the rest
// default to plausible values (the address to the next free one).
type LaunchSpec struct {
	Image        *Image
	InstanceID   string // default: random i-...
	InstanceType string // default t3.medium
	ImageID      string // AMI id IMDS reports; default ami-<image name hash>
	PrivateIP    string // must be in Cloud.Subnet(); default: next free in the zone
	// The zone (Cloud.Zones) is the one holding PrivateIP, else the one
	// whose CIDR is SubnetCIDR, whose SubnetID is SubnetID, or whose
	// letter ends AZ, else the first.
	SubnetCIDR string // what IMDS reports; default the zone's CIDR
	VPCCIDR    string // what IMDS reports; default Cloud.Subnet() with zones, else SubnetCIDR
	SubnetID   string // what IMDS reports; default the zone's
	VPCID      string
	MAC        string // default: random 0e:...
	AZ         string // what IMDS reports; default <Region><zone letter>
	Region     string // default us-east-1
	AccountID  string
	Tags       map[string]string
	UserData   []byte
	// AuthorizedKey is an OpenSSH public key line put into root's and
	// admin's authorized_keys before boot, as cloud-init would.
	AuthorizedKey string
	// AllowIMDSv1 makes IMDS answer without a token (HttpTokens=optional).
	AllowIMDSv1 bool
	IAMRole     string // role name IMDS serves credentials for, if any
	// TargetLifecycleState answers IMDS autoscaling/target-lifecycle-state
	// (IMDSConfig.TargetLifecycleState); nil: in no Auto Scaling group.
	TargetLifecycleState func() string
	// RunFiles are files the guest sees under /run (keys are absolute
	// paths there, e.g. a systemd drop-in in /run/systemd/system), at every
	// boot, read-only: bind-mounted from the instance's directory, never
	// written to its disk, so no snapshot or image carries them. For
	// test-only wiring such as where guests reach the emulator.
	RunFiles map[string][]byte
	// BootTimeout bounds the wait for SSH; default 60s.
	BootTimeout time.Duration
}

// HostNofileCapFile, in a guest's root, holds the host's hard open-files
// limit when it is below what Elasticsearch needs (see prepareRootfs).
const HostNofileCapFile = "etc/esbake-testcloud/host-nofile-cap"

// Instance is a booted (or stopped) container instance.
type Instance struct {
	c        *Cloud
	spec     LaunchSpec
	n        int
	ip       netip.Addr
	zone     Zone
	dir      string
	merged   string
	ns       string // instance netns name
	imdsNS   string
	hostVeth string
	hostKey  ssh.PublicKey
	imds     *imdsServer
	imdsURL  string
	console  string
	cgroups  []string // written only by spawn, which the supervisor serialises

	mu       sync.Mutex
	state    State
	cmd      *exec.Cmd
	leader   int
	boots    int
	stopping bool
	done     chan struct{} // closed when the current run (all reboots) ends
	lastExit error
}

// Launch creates and boots an instance and waits until its SSH server
// answers. On error everything created is removed again.
func (c *Cloud) Launch(ctx context.Context, spec LaunchSpec) (*Instance, error) {
	if spec.Image == nil || spec.Image.Dir == "" {
		return nil, errors.New("launch: LaunchSpec.Image is required (use EnsureImage)")
	}
	n, zi, ip, err := c.allocate(spec)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	zone := c.zones[zi]
	spec = c.withDefaults(spec, zone, ip)
	i := &Instance{
		c: c, spec: spec, n: n, ip: ip, zone: zone,
		dir:      filepath.Join(c.dir, fmt.Sprintf("%d-%s", n, spec.InstanceID)),
		ns:       fmt.Sprintf("%s-%s-%d", namePrefix, c.id, n),
		imdsNS:   fmt.Sprintf("%s-%s-%d-imds", namePrefix, c.id, n),
		hostVeth: fmt.Sprintf("%s%sv%d", namePrefix, c.id, n),
		state:    StatePending,
	}
	i.merged = filepath.Join(i.dir, "merged")
	i.console = filepath.Join(i.dir, "console.log")
	c.mu.Lock()
	c.instances = append(c.instances, i)
	c.mu.Unlock()
	if err := i.create(ctx); err != nil {
		_ = i.Terminate(context.Background())
		return nil, fmt.Errorf("launch %s: %w", spec.InstanceID, err)
	}
	return i, nil
}

func (c *Cloud) withDefaults(s LaunchSpec, z Zone, ip netip.Addr) LaunchSpec {
	rnd := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	if s.InstanceID == "" {
		s.InstanceID = "i-" + rnd(9)[:17]
	}
	if s.InstanceType == "" {
		s.InstanceType = "t3.medium"
	}
	if s.ImageID == "" {
		s.ImageID = "ami-" + rnd(9)[:17]
	}
	s.PrivateIP = ip.String()
	if s.SubnetCIDR == "" {
		s.SubnetCIDR = z.CIDR.String()
	}
	if s.SubnetID == "" {
		s.SubnetID = z.SubnetID
	}
	if s.VPCCIDR == "" {
		s.VPCCIDR = s.SubnetCIDR
		if len(c.zones) > 1 {
			s.VPCCIDR = c.subnet.String()
		}
	}
	if s.MAC == "" {
		b := make([]byte, 5)
		_, _ = rand.Read(b)
		s.MAC = fmt.Sprintf("0e:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4])
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if s.AZ == "" {
		s.AZ = s.Region + z.Letter
	}
	if s.BootTimeout == 0 {
		s.BootTimeout = 60 * time.Second
	}
	return s
}

func (i *Instance) create(ctx context.Context) error {
	for _, d := range []string{"upper", "work", "merged", "imds"} {
		if err := os.MkdirAll(filepath.Join(i.dir, d), 0o755); err != nil {
			return fmt.Errorf("create instance dir: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(i.spec.Image.layers(), ":"), filepath.Join(i.dir, "upper"), filepath.Join(i.dir, "work"))
	if err := syscall.Mount("overlay", i.merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay for %s (needs overlayfs): %w", i.spec.Image.Dir, err)
	}
	if err := i.prepareRootfs(); err != nil {
		return err
	}
	if err := i.writeRunFiles(); err != nil {
		return err
	}
	if err := i.setupNetwork(ctx); err != nil {
		return err
	}
	if err := i.startIMDS(ctx); err != nil {
		return err
	}
	return i.bootAndWait(ctx)
}

// prepareRootfs writes what cloud-init would on first boot: hostname,
// machine-id, fresh host keys, the launch key.
func (i *Instance) prepareRootfs() error {
	r := i.merged
	host := "ip-" + strings.ReplaceAll(i.ip.String(), ".", "-")
	write := func(p string, data []byte, mode os.FileMode) error {
		full := filepath.Join(r, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("prepare rootfs: %w", err)
		}
		_ = os.Remove(full)
		if err := os.WriteFile(full, data, mode); err != nil {
			return fmt.Errorf("prepare rootfs: %w", err)
		}
		return nil
	}
	mid := make([]byte, 16)
	_, _ = rand.Read(mid)
	if err := write("etc/machine-id", []byte(hex.EncodeToString(mid)+"\n"), 0o444); err != nil {
		return err
	}
	if err := write("etc/hostname", []byte(host+"\n"), 0o644); err != nil {
		return err
	}
	// Containers inherit this process's hard open-files limit and cannot
	// raise it (no CAP_SYS_RESOURCE), so a unit's LimitNOFILE=65535 is
	// clamped; the Elasticsearch stand-in reads this to judge the unit's
	// setting instead of a limit no guest here can have.
	var nofile syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile) == nil && nofile.Max < 65535 {
		if err := write(HostNofileCapFile, []byte(fmt.Sprintf("%d\n", nofile.Max)), 0o644); err != nil {
			return err
		}
	}
	hosts := fmt.Sprintf("127.0.0.1 localhost\n%s %s.%s.compute.internal %s\n::1 localhost ip6-localhost ip6-loopback\n",
		i.ip, host, i.spec.Region, host)
	if err := write("etc/hosts", []byte(hosts), 0o644); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(r, "etc/ssh/ssh_host_*"))
	for _, o := range old {
		_ = os.Remove(o)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate host key: %w", err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "root@"+host)
	if err != nil {
		return fmt.Errorf("encode host key: %w", err)
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("host public key: %w", err)
	}
	i.hostKey = spub
	if err := write("etc/ssh/ssh_host_ed25519_key", pem.EncodeToMemory(blk), 0o600); err != nil {
		return err
	}
	if err := write("etc/ssh/ssh_host_ed25519_key.pub", ssh.MarshalAuthorizedKey(spub), 0o644); err != nil {
		return err
	}
	// Only the ed25519 key exists: say so, so sshd does not log missing keys.
	if err := write("etc/ssh/sshd_config.d/05-hostkey.conf", []byte("HostKey /etc/ssh/ssh_host_ed25519_key\n"), 0o644); err != nil {
		return err
	}
	if k := strings.TrimSpace(i.spec.AuthorizedKey); k != "" {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return fmt.Errorf("AuthorizedKey is not an OpenSSH public key: %w", err)
		}
		users := readPasswd(filepath.Join(r, "etc/passwd"))
		for _, u := range []string{"root", "admin"} {
			pw, ok := users[u]
			if !ok {
				continue
			}
			if err := addAuthorizedKey(filepath.Join(r, pw.home), pw.uid, pw.gid, k); err != nil {
				return err
			}
		}
	}
	return nil
}

type passwdEntry struct {
	uid, gid int
	home     string
}

func readPasswd(path string) map[string]passwdEntry {
	out := map[string]passwdEntry{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		out[f[0]] = passwdEntry{uid: uid, gid: gid, home: f[5]}
	}
	return out
}

// addAuthorizedKey appends key to home/.ssh/authorized_keys unless present
// (cloud-init appends; a snapshot image keeps earlier keys, as AMIs do).
func addAuthorizedKey(home string, uid, gid int, key string) error {
	sshDir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", sshDir, err)
	}
	ak := filepath.Join(sshDir, "authorized_keys")
	cur, _ := os.ReadFile(ak)
	if !bytes.Contains(cur, []byte(key)) {
		if len(cur) > 0 && !bytes.HasSuffix(cur, []byte("\n")) {
			cur = append(cur, '\n')
		}
		cur = append(cur, []byte(key+"\n")...)
		if err := os.WriteFile(ak, cur, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", ak, err)
		}
	}
	for _, p := range []string{sshDir, ak} {
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	return os.Chmod(sshDir, 0o700)
}

// setupNetwork creates the instance's namespace (eth0 on the cloud bridge)
// and its IMDS namespace, joined to the instance's alone by a veth pair,
// so 169.254.169.254 of one instance is unreachable from any other.
func (i *Instance) setupNetwork(ctx context.Context) error {
	bits := i.zone.CIDR.Bits()
	steps := [][]string{
		{"netns", "add", i.ns},
		{"netns", "add", i.imdsNS},
		{"link", "add", i.hostVeth, "type", "veth", "peer", "name", "eth0", "address", i.spec.MAC, "netns", i.ns},
		{"link", "set", i.hostVeth, "master", i.c.bridge, "up"},
		{"-n", i.ns, "link", "set", "lo", "up"},
		{"-n", i.ns, "addr", "add", fmt.Sprintf("%s/%d", i.ip, bits), "dev", "eth0"},
		{"-n", i.ns, "link", "set", "eth0", "up"},
		{"-n", i.ns, "route", "add", "default", "via", i.zone.Gateway.String()},
		{"link", "add", "imds0", "netns", i.ns, "type", "veth", "peer", "name", "eth0", "netns", i.imdsNS},
		{"-n", i.ns, "addr", "add", "169.254.169.1/24", "dev", "imds0"},
		{"-n", i.ns, "link", "set", "imds0", "up"},
		{"-n", i.imdsNS, "link", "set", "lo", "up"},
		{"-n", i.imdsNS, "addr", "add", IMDSAddr + "/24", "dev", "eth0"},
		{"-n", i.imdsNS, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if _, err := run(ctx, "ip", s...); err != nil {
			return fmt.Errorf("network setup: %w", err)
		}
	}
	return nil
}

func (i *Instance) startIMDS(ctx context.Context) error {
	s := i.spec
	cfg := IMDSConfig{
		InstanceID: s.InstanceID, InstanceType: s.InstanceType, ImageID: s.ImageID,
		LocalIPv4: s.PrivateIP, MAC: s.MAC, SubnetCIDR: s.SubnetCIDR, VPCCIDR: s.VPCCIDR,
		SubnetID: s.SubnetID, VPCID: s.VPCID, AvailabilityZone: s.AZ, Region: s.Region,
		AccountID: s.AccountID, PublicKey: s.AuthorizedKey, Tags: s.Tags, UserData: s.UserData,
		AllowIMDSv1: s.AllowIMDSv1, IAMRole: s.IAMRole, TargetLifecycleState: s.TargetLifecycleState,
	}
	srv, err := startIMDSServer(ctx, cfg, filepath.Join(i.dir, "imds"), filepath.Join(i.c.dir, "pids", fmt.Sprintf("%d-imds", i.n)))
	if err != nil {
		return err
	}
	i.mu.Lock()
	i.imds = srv
	i.mu.Unlock()
	l, err := listenInNetns("/run/netns/"+i.imdsNS, IMDSAddr+":80")
	if err != nil {
		return err
	}
	srv.serve(l)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for host IMDS access: %w", err)
	}
	srv.serve(hl)
	i.imdsURL = "http://" + hl.Addr().String()
	return nil
}

func (i *Instance) nspawnCmd() *exec.Cmd {
	args := []string{
		"--boot", "--register=no", "--keep-unit",
		"--directory=" + i.merged,
		"--machine=" + i.spec.InstanceID,
		"--network-namespace-path=/run/netns/" + i.ns,
		"--capability=CAP_NET_ADMIN,CAP_NET_RAW",
		"--console=read-only",
		"--resolv-conf=off",
		"--timezone=off",
		"--link-journal=no",
	}
	for _, p := range i.runFilePaths() {
		args = append(args, "--bind-ro="+i.runFileSource(p)+":"+p)
	}
	// A shell moves itself into the instance's cgroups, then becomes
	// nspawn (same pid), so nspawn starts in its own cgroup.
	cmd := exec.Command("/bin/sh", append([]string{"-c",
		`for d in $0; do echo $$ > "$d/cgroup.procs" || exit 1; done; exec systemd-nspawn "$@"`,
		strings.Join(i.cgroups, " ")}, args...)...)
	// Without this nspawn mounts its own tmpfs on /tmp, hiding the
	// image's fstab entry (so a CIS image's noexec /tmp would not apply).
	cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_TMPFS_TMP=0")
	// If the test process dies, nspawn powers the container off.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	return cmd
}

// runFilePaths are LaunchSpec.RunFiles' guest paths, sorted.
func (i *Instance) runFilePaths() []string {
	ps := make([]string, 0, len(i.spec.RunFiles))
	for p := range i.spec.RunFiles {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// runFileSource is where the host keeps a run file: outside the overlay.
func (i *Instance) runFileSource(guestPath string) string {
	return filepath.Join(i.dir, "runfiles", strings.ReplaceAll(strings.TrimPrefix(guestPath, "/"), "/", "__"))
}

// writeRunFiles puts LaunchSpec.RunFiles beside the overlay, for nspawn to
// bind-mount under /run (a tmpfs in the guest, so never on its disk).
func (i *Instance) writeRunFiles() error {
	for _, p := range i.runFilePaths() {
		if clean := filepath.Clean(p); clean != p || !strings.HasPrefix(p, "/run/") || strings.ContainsAny(p, ":,") {
			return fmt.Errorf("LaunchSpec.RunFiles: %q must be a clean absolute path under /run/ without ':' or ','", p)
		}
		src := i.runFileSource(p)
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			return fmt.Errorf("write run files: %w", err)
		}
		if err := os.WriteFile(src, i.spec.RunFiles[p], 0o644); err != nil {
			return fmt.Errorf("write run files: %w", err)
		}
	}
	return nil
}

func (i *Instance) cgroupName() string { return fmt.Sprintf("%s-%s-%d", namePrefix, i.c.id, i.n) }

func (i *Instance) removeCgroups() {
	for _, d := range i.cgroups {
		removeCgroupTree(d)
	}
}

func (i *Instance) pidFile(what string) string {
	return filepath.Join(i.c.dir, "pids", fmt.Sprintf("%d-%s", i.n, what))
}

// spawn starts one nspawn process. Caller holds no lock.
func (i *Instance) spawn() (*exec.Cmd, error) {
	cgs, err := makeCgroups(i.cgroupName())
	if err != nil {
		return nil, err
	}
	i.cgroups = cgs
	logf, err := os.OpenFile(i.console, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open console log: %w", err)
	}
	cmd := i.nspawnCmd()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start systemd-nspawn (apt-get install systemd-container): %w", err)
	}
	logf.Close()
	_ = writePidFile(i.pidFile("nspawn"), cmd.Process.Pid)
	i.mu.Lock()
	i.cmd = cmd
	i.leader = 0
	i.boots++
	i.mu.Unlock()
	return cmd, nil
}

// boot starts the supervisor: nspawn, restarted when the container
// reboots (nspawn exits 133), until it powers off or is stopped.
func (i *Instance) boot() error {
	i.mu.Lock()
	i.stopping = false
	i.lastExit = nil
	done := make(chan struct{})
	i.done = done
	i.state = StatePending
	i.mu.Unlock()
	cmd, err := i.spawn()
	if err != nil {
		i.mu.Lock()
		i.state = StateStopped
		close(done)
		i.mu.Unlock()
		return err
	}
	go func() {
		defer close(done)
		for {
			err := cmd.Wait()
			i.removeCgroups()
			_ = os.Remove(i.pidFile("nspawn"))
			_ = os.Remove(i.pidFile("leader"))
			i.mu.Lock()
			stopping := i.stopping
			i.cmd, i.leader = nil, 0
			var ee *exec.ExitError
			reboot := errors.As(err, &ee) && ee.ExitCode() == 133
			if stopping || !reboot {
				i.lastExit = err
				if i.state != StateTerminated {
					i.state = StateStopped
				}
				i.mu.Unlock()
				return
			}
			i.mu.Unlock()
			cmd, err = i.spawn()
			if err != nil {
				i.mu.Lock()
				i.lastExit = err
				i.state = StateStopped
				i.mu.Unlock()
				return
			}
		}
	}()
	return nil
}

func (i *Instance) bootAndWait(ctx context.Context) error {
	if err := i.boot(); err != nil {
		return err
	}
	return i.waitRunning(ctx)
}

func (i *Instance) waitRunning(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, i.spec.BootTimeout)
	defer cancel()
	if _, err := i.Leader(ctx); err != nil {
		return err
	}
	if err := i.WaitSSH(ctx); err != nil {
		return err
	}
	i.mu.Lock()
	if i.state == StatePending {
		i.state = StateRunning
	}
	i.mu.Unlock()
	return nil
}

// Leader returns the host pid of the container's init (its PID 1), waiting
// for it to exist.
func (i *Instance) Leader(ctx context.Context) (int, error) {
	for {
		i.mu.Lock()
		leader, cmd, done, boots := i.leader, i.cmd, i.done, i.boots
		i.mu.Unlock()
		if leader != 0 {
			return leader, nil
		}
		if cmd != nil && cmd.Process != nil {
			if l := findNamespaceInit(cmd.Process.Pid); l != 0 {
				i.mu.Lock()
				if i.boots == boots && i.cmd == cmd {
					i.leader = l
					_ = writePidFile(i.pidFile("leader"), l)
				}
				i.mu.Unlock()
				return l, nil
			}
		}
		select {
		case <-done:
			return 0, fmt.Errorf("instance %s is not running: %v%s", i.spec.InstanceID, i.exitErr(), i.consoleTail())
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for instance %s init: %w%s", i.spec.InstanceID, ctx.Err(), i.consoleTail())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (i *Instance) exitErr() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.lastExit == nil {
		return errors.New("stopped")
	}
	return i.lastExit
}

// findNamespaceInit finds the descendant of pid that is PID 1 of a new pid
// namespace (NSpid "X 1").
func findNamespaceInit(pid int) int {
	queue := []int{pid}
	for n := 0; len(queue) > 0 && n < 64; n++ {
		p := queue[0]
		queue = queue[1:]
		if p != pid {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p)); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
						f := strings.Fields(rest)
						if len(f) >= 2 && f[len(f)-1] == "1" {
							return p
						}
					}
				}
			}
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					queue = append(queue, c)
				}
			}
		}
	}
	return 0
}

func (i *Instance) consoleTail() string {
	b, err := os.ReadFile(i.console)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return "\nconsole (" + i.console + "):\n" + string(b)
}

// WaitSSH waits until the instance's sshd completes a key exchange with
// its expected host key (authentication is not attempted).
func (i *Instance) WaitSSH(ctx context.Context) error {
	i.mu.Lock()
	done := i.done
	i.mu.Unlock()
	var last error
	for {
		if err := i.sshHandshake(ctx); err == nil {
			return nil
		} else {
			last = err
		}
		select {
		case <-done:
			return fmt.Errorf("instance %s stopped before SSH answered: %v%s", i.spec.InstanceID, i.exitErr(), i.consoleTail())
		case <-ctx.Done():
			return fmt.Errorf("waiting for SSH on %s: %w (last: %v)%s", i.SSHAddr(), ctx.Err(), last, i.consoleTail())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

var errHandshakeOK = errors.New("handshake ok")

func (i *Instance) sshHandshake(ctx context.Context) error {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	conn, err := d.DialContext(ctx, "tcp", i.SSHAddr())
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	ok := false
	cfg := &ssh.ClientConfig{
		User: "probe",
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if !bytes.Equal(key.Marshal(), i.hostKey.Marshal()) {
				return errors.New("unexpected host key")
			}
			ok = true
			return nil
		},
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
	}
	c, _, _, err := ssh.NewClientConn(conn, i.SSHAddr(), cfg)
	if c != nil {
		c.Close()
	}
	if ok {
		return nil
	}
	return err
}

// ID is the instance id.
func (i *Instance) ID() string { return i.spec.InstanceID }

// Spec is the launch spec with defaults filled in.
func (i *Instance) Spec() LaunchSpec { return i.spec }

// Zone is the subnet and availability zone the instance lives in.
func (i *Instance) Zone() Zone { return i.zone }

// PrivateIP is the instance's address on the cloud subnet.
func (i *Instance) PrivateIP() string { return i.ip.String() }

// SSHAddr is host:port of the instance's sshd, reachable from the host.
func (i *Instance) SSHAddr() string { return net.JoinHostPort(i.ip.String(), "22") }

// HostKey is the instance's SSH host key (generated at launch).
func (i *Instance) HostKey() ssh.PublicKey { return i.hostKey }

// HostKeyCallback accepts exactly this instance's host key.
func (i *Instance) HostKeyCallback() ssh.HostKeyCallback { return ssh.FixedHostKey(i.hostKey) }

// IMDSURL is a host-loopback URL of this instance's IMDS (same service the
// instance reaches at 169.254.169.254), e.g. "http://127.0.0.1:PORT".
func (i *Instance) IMDSURL() string { return i.imdsURL }

// SetTags replaces the instance tags its IMDS serves (as EC2 does after
// CreateTags/DeleteTags when tags in metadata are enabled).
func (i *Instance) SetTags(tags map[string]string) {
	i.mu.Lock()
	srv := i.imds
	i.mu.Unlock()
	if srv != nil {
		srv.setTags(tags)
	}
}

// RootDir is the instance's merged root filesystem as seen from the host.
func (i *Instance) RootDir() string { return i.merged }

// NetNS is the name of the instance's network namespace (/run/netns/NAME).
func (i *Instance) NetNS() string { return i.ns }

// ConsoleOutput returns what the instance printed on its console so far.
func (i *Instance) ConsoleOutput() ([]byte, error) {
	b, err := os.ReadFile(i.console)
	if err != nil {
		return nil, fmt.Errorf("read console of %s: %w", i.spec.InstanceID, err)
	}
	return b, nil
}

// Stopped returns a channel closed when the current run of the instance
// ends: Stop, Terminate, or a power-off from inside (reboots do not end a
// run). The EC2 emulator watches it to apply the shutdown behaviour. For a
// stopped instance the channel is already closed.
func (i *Instance) Stopped() <-chan struct{} {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return i.done
}

// State is the current lifecycle state.
func (i *Instance) State() State {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.state
}

// SSH opens an SSH client session as user with signer, checking the host key.
func (i *Instance) SSH(ctx context.Context, user string, signer ssh.Signer) (*ssh.Client, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", i.SSHAddr())
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", i.SSHAddr(), err)
	}
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: i.HostKeyCallback(), HostKeyAlgorithms: []string{ssh.KeyAlgoED25519}, Timeout: 10 * time.Second}
	c, chans, reqs, err := ssh.NewClientConn(conn, i.SSHAddr(), cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh %s as %s: %w", i.SSHAddr(), user, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// Exec runs command with /bin/sh -c inside the running instance (all its
// namespaces, entered with nsenter; not through SSH) and returns stdout.
// A non-zero exit is an error carrying stderr.
func (i *Instance) Exec(ctx context.Context, command string) (string, error) {
	if st := i.State(); st != StateRunning && st != StatePending {
		return "", fmt.Errorf("exec in %s: instance is %s", i.spec.InstanceID, st)
	}
	leader, err := i.Leader(ctx)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(leader), "-a", "--", "/bin/sh", "-c", command)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("exec %q in %s: %w: %s", command, i.spec.InstanceID, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Stop shuts the instance down cleanly (systemd poweroff), keeping its
// disk, address and IMDS; Start boots it again.
func (i *Instance) Stop(ctx context.Context) error {
	i.mu.Lock()
	switch i.state {
	case StateStopped:
		i.mu.Unlock()
		return nil
	case StateTerminated:
		i.mu.Unlock()
		return fmt.Errorf("stop %s: instance is terminated", i.spec.InstanceID)
	}
	if i.done == nil { // never booted (launch failed early)
		i.state = StateStopped
		i.mu.Unlock()
		return nil
	}
	i.state = StateStopping
	i.stopping = true
	cmd, done := i.cmd, i.done
	i.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		// nspawn turns SIGTERM into a clean poweroff of the container.
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		i.kill()
		<-done
	case <-ctx.Done():
		i.kill()
		<-done
	}
	i.mu.Lock()
	if i.state != StateTerminated {
		i.state = StateStopped
	}
	i.mu.Unlock()
	return nil
}

// kill ends the container at once: killing its PID 1 ends the whole pid
// namespace; nspawn then exits.
func (i *Instance) kill() {
	i.mu.Lock()
	i.stopping = true
	cmd, leader := i.cmd, i.leader
	i.mu.Unlock()
	if leader == 0 && cmd != nil && cmd.Process != nil {
		leader = findNamespaceInit(cmd.Process.Pid)
	}
	if leader != 0 {
		_ = syscall.Kill(leader, syscall.SIGKILL)
	}
	if cmd != nil && cmd.Process != nil {
		go func() {
			time.Sleep(5 * time.Second)
			_ = cmd.Process.Kill()
		}()
	}
}

// Start boots a stopped instance and waits for SSH.
func (i *Instance) Start(ctx context.Context) error {
	i.mu.Lock()
	st := i.state
	i.mu.Unlock()
	switch st {
	case StateRunning, StatePending:
		return nil
	case StateTerminated:
		return fmt.Errorf("start %s: instance is terminated", i.spec.InstanceID)
	case StateStopping:
		return fmt.Errorf("start %s: instance is stopping", i.spec.InstanceID)
	}
	return i.bootAndWait(ctx)
}

// Reboot reboots the instance from inside (as `reboot` would) and waits
// until it is back and answering SSH.
func (i *Instance) Reboot(ctx context.Context) error {
	if st := i.State(); st != StateRunning {
		return fmt.Errorf("reboot %s: instance is %s", i.spec.InstanceID, st)
	}
	leader, err := i.Leader(ctx)
	if err != nil {
		return err
	}
	i.mu.Lock()
	before := i.boots
	i.state = StatePending
	i.mu.Unlock()
	// SIGINT to systemd is ctrl-alt-del, i.e. reboot.target; nspawn then
	// exits 133 and the supervisor boots the container again.
	if err := syscall.Kill(leader, syscall.SIGINT); err != nil {
		return fmt.Errorf("reboot %s: %w", i.spec.InstanceID, err)
	}
	ctx2, cancel := context.WithTimeout(ctx, i.spec.BootTimeout)
	defer cancel()
	for {
		i.mu.Lock()
		boots, done := i.boots, i.done
		i.mu.Unlock()
		if boots > before {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("reboot %s: instance stopped instead: %v%s", i.spec.InstanceID, i.exitErr(), i.consoleTail())
		case <-ctx2.Done():
			return fmt.Errorf("reboot %s: %w%s", i.spec.InstanceID, ctx2.Err(), i.consoleTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return i.waitRunning(ctx)
}

// Terminate kills the instance and removes everything it had: processes,
// IMDS, namespaces, veths, overlay mount and layers. Idempotent.
func (i *Instance) Terminate(ctx context.Context) error {
	i.mu.Lock()
	if i.state == StateTerminated && i.done == nil && i.imds == nil {
		i.mu.Unlock()
		return nil
	}
	i.state = StateTerminated
	done := i.done
	i.mu.Unlock()
	if done != nil {
		i.kill()
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	var errs []error
	i.mu.Lock()
	srv := i.imds
	i.imds, i.done = nil, nil
	i.mu.Unlock()
	if srv != nil {
		srv.close()
	}
	for _, ns := range []string{i.ns, i.imdsNS} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			if _, err := run(ctx, "ip", "netns", "delete", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if linkExists(i.hostVeth) {
		if _, err := run(ctx, "ip", "link", "delete", i.hostVeth); err != nil && linkExists(i.hostVeth) {
			errs = append(errs, err)
		}
	}
	if err := unmountUnder(i.dir); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(i.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", i.dir, err))
	}
	_ = os.Remove(i.pidFile("nspawn"))
	_ = os.Remove(i.pidFile("leader"))
	for _, r := range cgroupRoots() {
		removeCgroupTree(filepath.Join(r, i.cgroupName()))
	}
	i.c.release(i.ip)
	if len(errs) > 0 {
		return fmt.Errorf("terminate %s: %w", i.spec.InstanceID, errors.Join(errs...))
	}
	return nil
}

// SnapshotImage snapshots the instance into a new image kept in the
// cloud's run dir (removed by Close, or earlier by ReleaseImage).
func (i *Instance) SnapshotImage(ctx context.Context) (*Image, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return i.Snapshot(ctx, filepath.Join(i.c.dir, "images", "snap-"+hex.EncodeToString(b)))
}

// ReleaseImage removes an image made by SnapshotImage of this cloud; it
// refuses any other. An image still needed (an instance boots from it, or
// another snapshot builds on it) is kept until Close.
func (c *Cloud) ReleaseImage(img *Image) error {
	base := filepath.Join(c.dir, "images")
	if img == nil || filepath.Dir(filepath.Clean(img.Ref())) != base {
		return fmt.Errorf("release image: %v was not made by this cloud's SnapshotImage", img)
	}
	c.mu.Lock()
	insts := append([]*Instance(nil), c.instances...)
	c.mu.Unlock()
	for _, i := range insts {
		if i.State() != StateTerminated && contains(i.spec.Image.layers(), img.Dir) {
			return nil
		}
	}
	others, _ := filepath.Glob(filepath.Join(base, "*"))
	for _, o := range others {
		if o == filepath.Clean(img.Ref()) {
			continue
		}
		if other, err := ImageFromDir(o, ""); err == nil && contains(other.Lower, img.Dir) {
			return nil
		}
	}
	if err := os.RemoveAll(img.Ref()); err != nil {
		return fmt.Errorf("release image %s: %w", img.Ref(), err)
	}
	return nil
}

// Snapshot captures the instance's disk as a new image in destDir (which
// must not exist): a copy of the instance's own changes (its overlay
// upper layer) stacked on the layers of the image it booted from, which
// must therefore stay in place. A running instance is synced and copied
// live (like CreateImage with NoReboot); stop it for a quiescent copy. The
// copy is made next to destDir and renamed, so destDir is complete or
// absent. ImageFromDir(destDir) returns the image again.
func (i *Instance) Snapshot(ctx context.Context, destDir string) (*Image, error) {
	st := i.State()
	if st == StateTerminated {
		return nil, fmt.Errorf("snapshot %s: instance is terminated", i.spec.InstanceID)
	}
	destDir, err := filepath.Abs(destDir)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if _, err := os.Stat(destDir); err == nil {
		return nil, fmt.Errorf("snapshot %s: %s already exists", i.spec.InstanceID, destDir)
	}
	if st == StateRunning {
		if _, err := i.Exec(ctx, "sync"); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", i.spec.InstanceID, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(destDir), 0o755); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(destDir), ".snapshot-"+filepath.Base(destDir)+"-")
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	fail := func(err error) (*Image, error) {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("snapshot %s: %w", i.spec.InstanceID, err)
	}
	// The upper dir keeps overlay's own records of deletions (whiteout
	// devices, opaque-dir xattrs); cp -a keeps both, so the layer means the
	// same when stacked as a lower layer.
	if err := copyTree(ctx, filepath.Join(i.dir, "upper"), filepath.Join(tmp, "layer")); err != nil {
		return fail(err)
	}
	meta, _ := json.MarshalIndent(imageMeta{Name: filepath.Base(destDir), Built: time.Now().UTC(),
		Layer: "layer", Lower: i.spec.Image.layers()}, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "image.json"), meta, 0o644); err != nil {
		return fail(err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, destDir); err != nil {
		return fail(err)
	}
	return ImageFromDir(destDir, filepath.Base(destDir))
}
