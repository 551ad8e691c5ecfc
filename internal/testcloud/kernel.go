package testcloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// kernelScriptVersion is part of the kernel image's key: bump it when
// addKernel changes (imageScriptVersion would rebuild every image).
const kernelScriptVersion = "1"

// kernelPackages turn the CIS image into one QEMU can boot: Debian's
// kernel, initramfs-tools (the initrd is built here, on the host, never in
// a slow emulated guest) and udev (loads virtio_net and friends).
var kernelPackages = []string{"initramfs-tools", "linux-image-amd64", "udev", "zstd"}

// VM network layout, shared with internal/testcloud/vm: QEMU user
// networking (slirp) on both NICs, matched by MAC so PCI probe order does
// not matter. eth0 is slirp's default 10.0.2.0/24 (SSH via hostfwd);
// eth1 is 169.254.169.0/24 where 169.254.169.254 is a guestfwd to the VM's
// own IMDS. Static addresses: no DHCP wait at boot.
const (
	VMMAC0      = "52:54:00:e5:00:01"
	VMMAC1      = "52:54:00:e5:00:02"
	VMGuestIP   = "10.0.2.15"
	VMSubnet    = "10.0.2.0/24"
	VMIMDSNet   = "169.254.169.0/24"
	VMIMDSGuest = "169.254.169.15"
)

// kernelFiles are written into the kernel image; their content is part of
// its key. The networkd units only run in a VM so the same image still
// boots under nspawn, where the host configures the network.
var kernelFiles = map[string]string{
	"etc/initramfs-tools/conf.d/esbake-vm.conf":     "# Only the modules a QEMU guest needs: a small initrd unpacks fast under TCG.\nMODULES=list\n",
	"usr/share/initramfs-tools/modules.d/esbake-vm": "virtio_pci\nvirtio_blk\next4\n",
	"etc/systemd/network/10-esbake-eth0.network": "[Match]\nMACAddress=" + VMMAC0 + "\n\n[Network]\nAddress=" + VMGuestIP +
		"/24\nGateway=10.0.2.2\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
	"etc/systemd/network/20-esbake-imds.network": "[Match]\nMACAddress=" + VMMAC1 + "\n\n[Link]\nRequiredForOnline=no\n\n[Network]\nAddress=" + VMIMDSGuest +
		"/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
	"etc/systemd/system/systemd-networkd.service.d/esbake-vm-only.conf":             vmOnly,
	"etc/systemd/system/systemd-networkd.socket.d/esbake-vm-only.conf":              vmOnly,
	"etc/systemd/system/systemd-networkd-wait-online.service.d/esbake-vm-only.conf": vmOnly,
}

const vmOnly = "# The host configures a container's network (testcloud nspawn instances).\n[Unit]\nConditionVirtualization=vm\n"

func kernelFilesDigest() string {
	var names []string
	for n := range kernelFiles {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\n%s\n", n, kernelFiles[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// addKernel installs kernelPackages into rootfs with apt in a chroot (from
// the host's Debian mirror) and writes kernelFiles. /boot then holds the
// kernel and initrd QEMU boots with -kernel/-initrd.
func addKernel(ctx context.Context, r, suite, logPath string) (err error) {
	mirror, err := DebianMirror(suite)
	if err != nil {
		return err
	}
	for name, content := range kernelFiles {
		full := filepath.Join(r, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("kernel image: %w", err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return fmt.Errorf("kernel image: %w", err)
		}
	}
	// apt in the chroot needs name resolution, /proc and /dev; all are
	// undone below so the image carries none of the host's.
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	if err := os.WriteFile(filepath.Join(r, "etc/resolv.conf"), resolv, 0o644); err != nil {
		return fmt.Errorf("kernel image: %w", err)
	}
	src := filepath.Join(r, "etc/apt/sources.list.d/esbake-build.list")
	if err := os.WriteFile(src, []byte("deb "+mirror+" "+suite+" main\n"), 0o644); err != nil {
		return fmt.Errorf("kernel image: %w", err)
	}
	defer func() {
		if uerr := unmountUnder(r); uerr != nil && err == nil {
			err = uerr
		}
		_ = os.Remove(src)
		_ = os.WriteFile(filepath.Join(r, "etc/resolv.conf"), nil, 0o644)
		lists, _ := filepath.Glob(filepath.Join(r, "var/lib/apt/lists/*_*"))
		for _, l := range lists {
			_ = os.Remove(l)
		}
	}()
	for _, m := range []struct{ src, dst, fstype string }{{"proc", "proc", "proc"}, {"sysfs", "sys", "sysfs"}, {"tmpfs", "dev", "tmpfs"}} {
		if err := syscall.Mount(m.src, filepath.Join(r, m.dst), m.fstype, 0, ""); err != nil {
			return fmt.Errorf("kernel image: mount %s in the build chroot: %w", m.dst, err)
		}
	}
	// The chroot gets its own /dev with the few nodes apt and the kernel
	// packages use, not a bind of the host's: a package script (or a
	// careless cleanup) deleting there must not touch the host's devices.
	for _, n := range []struct {
		name       string
		major, min uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		p := filepath.Join(r, "dev", n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.min))); err != nil {
			return fmt.Errorf("kernel image: create /dev/%s in the build chroot: %w", n.name, err)
		}
		if err := os.Chmod(p, 0o666); err != nil { // mknod applies the umask
			return fmt.Errorf("kernel image: %w", err)
		}
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create build log: %w", err)
	}
	defer logf.Close()
	// Downloaded .debs are kept with debootstrap's, so a rebuild of the
	// image does not download the kernel again.
	debs := filepath.Join(CacheDir(), "debootstrap-debs")
	if err := os.MkdirAll(filepath.Join(debs, "partial"), 0o755); err != nil {
		return fmt.Errorf("kernel image: %w", err)
	}
	archives := filepath.Join(r, "var/cache/apt/archives")
	if err := syscall.Mount(debs, archives, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("kernel image: bind the .deb cache: %w", err)
	}
	for _, args := range [][]string{
		{"apt-get", "-q", "update"},
		append([]string{"apt-get", "-q", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold", "install"}, kernelPackages...),
	} {
		cmd := exec.CommandContext(ctx, "chroot", append([]string{r}, args...)...)
		if err := runBuildCommand(cmd, logf, logPath); err != nil {
			return fmt.Errorf("kernel image: %s in the chroot failed (is the apt mirror %s reachable?): %w", strings.Join(args, " "), mirror, err)
		}
	}
	if err := syscall.Unmount(archives, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("kernel image: unmount the .deb cache: %w", err)
	}
	if k, _ := filepath.Glob(filepath.Join(r, "boot/vmlinuz-*")); len(k) == 0 {
		return fmt.Errorf("kernel image: no /boot/vmlinuz-* after installing linux-image-amd64 (see %s)", logPath)
	}
	if k, _ := filepath.Glob(filepath.Join(r, "boot/initrd.img-*")); len(k) == 0 {
		return fmt.Errorf("kernel image: no /boot/initrd.img-* after installing the kernel (see %s)", logPath)
	}
	for _, u := range []string{"systemd-networkd.service", "systemd-networkd-wait-online.service"} {
		if _, err := run(ctx, "systemctl", "--root="+r, "enable", u); err != nil {
			return fmt.Errorf("enable %s in the kernel image: %w", u, err)
		}
	}
	return nil
}
