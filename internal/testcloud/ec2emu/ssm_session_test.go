package ec2emu

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"golang.org/x/net/websocket"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
)

// runInstance starts an instance (with an instance profile unless profile
// is "") and waits until it runs.
func (e *env) runInstance(profile string) string {
	e.t.Helper()
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis-" + strconv.FormatInt(time.Now().UnixNano(), 10))
	in := &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		InstanceType: types.InstanceTypeT3Medium}
	if profile != "" {
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(profile)}
	}
	run := must(c.RunInstances(e.ctx, in))(e.t)
	iid := aws.ToString(run.Instances[0].InstanceId)
	if err := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax); err != nil {
		e.t.Fatalf("wait running: %v", err)
	}
	return iid
}

func portForwardInput(target string, localPort int) *ssm.StartSessionInput {
	return &ssm.StartSessionInput{Target: aws.String(target), DocumentName: aws.String("AWS-StartPortForwardingSession"),
		Parameters: map[string][]string{"portNumber": {"22"}, "localPortNumber": {strconv.Itoa(localPort)}}}
}

func TestStartSessionAndTerminateSession(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.ssm("us-east-1")
	noProfile := e.runInstance("")
	withProfile := e.runInstance("esbake-build")

	_, err := s.StartSession(e.ctx, portForwardInput("i-0123456789abcdef0", 0))
	wantCode(t, err, "TargetNotConnected")
	_, err = s.StartSession(e.ctx, portForwardInput(noProfile, 0))
	wantCode(t, err, "TargetNotConnected") // no role: the agent never registers
	_, err = s.StartSession(e.ctx, &ssm.StartSessionInput{Target: aws.String(withProfile)})
	wantCode(t, err, "InvalidDocument") // shell sessions are not served

	out := must(s.StartSession(e.ctx, portForwardInput(withProfile, 0)))(t)
	id := aws.ToString(out.SessionId)
	if id == "" || aws.ToString(out.TokenValue) == "" || !strings.HasPrefix(aws.ToString(out.StreamUrl), "ws://") ||
		!strings.Contains(aws.ToString(out.StreamUrl), id) {
		t.Fatalf("StartSession = %+v, want an id, a token and a ws:// StreamUrl naming the session", out)
	}
	rep := e.srv.Leaks()
	if len(rep.Sessions) != 1 || rep.Sessions[0].ID != id || rep.Empty() {
		t.Fatalf("an open session is a leak: %s", rep)
	}
	must(s.TerminateSession(e.ctx, &ssm.TerminateSessionInput{SessionId: aws.String(id)}))(t)
	must(s.TerminateSession(e.ctx, &ssm.TerminateSessionInput{SessionId: aws.String(id)}))(t) // idempotent
	if rep := e.srv.Leaks(); len(rep.Sessions) != 0 {
		t.Fatalf("terminated session still reported: %s", rep)
	}
	if got := e.srv.Sessions(); len(got) != 1 || got[0].Status != SessionTerminated || got[0].Target != withProfile {
		t.Fatalf("Sessions = %+v", got)
	}

	// Terminating the instance makes its agent unreachable.
	must(e.ec2("us-east-1").TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{withProfile}}))(t)
	_, err = s.StartSession(e.ctx, portForwardInput(withProfile, 0))
	wantCode(t, err, "TargetNotConnected")
}

