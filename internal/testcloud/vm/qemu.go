package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
)

// kernelCmdline boots the disk as the root fs; eth0/eth1 names (the
// image's networkd files match by MAC anyway) and the console on the
// serial port, which QEMU writes to console.log.
const kernelCmdline = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"

// machine is what must be identical between the QEMU that saved a state
// and the one restoring it.
type machine struct {
	MemoryMB int
	CPUs     int
}

// qemuProc is one running QEMU.
type qemuProc struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	dir     string
	qmpPath string
	console string
	sshPort int
}

type qemuOpts struct {
	dir      string // per-VM files: console.log, qmp.sock, qemu.pid
	disk     string // the qcow2 this VM writes
	kernel   string
	initrd   string
	m        machine
	imdsPort int    // 0: 169.254.169.254 leads nowhere
	incoming string // a saved state to restore, or ""
}

// qemuArgs is the command line; devices and their order must not change
// between saving a state and restoring it (snapshotScriptVersion).
func qemuArgs(o qemuOpts, sshPort int) []string {
	imdsTarget := "TCP:127.0.0.1:" + strconv.Itoa(o.imdsPort)
	if o.imdsPort == 0 {
		imdsTarget = "OPEN:/dev/null" // nothing answers, as in a snapshot boot
	}
	machineOpt, accelOpt, cpu := "pc,hpet=off", "tcg,thread=multi", "qemu64"
	if Accel() == "kvm" {
		accelOpt, cpu = "kvm", "host"
	}
	args := []string{
		"-name", "esbake-vm",
		"-machine", machineOpt, "-accel", accelOpt, "-cpu", cpu,
		"-m", strconv.Itoa(o.m.MemoryMB), "-smp", strconv.Itoa(o.m.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-rtc", "base=utc",
		"-kernel", o.kernel, "-initrd", o.initrd, "-append", kernelCmdline,
		"-drive", "file=" + o.disk + ",if=none,id=root,format=qcow2,discard=unmap",
		"-device", "virtio-blk-pci,drive=root",
		// eth0: SSH from the host through hostfwd; restrict=on keeps the
		// guest from reaching the host or anything beyond it.
		"-netdev", fmt.Sprintf("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22", sshPort),
		"-device", "virtio-net-pci,netdev=net0,mac=" + testcloud.VMMAC0,
		// eth1: 169.254.169.254:80 is a guestfwd that runs socat per
		// connection to this VM's own IMDS on the host's loopback.
		"-netdev", "user,id=net1,restrict=on,net=" + testcloud.VMIMDSNet + ",guestfwd=tcp:169.254.169.254:80-cmd:socat - " + imdsTarget,
		"-device", "virtio-net-pci,netdev=net1,mac=" + testcloud.VMMAC1,
		"-device", "virtio-rng-pci",
		"-serial", "file:" + filepath.Join(o.dir, "console.log"),
		"-qmp", "unix:" + filepath.Join(o.dir, "qmp.sock") + ",server=on,wait=off",
		"-pidfile", filepath.Join(o.dir, "qemu.pid"),
	}
	if o.incoming != "" {
		args = append(args, "-incoming", "exec:cat "+shellQuote(o.incoming))
	}
	return args
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// startQEMU starts QEMU, detached from ctx (the VM outlives the call that
// launched it) but killed if this process dies.
func startQEMU(o qemuOpts) (*qemuProc, error) {
	var lastErr error
	// The SSH port is picked free and then handed to QEMU: another process
	// may take it in between, so a bind failure is retried.
	for attempt := 0; attempt < 3; attempt++ {
		port, err := testcloud.FreeLoopbackPort()
		if err != nil {
			return nil, err
		}
		p := &qemuProc{dir: o.dir, qmpPath: filepath.Join(o.dir, "qmp.sock"), console: filepath.Join(o.dir, "console.log"),
			sshPort: port, exited: make(chan struct{})}
		_ = os.Remove(p.qmpPath)
		logf, err := os.Create(filepath.Join(o.dir, "qemu.log"))
		if err != nil {
			return nil, fmt.Errorf("QEMU log: %w", err)
		}
		cmd := exec.Command("qemu-system-x86_64", qemuArgs(o, port)...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("start qemu-system-x86_64 (apt-get install qemu-system-x86): %w", err)
		}
		p.cmd = cmd
		// Our own pid file too: QEMU writes its -pidfile only once running.
		_ = os.WriteFile(filepath.Join(o.dir, "qemu.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
		go func() {
			p.waitErr = cmd.Wait()
			logf.Close()
			close(p.exited)
		}()
		select {
		case <-p.exited:
			log, _ := os.ReadFile(filepath.Join(o.dir, "qemu.log"))
			lastErr = fmt.Errorf("qemu-system-x86_64 exited at start: %v: %s", p.waitErr, strings.TrimSpace(string(log)))
			if strings.Contains(string(log), "hostfwd") {
				continue
			}
			return nil, lastErr
		case <-time.After(300 * time.Millisecond):
			return p, nil
		}
	}
	return nil, lastErr
}

// kill stops QEMU at once (the VM's disk is thrown away or already
// saved) and waits for it.
func (p *qemuProc) kill() {
	if p == nil || p.cmd == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

func (p *qemuProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *qemuProc) consoleTail(n int) string {
	b, _ := os.ReadFile(p.console)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (p *qemuProc) exitError() error {
	log, _ := os.ReadFile(filepath.Join(p.dir, "qemu.log"))
	return fmt.Errorf("QEMU exited (%v): %s\nconsole:\n%s", p.waitErr, strings.TrimSpace(string(log)), p.consoleTail(3000))
}

// waitRestored waits until an incoming state is loaded and resumes the
// VM (a state saved while paused restores paused).
func (p *qemuProc) waitRestored(ctx context.Context) error {
	q, err := dialQMP(ctx, p.qmpPath, p.exited)
	if err != nil {
		return err
	}
	defer q.close()
	for {
		st, err := q.status()
		if err != nil {
			if !p.running() {
				return p.exitError()
			}
			return err
		}
		switch st {
		case "running":
			return nil
		case "paused", "postmigrate", "prelaunch":
			if _, err := q.cmd("cont", nil); err != nil {
				return err
			}
			return nil
		case "inmigrate", "restore-vm":
		default:
			return fmt.Errorf("restoring the saved state: VM is %q", st)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("restoring the saved state: %w", ctx.Err())
		case <-p.exited:
			return p.exitError()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// saveState pauses the VM and writes its RAM and device state to path
// (QMP migrate to a file), then quits QEMU.
func (p *qemuProc) saveState(ctx context.Context, path string) error {
	q, err := dialQMP(ctx, p.qmpPath, p.exited)
	if err != nil {
		return err
	}
	defer q.close()
	if _, err := q.cmd("stop", nil); err != nil {
		return err
	}
	if _, err := q.cmd("migrate-set-parameters", map[string]any{"max-bandwidth": int64(8) << 30}); err != nil {
		return err
	}
	if _, err := q.cmd("migrate", map[string]any{"uri": "exec:cat > " + shellQuote(path)}); err != nil {
		return err
	}
	for {
		st, desc, err := q.migrationStatus()
		if err != nil {
			return err
		}
		if st == "completed" {
			break
		}
		if st == "failed" || st == "cancelled" {
			return fmt.Errorf("saving the VM state: migration %s: %s", st, desc)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("saving the VM state: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if _, err := q.cmd("quit", nil); err != nil && !errors.Is(err, net.ErrClosed) && p.running() {
		return err
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.kill()
	}
	return nil
}

// overlay creates a qcow2 at path whose reads fall through to backing.
func overlay(ctx context.Context, backing, path string) error {
	out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img create overlay on %s (apt-get install qemu-utils): %w: %s", backing, err, out)
	}
	return nil
}
