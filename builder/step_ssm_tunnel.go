package builder

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

const (
	stateSSMSessionID = "ssm_session_id" // string, saved as soon as StartSession answers
	stateSSMLocalPort = "ssm_local_port" // int, where the tunnel listens

	// portForwardingDocument is the SSM document that forwards a port.
	portForwardingDocument = "AWS-StartPortForwardingSession"
	// defaultSessionManagerPlugin is looked up on PATH.
	defaultSessionManagerPlugin = "session-manager-plugin"
	// sessionResponseEnv names the variable that carries the StartSession
	// answer (with its token) to the plugin; argv[1] holds only this name.
	sessionResponseEnv = "AWS_SSM_START_SESSION_RESPONSE"
	// pluginReadyLine is what the plugin prints once it listens ("Port N
	// opened for sessionId X."), with multiplexing agents and with legacy
	// agents (which get no "Waiting for connections" line) alike.
	pluginReadyLine = "opened for sessionId"
)

// sessionPluginEnver is implemented by drivers that can hand their
// credentials to the session-manager-plugin (AWSDriver does).
type sessionPluginEnver interface {
	SessionPluginEnv(ctx context.Context) ([]string, error)
}

// findSessionManagerPlugin resolves session_manager_plugin_path (or the
// plugin on PATH), so a missing plugin fails the build before anything is
// created.
func findSessionManagerPlugin(path string) (string, error) {
	name := path
	if name == "" {
		name = defaultSessionManagerPlugin
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if path != "" {
			return "", fmt.Errorf("session_manager_plugin_path %q is not an executable: %w; point it at the Session Manager plugin binary", path, err)
		}
		return "", fmt.Errorf("ssh_interface = \"session_manager\" needs AWS's session-manager-plugin, which is not on PATH (%w): install it as the AWS documentation page \"Install the Session Manager plugin for the AWS CLI\" describes, or set session_manager_plugin_path", err)
	}
	return p, nil
}

// stepSSMTunnel opens an SSM port forwarding session to the instance's SSH
// port and runs the session-manager-plugin, which listens on 127.0.0.1
// and tunnels each connection over the session's data channel, as
// packer-plugin-amazon's StepCreateSSMTunnel does. Cleanup terminates the
// session and stops the plugin.
type stepSSMTunnel struct {
	Region     string
	PluginPath string // session_manager_plugin_path; "" looks up session-manager-plugin
	LocalPort  int    // session_manager_port; 0 picks a free port
	RemotePort int    // the instance's SSH port
	// Endpoint is ssm_endpoint, passed to the plugin for the calls it
	// makes itself; "" lets it use the SDK's default for the region.
	Endpoint string
	Profile  string
	// RetryDelay is the wait between StartSession calls while the
	// instance's agent is not connected yet; Timeout bounds that wait and
	// the wait for the plugin to listen.
	RetryDelay time.Duration
	Timeout    time.Duration
	// ExitGrace is how long Cleanup lets the plugin exit on its own after
	// TerminateSession before killing it. 0 means 10s.
	ExitGrace time.Duration

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the plugin exited
}

