package spec

import (
	"strings"
	"testing"
	"time"
)

func TestLifecycleValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Lifecycle
		want string // "" = valid
	}{
		{"defaults", Lifecycle{}, ""},
		{"hook", Lifecycle{TerminationHook: "es-drain/prod_1", DrainTimeout: "2h", HeartbeatInterval: "10m"}, ""},
		{"hook name", Lifecycle{TerminationHook: "es drain!"}, `lifecycle.termination_hook: "es drain!" is not a lifecycle hook name (1-255 of A-Z a-z 0-9 - _ /)`},
		{"timeout syntax", Lifecycle{DrainTimeout: "50"}, `lifecycle.drain_timeout: "50" is not a positive Go duration such as 50m0s`},
		{"negative heartbeat", Lifecycle{HeartbeatInterval: "-5m"}, `lifecycle.heartbeat_interval: "-5m" is not a positive Go duration such as 5m0s`},
		{"tiny heartbeat", Lifecycle{HeartbeatInterval: "1s"}, "lifecycle.heartbeat_interval: 1s is shorter than 10s"},
		{"huge heartbeat", Lifecycle{HeartbeatInterval: "3h", DrainTimeout: "10h"}, "lifecycle.heartbeat_interval: 3h0m0s is not below 2h"},
		{"beyond 48h", Lifecycle{DrainTimeout: "49h"}, "lifecycle.drain_timeout: 49h0m0s is longer than 48h"},
		{"timeout below heartbeat", Lifecycle{DrainTimeout: "4m"}, "lifecycle.drain_timeout: 4m0s is not longer than heartbeat_interval (5m0s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := validNode()
			n.Lifecycle = tc.l
			err := n.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	to, hb, err := Lifecycle{}.Durations()
	if err != nil || to != 50*time.Minute || hb != 5*time.Minute {
		t.Errorf("defaults %s %s %v", to, hb, err)
	}
}
