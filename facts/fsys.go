package facts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// DefaultMaxFileBytes bounds every file read, so a huge or endless file
// becomes a fact-level error instead of eating the node's memory.
const DefaultMaxFileBytes = 4 << 20

var errTooLarge = errors.New("file too large")

// rootFS reads paths as if Root were "/": absolute symlinks are resolved
// inside Root, and ".." never climbs out of it (like a chroot, without one).
type rootFS struct {
	root string
	max  int64
}

// host maps an absolute in-root path to a path on this machine, resolving
// symlinks inside the root. With follow false the last element is not
// followed (for lstat and readlink).
func (r rootFS) host(p string, follow bool) (string, error) {
	if r.root == "/" || r.root == "" {
		return path.Clean("/" + p), nil
	}
	parts := strings.Split(path.Clean("/"+p), "/")[1:]
	cur := "/"
	hops := 0
	for len(parts) > 0 {
		el := parts[0]
		parts = parts[1:]
		if el == "" || el == "." {
			continue
		}
		if el == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, el)
		if len(parts) == 0 && !follow {
			cur = next
			break
		}
		fi, err := os.Lstat(filepath.Join(r.root, next))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			// A missing element is reported by the caller's own open.
			cur = next
			continue
		}
		hops++
		if hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(filepath.Join(r.root, next))
		if err != nil {
			return "", err
		}
		rest := strings.Split(target, "/")
		if path.IsAbs(target) {
			cur = "/"
		}
		parts = append(rest, parts...)
	}
	return filepath.Join(r.root, cur), nil
}

// Display is how a path is named in facts: as seen on the node.
func (r rootFS) Display(p string) string { return path.Clean("/" + p) }

func (r rootFS) Stat(p string) (fs.FileInfo, error) {
	h, err := r.host(p, true)
	if err != nil {
		return nil, err
	}
	return os.Stat(h)
}

func (r rootFS) Lstat(p string) (fs.FileInfo, error) {
	h, err := r.host(p, false)
	if err != nil {
		return nil, err
	}
	return os.Lstat(h)
}

func (r rootFS) Readlink(p string) (string, error) {
	h, err := r.host(p, false)
	if err != nil {
		return "", err
	}
	return os.Readlink(h)
}

func (r rootFS) ReadDir(p string) ([]fs.DirEntry, error) {
	h, err := r.host(p, true)
	if err != nil {
		return nil, err
	}
	return os.ReadDir(h)
}

// Open opens a regular file without blocking on FIFOs or devices.
func (r rootFS) Open(p string) (*os.File, error) {
	h, err := r.host(p, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(h)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", r.Display(p), fi.Mode().Type())
	}
	f, err := os.OpenFile(h, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ReadFile reads at most r.max bytes; a longer file is an error.
func (r rootFS) ReadFile(p string) ([]byte, error) {
	f, err := r.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	limit := r.max
	if limit <= 0 {
		limit = DefaultMaxFileBytes
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.Display(p), err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w; it is not a config file this tool understands", r.Display(p), limit, errTooLarge)
	}
	return b, nil
}

// ReadText is ReadFile for text: NUL bytes mean a binary file.
func (r rootFS) ReadText(p string) (string, error) {
	b, err := r.ReadFile(p)
	if err != nil {
		return "", err
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return "", fmt.Errorf("%s holds binary data (NUL bytes), not text", r.Display(p))
	}
	return string(b), nil
}

// Exists reports whether p exists (without following a final symlink).
func (r rootFS) Exists(p string) bool {
	_, err := r.Lstat(p)
	return err == nil
}

func statDir(p string) (fs.FileInfo, error) { return os.Stat(p) }
