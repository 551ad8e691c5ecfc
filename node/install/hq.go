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
// directory. Every entry is checked: no absolute paths, no "..", no entry
// under a symbolic link of the release, no link whose target leaves the
// release (followed through the release's other links), no hard links,
// devices or fifos; application.py must be there. Every write goes through
// an os.Root on hostDir, so even a check this code missed cannot write
// outside the tree: a tarball is untrusted until it has been checked, and
// the check itself extracts it.
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
	return extractTar(gz, hostDir, filepath.Base(tarball))
}

// extractTar is extractTarball on the uncompressed stream; name is the
// tarball's, for messages.
func extractTar(r io.Reader, hostDir, name string) error {
	root, err := os.OpenRoot(hostDir)
	if err != nil {
		return fmt.Errorf("extract ElasticHQ: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	files := 0
	links := map[string]bool{} // symbolic links extracted so far, by release path
	var linkOrder []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("ElasticHQ tarball %s: %w", name, err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if strings.HasPrefix(h.Name, "/") || strings.Contains("/"+h.Name+"/", "/../") || strings.ContainsRune(h.Name, 0) {
			return fmt.Errorf("ElasticHQ tarball entry %q escapes its directory; refusing the tarball", h.Name)
		}
		clean := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		_, rel, ok := strings.Cut(clean, "/")
		if !ok || rel == "" {
			continue // the top directory itself
		}
		// A link inside the release may point at ".", so a path through it
		// is not the path it spells: refuse every entry below a link.
		for dir := path.Dir(rel); dir != "."; dir = path.Dir(dir) {
			if links[dir] {
				return fmt.Errorf("ElasticHQ tarball entry %q lies under the symbolic link %q of the release; refusing the tarball", h.Name, dir)
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(rel, 0o755); err != nil {
				return fmt.Errorf("extract ElasticHQ %s: %w", rel, err)
			}
		case tar.TypeReg:
			if err := root.MkdirAll(path.Dir(rel), 0o755); err != nil {
				return fmt.Errorf("extract ElasticHQ %s: %w", rel, err)
			}
			mode := fs.FileMode(0o644)
			if h.Mode&0o100 != 0 {
				mode = 0o755
			}
			out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
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
			// Only relative links that stay inside the release, spelled out;
			// links through other links are checked once all exist, below.
			dest := path.Clean(path.Join(path.Dir(rel), h.Linkname))
			if h.Linkname == "" || path.IsAbs(h.Linkname) || dest == ".." || strings.HasPrefix(dest, "../") || strings.ContainsRune(h.Linkname, 0) {
				return fmt.Errorf("ElasticHQ tarball entry %q links outside the release (to %q); refusing the tarball", h.Name, h.Linkname)
			}
			if err := root.MkdirAll(path.Dir(rel), 0o755); err != nil {
				return fmt.Errorf("extract ElasticHQ %s: %w", rel, err)
			}
			if err := root.Symlink(h.Linkname, rel); err != nil {
				return fmt.Errorf("extract ElasticHQ %s: %w", rel, err)
			}
			links[rel] = true
			linkOrder = append(linkOrder, rel)
		default:
			return fmt.Errorf("ElasticHQ tarball entry %q is a hard link or special file (type %q); esnode extracts only files and directories", h.Name, h.Typeflag)
		}
	}
	// A link's target may go through other links (a -> ".", b -> "a/a/../.."):
	// resolve each inside the root, which refuses any escape. A dangling link
	// stays allowed; nothing is written after this point.
	for _, l := range linkOrder {
		if _, err := root.Stat(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ElasticHQ tarball link %q resolves outside the release (%v); refusing the tarball", l, err)
		}
	}
	if files == 0 {
		return fmt.Errorf("ElasticHQ tarball %s holds no files", name)
	}
	if st, err := root.Lstat("application.py"); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("ElasticHQ tarball %s has no application.py under its top directory; is it an ElasticHQ release?", name)
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

// unhashedRequirement returns the first requirement (its logical line,
// continuations joined) that pins no --hash, or "" when every one does.
// pip's --require-hashes refuses the same files; checking first gives the
// user the fix instead of pip's message.
func unhashedRequirement(data []byte) string {
	var logical []string
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			line = ""
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		logical = append(logical, strings.TrimSpace(cur+line))
		cur = ""
	}
	if cur != "" {
		logical = append(logical, strings.TrimSpace(cur))
	}
	for _, l := range logical {
		if l == "" || strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "-e") {
			continue // options such as --index-url apply to the file, not a package
		}
		if !strings.Contains(l, "--hash=") {
			return l
		}
	}
	return ""
}