func (s *stepSSMTunnel) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	plugin, err := findSessionManagerPlugin(s.PluginPath)
	if err != nil {
		return halt(state, err)
	}
	inst := state.Get(stateInstance).(ec2types.Instance)
	id := aws.ToString(inst.InstanceId)
	d := state.Get(stateDriver).(Driver)

	port := s.LocalPort
	if port == 0 {
		if port, err = freeLocalPort(); err != nil {
			return halt(state, fmt.Errorf("pick a free local port for the SSM tunnel: %w; or set session_manager_port", err))
		}
	}
	in := &ssm.StartSessionInput{
		Target:       aws.String(id),
		DocumentName: aws.String(portForwardingDocument),
		Parameters: map[string][]string{
			"portNumber":      {strconv.Itoa(s.RemotePort)},
			"localPortNumber": {strconv.Itoa(port)},
		},
	}
	say(state, fmt.Sprintf("Starting an SSM session to %s (port %d, local port %d)...", id, s.RemotePort, port))
	out, err := s.startSession(ctx, d.SSM(s.Region), in)
	if err != nil {
		return halt(state, err)
	}
	state.Put(stateSSMSessionID, aws.ToString(out.SessionId))

	env := os.Environ()
	profile := s.Profile
	if e, ok := d.(sessionPluginEnver); ok {
		extra, err := e.SessionPluginEnv(ctx)
		if err != nil {
			return halt(state, err)
		}
		env = append(env, extra...)
		profile = "" // the credentials replace the profile
	}
	outJSON, err := json.Marshal(map[string]string{
		"SessionId": aws.ToString(out.SessionId), "TokenValue": aws.ToString(out.TokenValue), "StreamUrl": aws.ToString(out.StreamUrl),
	})
	if err != nil {
		return halt(state, err)
	}
	inJSON, err := json.Marshal(map[string]interface{}{"Target": id, "DocumentName": portForwardingDocument, "Parameters": in.Parameters})
	if err != nil {
		return halt(state, err)
	}
	// The session token never goes in argv (world-readable in
	// /proc/PID/cmdline): like the AWS CLI, pass the name of an
	// environment variable holding the StartSession answer, which the
	// plugin reads and unsets (session.ValidateInputAndStartSession);
	// /proc/PID/environ is readable by the same user only.
	// Not CommandContext: the plugin must outlive Run; Cleanup stops it.
	cmd := exec.Command(plugin, sessionResponseEnv, s.Region, "StartSession", profile, string(inJSON), s.Endpoint)
	cmd.Env = append(env, sessionResponseEnv+"="+string(outJSON))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return halt(state, err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return halt(state, fmt.Errorf("run %s: %w", plugin, err))
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	ready := make(chan struct{})
	var output strings.Builder
	var outMu sync.Mutex
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			log.Printf("[DEBUG] session-manager-plugin: %s", line)
			outMu.Lock()
			output.WriteString(line + "\n")
			outMu.Unlock()
			if strings.Contains(line, pluginReadyLine) {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		err := cmd.Wait()
		log.Printf("[DEBUG] session-manager-plugin exited: %v", err)
	}()
	pluginOutput := func() string {
		outMu.Lock()
		defer outMu.Unlock()
		return strings.TrimSpace(output.String())
	}

	timer := time.NewTimer(s.timeout())
	defer timer.Stop()
	select {
	case <-ready:
	case <-done:
		return halt(state, fmt.Errorf("session-manager-plugin exited before the tunnel to %s was up; its output:\n%s", id, pluginOutput()))
	case <-timer.C:
		return halt(state, fmt.Errorf("session-manager-plugin did not open the tunnel to %s within %s; its output:\n%s", id, s.timeout(), pluginOutput()))
	case <-ctx.Done():
		return halt(state, fmt.Errorf("waiting for the SSM tunnel: %w", ctx.Err()))
	}
	state.Put(stateSSMLocalPort, port)
	say(state, fmt.Sprintf("SSM tunnel to %s:%d listens on 127.0.0.1:%d (session %s)", id, s.RemotePort, port, aws.ToString(out.SessionId)))
	return multistep.ActionContinue
}

func (s *stepSSMTunnel) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 5 * time.Minute
}

// startSession calls StartSession until the instance's agent has
// registered: right after launch the answer is TargetNotConnected.
func (s *stepSSMTunnel) startSession(ctx context.Context, api SSMAPI, in *ssm.StartSessionInput) (*ssm.StartSessionOutput, error) {
	delay := s.RetryDelay
	if delay <= 0 {
		delay = 5 * time.Second
	}
	deadline := time.Now().Add(s.timeout())
	for {
		out, err := api.StartSession(ctx, in)
		if err == nil {
			return out, nil
		}
		if errorCode(err) != "TargetNotConnected" {
			return nil, fmt.Errorf("start SSM session to %s (ssm:StartSession on the instance and document %s): %w", aws.ToString(in.Target), portForwardingDocument, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("SSM agent on %s did not connect within %s: %w; check that the source AMI runs SSM Agent, that iam_instance_profile's role has AmazonSSMManagedInstanceCore, and that the subnet reaches the SSM endpoints", aws.ToString(in.Target), s.timeout(), err)
		}
		log.Printf("[DEBUG] %s not connected to SSM yet; retrying in %s", aws.ToString(in.Target), delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the SSM agent on %s: %w", aws.ToString(in.Target), ctx.Err())
		}
	}
}

func (s *stepSSMTunnel) Cleanup(state multistep.StateBag) {
	if id := stateString(state, stateSSMSessionID); id != "" {
		ctx, cancel := cleanupContext()
		defer cancel()
		say(state, "Terminating SSM session "+id+"...")
		d := state.Get(stateDriver).(Driver)
		if _, err := d.SSM(s.Region).TerminateSession(ctx, &ssm.TerminateSessionInput{SessionId: aws.String(id)}); err != nil {
			reportCleanupError(state, fmt.Errorf("terminate SSM session %s: %w; terminate it by hand (aws ssm terminate-session --session-id %s)", id, err, id))
		} else {
			forget(state, stateSSMSessionID)
		}
	}
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// The service closes the data channel on TerminateSession and the
	// plugin exits; kill it if it does not.
	grace := s.ExitGrace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		log.Printf("[WARN] kill session-manager-plugin (pid %d): %v", cmd.Process.Pid, err)
	}
	<-done
}

// freeLocalPort asks the kernel for a free loopback port.
func freeLocalPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// sshPort is the port the communicator connects to: the tunnel's local
// port with session_manager, else ssh_port.
func sshPort(iface string, port int) func(multistep.StateBag) (int, error) {
	return func(state multistep.StateBag) (int, error) {
		if iface != SSHInterfaceSessionManager {
			return port, nil
		}
		p, ok := state.GetOk(stateSSMLocalPort)
		if !ok {
			return 0, errors.New("the SSM tunnel is not up: no local port to connect to")
		}
		return p.(int), nil
	}
}
