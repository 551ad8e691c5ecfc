package boot

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
)

// Command is one program boot runs. Stdin may carry a secret: it is never
// printed, logged or recorded in boot.json.
type Command struct {
	Name  string
	Args  []string
	Env   []string // extra KEY=VALUE pairs
	Stdin []byte
}

// String is the command line, without stdin.
func (c Command) String() string {
	return strings.Join(append([]string{c.Name}, c.Args...), " ")
}

// Runner runs commands.
type Runner interface {
	Run(ctx context.Context, c Command) (output []byte, err error)
}

// ExecRunner runs commands on this machine.
type ExecRunner struct{}

// Run runs c and returns its combined output.
func (ExecRunner) Run(ctx context.Context, c Command) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	if len(c.Env) > 0 {
		cmd.Env = append(cmd.Environ(), c.Env...)
	}
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	return cmd.CombinedOutput()
}

// RecordingRunner records commands instead of running them; Fail makes a
// command (matched by its String) return an error.
type RecordingRunner struct {
	mu       sync.Mutex
	Commands []Command
	Fail     map[string]error
	// Output is what a command (matched by its String) prints.
	Output map[string][]byte
}

// Run records c.
func (r *RecordingRunner) Run(_ context.Context, c Command) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Commands = append(r.Commands, c)
	if err := r.Fail[c.String()]; err != nil {
		return []byte("stand-in failure"), err
	}
	return r.Output[c.String()], nil
}
