package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
)

// snapshotScriptVersion is part of every saved-state key: bump it when
// qemuArgs or the way a state is made changes, since a state only restores
// into the same machine.
const snapshotScriptVersion = "1"

// snapshotMachine is the VM a saved state holds.
var snapshotMachine = machine{MemoryMB: 1024, CPUs: 2}

// Snapshot is a booted guest saved to disk: its RAM and device state
// (StatePath) and the disk as it was at that moment (DiskPath, a qcow2 on
// top of Base), which every restored VM uses as its backing file.
type Snapshot struct {
	Dir       string
	DiskPath  string
	StatePath string
	Base      *Disk
	Machine   machine
	// BootTime is how long the boot that made it took to answer SSH.
	BootTime time.Duration
}

type snapshotMeta struct {
	Key      string        `json:"key"`
	Disk     string        `json:"disk"`
	QEMU     string        `json:"qemu"`
	Accel    string        `json:"accel"`
	Machine  machine       `json:"machine"`
	BootTime time.Duration `json:"boot_time_ns"`
	Built    time.Time     `json:"built"`
}

// EnsureSnapshot returns the cached saved state of a booted VM of d
// (BaseDisk, normally), making it when missing: a full boot until SSH
// answers and systemd has settled, then the VM is paused and its state
// written out. Keyed by the disk, the QEMU version and the accelerator.
func EnsureSnapshot(ctx context.Context, d *Disk) (*Snapshot, error) {
	ver, err := qemuVersion(ctx)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "snapshot=%s\ndisk=%s\nqemu=%s\naccel=%s\nmachine=%+v\ncmdline=%s\n", snapshotScriptVersion, d.Key, ver, Accel(), snapshotMachine, kernelCmdline)
	key := hex.EncodeToString(h.Sum(nil))[:16]
	base := filepath.Join(Dir(), "snapshots")
	final := filepath.Join(base, key)
	if s, err := loadSnapshot(final, d); err == nil {
		return s, nil
	}
	unlock, err := testcloud.LockFile(ctx, filepath.Join(base, "."+key+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if s, err := loadSnapshot(final, d); err == nil {
		return s, nil
	}
	_ = os.RemoveAll(final)
	olds, _ := filepath.Glob(filepath.Join(base, ".tmp-"+key+"-*"))
	for _, o := range olds {
		killPidFile(filepath.Join(o, "qemu.pid"))
		_ = os.RemoveAll(o)
	}
	tmp, err := os.MkdirTemp(base, ".tmp-"+key+"-")
	if err != nil {
		return nil, fmt.Errorf("create snapshot dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	// The snapshot's disk must keep its final path: restored VMs' overlays
	// name it as their backing file. So it is created there, and only the
	// metadata marks the snapshot complete.
	if err := os.MkdirAll(final, 0o755); err != nil {
		return nil, fmt.Errorf("create snapshot dir: %w", err)
	}
	diskPath := filepath.Join(final, "disk.qcow2")
	if err := overlay(ctx, d.Path, diskPath); err != nil {
		return nil, err
	}
	mgmt, err := managementKey(ctx)
	if err != nil {
		return nil, err
	}
	o := qemuOpts{dir: tmp, disk: diskPath, kernel: d.Kernel, initrd: d.Initrd, m: snapshotMachine}
	start := time.Now()
	p, err := startQEMU(o)
	if err != nil {
		return nil, err
	}
	defer p.kill()
	v := &VM{id: "snapshot-" + key, dir: tmp, hostKey: d.HostKey, mgmt: mgmt, proc: p,
		spec: LaunchSpec{BootTimeout: DefaultBootTimeout}}
	bctx, cancel := context.WithTimeout(ctx, DefaultBootTimeout)
	defer cancel()
	if err := v.waitSSH(bctx); err != nil {
		return nil, fmt.Errorf("boot the VM to snapshot: %w", err)
	}
	took := time.Since(start)
	// Saved once boot has settled, so restored VMs start quiet; sync so
	// the disk holds what the page cache says.
	if out, err := v.Exec(bctx, "systemctl is-system-running --wait >/dev/null 2>&1 || true; sync"); err != nil {
		return nil, fmt.Errorf("settle the VM to snapshot: %w: %s", err, out)
	}
	// No connection may be open through slirp when the state is saved.
	v.setClient(nil)
	time.Sleep(500 * time.Millisecond)
	state := filepath.Join(final, "state")
	if err := p.saveState(bctx, state); err != nil {
		return nil, fmt.Errorf("save the VM state: %w\nconsole:\n%s", err, p.consoleTail(2000))
	}
	meta, _ := json.MarshalIndent(snapshotMeta{Key: key, Disk: d.Key, QEMU: ver, Accel: Accel(), Machine: snapshotMachine,
		BootTime: took, Built: time.Now().UTC()}, "", "  ")
	if err := os.WriteFile(filepath.Join(final, "snapshot.json.tmp"), meta, 0o644); err != nil {
		return nil, fmt.Errorf("write snapshot metadata: %w", err)
	}
	if err := os.Rename(filepath.Join(final, "snapshot.json.tmp"), filepath.Join(final, "snapshot.json")); err != nil {
		return nil, fmt.Errorf("write snapshot metadata: %w", err)
	}
	ok = true
	_ = os.RemoveAll(tmp)
	return loadSnapshot(final, d)
}

func loadSnapshot(dir string, d *Disk) (*Snapshot, error) {
	b, err := os.ReadFile(filepath.Join(dir, "snapshot.json"))
	if err != nil {
		return nil, err
	}
	var m snapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("snapshot metadata %s: %w", dir, err)
	}
	if m.Disk != d.Key {
		return nil, fmt.Errorf("snapshot %s is of disk %s, not %s", dir, m.Disk, d.Key)
	}
	for _, f := range []string{"disk.qcow2", "state"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("snapshot %s incomplete: %w", dir, err)
		}
	}
	return &Snapshot{Dir: dir, DiskPath: filepath.Join(dir, "disk.qcow2"), StatePath: filepath.Join(dir, "state"),
		Base: d, Machine: m.Machine, BootTime: m.BootTime}, nil
}
