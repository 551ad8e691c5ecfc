package testcloud

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// imageScriptVersion is part of every image key: bump it whenever the
// build or customisation steps below change, so cached images are rebuilt.
const imageScriptVersion = "4"

// BasePackages are installed into every image (debootstrap minbase plus
// these): what an instance needs to boot under systemd and be reached by
// SSH, plus what the node tooling expects on a Debian AMI.
var BasePackages = []string{
	"ca-certificates", "curl", "dbus", "iproute2", "iptables", "libpam-systemd",
	"openssh-server", "procps", "python3-venv", "sudo", "systemd", "systemd-sysv",
}

// Variant selects an image flavour.
type Variant string

const (
	// VariantBase is plain Debian with BasePackages.
	VariantBase Variant = "base"
	// VariantCIS is the base plus CIS-like hardening: /tmp and /var/tmp
	// tmpfs noexec (fstab), umask 027, iptables INPUT DROP except SSH,
	// loopback and established traffic, restored at every boot.
	VariantCIS Variant = "cis"
	// VariantKernel is the CIS image plus what a QEMU guest needs (see
	// kernel.go): Debian's kernel and initrd, udev, and systemd-networkd
	// configuration for the guest's two NICs, active only in a VM.
	VariantKernel Variant = "kernel"
)

// ImageSpec says which image to build.
type ImageSpec struct {
	Variant       Variant
	ExtraPackages []string // added to BasePackages
}

// BaseImage and CISImage are the two stock images.
var (
	BaseImage = ImageSpec{Variant: VariantBase}
	CISImage  = ImageSpec{Variant: VariantCIS}
	// KernelImage is what internal/testcloud/vm boots in QEMU; it boots
	// under nspawn as well (its VM-only units are skipped in a container).
	KernelImage = ImageSpec{Variant: VariantKernel}
)

// Image is a root filesystem instances can boot from, used read-only as
// the overlay's lower layers. Dir is a complete rootfs, or, for images made
// by Snapshot, a layer holding only what the instance changed on top of
// Lower (top first).
type Image struct {
	Dir   string
	Name  string
	Lower []string
	ref   string
}

// Ref is a directory that ImageFromDir turns back into this image: an
// opaque reference to store (e.g. as the EC2 emulator's image ref).
func (img *Image) Ref() string {
	if img.ref != "" {
		return img.ref
	}
	return img.Dir
}

// layers returns the overlay lower layers, top first.
func (img *Image) layers() []string { return append([]string{img.Dir}, img.Lower...) }

// imageMeta is written next to a cached rootfs.
type imageMeta struct {
	Name     string    `json:"name"`
	Key      string    `json:"key,omitempty"`
	Variant  Variant   `json:"variant,omitempty"`
	Suite    string    `json:"suite,omitempty"`
	Packages []string  `json:"packages,omitempty"`
	Script   string    `json:"script_version,omitempty"`
	Built    time.Time `json:"built"`
	// Layer and Lower describe a snapshot: its layer dir (relative) and
	// the layers beneath it, top first.
	Layer string   `json:"layer,omitempty"`
	Lower []string `json:"lower,omitempty"`
}

