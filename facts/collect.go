package facts

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BootStatePath is where `esnode boot` records what it learned and wrote.
const BootStatePath = "/etc/esnode/boot.json"

// DefaultServices are the systemd services whose state the facts report.
var DefaultServices = []string{"elasticsearch", "elastichq", "amazon-cloudwatch-agent", "esnode-boot"}

// serviceUsers are reported from /etc/passwd besides the services' users.
var serviceUsers = []string{"root", "elasticsearch", "elastichq", "elasticsearch-hq", "cwagent"}

// Options tune Collect.
type Options struct {
	// Root is read as "/": every path, /proc included. Default "/".
	Root string
	// Live allows running commands (iptables-save, ip6tables-save, nft,
	// systemctl, elasticsearch-keystore). Only with Root "/": the commands
	// see the running system, not Root.
	Live bool
	// JDKMajor selects jvm.options lines by their version prefix. 0 reads
	// the bundled JDK's release file, else assumes 17 for Elasticsearch 8
	// and later, 11 for 7.x, 8 for 6.x.
	JDKMajor int
	// MaxFileBytes bounds each file read. Default DefaultMaxFileBytes.
	MaxFileBytes int64
	// CommandTimeout bounds each command. Default 20s (60s for the keystore
	// tool, which starts a JVM).
	CommandTimeout time.Duration
	// Services overrides DefaultServices.
	Services []string
	// Now stamps collected_at. Default time.Now.
	Now func() time.Time
	// Run runs a command and returns its standard output; tests replace it.
	// Default exec.CommandContext.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Collect gathers the facts of the node at opts.Root. A collector that fails
// adds an entry to Facts.Errors and the rest goes on; Collect itself fails
// only on invalid options. A cancelled ctx stops the remaining collectors,
// which is recorded as an error entry.
func Collect(ctx context.Context, opts Options) (*Facts, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("root %q: %w", opts.Root, err)
	}
	opts.Root = root
	if opts.Live && opts.Root != "/" {
		return nil, fmt.Errorf("live collection runs commands on this machine, so it needs root \"/\", not %q: drop --live or --root", opts.Root)
	}
	if fi, err := statDir(opts.Root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("root %q is not a readable directory: point --root at a mounted image or captured node", opts.Root)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Run == nil {
		opts.Run = runCommand
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = 20 * time.Second
	}
	if opts.Services == nil {
		opts.Services = DefaultServices
	}
	c := &collector{
		ctx:  ctx,
		opts: opts,
		fs:   rootFS{root: opts.Root, max: opts.MaxFileBytes},
		f: &Facts{
			SchemaVersion: SchemaVersion,
			CollectedAt:   opts.Now().UTC(),
			Root:          opts.Root,
			Live:          opts.Live,
			Listeners:     []Listener{},
			Sysctl:        map[string]any{},
			SysctlConf:    map[string]SysctlSetting{},
			Services:      []Service{},
			Paths:         []PathInfo{},
			Users:         []User{},
			Errors:        []FactError{},
		},
		uids: map[int]string{},
		gids: map[int]string{},
	}
	steps := []struct {
		name string
		fn   func()
	}{
		{"users", c.users},
		{"host", c.host},
		{"services", c.services}, // before elasticsearch: its unit's Environment= may set ES_JAVA_OPTS
		{"elasticsearch", c.elasticsearch},
		{"listeners", c.listeners},
		{"firewall", c.firewall},
		{"sysctl", c.sysctl},
		{"paths", c.paths},
		{"manifest", c.manifest},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			c.fail(s.name, fmt.Errorf("not collected: %w", err))
			continue
		}
		c.step(s.name, s.fn)
	}
	return c.f, nil
}

// step runs one collector; a panic (a bug) becomes a fact error, so one
// broken collector never costs the rest of the document.
func (c *collector) step(name string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			c.failf(name, "collector crashed (a bug in esnode facts; please report it): %v", r)
		}
	}()
	fn()
}

type collector struct {
	ctx    context.Context
	opts   Options
	fs     rootFS
	f      *Facts
	uids   map[int]string
	gids   map[int]string
	passwd []User
	// procs maps pid -> basic info, filled by the /proc scan.
	procs        map[int]*procInfo
	procsDone    bool
	systemctlErr error
	// unitEnv is each service's Environment= after drop-ins.
	unitEnv map[string]map[string]string
}

type procInfo struct {
	pid     int
	comm    string
	uid     int
	exe     string
	cmdline []string
	sockets []uint64
}

func (c *collector) fail(fact string, err error) {
	c.f.Errors = append(c.f.Errors, FactError{Fact: fact, Error: err.Error()})
}

func (c *collector) failf(fact, format string, a ...any) {
	c.fail(fact, fmt.Errorf(format, a...))
}

func (c *collector) userName(uid int) string { return c.uids[uid] }

// run runs a live command with a timeout.
func (c *collector) run(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	return c.opts.Run(ctx, name, args...)
}

func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &stdout, max: DefaultMaxFileBytes}
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 64 << 10}
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			return stdout.Bytes(), fmt.Errorf("%s: %w: %s", name, err, truncate(msg, 300))
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", name, err)
	}
	return stdout.Bytes(), nil
}

type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}
