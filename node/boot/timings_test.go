package boot

import (
	"crypto/sha256"
	"testing"
)

// TestCPUWait: the process's CPU time since it started, read from the
// kernel's per-thread counts, grows with the work done.
func TestCPUWait(t *testing.T) {
	before, _, ok := CPUWait()
	if !ok {
		t.Fatal("no /proc/self/task/*/schedstat: the kernel keeps no scheduler counts")
	}
	sum := sha256.Sum256(nil)
	for i := 0; i < 200000; i++ {
		sum = sha256.Sum256(sum[:])
	}
	after, wait, ok := CPUWait()
	if !ok || after <= before || wait < 0 {
		t.Errorf("cpu %v -> %v (wait %v, ok %v) after 200,000 hashes (%x)", before, after, wait, ok, sum[:4])
	}
}