func (s ImageSpec) packages() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range append(append([]string{}, BasePackages...), s.ExtraPackages...) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// key is the cache key: variant, suite, package list and script version.
func (s ImageSpec) key(suite string) string {
	v := s.Variant
	if v == "" {
		v = VariantBase
	}
	h := sha256.New()
	fmt.Fprintf(h, "script=%s\nsuite=%s\narch=amd64\npackages=%s\n", imageScriptVersion, suite, strings.Join(s.packages(), ","))
	if v == VariantCIS {
		fmt.Fprintf(h, "cis=%s%s%s%s\n", cisFstab, cisRulesV4, cisIptablesUnit, cisProfileUmask)
	}
	if v == VariantKernel {
		// The CIS lines are repeated so the kernel image follows CIS
		// changes; the base and CIS keys above stay as they were.
		fmt.Fprintf(h, "cis=%s%s%s%s\n", cisFstab, cisRulesV4, cisIptablesUnit, cisProfileUmask)
		fmt.Fprintf(h, "kernel=%s\n%s\n%s\n", kernelScriptVersion, strings.Join(kernelPackages, ","), kernelFilesDigest())
	}
	return string(v) + "-" + suite + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// ImagesDir is where cached images live: <cache>/images.
func ImagesDir() string { return filepath.Join(CacheDir(), "images") }

// EnsureImage returns the cached image for spec, building it when missing.
// Builds happen once per key (debootstrap takes minutes): under a file
// lock, into a temporary directory that is renamed into place only when
// complete, so an interrupted build never leaves a half image.
func EnsureImage(ctx context.Context, spec ImageSpec) (*Image, error) {
	if spec.Variant == "" {
		spec.Variant = VariantBase
	}
	suite, err := HostSuite()
	if err != nil {
		return nil, err
	}
	key := spec.key(suite)
	final := filepath.Join(ImagesDir(), key)
	img := &Image{Dir: filepath.Join(final, "rootfs"), Name: key, ref: final}
	if imageComplete(final) {
		return img, nil
	}
	unlock, err := LockFile(ctx, filepath.Join(ImagesDir(), "."+key+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if imageComplete(final) {
		return img, nil
	}
	if err := removeStaleTemps(ImagesDir(), ".tmp-"+key+"-"); err != nil {
		return nil, err
	}
	// A directory without meta is the leftover of an older, non-atomic
	// layout or a manual copy: replace it.
	if _, err := os.Stat(final); err == nil {
		if err := RemoveTree(final); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp(ImagesDir(), ".tmp-"+key+"-")
	if err != nil {
		return nil, fmt.Errorf("create image build dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = RemoveTree(tmp)
		}
	}()
	rootfs := filepath.Join(tmp, "rootfs")
	switch spec.Variant {
	case VariantBase:
		if err := buildBase(ctx, rootfs, suite, spec.packages(), filepath.Join(tmp, "build.log")); err != nil {
			return nil, err
		}
	case VariantCIS:
		base, err := EnsureImage(ctx, ImageSpec{Variant: VariantBase, ExtraPackages: spec.ExtraPackages})
		if err != nil {
			return nil, fmt.Errorf("CIS image needs the base image: %w", err)
		}
		if err := copyTree(ctx, base.Dir, rootfs); err != nil {
			return nil, err
		}
		if err := applyCIS(rootfs); err != nil {
			return nil, err
		}
	case VariantKernel:
		cis, err := EnsureImage(ctx, ImageSpec{Variant: VariantCIS, ExtraPackages: spec.ExtraPackages})
		if err != nil {
			return nil, fmt.Errorf("kernel image needs the CIS image: %w", err)
		}
		if err := copyTree(ctx, cis.Dir, rootfs); err != nil {
			return nil, err
		}
		if err := addKernel(ctx, rootfs, suite, filepath.Join(tmp, "build.log")); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown image variant %q (use VariantBase, VariantCIS or VariantKernel)", spec.Variant)
	}
	meta, _ := json.MarshalIndent(imageMeta{Name: key, Key: key, Variant: spec.Variant, Suite: suite,
		Packages: spec.packages(), Script: imageScriptVersion, Built: time.Now().UTC()}, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "image.json"), meta, 0o644); err != nil {
		return nil, fmt.Errorf("write image metadata: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("chmod image dir: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("move built image into place: %w", err)
	}
	ok = true
	return img, nil
}

func imageComplete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "image.json"))
	return err == nil
}

// ImageFromDir returns the image at dir: an image directory (holding
// image.json, as made by EnsureImage or Snapshot; what Ref returns) or a
// bare root filesystem.
func ImageFromDir(dir, name string) (*Image, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("image dir: %w", err)
	}
	if name == "" {
		name = filepath.Base(dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "image.json")); err == nil {
		var m imageMeta
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("read %s/image.json: %w", dir, err)
		}
		img := &Image{Dir: filepath.Join(dir, "rootfs"), Name: name, ref: dir}
		if m.Layer != "" {
			img.Dir, img.Lower = filepath.Join(dir, m.Layer), m.Lower
		}
		for _, l := range img.layers() {
			if _, err := os.Stat(l); err != nil {
				return nil, fmt.Errorf("image %s: layer missing (was an image it builds on removed?): %w", dir, err)
			}
		}
		return img, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "lib/systemd/systemd")); err != nil {
		return nil, fmt.Errorf("%s is neither an image dir (image.json) nor a bootable rootfs (no lib/systemd/systemd): %w", dir, err)
	}
	return &Image{Dir: dir, Name: name}, nil
}

