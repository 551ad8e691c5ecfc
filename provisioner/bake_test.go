package provisioner

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// recordingComm is a guest that answers what the bake asks: its
// architecture, a boot id that changes once "systemctl reboot" ran, and
// success for everything else. It records every command in order.
type recordingComm struct {
	mu       sync.Mutex
	commands []string
	rebooted bool
}

func (c *recordingComm) Start(_ context.Context, cmd *packersdk.RemoteCmd) error {
	c.mu.Lock()
	c.commands = append(c.commands, cmd.Command)
	switch {
	case cmd.Command == "uname -m":
		io.WriteString(cmd.Stdout, "x86_64\n")
	case strings.Contains(cmd.Command, "boot_id"):
		id := "boot-1"
		if c.rebooted {
			id = "boot-2"
		}
		io.WriteString(cmd.Stdout, id+"\n")
	case strings.Contains(cmd.Command, "systemctl reboot"):
		c.rebooted = true
	}
	c.mu.Unlock()
	cmd.SetExited(0)
	return nil
}

func (c *recordingComm) Upload(string, io.Reader, *os.FileInfo) error { return nil }
func (c *recordingComm) UploadDir(string, string, []string) error     { return nil }
func (c *recordingComm) Download(string, io.Writer) error             { return nil }
func (c *recordingComm) DownloadDir(string, string, []string) error   { return nil }

func indexOf(cmds []string, pred func(string) bool) int {
	for i, c := range cmds {
		if pred(c) {
			return i
		}
	}
	return -1
}

// TestGeneralizeIsLastAfterRebootCheck: with generalize and reboot_check,
// the guest reboots first and is generalized after it, as the last step
// before capture; the first install does not generalize.
func TestGeneralizeIsLastAfterRebootCheck(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "esnode")
	os.WriteFile(bin, []byte("stand-in esnode"), 0o755)
	off := false
	cfg := &Config{EsnodePath: bin, Generalize: true, RebootCheck: true, RebootTimeout: "1m"}
	cfg.Elasticsearch.Version = "8.15.3"
	cfg.PolicyGate.Enabled = &off
	if err := cfg.prepare(); err != nil {
		t.Fatal(err)
	}
	comm := &recordingComm{}
	ui := &packersdk.BasicUi{Writer: io.Discard, ErrorWriter: io.Discard}
	if err := (&bake{cfg: cfg, ui: ui, comm: comm}).run(context.Background()); err != nil {
		t.Fatal(err)
	}
	cmds := comm.commands
	install := indexOf(cmds, func(c string) bool { return strings.Contains(c, " install --spec") })
	reboot := indexOf(cmds, func(c string) bool { return strings.Contains(c, "systemctl reboot") })
	generalize := indexOf(cmds, func(c string) bool { return strings.Contains(c, "--generalize") })
	switch {
	case install < 0 || reboot < 0 || generalize < 0:
		t.Fatalf("commands %q: want an install, a reboot and a generalize", cmds)
	case strings.Contains(cmds[install], "--generalize"):
		t.Errorf("the first install generalizes before the reboot: %q", cmds[install])
	case generalize < reboot:
		t.Errorf("generalized (command %d) before the reboot (command %d): %q", generalize, reboot, cmds)
	}
	// Nothing but the cleanup of remote_dir after generalizing.
	for _, c := range cmds[generalize+1:] {
		if !strings.HasPrefix(c, "rm -rf ") {
			t.Errorf("ran %q after generalizing", c)
		}
	}
}
