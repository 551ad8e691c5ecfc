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

	"golang.org/x/sys/unix"
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
	st, err := stage(stagedFile{Path: path, Data: data, NewMode: newMode, DirGroup: dirGroup}, dirMode)
	if err != nil {
		return err
	}
	if err := syncFS(st.tmp); err != nil {
		st.discard()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := st.commit(); err != nil {
		return err
	}
	_ = syncFS(path) // make the rename durable; best effort
	return nil
}

// writeAllAtomic replaces several files at once: each goes to a temporary
// file beside it, one filesystem sync makes all their data durable, then
// each is renamed into place. One sync per filesystem instead of two per
// file; nothing is renamed unless every file was staged. The renames are
// not synced here: both callers write boot.json next, whose own sync
// (writeAtomic) makes them durable on its filesystem, the root one where
// boot's files are; a rename lost in a crash leaves the old file, which
// the next boot rewrites. done is called after each rename.
func writeAllAtomic(files []stagedFile, done func(path, label string)) error {
	var staged []*staging
	discard := func() {
		for _, st := range staged {
			st.discard()
		}
	}
	for _, f := range files {
		st, err := stage(f, 0o755)
		if err != nil {
			discard()
			return err
		}
		staged = append(staged, st)
	}
	if len(staged) == 0 {
		return nil
	}
	if err := syncFilesystems(staged, func(st *staging) string { return st.tmp }); err != nil {
		discard()
		return err
	}
	for i, st := range staged {
		if err := st.commit(); err != nil {
			for _, rest := range staged[i+1:] {
				rest.discard()
			}
			return err
		}
		done(st.path, files[i].Label)
	}
	return nil
}

// syncFilesystems syncs each filesystem the files are on once (CIS images
// put /var on its own).
func syncFilesystems(staged []*staging, name func(*staging) string) error {
	done := map[uint64]bool{}
	for _, st := range staged {
		var fi unix.Stat_t
		if err := unix.Stat(name(st), &fi); err == nil {
			if done[uint64(fi.Dev)] {
				continue
			}
			done[uint64(fi.Dev)] = true
		}
		if err := syncFS(name(st)); err != nil {
			return fmt.Errorf("write %s: %w", st.path, err)
		}
	}
	return nil
}

// stagedFile is one file for writeAllAtomic (Path on the host).
type stagedFile struct {
	Path     string
	Data     []byte
	NewMode  fs.FileMode
	DirGroup bool
	// Exact, when set, is the owner and mode the file gets whether or not
	// it exists (the TLS material, root:elasticsearch 0640).
	Exact *fileOwner
	// Label is printed after the path once written ("from <reference>").
	Label string
}

// fileOwner is a file's exact owner and mode; GID -1 keeps the group.
type fileOwner struct {
	UID, GID int
	Mode     fs.FileMode
}

// staging is a file written to its temporary name, not yet renamed.
type staging struct{ path, tmp string }

func (st *staging) discard() { os.Remove(st.tmp) }

func (st *staging) commit() error {
	if err := os.Rename(st.tmp, st.path); err != nil {
		os.Remove(st.tmp)
		return fmt.Errorf("write %s: %w", st.path, err)
	}
	return nil
}

// syncFS flushes the filesystem that holds path (syncfs(2)): one call for
// every file written there, where fsync per file and directory cost a
// journal commit each.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// stage writes data to a temporary file beside path with the mode and
// owner path should get.
func stage(f stagedFile, dirMode fs.FileMode) (*staging, error) {
	path, data, newMode, dirGroup := f.Path, f.Data, f.NewMode, f.DirGroup
	dir := filepath.Dir(path)
	if dirMode == 0 {
		dirMode = 0o755
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
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
	if f.Exact != nil {
		mode, uid, gid = f.Exact.Mode, f.Exact.UID, f.Exact.GID
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".esnode-*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	fail := func(err error) (*staging, error) {
		tmp.Close()
		os.Remove(name)
		return nil, fmt.Errorf("write %s: %w", path, err)
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
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &staging{path: path, tmp: name}, nil
}