func TestDataChannelRejectsBadToken(t *testing.T) {
	e := newEnv(t, Options{})
	out := must(e.ssm("us-east-1").StartSession(e.ctx, portForwardInput(e.runInstance("esbake-build"), 0)))(t)
	ws, err := websocket.Dial(aws.ToString(out.StreamUrl), "", "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	open, _ := json.Marshal(map[string]string{"MessageSchemaVersion": "1.0", "RequestId": "r", "TokenValue": "not-the-token", "ClientId": "c"})
	if err := websocket.Message.Send(ws, string(open)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	var msg []byte
	if err := websocket.Message.Receive(ws, &msg); err == nil {
		t.Fatalf("a bad token got an answer (%d bytes), want the channel closed", len(msg))
	}
	got := e.srv.Sessions()
	if len(got) != 1 || got[0].Rejected != 1 || got[0].DataChannels != 0 {
		t.Fatalf("Sessions = %+v, want one rejected data channel and none open", got)
	}
}

func TestClientMessageRoundTrip(t *testing.T) {
	m := &clientMessage{MessageType: msgOutputStream, SchemaVersion: 1, SequenceNumber: 7, Flags: 0,
		MessageID: newMessageID(), PayloadType: payloadOutput, Payload: []byte("stand-in payload")}
	raw := m.marshal()
	got, err := unmarshalClientMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.MessageType != m.MessageType || got.SequenceNumber != 7 || got.MessageID != m.MessageID ||
		got.PayloadType != payloadOutput || string(got.Payload) != "stand-in payload" {
		t.Fatalf("round trip = %+v, want %+v", got, m)
	}
	raw[len(raw)-1] ^= 0xff
	if _, err := unmarshalClientMessage(raw); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("a tampered payload decoded: %v", err)
	}
}

// echoServer answers every connection with what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDataChannelTunnelsThroughRealPlugin runs AWS's session-manager-plugin
// against the emulator: handshake, smux, acknowledgements and the relay to
// the instance's port (here an echo server) all have to be right for bytes
// to come back.
func TestDataChannelTunnelsThroughRealPlugin(t *testing.T) {
	plugin, err := testcloud.EnsureSessionManagerPlugin(t.Context())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("no session-manager-plugin (run scripts/install-deps.sh): %v", err)
	}
	echo := echoServer(t)
	var dest atomic.Value
	dest.Store(echo)
	e := newEnv(t, Options{PortAddress: func(id string, port int) (string, error) {
		if port != 22 {
			return "", fmt.Errorf("port %d not served", port)
		}
		return dest.Load().(string), nil
	}})
	iid := e.runInstance("esbake-build")
	local := freePort(t)
	in := portForwardInput(iid, local)
	out := must(e.ssm("us-east-1").StartSession(e.ctx, in))(t)

	outJSON, _ := json.Marshal(map[string]string{"SessionId": aws.ToString(out.SessionId), "TokenValue": aws.ToString(out.TokenValue), "StreamUrl": aws.ToString(out.StreamUrl)})
	inJSON, _ := json.Marshal(map[string]any{"Target": iid, "DocumentName": "AWS-StartPortForwardingSession", "Parameters": in.Parameters})
	cmd := exec.Command(plugin, string(outJSON), "us-east-1", "StartSession", "", string(inJSON), e.url)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDEMULATOR", "AWS_SECRET_ACCESS_KEY=secret", "AWS_SESSION_TOKEN=",
		"AWS_PROFILE=", "AWS_EC2_METADATA_DISABLED=true", "HOME="+home,
		"AWS_CONFIG_FILE="+filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "none"))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var log bytes.Buffer
	var logMu sync.Mutex
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if strings.Contains(sc.Text(), "Waiting for connections") {
				once.Do(func() { close(ready) })
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	pluginLog := func() string { logMu.Lock(); defer logMu.Unlock(); return log.String() }
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("plugin exited before listening: %v\n%s", err, pluginLog())
	case <-time.After(time.Minute):
		t.Fatalf("plugin not listening after a minute:\n%s\nsessions: %+v", pluginLog(), e.srv.Sessions())
	}

	// Two connections at once: smux keeps them apart.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(local))
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			want := bytes.Repeat([]byte(fmt.Sprintf("stand-in payload %d;", i)), 4000) // several data channel messages
			go func() { _, _ = c.Write(want) }()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("connection %d: echo differs", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("tunnel: %v\nplugin:\n%s\nsessions: %+v", err, pluginLog(), e.srv.Sessions())
	}

	// A refused destination closes that tunnelled connection only.
	dest.Store(net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))))
	if c, err := net.DialTimeout("tcp", addr, 10*time.Second); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("read %d bytes from a refused destination, want the connection closed", n)
		}
		c.Close()
	}

	must(e.ssm("us-east-1").TerminateSession(e.ctx, &ssm.TerminateSessionInput{SessionId: out.SessionId}))(t)
	select {
	case <-exited: // channel_closed makes the plugin exit
	case <-time.After(time.Minute):
		t.Fatalf("plugin still running a minute after TerminateSession:\n%s", pluginLog())
	}
	got := e.srv.Sessions()
	if len(got) != 1 || got[0].Streams != 2 || got[0].DataChannels != 1 || got[0].BytesToInstance == 0 ||
		got[0].BytesToInstance != got[0].BytesFromInstance || !strings.Contains(got[0].LastError, "connect to destination") {
		t.Errorf("Sessions = %+v, want 2 relayed streams echoing as many bytes as sent, and the refused connect recorded", got)
	}
	must(e.ec2("us-east-1").TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{iid}}))(t)
	if rep := e.srv.Leaks(); !rep.Empty() {
		t.Errorf("leaks: %s", rep)
	}
}
