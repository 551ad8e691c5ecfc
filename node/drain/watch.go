package drain

import (
	"context"
	"fmt"
	"io"
	"time"
)

// WatchOptions configure Watch.
type WatchOptions struct {
	State   TargetState
	Cluster Cluster
	// Hook is built when a termination is seen (it needs AWS calls that a
	// node in service should not make every few seconds).
	Hook  func(ctx context.Context) (Hook, error)
	Node  Node
	Drain Options
	// Poll is how often the state is read (default 5 s: the group waits for
	// the hook, so a few seconds are cheap).
	Poll time.Duration
	Out  io.Writer
}

// Watch follows the target lifecycle state until ctx ends: on Terminated it
// drains once; on InService it takes back exclusions a drain left (a
// cancelled scale-in, or a restart). Errors reading the state are reported
// and retried, never fatal: the watcher must outlive IMDS hiccups.
func Watch(ctx context.Context, o WatchOptions) error {
	if o.Poll == 0 {
		o.Poll = 5 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Drain.Out == nil {
		o.Drain.Out = o.Out
	}
	last, drained := "", false
	for {
		state, err := o.State(ctx)
		switch {
		case err != nil:
			if last != "error" {
				fmt.Fprintf(o.Out, "esnode drain: %v (retrying every %s)\n", err, o.Poll)
			}
			last = "error"
		case state == "Terminated" && !drained:
			fmt.Fprintf(o.Out, "esnode drain: target lifecycle state %s: draining %s\n", state, o.Node.Name)
			h, herr := o.Hook(ctx)
			if herr != nil {
				fmt.Fprintf(o.Out, "esnode drain: %v; the hook's default result applies\n", herr)
			} else if derr := Drain(ctx, o.Cluster, h, o.Node, o.Drain); derr != nil {
				fmt.Fprintf(o.Out, "esnode drain: %v\n", derr)
			}
			drained, last = true, state
		case state == "InService" && last != state:
			if uerr := Undrain(ctx, o.Cluster, o.Node, o.Out); uerr != nil {
				fmt.Fprintf(o.Out, "esnode drain: %v (retrying)\n", uerr)
			} else {
				last, drained = state, false
			}
		case state != last:
			last = state
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Poll):
		}
	}
}
