package localcloud

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// RunShellScript makes every guest a managed instance with an online SSM agent: Run Command's
// AWS-RunShellScript runs the script as root with /bin/sh inside the guest (all its
// namespaces, entered with nsenter), as the agent does, in its own process group so that the
// document's executionTimeout or CancelCommand kills the whole script.
func (bi *backendInstance) RunShellScript(ctx context.Context, script string) ec2emu.AgentResult {
	if st := bi.inst.State(); st != testcloud.StateRunning {
		return ec2emu.AgentResult{ExitCode: -1, Err: fmt.Errorf("guest of %s is %s", bi.id, st)}
	}
	leader, err := bi.inst.Leader(ctx)
	if err != nil {
		return ec2emu.AgentResult{ExitCode: -1, Err: fmt.Errorf("guest of %s: %w", bi.id, err)}
	}
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(leader), "-a", "--", "/bin/sh", "-c", script)
	// The agent's service environment: root, a plain PATH.
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return ec2emu.AgentResult{ExitCode: -1, Err: fmt.Errorf("run script in %s: %w", bi.id, err)}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
		}
		return ec2emu.AgentResult{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: -1, Err: ctx.Err()}
	}
	res := ec2emu.AgentResult{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		res.ExitCode, res.Err = -1, fmt.Errorf("run script in %s: %w", bi.id, err)
	}
	return res
}

var _ ec2emu.Agent = (*backendInstance)(nil)
