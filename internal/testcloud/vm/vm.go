package vm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
)

// DefaultBootTimeout covers a full boot under TCG on a loaded machine.
const DefaultBootTimeout = 5 * time.Minute

// LaunchSpec says what VM to start. Exactly one of Snapshot (restore a
// saved state: seconds) and Disk (full boot) is set.
type LaunchSpec struct {
	Snapshot *Snapshot
	Disk     *Disk
	// IMDS is what the VM's own metadata service reports. Network fields
	// left empty get the VM's real ones (10.0.2.15 in 10.0.2.0/24, VPC
	// 10.0.0.0/16, eth0's MAC), so what boot reads matches the guest.
	IMDS testcloud.IMDSConfig
	// AuthorizedKey (OpenSSH line) is added for root and admin after
	// boot, as cloud-init would; IMDS serves it as public-keys/0.
	AuthorizedKey string
	// Hostname defaults to ip-10-0-2-15, EC2's form for the guest address.
	Hostname string
	// MemoryMB and CPUs for a full boot (default 1024, 2); a restore
	// uses the snapshot's.
	MemoryMB, CPUs int
	BootTimeout    time.Duration
}

// VM is a running QEMU guest.
type VM struct {
	spec    LaunchSpec
	id      string
	dir     string
	hostKey ssh.PublicKey
	mgmt    ssh.Signer
	imdsURL string
	stopIMD func()
	opts    qemuOpts

	mu   sync.Mutex
	proc *qemuProc
	cli  *ssh.Client

	closeOnce sync.Once
	closeErr  error
}

// LaunchT launches a VM for a test and terminates it when the test ends;
// it fails the test on error.
func LaunchT(t testing.TB, ctx context.Context, spec LaunchSpec) *VM {
	t.Helper()
	v, err := Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("VM %s console (tail):\n%s", v.ID(), v.ConsoleTail(4000))
		}
		if err := v.Close(); err != nil {
			t.Errorf("close VM %s: %v", v.ID(), err)
		}
	})
	return v
}

