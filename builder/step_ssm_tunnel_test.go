package builder

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// tunnelSSM is a stand-in for the Session Manager calls of the SSM client.
type tunnelSSM struct {
	SSMAPI
	mu         sync.Mutex
	startErrs  []error // returned by the first StartSession calls
	starts     int
	lastStart  *ssm.StartSessionInput
	terminated []string
}

func (f *tunnelSSM) StartSession(_ context.Context, in *ssm.StartSessionInput, _ ...func(*ssm.Options)) (*ssm.StartSessionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	f.lastStart = in
	if len(f.startErrs) > 0 {
		err := f.startErrs[0]
		f.startErrs = f.startErrs[1:]
		return nil, err
	}
	return &ssm.StartSessionOutput{SessionId: aws.String("stand-in-session-1"), TokenValue: aws.String("stand-in-token"),
		StreamUrl: aws.String("ws://127.0.0.1:9/v1/data-channel/stand-in-session-1")}, nil
}

func (f *tunnelSSM) TerminateSession(_ context.Context, in *ssm.TerminateSessionInput, _ ...func(*ssm.Options)) (*ssm.TerminateSessionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terminated = append(f.terminated, aws.ToString(in.SessionId))
	return &ssm.TerminateSessionOutput{SessionId: in.SessionId}, nil
}

type tunnelDriver struct{ ssm *tunnelSSM }

func (d *tunnelDriver) EC2(string) EC2API { panic("the SSM tunnel step must not call EC2") }
func (d *tunnelDriver) SSM(string) SSMAPI { return d.ssm }
func (d *tunnelDriver) calls() (int, []string) {
	d.ssm.mu.Lock()
	defer d.ssm.mu.Unlock()
	return d.ssm.starts, append([]string(nil), d.ssm.terminated...)
}

// standInPlugin writes a stand-in for session-manager-plugin: it records
// its arguments, prints what the real plugin prints once it listens (or
// fails when fail is set), and waits to be stopped.
func standInPlugin(t *testing.T, fail bool) (path, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "session-manager-plugin")
	argsFile = filepath.Join(dir, "args")
	// It records its argv, then the session answer from the environment
	// variable argv[1] names (as the real plugin reads it), and its
	// /proc/self/cmdline as anyone on the host can.
	script := "#!/bin/sh\n# stand-in for AWS's session-manager-plugin\nprintf '%s\\n' \"$@\" > " + argsFile + "\n" +
		"eval \"printf '%s' \\\"\\$$1\\\"\" > " + argsFile + ".env\n" +
		"tr '\\0' ' ' < /proc/$$/cmdline > " + argsFile + ".cmdline\n"
	if fail {
		script += "echo 'stand-in: cannot open the data channel'\nexit 1\n"
	} else {
		script += "echo 'Starting session with SessionId: stand-in-session-1'\necho 'Port 2222 opened for sessionId stand-in-session-1.'\nexec sleep 300\n"
	}
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, argsFile
}

func tunnelState(d Driver) *multistep.BasicStateBag {
	s := newState(d)
	s.Put(stateInstance, ec2types.Instance{InstanceId: aws.String("i-0123456789abcdef0")})
	return s
}

func TestStepSSMTunnelPluginMissing(t *testing.T) {
	t.Run("not on PATH", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		d := &tunnelDriver{ssm: &tunnelSSM{}}
		s := tunnelState(d)
		step := &stepSSMTunnel{Region: "eu-west-2", RemotePort: 22}
		if got := step.Run(t.Context(), s); got != multistep.ActionHalt {
			t.Fatalf("Run = %v, want halt", got)
		}
		msg := stateErr(t, s)
		if !strings.Contains(msg, "session-manager-plugin") || !strings.Contains(msg, "Install the Session Manager plugin for the AWS CLI") {
			t.Errorf("error %q should say what to install", msg)
		}
		if starts, _ := d.calls(); starts != 0 {
			t.Errorf("StartSession called %d times without a plugin to use the session", starts)
		}
		step.Cleanup(s)
		if _, terminated := d.calls(); len(terminated) != 0 {
			t.Errorf("terminated %v, but no session was started", terminated)
		}
	})
	t.Run("bad session_manager_plugin_path", func(t *testing.T) {
		_, err := findSessionManagerPlugin(filepath.Join(t.TempDir(), "nope"))
		if err == nil || !strings.Contains(err.Error(), "session_manager_plugin_path") {
			t.Fatalf("err = %v, want it to name session_manager_plugin_path", err)
		}
	})
}

