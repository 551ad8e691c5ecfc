package testcloud

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CacheDir is where built things live, outside the checkout:
// $ESBAKE_CACHE, default /var/cache/esbake.
func CacheDir() string {
	if d := os.Getenv("ESBAKE_CACHE"); d != "" {
		return d
	}
	return "/var/cache/esbake"
}

var toolInstallMu sync.Mutex

// cachedTool returns <cache>/bin/name: the binary envVar names if set,
// else the cached one, else one made by build in a scratch dir inside
// bin and renamed into place (a concurrent reader never sees it half
// written). With a key, a binary cached for another key is rebuilt;
// scripts/install-deps.sh writes the same .name.key files.
func cachedTool(ctx context.Context, name, envVar, key string, build func(ctx context.Context, dir string) (string, error)) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		return p, nil
	}
	bin := filepath.Join(CacheDir(), "bin")
	p := filepath.Join(bin, name)
	keyFile := filepath.Join(bin, "."+name+".key")
	fresh := func() bool {
		if _, err := os.Stat(p); err != nil {
			return false
		}
		k, err := os.ReadFile(keyFile)
		return key == "" || err == nil && strings.TrimSpace(string(k)) == key
	}
	toolInstallMu.Lock()
	defer toolInstallMu.Unlock()
	if fresh() {
		return p, nil
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", bin, err)
	}
	unlock, err := LockFile(ctx, filepath.Join(bin, "."+name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if fresh() {
		return p, nil
	}
	tmp, err := os.MkdirTemp(bin, ".install-")
	if err != nil {
		return "", fmt.Errorf("create a scratch dir for %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	built, err := build(ctx, tmp)
	if err != nil {
		return "", err
	}
	if err := os.Rename(built, p); err != nil {
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	if key != "" {
		if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("install %s: %w", name, err)
		}
	}
	return p, nil
}

// LockFile takes an exclusive lock on path (created if needed), waiting
// until ctx is done. Several test binaries may build the same image at once.
func LockFile(ctx context.Context, path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create lock dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// run runs a command and returns its stdout; the error carries stderr.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Requirements reports what this machine lacks to run instances; empty
// means Launch can work. Tests use it to skip (or fail in CI).
func Requirements() []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, errNotRoot.Error())
	}
	for _, bin := range []string{"systemd-nspawn", "debootstrap", "ip", "nsenter", "mount", "umount", "cp", "chroot"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin+" not in PATH (apt-get install systemd-container debootstrap iproute2 util-linux coreutils)")
		}
	}
	return missing
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest
// first (debootstrap leaves proc/sys mounts in a target it did not finish).
func unmountUnder(dir string) error {
	points, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var firstErr error
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT && firstErr == nil {
			firstErr = fmt.Errorf("unmount %s: %w", points[i], err)
		}
	}
	return firstErr
}

// mountsUnder lists the mount points at or below dir, outermost first.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	dir = filepath.Clean(dir)
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	return points, nil
}

func unescapeMount(s string) string {
	// mountinfo escapes space, tab, newline and backslash as \ooo.
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isMountPoint reports whether dir is a mount point in our namespace.
func isMountPoint(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	dir = filepath.Clean(dir)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && unescapeMount(f[4]) == dir {
			return true
		}
	}
	return false
}
