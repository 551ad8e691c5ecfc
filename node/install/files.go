package install

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// fsys is the target's filesystem: node paths (/etc/...) joined to Root.
type fsys struct{ root string }

func (f fsys) host(nodePath string) string {
	return filepath.Join(f.root, filepath.FromSlash(nodePath))
}

// mkdirAll creates a node directory and its missing parents with an explicit
// mode (umask does not apply), owned by root.
func (f fsys) mkdirAll(nodePath string, mode fs.FileMode) error {
	p := f.host(nodePath)
	if st, err := os.Stat(p); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", nodePath)
		}
		return nil
	}
	if parent := path.Dir(nodePath); parent != nodePath {
		if err := f.mkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	if err := os.Mkdir(p, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", nodePath, err)
	}
	if err := os.Chmod(p, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", nodePath, err)
	}
	return chownRoot(p)
}

// chownRoot makes a path root:root; an unprivileged test run (not CI, which
// runs as root) cannot and need not.
func chownRoot(p string) error {
	if err := os.Lchown(p, 0, 0); err != nil && !(errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0) {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

// writeFile makes a node file hold data with mode, owned by root, through a
// temporary file and a rename; it reports whether anything changed.
func (f fsys) writeFile(nodePath string, data []byte, mode fs.FileMode) (bool, error) {
	p := f.host(nodePath)
	if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm() == mode && ownedByRoot(st) {
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
			return false, nil
		}
	}
	if err := f.mkdirAll(path.Dir(nodePath), 0o755); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".esnode-*")
	if err != nil {
		return false, fmt.Errorf("write %s: %w", nodePath, err)
	}
	name := tmp.Name()
	fail := func(err error) (bool, error) {
		tmp.Close()
		os.Remove(name)
		return false, fmt.Errorf("write %s: %w", nodePath, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := chownRoot(name); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return false, fmt.Errorf("write %s: %w", nodePath, err)
	}
	if err := os.Rename(name, p); err != nil {
		os.Remove(name)
		return false, fmt.Errorf("write %s: %w", nodePath, err)
	}
	return true, nil
}

func ownedByRoot(st fs.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	if os.Geteuid() != 0 {
		return true // cannot chown anyway; compare content and mode only
	}
	return sys.Uid == 0 && sys.Gid == 0
}

func (f fsys) exists(nodePath string) bool {
	_, err := os.Lstat(f.host(nodePath))
	return err == nil
}

// describe records a node file as the manifest's baseline.
func (f fsys) describe(nodePath, stage string) (spec.ManagedFile, error) {
	p := f.host(nodePath)
	st, err := os.Lstat(p)
	if err != nil {
		return spec.ManagedFile{}, fmt.Errorf("record %s: %w", nodePath, err)
	}
	fh, err := os.Open(p)
	if err != nil {
		return spec.ManagedFile{}, fmt.Errorf("record %s: %w", nodePath, err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return spec.ManagedFile{}, fmt.Errorf("record %s: %w", nodePath, err)
	}
	uid, gid := -1, -1
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		uid, gid = int(sys.Uid), int(sys.Gid)
	}
	return spec.ManagedFile{
		Path:   nodePath,
		SHA256: hex.EncodeToString(h.Sum(nil)),
		Mode:   fmt.Sprintf("%04o", st.Mode().Perm()),
		Owner:  f.idName("/etc/passwd", uid),
		Group:  f.idName("/etc/group", gid),
		Stage:  stage,
	}, nil
}

// idName maps a uid or gid to its name in the target's passwd or group
// file (not this machine's), or the number when unknown.
func (f fsys) idName(db string, id int) string {
	if id == 0 {
		return "root"
	}
	if fh, err := os.Open(f.host(db)); err == nil {
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			parts := strings.Split(sc.Text(), ":")
			if len(parts) >= 3 && parts[2] == strconv.Itoa(id) {
				return parts[0]
			}
		}
	}
	return strconv.Itoa(id)
}

// hasUser reports whether the target's /etc/passwd lists name.
func (f fsys) hasUser(name string) bool {
	b, err := os.ReadFile(f.host("/etc/passwd"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if u, _, ok := strings.Cut(line, ":"); ok && u == name {
			return true
		}
	}
	return false
}

// unitDirs are where systemd looks for unit files, most specific first.
var unitDirs = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// unitPath finds a unit's file on the target.
func (f fsys) unitPath(unit string) (string, bool) {
	for _, d := range unitDirs {
		p := path.Join(d, unit)
		if f.exists(p) {
			return p, true
		}
	}
	return "", false
}

// wantedBy reads the [Install] WantedBy= targets of a unit file.
func (f fsys) wantedBy(unitFile string) ([]string, error) {
	b, err := os.ReadFile(f.host(unitFile))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", unitFile, err)
	}
	var out []string
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if section != "[Install]" {
			continue
		}
		if v, ok := strings.CutPrefix(line, "WantedBy="); ok {
			out = append(out, strings.Fields(v)...)
		}
	}
	return out, nil
}

// enabled reports whether every WantedBy link of a unit exists.
func (f fsys) enableLinks(unit string) (links []string, target string, err error) {
	file, ok := f.unitPath(unit)
	if !ok {
		return nil, "", fmt.Errorf("%s is not installed (no unit file in %s)", unit, strings.Join(unitDirs, ", "))
	}
	wants, err := f.wantedBy(file)
	if err != nil {
		return nil, "", err
	}
	if len(wants) == 0 {
		return nil, "", fmt.Errorf("%s has no [Install] WantedBy=, so it cannot be enabled", file)
	}
	for _, w := range wants {
		links = append(links, path.Join("/etc/systemd/system", w+".wants", unit))
	}
	return links, file, nil
}

func (f fsys) isEnabled(unit string) bool {
	links, _, err := f.enableLinks(unit)
	if err != nil {
		return false
	}
	for _, l := range links {
		if !f.exists(l) {
			return false
		}
	}
	return true
}

// linkEnable enables a unit offline the way systemctl does: a symlink in
// each WantedBy target's .wants directory.
func (f fsys) linkEnable(unit string) error {
	links, file, err := f.enableLinks(unit)
	if err != nil {
		return err
	}
	for _, l := range links {
		if f.exists(l) {
			continue
		}
		if err := f.mkdirAll(path.Dir(l), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(file, f.host(l)); err != nil {
			return fmt.Errorf("enable %s: %w", unit, err)
		}
		if err := chownRoot(f.host(l)); err != nil {
			return err
		}
	}
	return nil
}
