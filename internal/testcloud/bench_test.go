package testcloud

import (
	"context"
	"testing"
	"time"
)

// BenchmarkLaunch measures start-to-SSH (image cached): overlay, netns,
// IMDS, boot, SSH handshake. Terminate is excluded from the timing.
func BenchmarkLaunch(b *testing.B) {
	img := testImage(b, BaseImage)
	c := New(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		i, err := c.Launch(ctx, LaunchSpec{Image: img})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := i.Terminate(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
