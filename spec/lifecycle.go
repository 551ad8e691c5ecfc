//go:generate ../internal/tools/packer-sdc.sh struct-markdown

package spec

import (
	"errors"
	"fmt"
	"time"
)

// Lifecycle is safe scale-in: with a termination lifecycle hook on the
// node's Auto Scaling group (autoscaling:EC2_INSTANCE_TERMINATING),
// esnode-drain.service drains the node before its instance terminates:
// it excludes the node from shard allocation (and from the voting
// configuration when master-eligible, 7.x+), waits until the node holds no
// shard and the cluster is not red, heartbeating the hook, then completes
// the lifecycle action with CONTINUE.
type Lifecycle struct {
	// Name of the group's termination lifecycle hook. Empty (the default):
	// no drain; the watcher idles.
	TerminationHook string `mapstructure:"termination_hook" json:"termination_hook,omitempty"`
	// Longest a drain may take (a Go duration). When it passes, esnode says
	// why in the journal and leaves the hook to its default result. Keep it
	// within the hook's heartbeat timeout times the heartbeats allowed
	// (at most 48 h or 100 heartbeat timeouts). Default `50m`.
	DrainTimeout string `mapstructure:"drain_timeout" json:"drain_timeout,omitempty"`
	// How often the hook is heartbeated while draining (a Go duration); it
	// must be shorter than the hook's HeartbeatTimeout (30 s to 2 h,
	// default 1 h on AWS). Default `5m`.
	HeartbeatInterval string `mapstructure:"heartbeat_interval" json:"heartbeat_interval,omitempty"`
}

// Defaults of the lifecycle section.
const (
	DefaultDrainTimeout      = 50 * time.Minute
	DefaultHeartbeatInterval = 5 * time.Minute
)

// lifecycleHookName is AWS's pattern for LifecycleHookName.
var lifecycleHookName = boundedChars(`[A-Za-z0-9\-_/]`, 1, 255)

// Durations returns the drain timeout and heartbeat interval with defaults.
func (l Lifecycle) Durations() (timeout, heartbeat time.Duration, err error) {
	if timeout, err = duration("lifecycle.drain_timeout", l.DrainTimeout, DefaultDrainTimeout); err != nil {
		return 0, 0, err
	}
	heartbeat, err = duration("lifecycle.heartbeat_interval", l.HeartbeatInterval, DefaultHeartbeatInterval)
	return timeout, heartbeat, err
}

func duration(field, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, &durationError{field, fmt.Sprintf("%q is not a positive Go duration such as %s", s, def)}
	}
	return d, nil
}

func (v *validator) lifecycle(l Lifecycle) {
	if l.TerminationHook != "" && !lifecycleHookName.MatchString(l.TerminationHook) {
		v.addf("lifecycle.termination_hook", "%q is not a lifecycle hook name (1-255 of A-Z a-z 0-9 - _ /)", l.TerminationHook)
	}
	timeout, heartbeat, err := l.Durations()
	var de *durationError
	switch {
	case errors.As(err, &de):
		v.add(de.field, de.problem)
	case heartbeat < 10*time.Second:
		v.addf("lifecycle.heartbeat_interval", "%s is shorter than 10s; every heartbeat is an Auto Scaling API call (the hook's timeout is at least 30s)", heartbeat)
	case heartbeat >= 2*time.Hour:
		v.addf("lifecycle.heartbeat_interval", "%s is not below 2h, the longest heartbeat timeout a hook can have; the hook would time out between heartbeats", heartbeat)
	case timeout > 48*time.Hour:
		v.addf("lifecycle.drain_timeout", "%s is longer than 48h, the longest an Auto Scaling lifecycle action can last", timeout)
	case timeout <= heartbeat:
		v.addf("lifecycle.drain_timeout", "%s is not longer than heartbeat_interval (%s): the drain would end before its first heartbeat", timeout, heartbeat)
	}
}
