package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockFiles are the dpkg and apt locks a running apt, unattended-upgrades or
// cloud-init package module holds.
var lockFiles = []string{"/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock"}

// DefaultLockTimeout bounds the wait for apt and dpkg locks.
const DefaultLockTimeout = 10 * time.Minute

// waitCloudInit runs `cloud-init status --wait` bounded by timeout. A
// cloud-init that finished with errors is a warning: the image may still
// bake fine, and its log says what failed.
func waitCloudInit(ctx context.Context, r CommandRunner, timeout time.Duration, warn func(string, ...any)) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := r.Run(cctx, Command{Name: "cloud-init", Args: []string{"status", "--wait"}})
	if cctx.Err() != nil && ctx.Err() == nil {
		return "", fmt.Errorf("cloud-init did not finish within %s; raise the provisioner's cloud_init_timeout or look at /var/log/cloud-init.log on the guest", timeout)
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if err != nil {
		warn("cloud-init finished with errors (see /var/log/cloud-init.log); continuing: %v", err)
		return "finished with errors", nil
	}
	_ = out
	return "done", nil
}

// lockHeld reports whether some process holds a write lock on a lock file.
// It tests with an open-file-description lock query, which sees both the
// classic fcntl locks dpkg and apt take and OFD locks, and takes none.
func lockHeld(file string) (bool, error) {
	fd, err := unix.Open(file, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s: %w", file, err)
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false, fmt.Errorf("query the lock on %s: %w", file, err)
	}
	return lk.Type != unix.F_UNLCK, nil
}

// waitLocks polls the target's apt and dpkg locks until none is held.
func waitLocks(ctx context.Context, f fsys, timeout, poll time.Duration) (waited bool, err error) {
	deadline := time.Now().Add(timeout)
	for {
		held := ""
		for _, l := range lockFiles {
			busy, err := lockHeld(f.host(l))
			if err != nil {
				return waited, err
			}
			if busy {
				held = l
				break
			}
		}
		if held == "" {
			return waited, nil
		}
		if !time.Now().Before(deadline) {
			return waited, fmt.Errorf("%s is still locked after %s: another apt or dpkg (unattended-upgrades?) is running; wait for it or disable it in the source image", held, timeout)
		}
		waited = true
		select {
		case <-ctx.Done():
			return waited, ctx.Err()
		case <-time.After(poll):
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