func removeStaleTemps(dir, prefix string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			killProcessesUsing(filepath.Join(dir, e.Name()))
			if err := RemoveTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// killProcessesUsing kills processes whose command line names dir or whose
// root is inside it: what an interrupted build left running (debootstrap's
// subshells and the dpkg it runs in the chroot outlive their parent).
func killProcessesUsing(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		root, _ := os.Readlink(filepath.Join(p, "root"))
		if bytes.Contains(cmdline, []byte(dir)) || root == dir || strings.HasPrefix(root, dir+"/") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// RemoveTree unmounts anything left mounted below dir (an interrupted
// debootstrap leaves proc and sys mounted in its target) and removes it.
func RemoveTree(dir string) error {
	if err := unmountUnder(dir); err != nil {
		return err
	}
	// Never recurse into a mount: a bind of the host's /dev or /proc left
	// behind would have the host's files deleted.
	if left, err := mountsUnder(dir); err != nil {
		return err
	} else if len(left) > 0 {
		return fmt.Errorf("not removing %s: %s is still mounted there; unmount it (umount -l) and retry", dir, strings.Join(left, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// copyTree copies src to dst preserving owners, modes, links, xattrs,
// sharing blocks where the filesystem can (reflink).
func copyTree(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	if _, err := run(ctx, "cp", "-a", "--reflink=auto", src+"/.", dst+"/"); err != nil {
		return fmt.Errorf("copy rootfs: %w", err)
	}
	return nil
}

// runBuildCommand runs an image build step with its output in the build
// log, in its own process group killed whole on cancel and dying with the
// caller, so a crashed test leaves nothing writing into a temp dir the
// next build removes. A failure carries the log's tail.
func runBuildCommand(cmd *exec.Cmd, logf *os.File, logPath string) error {
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		tail, _ := os.ReadFile(logPath)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("%w\n%s", err, tail)
	}
	return nil
}

func buildBase(ctx context.Context, rootfs, suite string, pkgs []string, logPath string) error {
	mirror, err := DebianMirror(suite)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("debootstrap not found (apt-get install debootstrap): %w", err)
	}
	debs := filepath.Join(CacheDir(), "debootstrap-debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return fmt.Errorf("create debootstrap cache: %w", err)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create build log: %w", err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--cache-dir="+debs,
		"--include="+strings.Join(pkgs, ","), suite, rootfs, mirror)
	if err := runBuildCommand(cmd, logf, logPath); err != nil {
		return fmt.Errorf("debootstrap %s from %s failed (is the apt mirror reachable?): %w", suite, mirror, err)
	}
	return customizeBase(ctx, rootfs)
}

// customizeBase makes a debootstrapped tree behave like a cloud image:
// an "admin" sudo user, no baked host keys or machine-id (both per
// instance), key-only SSH, and no background timers that would race tests.
func customizeBase(ctx context.Context, r string) error {
	if _, err := run(ctx, "chroot", r, "useradd", "-m", "-s", "/bin/bash", "-G", "sudo", "admin"); err != nil {
		return fmt.Errorf("create admin user: %w", err)
	}
	files := map[string]string{
		"etc/sudoers.d/90-cloud-admin":            "admin ALL=(ALL) NOPASSWD:ALL\n",
		"etc/ssh/sshd_config.d/10-testcloud.conf": "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n",
		"etc/hostname":               "localhost\n",
		"etc/hosts":                  "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
		"etc/resolv.conf":            "",
		"etc/machine-id":             "",
		"etc/esbake-testcloud-image": "script " + imageScriptVersion + "\n",
		"etc/systemd/system.conf.d/10-timeout.conf": "[Manager]\nDefaultTimeoutStopSec=10s\n",
	}
	for p, content := range files {
		full := filepath.Join(r, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("customise image: %w", err)
		}
		_ = os.Remove(full) // resolv.conf may be a symlink to the host's
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "etc/sudoers.d/") {
			mode = 0o440
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			return fmt.Errorf("customise image: %w", err)
		}
	}
	keys, _ := filepath.Glob(filepath.Join(r, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		_ = os.Remove(k)
	}
	_ = os.Remove(filepath.Join(r, "var/lib/dbus/machine-id"))
	mask := []string{"apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
		"e2scrub_reap.service", "fstrim.timer", "systemd-pstore.service"}
	for _, u := range mask {
		if _, err := run(ctx, "systemctl", "--root="+r, "mask", u); err != nil {
			return fmt.Errorf("mask %s in image: %w", u, err)
		}
	}
	if _, err := run(ctx, "chroot", r, "apt-get", "clean"); err != nil {
		return fmt.Errorf("apt-get clean in image: %w", err)
	}
	lists, _ := filepath.Glob(filepath.Join(r, "var/lib/apt/lists/*_*"))
	for _, l := range lists {
		_ = os.Remove(l)
	}
	return nil
}

// The CIS-like hardening, as files; their content is part of the key.
const (
	cisFstab = "tmpfs /tmp tmpfs rw,nosuid,nodev,noexec,mode=1777 0 0\n" +
		"tmpfs /var/tmp tmpfs rw,nosuid,nodev,noexec,mode=1777 0 0\n"
	cisRulesV4 = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
`
	// A small unit instead of iptables-persistent: its postinst would run
	// iptables-save in the build chroot, i.e. save the build host's rules.
	cisIptablesUnit = `[Unit]
Description=Restore iptables rules from /etc/iptables/rules.v4
DefaultDependencies=no
After=local-fs.target
Before=network-pre.target shutdown.target
Wants=network-pre.target
Conflicts=shutdown.target
ConditionFileNotEmpty=/etc/iptables/rules.v4

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/iptables-restore /etc/iptables/rules.v4

[Install]
WantedBy=multi-user.target
`
	cisProfileUmask = "umask 027\n"
)

func applyCIS(r string) error {
	write := func(p, content string, mode os.FileMode) error {
		full := filepath.Join(r, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("CIS image: %w", err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			return fmt.Errorf("CIS image: %w", err)
		}
		return nil
	}
	appendTo := func(p, content string) error {
		f, err := os.OpenFile(filepath.Join(r, p), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("CIS image: %w", err)
		}
		defer f.Close()
		_, err = f.WriteString(content)
		return err
	}
	if err := appendTo("etc/fstab", cisFstab); err != nil {
		return err
	}
	if err := write("etc/iptables/rules.v4", cisRulesV4, 0o640); err != nil {
		return err
	}
	if err := write("etc/systemd/system/iptables-restore.service", cisIptablesUnit, 0o644); err != nil {
		return err
	}
	if err := os.Symlink("/etc/systemd/system/iptables-restore.service",
		filepath.Join(r, "etc/systemd/system/multi-user.target.wants/iptables-restore.service")); err != nil && !os.IsExist(err) {
		return fmt.Errorf("enable iptables-restore.service: %w", err)
	}
	if err := write("etc/profile.d/cis-umask.sh", cisProfileUmask, 0o644); err != nil {
		return err
	}
	// login.defs UMASK is applied to SSH sessions by pam_umask.
	ld, err := os.ReadFile(filepath.Join(r, "etc/login.defs"))
	if err != nil {
		return fmt.Errorf("CIS image: %w", err)
	}
	var lines []string
	for _, l := range strings.Split(string(ld), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "UMASK" {
			l = "UMASK\t\t027"
		}
		lines = append(lines, l)
	}
	if err := os.WriteFile(filepath.Join(r, "etc/login.defs"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return fmt.Errorf("CIS image: %w", err)
	}
	cs, err := os.ReadFile(filepath.Join(r, "etc/pam.d/common-session"))
	if err != nil {
		return fmt.Errorf("CIS image: %w", err)
	}
	if !strings.Contains(string(cs), "pam_umask.so") {
		if err := appendTo("etc/pam.d/common-session", "session optional\t\t\tpam_umask.so\n"); err != nil {
			return err
		}
	}
	return nil
}
