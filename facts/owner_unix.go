//go:build unix

package facts

import (
	"io/fs"
	"syscall"
)

// fileOwner is the numeric owner of fi; ok is false where the platform does
// not say (facts are collected on Linux nodes; the plugin, which only reads
// facts, is also built for Windows).
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
