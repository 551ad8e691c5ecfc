package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
)

// Dir is where the VM backend keeps its cache and run state:
// $ESBAKE_CACHE/vm (disks/, snapshots/, run/, the management key).
func Dir() string { return filepath.Join(testcloud.CacheDir(), "vm") }

// Requirements reports what this machine lacks to run VMs; empty means
// Launch can work.
func Requirements() []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to read the image's rootfs and mount its layers)")
	}
	for bin, pkg := range map[string]string{
		"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "socat": "socat",
		"mkfs.ext4": "e2fsprogs", "ssh-keygen": "openssh-client",
	} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin+" not in PATH (apt-get install "+pkg+")")
		}
	}
	return append(missing, testcloud.Requirements()...)
}

// RequireHost skips t when the machine cannot run VMs, or fails it in CI
// (CI=true), where a skip would hide that the VM tests never ran.
func RequireHost(t testing.TB) {
	t.Helper()
	if m := Requirements(); len(m) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the QEMU backend needs: %s", strings.Join(dedup(m), "; "))
		}
		t.Skipf("the QEMU backend needs: %s (set CI=true to make this a failure)", strings.Join(dedup(m), "; "))
	}
}

func dedup(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

var (
	accelOnce sync.Once
	accel     string
)

// Accel is "kvm" when /dev/kvm exists and answers KVM_GET_API_VERSION,
// otherwise "tcg" (emulation: about 10-20x slower, still a real kernel).
func Accel() string {
	accelOnce.Do(func() {
		accel = "tcg"
		if os.Getenv("ESBAKE_VM_ACCEL") == "tcg" {
			return
		}
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return
		}
		defer f.Close()
		const kvmGetAPIVersion = 0xAE00
		v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
		if errno == 0 && v == 12 {
			accel = "kvm"
		}
	})
	return accel
}

var (
	qemuVerOnce sync.Once
	qemuVer     string
	qemuVerErr  error
)

// qemuVersion is part of the saved-state key: a state only restores into
// the QEMU that wrote it.
func qemuVersion(ctx context.Context) (string, error) {
	qemuVerOnce.Do(func() {
		out, err := exec.CommandContext(ctx, "qemu-system-x86_64", "--version").Output()
		if err != nil {
			qemuVerErr = fmt.Errorf("qemu-system-x86_64 --version (apt-get install qemu-system-x86): %w", err)
			return
		}
		qemuVer = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	})
	return qemuVer, qemuVerErr
}

// runDir is this process's directory for VM state: run/<pid>-<start>.
// Files of a process that died are reaped by the next one (reapRuns).
var (
	runOnce sync.Once
	runPath string
	runErr  error
)

func runDir() (string, error) {
	runOnce.Do(func() {
		base := filepath.Join(Dir(), "run")
		if err := os.MkdirAll(base, 0o755); err != nil {
			runErr = fmt.Errorf("create %s: %w", base, err)
			return
		}
		reapRuns(base)
		st, _ := testcloud.ProcStartTime(os.Getpid())
		runPath = filepath.Join(base, fmt.Sprintf("%d-%s", os.Getpid(), st))
		runErr = os.MkdirAll(runPath, 0o755)
	})
	return runPath, runErr
}

// reapRuns kills the QEMUs of test processes that died without cleaning
// up (their pid files are in run/<owner>/<vm>/qemu.pid) and removes their
// files.
func reapRuns(base string) {
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		owner, start, ok := strings.Cut(e.Name(), "-")
		pid, err := strconv.Atoi(owner)
		if !ok || err != nil {
			continue
		}
		if st, err := testcloud.ProcStartTime(pid); err == nil && st == start {
			continue // owner alive
		}
		dir := filepath.Join(base, e.Name())
		pids, _ := filepath.Glob(filepath.Join(dir, "*", "qemu.pid"))
		for _, p := range pids {
			killPidFile(p)
		}
		_ = os.RemoveAll(dir)
	}
}

// killPidFile kills the process a pid file names if it still is a QEMU
// started for that directory (pids get reused).
func killPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if strings.Contains(string(cmdline), filepath.Dir(path)) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