// Launch starts a VM with its own IMDS and waits until SSH answers with
// the disk's host key, then sets its clock (stale after a restore),
// hostname and launch key. Call Close when done.
func Launch(ctx context.Context, spec LaunchSpec) (v *VM, err error) {
	if (spec.Snapshot == nil) == (spec.Disk == nil) {
		return nil, fmt.Errorf("vm.Launch: set exactly one of Snapshot (restore) and Disk (full boot)")
	}
	mgmt, err := managementKey(ctx)
	if err != nil {
		return nil, err
	}
	rd, err := runDir()
	if err != nil {
		return nil, fmt.Errorf("VM run dir: %w", err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := "vm-" + hex.EncodeToString(b)
	dir := filepath.Join(rd, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("VM dir: %w", err)
	}
	v = &VM{spec: spec, id: id, dir: dir, mgmt: mgmt}
	defer func() {
		if err != nil {
			tail := v.ConsoleTail(3000)
			_ = v.Close()
			err = fmt.Errorf("launch VM: %w\nconsole (tail):\n%s", err, tail)
		}
	}()
	if spec.BootTimeout == 0 {
		v.spec.BootTimeout = DefaultBootTimeout
	}

	cfg := spec.IMDS
	def := func(p *string, val string) {
		if *p == "" {
			*p = val
		}
	}
	def(&cfg.LocalIPv4, testcloud.VMGuestIP)
	def(&cfg.SubnetCIDR, testcloud.VMSubnet)
	def(&cfg.VPCCIDR, "10.0.0.0/16")
	def(&cfg.MAC, testcloud.VMMAC0)
	def(&cfg.PublicKey, spec.AuthorizedKey)
	ep, stop, err := testcloud.StartIMDS(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return v, fmt.Errorf("start the VM's IMDS: %w", err)
	}
	v.stopIMD, v.imdsURL = stop, ep
	u, err := url.Parse(ep)
	if err != nil {
		return v, fmt.Errorf("IMDS endpoint %q: %w", ep, err)
	}
	imdsPort, err := strconv.Atoi(u.Port())
	if err != nil {
		return v, fmt.Errorf("IMDS endpoint %q: %w", ep, err)
	}

	o := qemuOpts{dir: dir, disk: filepath.Join(dir, "disk.qcow2"), imdsPort: imdsPort}
	var backing string
	if s := spec.Snapshot; s != nil {
		backing, o.kernel, o.initrd, o.m, o.incoming = s.DiskPath, s.Base.Kernel, s.Base.Initrd, s.Machine, s.StatePath
		v.hostKey = s.Base.HostKey
	} else {
		d := spec.Disk
		backing, o.kernel, o.initrd = d.Path, d.Kernel, d.Initrd
		o.m = machine{MemoryMB: spec.MemoryMB, CPUs: spec.CPUs}
		if o.m.MemoryMB == 0 {
			o.m.MemoryMB = 1024
		}
		if o.m.CPUs == 0 {
			o.m.CPUs = 2
		}
		v.hostKey = d.HostKey
	}
	if err := overlay(ctx, backing, o.disk); err != nil {
		return v, err
	}
	v.opts = o
	p, err := startQEMU(o)
	if err != nil {
		return v, err
	}
	v.mu.Lock()
	v.proc = p
	v.mu.Unlock()

	bctx, cancel := context.WithTimeout(ctx, v.spec.BootTimeout)
	defer cancel()
	if o.incoming != "" {
		if err := p.waitRestored(bctx); err != nil {
			return v, err
		}
	}
	if err := v.waitSSH(bctx); err != nil {
		return v, err
	}
	if err := v.personalize(bctx); err != nil {
		return v, err
	}
	return v, nil
}

// personalize does what cloud-init would at first boot, and what a
// restored state needs: the real time, the hostname, the launch key.
func (v *VM) personalize(ctx context.Context) error {
	host := v.spec.Hostname
	if host == "" {
		host = "ip-" + strings.ReplaceAll(testcloud.VMGuestIP, ".", "-")
	}
	key := strings.TrimSpace(v.spec.AuthorizedKey)
	if key != "" {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key)); err != nil {
			return fmt.Errorf("AuthorizedKey is not an OpenSSH public key: %w", err)
		}
	}
	now := time.Now()
	script := fmt.Sprintf(`set -e
date -u -s @%d.%09d >/dev/null
echo %[3]s >/etc/hostname
hostname %[3]s
key=%[4]s
[ -n "$key" ] || exit 0
for u in root admin; do
	home=$(getent passwd "$u" | cut -d: -f6) || continue
	[ -n "$home" ] || continue
	grp=$(id -gn "$u")
	install -d -m 0700 -o "$u" -g "$grp" "$home/.ssh"
	f="$home/.ssh/authorized_keys"
	touch "$f"
	grep -qxF "$key" "$f" || printf '%%s\n' "$key" >>"$f"
	chown "$u:$grp" "$f"
	chmod 0600 "$f"
done
`, now.Unix(), now.Nanosecond(), shellQuote(host), shellQuote(key))
	if out, err := v.Exec(ctx, script); err != nil {
		return fmt.Errorf("set up the guest after boot: %w: %s", err, out)
	}
	return nil
}

// ID is the VM's local name (also in its run dir).
func (v *VM) ID() string { return v.id }

// InstanceID is the id its IMDS reports.
func (v *VM) InstanceID() string { return v.spec.IMDS.InstanceID }

// Dir holds the VM's overlay disk, console.log and qemu.log.
func (v *VM) Dir() string { return v.dir }

// IMDSURL is the host-loopback URL of the same IMDS the guest reaches at
// 169.254.169.254.
func (v *VM) IMDSURL() string { return v.imdsURL }

// SSHAddr is the host-loopback address forwarded to the guest's port 22.
func (v *VM) SSHAddr() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(v.proc.sshPort))
}

// HostKey is the guest's SSH host key (the disk's).
func (v *VM) HostKey() ssh.PublicKey { return v.hostKey }

// HostKeyCallback accepts only the guest's host key.
func (v *VM) HostKeyCallback() ssh.HostKeyCallback { return ssh.FixedHostKey(v.hostKey) }

// ConsoleTail is the end of the guest's serial console.
func (v *VM) ConsoleTail(n int) string {
	v.mu.Lock()
	p := v.proc
	v.mu.Unlock()
	if p == nil {
		return ""
	}
	return p.consoleTail(n)
}

// SSH connects as user with signer (the launch key, say).
func (v *VM) SSH(ctx context.Context, user string, signer ssh.Signer) (*ssh.Client, error) {
	addr := v.SSHAddr()
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("SSH to VM %s at %s: %w", v.id, addr, err)
	}
	// slirp accepts before the guest does: a guest without sshd yet
	// shows as a handshake that never completes.
	dl := time.Now().Add(20 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = conn.SetDeadline(dl)
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: v.HostKeyCallback(), Timeout: 10 * time.Second})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("SSH to VM %s at %s as %s: %w", v.id, addr, user, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// waitSSH waits until the guest's sshd completes a handshake with the
// management key.
func (v *VM) waitSSH(ctx context.Context) error {
	v.mu.Lock()
	p := v.proc
	v.mu.Unlock()
	var last error
	for {
		_, err := v.client(ctx)
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("VM %s: no SSH: %w (last: %v)", v.id, ctx.Err(), last)
		case <-p.exited:
			return p.exitError()
		case <-time.After(time.Second):
		}
	}
}

