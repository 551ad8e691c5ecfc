package install

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// hqMarker, inside an extracted HQ release, records the tarball's SHA-512 so
// that a rerun with the same tarball leaves the tree alone.
const hqMarker = ".esnode-source.sha512"

// reqMarker, inside the venv, records the sha256 of the requirements it holds.
const reqMarker = ".esnode-requirements.sha256"

// extractHQ unpacks a release tarball into the node directory dir, dropping
// its top directory. It extracts beside dir and renames, so a failure leaves
// the previous tree (or none) in place.
func (f fsys) extractHQ(tarball, dir, sum string) error {
	if err := f.mkdirAll(path.Dir(dir), 0o755); err != nil {
		return err
	}
	tmpHost, err := os.MkdirTemp(f.host(path.Dir(dir)), "."+path.Base(dir)+".esnode-")
	if err != nil {
		return fmt.Errorf("extract ElasticHQ: %w", err)
	}
	defer os.RemoveAll(tmpHost)
	if err := extractTarball(tarball, tmpHost); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmpHost, hqMarker), []byte(sum+"\n"), 0o644); err != nil {
		return fmt.Errorf("extract ElasticHQ: %w", err)
	}
	if err := normalizeTree(tmpHost); err != nil {
		return err
	}
	final := f.host(dir)
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := os.Rename(tmpHost, final); err != nil {
		return fmt.Errorf("install %s: %w", dir, err)
	}
	return nil
}

// checkHQTarball extracts a tarball into a scratch directory and removes it,
// so that a bad tarball is refused before anything is installed.
func checkHQTarball(tarball, scratch string) error {
	dir, err := os.MkdirTemp(scratch, "hq-check-")
	if err != nil {
		return fmt.Errorf("check ElasticHQ tarball: %w", err)
	}
	defer os.RemoveAll(dir)
	return extractTarball(tarball, dir)
}

// extractTarball unpacks an ElasticHQ release into hostDir without its top
// directory. Every entry is checked: no absolute paths, no "..", no links
// out of the release, no hard links, devices or fifos; application.py must be there.
func extractTarball(tarball, hostDir string) error {
	fh, err := os.Open(tarball)
	if err != nil {
		return fmt.Errorf("open ElasticHQ tarball: %w", err)
	}
	defer fh.Close()
	gz, err := gzip.NewReader(fh)
	if err != nil {
		return fmt.Errorf("ElasticHQ tarball %s is not gzip: %w", filepath.Base(tarball), err)
	}
	tr := tar.NewReader(gz)
	files := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("ElasticHQ tarball %s: %w", filepath.Base(tarball), err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if strings.HasPrefix(h.Name, "/") || strings.Contains("/"+h.Name+"/", "/../") {
			return fmt.Errorf("ElasticHQ tarball entry %q escapes its directory; refusing the tarball", h.Name)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		_, rel, ok := strings.Cut(name, "/")
		if !ok || rel == "" {
			continue // the top directory itself
		}
		target := filepath.Join(hostDir, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("extract ElasticHQ: %w", err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("extract ElasticHQ: %w", err)
			}
			mode := fs.FileMode(0o644)
			if h.Mode&0o100 != 0 {
				mode = 0o755
			}
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return fmt.Errorf("extract ElasticHQ %s: %w", rel, err)
			}
			_, err = io.Copy(out, io.LimitReader(tr, 1<<30))
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extract ElasticHQ %s: %w", rel, err)
			}
			files++
		case tar.TypeSymlink:
			// Only links that stay inside the release.
			dest := path.Clean(path.Join(path.Dir(rel), h.Linkname))
			if path.IsAbs(h.Linkname) || dest == ".." || strings.HasPrefix(dest, "../") {
				return fmt.Errorf("ElasticHQ tarball entry %q links outside the release (to %q); refusing the tarball", h.Name, h.Linkname)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("extract ElasticHQ: %w", err)
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return fmt.Errorf("extract ElasticHQ %s: %w", rel, err)
			}
		default:
			return fmt.Errorf("ElasticHQ tarball entry %q is a hard link or special file (type %q); esnode extracts only files and directories", h.Name, h.Typeflag)
		}
	}
	if files == 0 {
		return fmt.Errorf("ElasticHQ tarball %s holds no files", filepath.Base(tarball))
	}
	if _, err := os.Stat(filepath.Join(hostDir, "application.py")); err != nil {
		return fmt.Errorf("ElasticHQ tarball %s has no application.py under its top directory; is it an ElasticHQ release?", filepath.Base(tarball))
	}
	return nil
}

// hqExtracted reports whether dir holds the release with this sum.
func (f fsys) hqExtracted(dir, sum string) bool {
	b, err := os.ReadFile(f.host(path.Join(dir, hqMarker)))
	return err == nil && strings.TrimSpace(string(b)) == sum
}

// normalizeTree makes a tree root-owned and readable, never writable, by
// others: directories 0755, files 0644 or 0755 when executable by their
// owner, no setuid/setgid. venv and pip follow the umask (027 on CIS
// images), which would hide the tree from the service user.
func normalizeTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := chownRoot(p); err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			return nil // venv's python links; their targets keep their modes
		}
		mode := fs.FileMode(0o644)
		switch {
		case info.IsDir():
			mode = 0o755
		case info.Mode().Perm()&0o100 != 0:
			mode = 0o755
		}
		if info.Mode().Perm() != mode || info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			if err := os.Chmod(p, mode); err != nil {
				return fmt.Errorf("chmod %s: %w", p, err)
			}
		}
		return nil
	})
}

// hasRequirements reports whether a requirements file names anything (pip
// refuses an empty one on some releases).
func hasRequirements(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}
