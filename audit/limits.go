package audit

import (
	"errors"
	"fmt"
	"syscall"
)

// KindLocalResources is a node error caused by the auditor itself running
// out of resources (file descriptors), not by the node.
const KindLocalResources = "local-resources"

// fdsPerNode is what one node in flight may hold open at once: the SSH
// connection (or SSM session), three probe connections, the uploaded
// esnode and TLS/DNS sockets, with room to spare.
const fdsPerNode = 8

// fdReserve is kept for the process itself (stdio, reports, history,
// AWS SDK connections).
const fdReserve = 64

func fdExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// openFileLimit is the soft RLIMIT_NOFILE (Go raises it to the hard limit
// at start-up), or 0 when unknown.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

// capParallel lowers parallel so that parallel nodes fit in limit open
// files; the message says so ("" when unchanged).
func capParallel(parallel int, limit uint64) (int, string) {
	if limit == 0 || limit == ^uint64(0) {
		return parallel, ""
	}
	fit := 1
	if limit > fdReserve+fdsPerNode {
		fit = int((limit - fdReserve) / fdsPerNode)
	}
	if parallel <= fit {
		return parallel, ""
	}
	return fit, fmt.Sprintf("--parallel %d lowered to %d: the open-file limit (ulimit -n) is %d and each node in flight needs up to %d; raise the limit to audit more nodes at once", parallel, fit, limit, fdsPerNode)
}
