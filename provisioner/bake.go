package provisioner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/esbake/packer-plugin-elasticsearch/provisioner/esnodebin"
)

type bake struct {
	cfg  *Config
	ui   packersdk.Ui
	comm packersdk.Communicator
}

func (b *bake) run(ctx context.Context) error {
	arch, err := b.guestArch(ctx)
	if err != nil {
		return err
	}
	bin, err := b.esnode(arch)
	if err != nil {
		return err
	}
	specJSON, err := json.MarshalIndent(b.cfg.Node, "", "  ")
	if err != nil {
		return fmt.Errorf("encode node spec: %w", err)
	}
	dir := b.cfg.RemoteDir
	if err := b.exec(ctx, "mkdir -p -m 0700 "+shellQuote(dir), false); err != nil {
		return fmt.Errorf("create remote_dir %s on the guest: %w", dir, err)
	}
	esnodePath := path.Join(dir, "esnode")
	specPath := path.Join(dir, "node-spec.json")
	b.ui.Say(fmt.Sprintf("Uploading esnode (linux/%s, %d bytes) and the node spec to %s", arch, len(bin), dir))
	if err := b.comm.Upload(esnodePath, bytes.NewReader(bin), nil); err != nil {
		return fmt.Errorf("upload esnode to %s: %w", esnodePath, err)
	}
	if err := b.comm.Upload(specPath, bytes.NewReader(specJSON), nil); err != nil {
		return fmt.Errorf("upload node spec to %s: %w", specPath, err)
	}
	if err := b.exec(ctx, "chmod 0700 "+shellQuote(esnodePath), false); err != nil {
		return fmt.Errorf("make esnode executable: %w", err)
	}
	args := []string{abs(esnodePath), "install", "--spec", abs(specPath)}
	if *b.cfg.WaitForCloudInit {
		args = append(args, "--wait-cloud-init", b.cfg.CloudInitTimeout)
	}
	// Generalizing must be the last thing before capture: a reboot after
	// it writes a new machine-id and re-runs cloud-init, and every clone
	// would share them. With reboot_check, install first, reboot, then
	// generalize (a second, idempotent install that only generalizes).
	generalizeLast := b.cfg.Generalize && b.cfg.RebootCheck
	if b.cfg.Generalize && !generalizeLast {
		args = append(args, "--generalize")
	}
	b.ui.Say("Installing the Elasticsearch node with esnode install")
	if err := b.exec(ctx, strings.Join(args, " "), true); err != nil {
		return fmt.Errorf("esnode install: %w", err)
	}
	if *b.cfg.PolicyGate.Enabled {
		if err := b.policyGate(ctx); err != nil {
			return err
		}
	}
	if b.cfg.RebootCheck {
		if err := b.rebootCheck(ctx); err != nil {
			return err
		}
	}
	if generalizeLast {
		b.ui.Say("Generalizing the image (after the reboot check, the last step before capture)")
		if err := b.exec(ctx, strings.Join(append(args, "--generalize"), " "), true); err != nil {
			return fmt.Errorf("esnode install --generalize: %w", err)
		}
	}
	if err := b.exec(ctx, "rm -rf "+shellQuote(dir), false); err != nil {
		b.ui.Error(fmt.Sprintf("Could not remove %s from the guest: %v", dir, err))
	}
	return nil
}

// rebootCheck reboots the guest, waits for a new boot id, and checks that
// esnode-boot ran and Elasticsearch's units are enabled: the original
// script's last step, as a check instead of a hope.
func (b *bake) rebootCheck(ctx context.Context) error {
	timeout, _ := time.ParseDuration(b.cfg.RebootTimeout)
	before, err := b.output(ctx, "cat /proc/sys/kernel/random/boot_id")
	if err != nil {
		return fmt.Errorf("reboot check: read boot id: %w", err)
	}
	b.ui.Say("Rebooting the guest to check that the node comes back")
	reboot, err := b.render("systemctl reboot")
	if err != nil {
		return err
	}
	// The connection drops while this runs, so an error here is expected;
	// it is reported only if the guest never reboots (then it is the cause,
	// e.g. sudo asking for a password).
	startErr := b.comm.Start(ctx, &packersdk.RemoteCmd{Command: reboot})
	deadline := time.Now().Add(timeout)
	for {
		if time.Now().After(deadline) {
			if startErr != nil {
				return fmt.Errorf("reboot check: the guest did not reboot within reboot_timeout (%s); running %q failed: %w", b.cfg.RebootTimeout, reboot, startErr)
			}
			return fmt.Errorf("reboot check: the guest did not come back within reboot_timeout (%s)", b.cfg.RebootTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
		now, err := b.output(ctx, "cat /proc/sys/kernel/random/boot_id")
		if err == nil && now != "" && now != before {
			break
		}
	}
	check := "systemctl is-enabled elasticsearch.service esnode-boot.service && " +
		"test \"$(systemctl show -p Result --value esnode-boot.service)\" = success && " +
		"systemctl is-active esnode-boot.service"
	for {
		// esnode-boot may still be running right after SSH comes up.
		err := b.exec(ctx, check, false)
		if err == nil {
			b.ui.Say("Reboot check passed: esnode-boot ran and the units are enabled")
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reboot check: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// output runs a command and returns its trimmed standard output.
func (b *bake) output(ctx context.Context, command string) (string, error) {
	var out bytes.Buffer
	cmd := &packersdk.RemoteCmd{Command: command, Stdout: &out, Stderr: io.Discard}
	if err := b.comm.Start(ctx, cmd); err != nil {
		return "", err
	}
	if st := cmd.Wait(); st != 0 {
		return "", fmt.Errorf("%q exited %d", command, st)
	}
	return strings.TrimSpace(out.String()), nil
}

// abs keeps home-relative paths usable under sudo, whose working directory is
// the user's home on every communicator we support.
func abs(p string) string {
	if path.IsAbs(p) {
		return shellQuote(p)
	}
	return "\"$HOME\"/" + shellQuote(p)
}

func (b *bake) esnode(arch string) ([]byte, error) {
	if b.cfg.EsnodePath != "" {
		bin, err := os.ReadFile(b.cfg.EsnodePath)
		if err != nil {
			return nil, fmt.Errorf("read esnode_path: %w", err)
		}
		return bin, nil
	}
	return esnodebin.Binary(arch)
}

func (b *bake) guestArch(ctx context.Context) (string, error) {
	m, err := b.output(ctx, "uname -m")
	if err != nil {
		return "", fmt.Errorf("ask the guest for its architecture: %w", err)
	}
	switch m {
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	default:
		return "", fmt.Errorf("guest architecture %q has no Elasticsearch packages; use an amd64 or arm64 source image", m)
	}
}

// exec runs a command on the guest, as root through execute_command when
// asked, streams its output to the UI, and turns a non-zero exit status or a
// dropped connection into an error (RunWithUi reports neither).
func (b *bake) exec(ctx context.Context, command string, root bool) error {
	if root {
		rendered, err := b.render(command)
		if err != nil {
			return err
		}
		command = rendered
	}
	cmd := &packersdk.RemoteCmd{Command: command}
	start := time.Now()
	if err := cmd.RunWithUi(ctx, b.comm, b.ui); err != nil {
		return fmt.Errorf("run %q: %w", command, err)
	}
	switch st := cmd.ExitStatus(); st {
	case 0:
		return nil
	case packersdk.CmdDisconnect:
		return fmt.Errorf("the connection to the guest dropped while running %q (after %s); check the guest's console and retry", command, time.Since(start).Round(time.Second))
	default:
		return fmt.Errorf("%q exited with status %d; its output is above", command, st)
	}
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
