package testcloud

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// listenInNetns opens a TCP listener inside the network namespace at
// nsPath (e.g. /run/netns/NAME). The socket keeps that namespace for its
// life, so this process can serve inside a namespace it does not run in.
func listenInNetns(nsPath, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is switched to another namespace; lock it so nothing
		// else runs on it, and only unlock once it is switched back. If
		// switching back fails the goroutine exits locked and Go discards
		// the thread.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open own netns: %w", err)}
			return
		}
		defer orig.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open netns %s: %w", nsPath, err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter netns %s: %w", nsPath, err)}
			return
		}
		l, lerr := net.Listen("tcp", addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		if lerr != nil {
			lerr = fmt.Errorf("listen on %s in %s: %w", addr, nsPath, lerr)
		}
		ch <- result{l, lerr}
	}()
	r := <-ch
	return r.l, r.err
}
