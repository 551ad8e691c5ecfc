package boot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Stage is one timed step of a boot.
type Stage struct {
	Name string
	Took time.Duration
	// Within names the stage this one is part of: the apply stage's lanes
	// (firewall, keystore, CloudWatch agent) run at the same time, so their
	// times overlap and do not add up.
	Within string
}

// stopwatch splits a boot's wall time into consecutive stages, so the
// summary says where the time went: the unit's time is on the boot path of
// every node.
type stopwatch struct {
	last   time.Time
	stages []Stage
}

func newStopwatch() *stopwatch { return &stopwatch{last: time.Now()} }

// lap ends the current stage as name.
func (s *stopwatch) lap(name string) {
	now := time.Now()
	s.stages = append(s.stages, Stage{Name: name, Took: now.Sub(s.last)})
	s.last = now
}

// commandStage names a command's stage by its program.
func commandStage(c Command) string { return filepath.Base(c.Name) }

// FormatStages renders stages as "metadata 8.1ms, security 12ms, apply
// 30ms (firewall 12ms, amazon-cloudwatch-agent-ctl 9ms, systemctl 11ms)":
// a stage's parts in parentheses; repeats of one name (several keystore
// commands) summed.
func FormatStages(stages []Stage) string {
	type entry struct {
		name  string
		took  time.Duration
		parts []*entry
	}
	var top []*entry
	byName := map[string]*entry{}
	add := func(list *[]*entry, key string, st Stage) {
		if e := byName[key]; e != nil {
			e.took += st.Took
			return
		}
		e := &entry{name: st.Name, took: st.Took}
		byName[key] = e
		*list = append(*list, e)
	}
	for _, st := range stages {
		if st.Within == "" {
			add(&top, st.Name, st)
		}
	}
	for _, st := range stages {
		if parent := byName[st.Within]; st.Within != "" && parent != nil {
			add(&parent.parts, st.Within+"/"+st.Name, st)
		}
	}
	out := make([]string, len(top))
	for i, e := range top {
		out[i] = fmt.Sprintf("%s %s", e.name, roundDuration(e.took))
		if len(e.parts) > 0 {
			parts := make([]string, len(e.parts))
			for j, p := range e.parts {
				parts[j] = fmt.Sprintf("%s %s", p.name, roundDuration(p.took))
			}
			out[i] += " (" + strings.Join(parts, ", ") + ")"
		}
	}
	return strings.Join(out, ", ")
}

// roundDuration keeps what matters at each scale: 0.4ms, 12.3ms, 150ms.
func roundDuration(d time.Duration) time.Duration {
	if d < 100*time.Millisecond {
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// lockedWriter serialises writes: apply's lanes print at the same time.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// CPUWait reads how long this process's threads have run on a CPU and how
// long they were runnable but waited for one, since they started
// (/proc/self/task/*/schedstat: run and run-queue nanoseconds). The wait is
// the share of a boot's wall time that other work on the machine took (at
// first boot, the units systemd starts at the same moment). ok is false
// where the kernel does not keep these counts.
func CPUWait() (cpu, wait time.Duration, ok bool) {
	tasks, err := filepath.Glob("/proc/self/task/*/schedstat")
	if err != nil || len(tasks) == 0 {
		return 0, 0, false
	}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that ended
		}
		var run, queued int64
		if _, err := fmt.Sscan(string(b), &run, &queued); err != nil {
			return 0, 0, false
		}
		cpu += time.Duration(run)
		wait += time.Duration(queued)
		ok = true
	}
	return cpu, wait, ok
}
