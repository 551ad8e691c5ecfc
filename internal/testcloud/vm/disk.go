package vm

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
)

// diskScriptVersion is part of every disk key: bump it when what buildDisk
// writes into a disk changes.
const diskScriptVersion = "1"

// Disk is a bootable QEMU disk made from a testcloud image: an ext4
// filesystem (the whole disk is the root fs, /dev/vda) in a qcow2 file, and
// the kernel and initrd from the image's /boot for -kernel/-initrd.
type Disk struct {
	Dir    string
	Path   string // disk.qcow2, only ever used as a backing file
	Kernel string
	Initrd string
	// Key identifies the content (saved states are keyed by it).
	Key     string
	HostKey ssh.PublicKey
}

type diskMeta struct {
	Key     string    `json:"key"`
	Image   string    `json:"image"`
	HostKey string    `json:"host_key"`
	Built   time.Time `json:"built"`
}

// BaseDisk returns the cached disk of testcloud.KernelImage (building the
// image and the disk when missing): what saved states boot from.
func BaseDisk(ctx context.Context) (*Disk, error) {
	img, err := testcloud.EnsureImage(ctx, testcloud.KernelImage)
	if err != nil {
		return nil, fmt.Errorf("VM kernel image: %w", err)
	}
	signer, err := managementKey(ctx)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "disk=%s\nimage=%s\nmgmt=%s\n", diskScriptVersion, img.Name, ssh.FingerprintSHA256(signer.PublicKey()))
	key := img.Name + "-" + hex.EncodeToString(h.Sum(nil))[:12]
	final := filepath.Join(Dir(), "disks", key)
	if d, err := loadDisk(final); err == nil {
		return d, nil
	}
	unlock, err := testcloud.LockFile(ctx, filepath.Join(Dir(), "disks", "."+key+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if d, err := loadDisk(final); err == nil {
		return d, nil
	}
	_ = os.RemoveAll(final)
	// An interrupted build may have left its overlay of the image mounted.
	olds, _ := filepath.Glob(filepath.Join(Dir(), "disks", ".tmp-"+key+"-*"))
	for _, o := range olds {
		if err := testcloud.RemoveTree(o); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(Dir(), "disks"), ".tmp-"+key+"-")
	if err != nil {
		return nil, fmt.Errorf("create disk build dir: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("chmod disk build dir: %w", err)
	}
	if err := buildDisk(ctx, img, tmp, key); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("move built disk into place: %w", err)
	}
	return loadDisk(final)
}

// NewDisk builds a disk from img (any image, e.g. a snapshot of a baked
// instance: its layers are merged) into dir, uncached. A VM from it boots
// fully: a saved state belongs to one disk content.
func NewDisk(ctx context.Context, img *testcloud.Image, dir string) (*Disk, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create disk dir: %w", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	if err := buildDisk(ctx, img, dir, "adhoc-"+hex.EncodeToString(b)); err != nil {
		return nil, err
	}
	return loadDisk(dir)
}

func loadDisk(dir string) (*Disk, error) {
	b, err := os.ReadFile(filepath.Join(dir, "disk.json"))
	if err != nil {
		return nil, fmt.Errorf("read disk metadata: %w", err)
	}
	var m diskMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("disk metadata %s: %w", dir, err)
	}
	hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(m.HostKey))
	if err != nil {
		return nil, fmt.Errorf("disk metadata %s: host key: %w", dir, err)
	}
	return &Disk{Dir: dir, Path: filepath.Join(dir, "disk.qcow2"), Kernel: filepath.Join(dir, "vmlinuz"),
		Initrd: filepath.Join(dir, "initrd.img"), Key: m.Key, HostKey: hk}, nil
}