func TestStepSSMTunnelRetriesTargetNotConnected(t *testing.T) {
	plugin, argsFile := standInPlugin(t, false)
	d := &tunnelDriver{ssm: &tunnelSSM{startErrs: []error{apiErr("TargetNotConnected"), apiErr("TargetNotConnected")}}}
	s := tunnelState(d)
	step := &stepSSMTunnel{Region: "eu-west-2", PluginPath: plugin, LocalPort: 2222, RemotePort: 22, Endpoint: "http://127.0.0.1:9",
		RetryDelay: time.Millisecond, Timeout: time.Minute, ExitGrace: time.Millisecond}
	if got := step.Run(t.Context(), s); got != multistep.ActionContinue {
		t.Fatalf("Run halted: %v", s.Get(stateError))
	}
	starts, _ := d.calls()
	if starts != 3 {
		t.Errorf("StartSession called %d times, want 3 (two TargetNotConnected, then success)", starts)
	}
	in := d.ssm.lastStart
	if aws.ToString(in.DocumentName) != "AWS-StartPortForwardingSession" || aws.ToString(in.Target) != "i-0123456789abcdef0" ||
		in.Parameters["portNumber"][0] != "22" || in.Parameters["localPortNumber"][0] != "2222" {
		t.Errorf("StartSession input = %+v", in)
	}
	if port, err := sshPort(SSHInterfaceSessionManager, 22)(s); err != nil || port != 2222 {
		t.Errorf("communicator port = %d, %v; want the tunnel's 2222", port, err)
	}
	if host, err := sshHost(SSHInterfaceSessionManager, "")(s); err != nil || host != "127.0.0.1" {
		t.Errorf("communicator host = %q, %v; want 127.0.0.1", host, err)
	}
	raw, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(args) != 6 || args[0] != "AWS_SSM_START_SESSION_RESPONSE" || args[1] != "eu-west-2" || args[2] != "StartSession" || args[5] != "http://127.0.0.1:9" {
		t.Fatalf("plugin args = %q, want (AWS_SSM_START_SESSION_RESPONSE, region, StartSession, profile, input JSON, endpoint)", args)
	}
	// The token is nowhere in argv, as /proc/PID/cmdline shows it.
	if cmdline, err := os.ReadFile(argsFile + ".cmdline"); err != nil || strings.Contains(string(raw)+string(cmdline), "stand-in-token") {
		t.Errorf("session token in the plugin's argv: %s %s (%v)", raw, cmdline, err)
	}
	envJSON, _ := os.ReadFile(argsFile + ".env")
	var sess, input map[string]interface{}
	if json.Unmarshal(envJSON, &sess) != nil || sess["SessionId"] != "stand-in-session-1" || sess["TokenValue"] != "stand-in-token" {
		t.Errorf("session JSON from AWS_SSM_START_SESSION_RESPONSE = %s", envJSON)
	}
	if json.Unmarshal([]byte(args[4]), &input) != nil || input["Target"] != "i-0123456789abcdef0" {
		t.Errorf("input JSON = %s", args[4])
	}

	step.Cleanup(s)
	if _, terminated := d.calls(); len(terminated) != 1 || terminated[0] != "stand-in-session-1" {
		t.Errorf("TerminateSession calls = %v, want the session", terminated)
	}
	if id := stateString(s, stateSSMSessionID); id != "" {
		t.Errorf("session id %q still saved after cleanup", id)
	}
	select {
	case <-step.done:
	default:
		t.Error("the plugin still runs after Cleanup")
	}
}

func TestStepSSMTunnelErrors(t *testing.T) {
	t.Run("access denied is not retried", func(t *testing.T) {
		plugin, _ := standInPlugin(t, false)
		d := &tunnelDriver{ssm: &tunnelSSM{startErrs: []error{apiErr("AccessDeniedException")}}}
		s := tunnelState(d)
		step := &stepSSMTunnel{Region: "eu-west-2", PluginPath: plugin, RemotePort: 22, RetryDelay: time.Millisecond}
		if got := step.Run(t.Context(), s); got != multistep.ActionHalt || !strings.Contains(stateErr(t, s), "ssm:StartSession") {
			t.Fatalf("Run = %v, error %v; want a halt naming ssm:StartSession", got, s.Get(stateError))
		}
		if starts, _ := d.calls(); starts != 1 {
			t.Errorf("StartSession called %d times, want 1", starts)
		}
	})
	t.Run("agent never connects", func(t *testing.T) {
		plugin, _ := standInPlugin(t, false)
		errs := make([]error, 1000)
		for i := range errs {
			errs[i] = apiErr("TargetNotConnected")
		}
		d := &tunnelDriver{ssm: &tunnelSSM{startErrs: errs}}
		s := tunnelState(d)
		step := &stepSSMTunnel{Region: "eu-west-2", PluginPath: plugin, RemotePort: 22, RetryDelay: time.Millisecond, Timeout: 20 * time.Millisecond}
		if got := step.Run(t.Context(), s); got != multistep.ActionHalt || !strings.Contains(stateErr(t, s), "AmazonSSMManagedInstanceCore") {
			t.Fatalf("Run = %v, error %v; want a halt explaining what the agent needs", got, s.Get(stateError))
		}
	})
	t.Run("plugin exits: session still terminated", func(t *testing.T) {
		plugin, _ := standInPlugin(t, true)
		d := &tunnelDriver{ssm: &tunnelSSM{}}
		s := tunnelState(d)
		step := &stepSSMTunnel{Region: "eu-west-2", PluginPath: plugin, RemotePort: 22, Timeout: time.Minute, ExitGrace: time.Millisecond}
		if got := step.Run(t.Context(), s); got != multistep.ActionHalt || !strings.Contains(stateErr(t, s), "stand-in: cannot open the data channel") {
			t.Fatalf("Run = %v, error %v; want a halt carrying the plugin's output", got, s.Get(stateError))
		}
		step.Cleanup(s)
		if _, terminated := d.calls(); len(terminated) != 1 {
			t.Errorf("TerminateSession calls = %v, want the started session terminated", terminated)
		}
	})
}
