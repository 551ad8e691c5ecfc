package install

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// historyFiles are per-user shell and tool histories removed by generalize.
var historyFiles = []string{".bash_history", ".zsh_history", ".sh_history", ".history", ".python_history", ".lesshst", ".viminfo", ".mysql_history", ".psql_history"}

// cloudInitState is cloud-init's per-instance state and logs, removed when
// cloud-init itself is not there to clean it.
var cloudInitState = []string{"/var/lib/cloud/instances", "/var/lib/cloud/instance", "/var/lib/cloud/data", "/var/lib/cloud/sem", "/var/log/cloud-init.log", "/var/log/cloud-init-output.log"}

// homes lists every home directory of the target: /root, /home/*, and the
// homes in its /etc/passwd.
func (f fsys) homes() []string {
	set := map[string]bool{"/root": true}
	if ents, err := os.ReadDir(f.host("/home")); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				set[path.Join("/home", e.Name())] = true
			}
		}
	}
	if fh, err := os.Open(f.host("/etc/passwd")); err == nil {
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			parts := strings.Split(sc.Text(), ":")
			if len(parts) >= 6 && strings.HasPrefix(parts[5], "/") && parts[5] != "/" && parts[5] != "/nonexistent" {
				set[path.Clean(parts[5])] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// generalize removes what ties the image to the bake instance. It returns
// the node paths it removed or emptied.
func (f fsys) generalize(ctx context.Context, r CommandRunner) ([]string, error) {
	var done []string
	remove := func(nodePath string) error {
		p := f.host(nodePath)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("generalize: remove %s: %w", nodePath, err)
		}
		done = append(done, nodePath)
		return nil
	}
	keys, err := filepath.Glob(f.host("/etc/ssh/ssh_host_*"))
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		rel, _ := filepath.Rel(f.root, k)
		if err := remove("/" + filepath.ToSlash(rel)); err != nil {
			return done, err
		}
	}
	for _, h := range f.homes() {
		for _, name := range append([]string{".ssh/authorized_keys", ".ssh/authorized_keys2"}, historyFiles...) {
			if err := remove(path.Join(h, name)); err != nil {
				return done, err
			}
		}
	}
	if f.exists("/usr/bin/cloud-init") && f.exists("/var/lib/cloud/instance") {
		if _, err := r.Run(ctx, Command{Name: "cloud-init", Args: []string{"clean", "--logs"}}); err != nil {
			return done, fmt.Errorf("generalize: %w", err)
		}
		done = append(done, "cloud-init clean --logs")
	}
	for _, p := range cloudInitState {
		if err := remove(p); err != nil {
			return done, err
		}
	}
	// An empty machine-id (not a missing one) makes systemd generate a new
	// id on first boot and run first-boot units.
	mid := f.host("/etc/machine-id")
	if st, err := os.Stat(mid); err == nil && st.Size() > 0 {
		if err := os.Truncate(mid, 0); err != nil {
			return done, fmt.Errorf("generalize: empty /etc/machine-id: %w", err)
		}
		done = append(done, "/etc/machine-id (emptied)")
	}
	return done, nil
}
