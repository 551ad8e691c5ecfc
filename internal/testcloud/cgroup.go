package testcloud

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Each container runs in its own cgroup. systemd-nspawn --keep-unit puts
// the container in "<nspawn's cgroup>/payload"; without a host systemd all
// nspawns share one cgroup, so two containers' systemd would create and
// remove each other's unit cgroups (units then fail with 219/CGROUP).

// cgroupRoots returns the hierarchies that track nspawn containers: the
// name=systemd and unified ones on hybrid hosts, the single one on pure v2.
func cgroupRoots() []string {
	var roots []string
	for _, d := range []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err == nil {
			roots = append(roots, d)
		}
	}
	if len(roots) == 0 {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err == nil {
			roots = []string{"/sys/fs/cgroup"}
		}
	}
	return roots
}

// makeCgroups creates cgroup name in every root and returns the dirs.
func makeCgroups(name string) ([]string, error) {
	var dirs []string
	for _, r := range cgroupRoots() {
		d := filepath.Join(r, name)
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return nil, fmt.Errorf("create cgroup %s: %w", d, err)
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}

// removeCgroupTree removes cgroup dir and the cgroups the container's
// systemd made below it, deepest first. Cgroups with live processes stay.
func removeCgroupTree(dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(a, b int) bool { return len(dirs[a]) > len(dirs[b]) })
	for _, d := range dirs {
		_ = os.Remove(d)
	}
}

// removeCgroupsWithPrefix removes every top-level cgroup named prefix*.
func removeCgroupsWithPrefix(prefix string) {
	for _, r := range cgroupRoots() {
		ents, _ := os.ReadDir(r)
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
				removeCgroupTree(filepath.Join(r, e.Name()))
			}
		}
	}
}
