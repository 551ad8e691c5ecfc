package vm

import (
	"context"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
)

// benchLaunch launches and closes VMs; launch-s/op is Launch until SSH
// answers and the guest is set up (clock, hostname, launch key).
func benchLaunch(b *testing.B, spec func() LaunchSpec) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	_, pub := newKey(b)
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := spec()
		s.AuthorizedKey = pub
		s.IMDS = testcloud.IMDSConfig{InstanceID: "i-0be4c000000000001"}
		start := time.Now()
		v, err := Launch(ctx, s)
		total += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := v.Close(); err != nil {
			b.Error(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "launch-s/op")
}

// BenchmarkVMRestoreToSSH: a VM restored from the saved state.
func BenchmarkVMRestoreToSSH(b *testing.B) {
	RequireHost(b)
	s := testSnapshot(b)
	benchLaunch(b, func() LaunchSpec { return LaunchSpec{Snapshot: s} })
}

// BenchmarkVMBootToSSH: a full boot of the same disk, what a VM from a
// changed (baked) disk costs.
func BenchmarkVMBootToSSH(b *testing.B) {
	RequireHost(b)
	s := testSnapshot(b)
	benchLaunch(b, func() LaunchSpec { return LaunchSpec{Disk: s.Base, MemoryMB: s.Machine.MemoryMB, CPUs: s.Machine.CPUs} })
}
