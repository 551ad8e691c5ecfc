package install

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Command is one program install runs on the target. Name and every path in
// Args are node paths: with a Root other than "/" they are resolved inside
// that root (ExecRunner chroots).
type Command struct {
	Name  string
	Args  []string
	Env   []string // extra KEY=VALUE pairs
	Stdin []byte
}

// String is the command line, without environment and stdin.
func (c Command) String() string {
	return strings.Join(append([]string{c.Name}, c.Args...), " ")
}

// CommandRunner runs commands on the target.
type CommandRunner interface {
	Run(ctx context.Context, c Command) (output []byte, err error)
}

// safePath is the PATH of every child: sudo's secure_path, never the
// caller's (which could point at a noexec or user-writable directory).
const safePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ExecRunner runs commands on this machine, inside chroot(8) when Root is
// not "/".
type ExecRunner struct {
	Root string
}

// Run runs c and returns its combined output; a failure's error carries the
// end of that output.
func (r ExecRunner) Run(ctx context.Context, c Command) ([]byte, error) {
	name, args := c.Name, c.Args
	if r.Root != "" && r.Root != "/" {
		name, args = "chroot", append([]string{r.Root, c.Name}, c.Args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(childEnv(), c.Env...)
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w%s", c, err, tail(out))
	}
	return out, nil
}

// childEnv is a minimal, predictable environment: a C locale so that parsed
// output is stable, the safe PATH, no inherited TMPDIR; proxy settings pass
// through for apt and pip.
func childEnv() []string {
	env := []string{safePath, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME=/root", "DEBIAN_FRONTEND=noninteractive"}
	for _, k := range []string{"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// tail is the last lines of a command's output, for error messages.
func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "\n  | " + strings.Join(lines, "\n  | ")
}

// RecordingRunner records commands instead of running them. Respond, when
// set, answers a command (for read-only queries such as dpkg-query) and may
// fail it.
type RecordingRunner struct {
	mu       sync.Mutex
	Commands []Command
	Respond  func(c Command) ([]byte, error)
}

// Run records c and answers it through Respond.
func (r *RecordingRunner) Run(_ context.Context, c Command) ([]byte, error) {
	r.mu.Lock()
	r.Commands = append(r.Commands, c)
	respond := r.Respond
	r.mu.Unlock()
	if respond == nil {
		return nil, nil
	}
	return respond(c)
}

// Lines is every recorded command line, in order.
func (r *RecordingRunner) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.Commands))
	for i, c := range r.Commands {
		out[i] = c.String()
	}
	return out
}
