package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/esbake/packer-plugin-elasticsearch/audit/internal/sshtest"
	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

// factsDoc is a minimal valid facts document, as `esnode facts` prints it.
func factsDoc(t *testing.T, host string) []byte {
	t.Helper()
	f := &facts.Facts{SchemaVersion: facts.SchemaVersion, Host: facts.Host{Hostname: host}}
	b, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// node behaviours, by node name.
type fakeFleet struct {
	t        *testing.T
	mu       sync.Mutex
	commands map[string][]string
	uploaded map[string][]byte
	doc      []byte
}

func (f *fakeFleet) handle(s *sshtest.Session) int {
	f.mu.Lock()
	f.commands[s.Node] = append(f.commands[s.Node], s.Command)
	f.mu.Unlock()
	isRun := strings.Contains(s.Command, "command -v esnode")
	isUpload := strings.Contains(s.Command, `cat > "$d/esnode"`)
	switch s.Node {
	case "ok":
		if isRun {
			s.Stdout.Write(f.doc)
			return 0
		}
	case "legacy-arm":
		if isRun {
			io.WriteString(s.Stderr, "esaudit-no-esnode aarch64\n")
			return 127
		}
		if isUpload {
			b, _ := io.ReadAll(s.Stdin)
			f.mu.Lock()
			f.uploaded[s.Node] = b
			f.mu.Unlock()
			s.Stdout.Write(f.doc)
			return 0
		}
	case "noisy":
		if isRun {
			// Healthy stdout; stderr well past any buffer (warnings).
			for i := 0; i < 40; i++ {
				s.Stderr.Write(bytes.Repeat([]byte("warning: noisy\n"), 300))
			}
			io.WriteString(s.Stderr, "last warning\n")
			s.Stdout.Write(f.doc)
			return 0
		}
	case "huge":
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for {
			if _, err := s.Stdout.Write(chunk); err != nil {
				return 1
			}
		}
	case "slow":
		<-s.Closed
		return 1
	case "sudo":
		io.WriteString(s.Stderr, "sudo: a password is required\n")
		return 1
	}
	io.WriteString(s.Stderr, "unexpected command\n")
	return 2
}

type env struct {
	srv   *sshtest.Server
	fleet *fakeFleet
	addrs map[string]target.Target
	kh    string
}

func newEnv(t *testing.T, nodes ...string) *env {
	t.Helper()
	f := &fakeFleet{t: t, commands: map[string][]string{}, uploaded: map[string][]byte{}, doc: factsDoc(t, "n1")}
	srv := sshtest.New(f.handle)
	t.Cleanup(srv.Close)
	e := &env{srv: srv, fleet: f, addrs: map[string]target.Target{}, kh: filepath.Join(t.TempDir(), "known_hosts")}
	var lines []string
	for _, n := range nodes {
		addr, err := srv.Listen(n)
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		e.addrs[n] = target.Target{Name: n, Host: host, Port: p, User: "admin", Transport: target.SSH}
		lines = append(lines, knownhosts.Line([]string{knownhosts.Normalize(addr)}, srv.HostKey.PublicKey()))
	}
	if err := os.WriteFile(e.kh, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) transport(t *testing.T, mod func(*SSHConfig)) *SSH {
	t.Helper()
	cfg := SSHConfig{KnownHostsFile: e.kh, Signers: []ssh.Signer{e.srv.ClientKey}, Sudo: true, MaxOutput: 1 << 20}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewSSH(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fetch(t *testing.T, s *SSH, tg target.Target, timeout time.Duration) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.Fetch(ctx, tg)
}

func TestSSHFetchWithSudo(t *testing.T) {
	e := newEnv(t, "ok")
	s := e.transport(t, nil)
	out, err := fetch(t, s, e.addrs["ok"], 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := facts.Parse(out); err != nil {
		t.Fatalf("output is not the facts document: %v", err)
	}
	cmds := e.fleet.commands["ok"]
	if len(cmds) != 1 || !strings.Contains(cmds[0], `exec sudo -n "$p" facts`) {
		t.Errorf("commands = %q, want one sudo -n esnode facts", cmds)
	}
	// As root, no sudo.
	tg := e.addrs["ok"]
	tg.User = "root"
	if _, err := fetch(t, s, tg, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if c := e.fleet.commands["ok"][1]; strings.Contains(c, "sudo") {
		t.Errorf("root must not use sudo: %q", c)
	}
}

// TestSSHStderrBeyondLimitIsNotAFailure: a node whose stderr runs past
// 64 KiB with valid stdout is healthy; only the tail of stderr is kept.
func TestSSHStderrBeyondLimitIsNotAFailure(t *testing.T) {
	e := newEnv(t, "noisy")
	s := e.transport(t, nil)
	out, err := fetch(t, s, e.addrs["noisy"], 10*time.Second)
	if err != nil {
		t.Fatalf("noisy but healthy node failed: %v", err)
	}
	if _, err := facts.Parse(out); err != nil {
		t.Fatalf("output is not the facts document: %v", err)
	}
	tb := newTailBuffer(64 << 10)
	for i := 0; i < 40; i++ {
		tb.Write(bytes.Repeat([]byte("warning: noisy\n"), 300))
	}
	tb.Write([]byte("last warning\n"))
	if got := tb.String(); len(got) != 64<<10 || !strings.HasSuffix(got, "last warning\n") {
		t.Errorf("tail buffer kept %d bytes ending %q", len(got), lastBytes(got, 20))
	}
}

func TestSSHUploadsEsnodeToLegacyNode(t *testing.T) {
	e := newEnv(t, "legacy-arm")
	var askedArch string
	bin := []byte("\x7fELF stand-in esnode for arm64")
	s := e.transport(t, func(c *SSHConfig) {
		c.EsnodeBinary = func(arch string) ([]byte, error) { askedArch = arch; return bin, nil }
	})
	out, err := fetch(t, s, e.addrs["legacy-arm"], 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := facts.Parse(out); err != nil {
		t.Fatal(err)
	}
	if askedArch != "arm64" {
		t.Errorf("uploaded arch = %q, want arm64 (uname aarch64)", askedArch)
	}
	if !bytes.Equal(e.fleet.uploaded["legacy-arm"], bin) {
		t.Errorf("uploaded %q, want the esnode binary", e.fleet.uploaded["legacy-arm"])
	}
	up := e.fleet.commands["legacy-arm"][1]
	for _, want := range []string{`mktemp -d "${HOME:-/root}/.esaudit.`, `trap 'rm -rf "$d"' EXIT`, `sudo -n "$d/esnode" facts`, "umask 077"} {
		if !strings.Contains(up, want) {
			t.Errorf("upload script lacks %q: %s", want, up)
		}
	}
	if strings.Contains(up, "/tmp") {
		t.Errorf("upload must not use /tmp (noexec on CIS): %s", up)
	}
	// Without binaries the node is an esnode-missing error.
	s2 := e.transport(t, nil)
	_, err = fetch(t, s2, e.addrs["legacy-arm"], 10*time.Second)
	if KindOf(err) != KindNoEsnode {
		t.Errorf("kind = %s (%v), want %s", KindOf(err), err, KindNoEsnode)
	}
}

func TestSSHHostKeys(t *testing.T) {
	e := newEnv(t, "ok")
	tg := e.addrs["ok"]

	// Changed key: known_hosts holds another key for the address.
	other := sshtest.NewSigner()
	changed := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(changed, []byte(knownhosts.Line([]string{knownhosts.Normalize(tg.SSHAddress())}, other.PublicKey())+"\n"), 0o600)
	s := e.transport(t, func(c *SSHConfig) { c.KnownHostsFile = changed; c.AcceptNewHostKeys = true })
	_, err := fetch(t, s, tg, 10*time.Second)
	if KindOf(err) != KindHostKey || !strings.Contains(err.Error(), "HOST KEY CHANGED") {
		t.Errorf("changed key: %s %v", KindOf(err), err)
	}

	// Unknown host without --accept-new-host-keys.
	empty := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(empty, nil, 0o600)
	s = e.transport(t, func(c *SSHConfig) { c.KnownHostsFile = empty })
	_, err = fetch(t, s, tg, 10*time.Second)
	if KindOf(err) != KindHostKey || !strings.Contains(err.Error(), "unknown host key") {
		t.Errorf("unknown key: %s %v", KindOf(err), err)
	}
	if b, _ := os.ReadFile(empty); len(b) != 0 {
		t.Errorf("known_hosts written without --accept-new-host-keys: %s", b)
	}

	// With it: recorded, and a fresh transport then trusts it.
	s = e.transport(t, func(c *SSHConfig) { c.KnownHostsFile = empty; c.AcceptNewHostKeys = true })
	if _, err := fetch(t, s, tg, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(empty)
	if !strings.Contains(string(b), knownhosts.Normalize(tg.SSHAddress())) || !strings.Contains(string(b), "ssh-ed25519") {
		t.Errorf("known_hosts after accept = %q", b)
	}
	s = e.transport(t, func(c *SSHConfig) { c.KnownHostsFile = empty })
	if _, err := fetch(t, s, tg, 10*time.Second); err != nil {
		t.Errorf("recorded key not trusted: %v", err)
	}

	// A missing known_hosts file is a configuration error unless accepting.
	if _, err := NewSSH(SSHConfig{KnownHostsFile: filepath.Join(t.TempDir(), "none"), Signers: []ssh.Signer{e.srv.ClientKey}}); err == nil {
		t.Error("missing known_hosts must be refused")
	}
}

func TestSSHNodeErrors(t *testing.T) {
	e := newEnv(t, "huge", "slow", "sudo")
	s := e.transport(t, nil)
	cases := []struct {
		node string
		kind string
		mod  func(*target.Target)
	}{
		{"huge", KindOutputTooBig, nil},
		{"slow", KindTimeout, nil},
		{"sudo", KindSudo, nil},
	}
	for _, c := range cases {
		t.Run(c.node, func(t *testing.T) {
			_, err := fetch(t, s, e.addrs[c.node], 2*time.Second)
			if KindOf(err) != c.kind {
				t.Errorf("kind = %s (%v), want %s", KindOf(err), err, c.kind)
			}
		})
	}
	// Refused connection.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().(*net.TCPAddr)
	ln.Close()
	_, err := fetch(t, s, target.Target{Name: "dead", Host: "127.0.0.1", Port: dead.Port}, 2*time.Second)
	if KindOf(err) != KindUnreachable {
		t.Errorf("dead node kind = %s (%v)", KindOf(err), err)
	}
	// Wrong key: authentication fails.
	bad := e.transport(t, func(c *SSHConfig) { c.Signers = []ssh.Signer{sshtest.NewSigner()} })
	_, err = fetch(t, bad, e.addrs["sudo"], 5*time.Second)
	if KindOf(err) != KindAuth {
		t.Errorf("wrong key kind = %s (%v)", KindOf(err), err)
	}
}

// TestSSHAgent authenticates with a key held only by an ssh-agent (an
// in-process keyring served on SSH_AUTH_SOCK).
func TestSSHAgent(t *testing.T) {
	e := newEnv(t, "ok")
	keyring := agent.NewKeyring()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(keyring, c)
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	// The server accepts only its ClientKey: give the agent that key instead.
	agentSigner, _ := ssh.NewSignerFromKey(priv)
	srv := sshtest.New(func(s *sshtest.Session) int { s.Stdout.Write(e.fleet.doc); return 0 })
	srv.ClientKey = agentSigner
	defer srv.Close()
	addr, err := srv.Listen("agent-node")
	if err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, srv.HostKey.PublicKey())+"\n"), 0o600)
	s, err := NewSSH(SSHConfig{KnownHostsFile: kh, UseAgent: true, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	out, err := fetch(t, s, target.Target{Name: "agent-node", Host: host, Port: p}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := facts.Parse(out); err != nil {
		t.Fatal(err)
	}
	// No key and no agent: a configuration error.
	t.Setenv("SSH_AUTH_SOCK", "")
	if _, err := NewSSH(SSHConfig{KnownHostsFile: kh, UseAgent: true}); err == nil || !strings.Contains(err.Error(), "no SSH credentials") {
		t.Errorf("no credentials: %v", err)
	}
}
