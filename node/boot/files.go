package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// fileChange is one file boot renders. Path is the node path (/etc/...).
type fileChange struct {
	Path   string
	Old    []byte // nil when the file does not exist
	New    []byte
	Exists bool
	// For a new file: its mode, and whether its group comes from the
	// directory (so the elasticsearch group can read it).
	NewMode  fs.FileMode
	DirGroup bool
}

func (c fileChange) changed() bool { return !c.Exists || string(c.Old) != string(c.New) }

func readExisting(root, path string) ([]byte, bool, error) {
	b, err := os.ReadFile(filepath.Join(root, path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	return b, true, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeAtomic replaces path with data through a temporary file in the same
// directory and a rename, keeping an existing file's mode and owner; a new
// file gets newMode, root's uid and (if dirGroup) the directory's group.
func writeAtomic(path string, data []byte, newMode fs.FileMode, dirGroup bool, dirMode fs.FileMode) error {
	dir := filepath.Dir(path)
	if dirMode == 0 {
		dirMode = 0o755
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	mode, uid, gid := newMode, -1, -1
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm() | (st.Mode() & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky))
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
	} else if dirGroup {
		if st, err := os.Stat(dir); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				gid = int(sys.Gid)
			}
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".esnode-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if uid >= 0 || gid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil && !(errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0) {
			return fail(err)
		}
	}
	// Chmod after chown: chown clears setuid/setgid bits.
	if err := tmp.Chmod(mode); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; best effort
		d.Close()
	}
	return nil
}
