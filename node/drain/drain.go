// Package drain takes a node out of its cluster before the Auto Scaling
// group terminates its instance: it excludes the node from shard allocation
// (and, for a master-eligible node on 7.x and later, from the voting
// configuration), waits until the node holds no shard and the cluster is not
// red, heartbeating the termination lifecycle hook meanwhile, and then
// completes the lifecycle action with CONTINUE. A drain that cannot finish in
// time says why and leaves the hook to its default result.
package drain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Cluster is what a drain needs from Elasticsearch (ESClient in es.go).
type Cluster interface {
	// ExcludeFromAllocation adds name to cluster.routing.allocation.exclude._name.
	ExcludeFromAllocation(ctx context.Context, name string) error
	// IncludeInAllocation removes name from that list again.
	IncludeInAllocation(ctx context.Context, name string) error
	// Excluded reports whether name is in that list.
	Excluded(ctx context.Context, name string) (bool, error)
	// ExcludeFromVoting adds a voting configuration exclusion (7.x+).
	ExcludeFromVoting(ctx context.Context, name string) error
	// ClearVotingExclusions clears the voting configuration exclusions (7.x+).
	ClearVotingExclusions(ctx context.Context) error
	// ClearDepartedVotingExclusions clears them when every excluded node has
	// left the cluster, and says how many it cleared (7.x+).
	ClearDepartedVotingExclusions(ctx context.Context) (int, error)
	// ShardsOn counts the shard copies the node holds, relocating ones included.
	ShardsOn(ctx context.Context, name string) (int, error)
	// Health is the cluster's status: green, yellow or red.
	Health(ctx context.Context) (string, error)
}

// Hook is the instance's termination lifecycle action (LifecycleClient in
// lifecycle.go).
type Hook interface {
	Heartbeat(ctx context.Context) error
	Complete(ctx context.Context, result string) error
}

// Node is the local node as the drain sees it.
type Node struct {
	Name string
	// MasterEligible nodes on Voting get a voting configuration exclusion
	// first: removing masters without one can cost 7.x/8.x its quorum.
	MasterEligible bool
	// Voting is true from Elasticsearch 7.0 (voting configurations).
	Voting bool
}

// Options tune a drain. Zero values take the defaults.
type Options struct {
	// Timeout bounds the whole drain; keep it below the hook's heartbeat
	// timeout times the heartbeats the group allows (default 50 min).
	Timeout time.Duration
	// HeartbeatEvery is how often the hook is heartbeated; it must be
	// shorter than the hook's HeartbeatTimeout (default 5 min).
	HeartbeatEvery time.Duration
	// Poll is how often shards and health are checked (default 5 s).
	Poll time.Duration
	Out  io.Writer
}