// client is the management connection (root), reconnected when lost.
func (v *VM) client(ctx context.Context) (*ssh.Client, error) {
	v.mu.Lock()
	c := v.cli
	v.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := v.SSH(ctx, "root", v.mgmt)
	if err != nil {
		return nil, err
	}
	v.setClient(c)
	return c, nil
}

// setClient replaces the management connection (nil drops it), closing
// the one it replaces.
func (v *VM) setClient(c *ssh.Client) {
	v.mu.Lock()
	old := v.cli
	v.cli = c
	v.mu.Unlock()
	if old != nil && old != c {
		old.Close()
	}
}

func (v *VM) dropClient(c *ssh.Client) {
	v.mu.Lock()
	if v.cli == c {
		v.cli = nil
	}
	v.mu.Unlock()
	c.Close()
}

// Exec runs command as root in the guest (over SSH with the backend's
// management key) and returns its combined output; a non-zero exit is an
// error.
func (v *VM) Exec(ctx context.Context, command string) (string, error) {
	for attempt := 0; ; attempt++ {
		c, err := v.client(ctx)
		if err != nil {
			return "", err
		}
		sess, err := c.NewSession()
		if err != nil {
			v.dropClient(c)
			if attempt == 0 {
				continue
			}
			return "", fmt.Errorf("SSH session to VM %s: %w", v.id, err)
		}
		type res struct {
			out []byte
			err error
		}
		ch := make(chan res, 1)
		go func() {
			out, err := sess.CombinedOutput(command)
			ch <- res{out, err}
		}()
		select {
		case r := <-ch:
			sess.Close()
			if r.err != nil {
				return string(r.out), fmt.Errorf("%q in VM %s: %w", firstLine(command), v.id, r.err)
			}
			return string(r.out), nil
		case <-ctx.Done():
			sess.Close()
			v.dropClient(c)
			return "", fmt.Errorf("%q in VM %s: %w", firstLine(command), v.id, ctx.Err())
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// BootID is the guest kernel's boot id: it changes with every boot.
func (v *VM) BootID(ctx context.Context) (string, error) {
	out, err := v.Exec(ctx, "cat /proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(out), err
}

// Reboot reboots the guest (systemctl reboot, a real kernel restart) and
// waits until SSH answers from the new boot.
func (v *VM) Reboot(ctx context.Context) error {
	old, err := v.BootID(ctx)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, _ = v.Exec(rctx, "systemctl reboot") // the connection may drop before it answers
	cancel()
	return v.WaitBoot(ctx, old)
}

// WaitBoot waits until SSH answers from a boot other than oldBootID (a
// reboot started from inside the guest) and systemd has finished starting
// it: sshd answers before networkd has configured the metadata NIC.
func (v *VM) WaitBoot(ctx context.Context, oldBootID string) error {
	v.setClient(nil)
	v.mu.Lock()
	p := v.proc
	v.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, v.spec.BootTimeout)
	defer cancel()
	for {
		ectx, ecancel := context.WithTimeout(ctx, 20*time.Second)
		id, err := v.BootID(ectx)
		ecancel()
		if err == nil && id != oldBootID && id != "" {
			// "degraded" exits non-zero and still means done starting.
			if _, err := v.Exec(ctx, "systemctl is-system-running --wait >/dev/null 2>&1 || true"); err != nil {
				return fmt.Errorf("VM %s: wait for the new boot to settle: %w", v.id, err)
			}
			return nil
		}
		if err != nil {
			v.setClient(nil)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("VM %s did not come back from the reboot: %w\nconsole (tail):\n%s", v.id, ctx.Err(), p.consoleTail(3000))
		case <-p.exited:
			return p.exitError()
		case <-time.After(time.Second):
		}
	}
}

// Close kills QEMU, stops the IMDS and removes the VM's files.
func (v *VM) Close() error {
	v.closeOnce.Do(func() {
		v.setClient(nil)
		v.mu.Lock()
		p := v.proc
		v.mu.Unlock()
		p.kill()
		if v.stopIMD != nil {
			v.stopIMD()
		}
		if err := os.RemoveAll(v.dir); err != nil {
			v.closeErr = fmt.Errorf("remove VM dir: %w", err)
		}
		_ = os.Remove(filepath.Dir(v.dir)) // this process's run dir, once empty
	})
	return v.closeErr
}