// buildDisk merges img's layers under an overlay whose upper layer gets
// what makes it a VM disk (SSH host key, machine-id, the management key),
// writes the merged tree into a fresh ext4 with mkfs.ext4 -d (no loop
// device), converts it to qcow2 and copies out the kernel and initrd.
func buildDisk(ctx context.Context, img *testcloud.Image, dir, key string) (err error) {
	signer, err := managementKey(ctx)
	if err != nil {
		return err
	}
	work := filepath.Join(dir, "work")
	merged := filepath.Join(work, "merged")
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
	}
	layers := append([]string{img.Dir}, img.Lower...)
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(layers, ":"), filepath.Join(work, "upper"), filepath.Join(work, "work"))
	if err := syscall.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("disk: mount the image's layers (%s): %w", opts, err)
	}
	defer func() {
		if uerr := syscall.Unmount(merged, syscall.MNT_DETACH); uerr != nil && err == nil {
			err = fmt.Errorf("disk: unmount %s: %w", merged, uerr)
		}
		_ = os.RemoveAll(work)
	}()

	hostPub, err := personalizeTree(merged, signer)
	if err != nil {
		return err
	}
	kernels, _ := filepath.Glob(filepath.Join(merged, "boot/vmlinuz-*"))
	if len(kernels) == 0 {
		return fmt.Errorf("disk: image %s has no /boot/vmlinuz-* (build it from testcloud.KernelImage)", img.Name)
	}
	sort.Strings(kernels)
	kver := strings.TrimPrefix(filepath.Base(kernels[len(kernels)-1]), "vmlinuz-")
	for src, dst := range map[string]string{"boot/vmlinuz-" + kver: "vmlinuz", "boot/initrd.img-" + kver: "initrd.img"} {
		b, err := os.ReadFile(filepath.Join(merged, src))
		if err != nil {
			return fmt.Errorf("disk: image %s: %w", img.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
	}

	used, err := exec.CommandContext(ctx, "du", "-s", "-x", "--block-size=1", merged).Output()
	if err != nil {
		return fmt.Errorf("disk: du %s: %w", merged, err)
	}
	f := strings.Fields(string(used))
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return fmt.Errorf("disk: du output %q: %w", used, err)
	}
	// Room for what the guest writes (a node's data, journals); the file
	// is sparse and qcow2 stores only what is written.
	size := (n*3/2 + 2<<30) &^ (1<<20 - 1)
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, nil, 0o644); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := os.Truncate(raw, size); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "esbake-root", "-d", merged, raw).CombinedOutput(); err != nil {
		return fmt.Errorf("disk: mkfs.ext4 -d from the image (e2fsprogs >= 1.43 needed): %w: %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-O", "qcow2", raw, filepath.Join(dir, "disk.qcow2")).CombinedOutput(); err != nil {
		return fmt.Errorf("disk: qemu-img convert: %w: %s", err, out)
	}
	_ = os.Remove(raw)
	meta, _ := json.MarshalIndent(diskMeta{Key: key, Image: img.Name, HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub))),
		Built: time.Now().UTC()}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "disk.json"), meta, 0o644); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	return nil
}

// mgmtKeysDir holds, per user, keys sshd accepts besides ~/.ssh: root's
// is the management key the backend uses to reach the guest after a
// restore (as nspawn instances are reached with nsenter). Users'
// authorized_keys stay as the image and the launch key make them.
const mgmtKeysDir = "/etc/ssh/esbake-vm-keys"

// personalizeTree writes what every VM of the disk shares: a host key
// (known to the host, so SSH is verified), a machine-id and sshd's
// acceptance of the management key for root.
func personalizeTree(r string, mgmt ssh.Signer) (ssh.PublicKey, error) {
	write := func(p string, data []byte, mode os.FileMode) error {
		full := filepath.Join(r, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
		_ = os.Remove(full)
		if err := os.WriteFile(full, data, mode); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
		return os.Chmod(full, mode)
	}
	old, _ := filepath.Glob(filepath.Join(r, "etc/ssh/ssh_host_*"))
	for _, o := range old {
		_ = os.Remove(o)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("disk: host key: %w", err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "esbake-vm")
	if err != nil {
		return nil, fmt.Errorf("disk: host key: %w", err)
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("disk: host key: %w", err)
	}
	mid := make([]byte, 16)
	_, _ = rand.Read(mid)
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"etc/ssh/ssh_host_ed25519_key", pem.EncodeToMemory(blk), 0o600},
		{"etc/ssh/ssh_host_ed25519_key.pub", ssh.MarshalAuthorizedKey(spub), 0o644},
		{"etc/ssh/sshd_config.d/05-hostkey.conf", []byte("HostKey /etc/ssh/ssh_host_ed25519_key\n"), 0o644},
		{"etc/ssh/sshd_config.d/06-esbake-vm.conf", []byte("# esbake VM backend: the management key (root only, see " + mgmtKeysDir + ").\nAuthorizedKeysFile .ssh/authorized_keys " + mgmtKeysDir + "/%u\n"), 0o644},
		{strings.TrimPrefix(mgmtKeysDir, "/") + "/root", ssh.MarshalAuthorizedKey(mgmt.PublicKey()), 0o644},
		{"etc/machine-id", []byte(hex.EncodeToString(mid) + "\n"), 0o444},
		{"etc/hostname", []byte("esbake-vm\n"), 0o644},
	}
	for _, f := range files {
		if err := write(f.path, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return spub, nil
}

// managementKey is the backend's own SSH key, kept in the cache (0600)
// so cached disks and saved states stay usable across test runs.
func managementKey(ctx context.Context) (ssh.Signer, error) {
	path := filepath.Join(Dir(), "mgmt-ed25519.seed")
	read := func() (ssh.Signer, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("management key %s is corrupt; remove it (cached VM disks are rebuilt): %v", path, err)
		}
		return ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed))
	}
	if s, err := read(); err == nil {
		return s, nil
	}
	unlock, err := testcloud.LockFile(ctx, path+".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if s, err := read(); err == nil {
		return s, nil
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("management key: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(hex.EncodeToString(seed)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("management key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("management key: %w", err)
	}
	return read()
}