func (o *Options) defaults() {
	if o.Timeout == 0 {
		o.Timeout = 50 * time.Minute
	}
	if o.HeartbeatEvery == 0 {
		o.HeartbeatEvery = 5 * time.Minute
	}
	if o.Poll == 0 {
		o.Poll = 5 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
}

// Continue is the lifecycle action result that lets termination proceed.
const Continue = "CONTINUE"

// ErrNotDrained is returned when the drain gave up; the lifecycle action was
// not completed, so the hook's default result applies at its timeout.
var ErrNotDrained = errors.New("node not drained")

// Drain empties the node and completes the lifecycle action. It returns
// ErrNotDrained (wrapped, with the reason) when Timeout passed first.
func Drain(ctx context.Context, c Cluster, h Hook, n Node, o Options) error {
	o.defaults()
	if n.Name == "" {
		return errors.New("drain: the node's name is unknown (esnode boot records it in boot.json)")
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := retry(ctx, o, "exclude the node from shard allocation", func() error { return c.ExcludeFromAllocation(ctx, n.Name) }); err != nil {
		return notDrained(err)
	}
	fmt.Fprintf(o.Out, "esnode drain: %s excluded from shard allocation\n", n.Name)
	if n.MasterEligible && n.Voting {
		// Exclusions stay until someone clears them, and Elasticsearch
		// refuses more than cluster.max_voting_config_exclusions (10): the
		// nodes drained before this one are gone, so theirs go first.
		if k, err := c.ClearDepartedVotingExclusions(ctx); err != nil {
			fmt.Fprintf(o.Out, "esnode drain: clearing the voting exclusions of departed nodes failed (continuing): %v\n", err)
		} else if k > 0 {
			fmt.Fprintf(o.Out, "esnode drain: cleared %d voting exclusion(s) of nodes that have left the cluster\n", k)
		}
		if err := retry(ctx, o, "add a voting configuration exclusion", func() error { return c.ExcludeFromVoting(ctx, n.Name) }); err != nil {
			return notDrained(err)
		}
		fmt.Fprintf(o.Out, "esnode drain: %s excluded from the voting configuration\n", n.Name)
	}
	nextBeat := time.Now().Add(o.HeartbeatEvery)
	var why string
	for {
		shards, serr := c.ShardsOn(ctx, n.Name)
		health, herr := c.Health(ctx)
		if ctx.Err() != nil && why != "" {
			// The deadline cut a request short: the last complete check says why.
			return notDrained(fmt.Errorf("gave up after %s: %s", o.Timeout, why))
		}
		switch {
		case serr != nil:
			why = "counting the node's shards: " + serr.Error()
		case herr != nil:
			why = "reading cluster health: " + herr.Error()
		case shards > 0:
			why = fmt.Sprintf("%d shard(s) still on %s (cluster %s)", shards, n.Name, health)
		case health == "red":
			why = "the cluster is red: a shard has no active copy, and this node may be needed to restore it"
		default:
			fmt.Fprintf(o.Out, "esnode drain: %s holds no shard and the cluster is %s; completing the lifecycle action\n", n.Name, health)
			if err := retry(ctx, o, "complete the lifecycle action", func() error { return h.Complete(ctx, Continue) }); err != nil {
				return notDrained(err)
			}
			fmt.Fprintf(o.Out, "esnode drain: lifecycle action completed with %s\n", Continue)
			return nil
		}
		if time.Now().After(nextBeat) {
			if err := h.Heartbeat(ctx); err != nil {
				fmt.Fprintf(o.Out, "esnode drain: lifecycle heartbeat failed (will retry): %v\n", err)
			} else {
				nextBeat = time.Now().Add(o.HeartbeatEvery)
			}
		}
		select {
		case <-ctx.Done():
			return notDrained(fmt.Errorf("gave up after %s: %s", o.Timeout, why))
		case <-time.After(o.Poll):
		}
	}
}

// Undrain takes the node's own exclusions back when its instance returns to
// service (a cancelled scale-in, or a restart after a drain). Voting
// exclusions can only be cleared all at once in Elasticsearch's API.
func Undrain(ctx context.Context, c Cluster, n Node, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	excluded, err := c.Excluded(ctx, n.Name)
	if err != nil {
		return fmt.Errorf("read the allocation exclusions: %w", err)
	}
	if !excluded {
		return nil
	}
	if err := c.IncludeInAllocation(ctx, n.Name); err != nil {
		return fmt.Errorf("remove %s from the allocation exclusions: %w", n.Name, err)
	}
	fmt.Fprintf(out, "esnode drain: %s back in service: removed from the allocation exclusions\n", n.Name)
	if n.MasterEligible && n.Voting {
		if err := c.ClearVotingExclusions(ctx); err != nil {
			return fmt.Errorf("clear the voting configuration exclusions: %w", err)
		}
		fmt.Fprintf(out, "esnode drain: voting configuration exclusions cleared\n")
	}
	return nil
}

// retry runs f until it succeeds or ctx ends, saying what failed.
func retry(ctx context.Context, o Options, what string, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		fmt.Fprintf(o.Out, "esnode drain: %s failed (will retry): %v\n", what, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(o.Poll):
		}
	}
}

func notDrained(err error) error {
	return fmt.Errorf("%w: %v; the lifecycle action was not completed, so the hook's default result applies when its heartbeat timeout ends", ErrNotDrained, err)
}
