package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
)

// SSHConfig configures the SSH transport.
type SSHConfig struct {
	// User logs in when the target names none. Default: $USER, else root.
	User string
	// KnownHostsFile verifies host keys. Required.
	KnownHostsFile string
	// AcceptNewHostKeys records unknown hosts' keys in KnownHostsFile
	// (trust on first use). A changed key is always an error.
	AcceptNewHostKeys bool
	// KeyFiles are private keys (unencrypted; use the agent for others).
	KeyFiles []string
	// UseAgent authenticates with the keys of the agent at SSH_AUTH_SOCK.
	UseAgent bool
	// Signers are extra keys (tests).
	Signers []ssh.Signer
	// Sudo runs esnode with `sudo -n` when the user is not root.
	Sudo bool
	// EsnodeBinary returns esnode for a Debian architecture (amd64, arm64),
	// uploaded to nodes that have none. Nil: such nodes are errors.
	EsnodeBinary func(arch string) ([]byte, error)
	// MaxOutput bounds the facts document. Default DefaultMaxOutput.
	MaxOutput int64
	// DialTimeout bounds the TCP connect. Default 10s (the node deadline
	// bounds everything anyway).
	DialTimeout time.Duration
}

// SSH runs `esnode facts` over one SSH connection per node.
type SSH struct {
	cfg     SSHConfig
	known   ssh.HostKeyCallback
	auth    []ssh.AuthMethod
	agentC  net.Conn
	probe   ssh.PublicKey
	mu      sync.Mutex // guards the known_hosts file and added
	added   map[string]ssh.PublicKey
	binMu   sync.Mutex
	binary  map[string][]byte
	binErrs map[string]error
}

// NewSSH checks the configuration (known_hosts readable, some credential)
// and returns the transport. Its errors are usage errors.
func NewSSH(cfg SSHConfig) (*SSH, error) {
	if cfg.KnownHostsFile == "" {
		return nil, errors.New("SSH needs a known_hosts file: pass --known-hosts FILE")
	}
	if _, err := os.Stat(cfg.KnownHostsFile); os.IsNotExist(err) {
		if !cfg.AcceptNewHostKeys {
			return nil, fmt.Errorf("known_hosts file %s does not exist: fill it (ssh-keyscan, or your config management) or pass --accept-new-host-keys to record keys on first contact", cfg.KnownHostsFile)
		}
		if err := os.MkdirAll(filepath.Dir(cfg.KnownHostsFile), 0o700); err != nil {
			return nil, fmt.Errorf("create known_hosts directory: %w", err)
		}
		f, err := os.OpenFile(cfg.KnownHostsFile, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create known_hosts file: %w", err)
		}
		f.Close()
	}
	idx, err := newHostKeyIndex(cfg.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts %s: %w", cfg.KnownHostsFile, err)
	}
	if cfg.User == "" {
		cfg.User = os.Getenv("USER")
		if cfg.User == "" {
			cfg.User = "root"
		}
	}
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = DefaultMaxOutput
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	s := &SSH{cfg: cfg, known: idx.check, added: map[string]ssh.PublicKey{}, binary: map[string][]byte{}, binErrs: map[string]error{}}
	signers := append([]ssh.Signer(nil), cfg.Signers...)
	for _, kf := range cfg.KeyFiles {
		b, err := os.ReadFile(kf)
		if err != nil {
			return nil, fmt.Errorf("read SSH key: %w", err)
		}
		sg, err := ssh.ParsePrivateKey(b)
		if err != nil {
			var pp *ssh.PassphraseMissingError
			if errors.As(err, &pp) {
				return nil, fmt.Errorf("SSH key %s is passphrase-protected: load it into ssh-agent (ssh-add) and drop --ssh-key", kf)
			}
			return nil, fmt.Errorf("parse SSH key %s: %w", kf, err)
		}
		signers = append(signers, sg)
	}
	if len(signers) > 0 {
		s.auth = append(s.auth, ssh.PublicKeys(signers...))
	}
	if cfg.UseAgent {
		if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
			c, err := net.Dial("unix", sock)
			if err != nil {
				return nil, fmt.Errorf("connect to ssh-agent at SSH_AUTH_SOCK=%s: %w", sock, err)
			}
			s.agentC = c
			s.auth = append(s.auth, ssh.PublicKeysCallback(agent.NewClient(c).Signers))
		}
	}
	if len(s.auth) == 0 {
		return nil, errors.New("no SSH credentials: pass --ssh-key FILE or run an ssh-agent (SSH_AUTH_SOCK)")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate probe key: %w", err)
	}
	probe, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("generate probe key: %w", err)
	}
	s.probe = probe.PublicKey()
	return s, nil
}

// Close releases the agent connection.
func (s *SSH) Close() error {
	if s.agentC != nil {
		return s.agentC.Close()
	}
	return nil
}

// knownAlgorithms returns the host key algorithms known_hosts has for addr,
// so the server is asked for a key type we can verify (as OpenSSH does);
// nil when the host is unknown.
func (s *SSH) knownAlgorithms(addr string) []string {
	err := s.known(addr, fakeAddr(addr), s.probe)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algs []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		t := k.Key.Type()
		var add []string
		switch t {
		case ssh.KeyAlgoRSA:
			add = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		default:
			add = []string{t}
		}
		for _, a := range add {
			if !seen[a] {
				seen[a] = true
				algs = append(algs, a)
			}
		}
	}
	return algs
}

func fakeAddr(addr string) net.Addr {
	host, port, _ := net.SplitHostPort(addr)
	p := 22
	fmt.Sscanf(port, "%d", &p)
	return &net.TCPAddr{IP: net.ParseIP(host), Port: p}
}

// hostKeyCallback verifies against known_hosts; it records the outcome in
// *kind so the caller can classify the handshake failure.
func (s *SSH) hostKeyCallback(kind *string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := s.known(hostname, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case errors.As(err, &re):
			*kind = KindHostKey
			return fmt.Errorf("host key of %s is revoked in %s", hostname, s.cfg.KnownHostsFile)
		case errors.As(err, &ke) && len(ke.Want) > 0:
			*kind = KindHostKey
			return fmt.Errorf("HOST KEY CHANGED for %s: got %s %s, %s has %s at line %d; if the node was rebuilt, remove the old line, else investigate (possible man-in-the-middle)",
				hostname, key.Type(), ssh.FingerprintSHA256(key), s.cfg.KnownHostsFile, ke.Want[0].Key.Type(), ke.Want[0].Line)
		case errors.As(err, &ke):
			s.mu.Lock()
			defer s.mu.Unlock()
			if prev, ok := s.added[knownhosts.Normalize(hostname)]; ok {
				if string(prev.Marshal()) == string(key.Marshal()) {
					return nil
				}
				*kind = KindHostKey
				return fmt.Errorf("HOST KEY CHANGED for %s during this run", hostname)
			}
			if !s.cfg.AcceptNewHostKeys {
				*kind = KindHostKey
				return fmt.Errorf("unknown host key for %s (%s %s): add it to %s or pass --accept-new-host-keys", hostname, key.Type(), ssh.FingerprintSHA256(key), s.cfg.KnownHostsFile)
			}
			f, err := os.OpenFile(s.cfg.KnownHostsFile, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
			if err != nil {
				*kind = KindHostKey
				return fmt.Errorf("record host key of %s: %w", hostname, err)
			}
			_, werr := fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				*kind = KindHostKey
				return fmt.Errorf("record host key of %s: %w", hostname, werr)
			}
			s.added[knownhosts.Normalize(hostname)] = key
			return nil
		}
		*kind = KindHostKey
		return fmt.Errorf("verify host key of %s: %w", hostname, err)
	}
}

// Fetch implements Transport: connect, run esnode facts (uploading esnode
// when the node has none), and return its output. The whole exchange is
// bound by ctx: when it ends the connection is closed.
func (s *SSH) Fetch(ctx context.Context, t target.Target) ([]byte, error) {
	if t.Host == "" {
		return nil, errorf(KindUnreachable, "node has no address to connect to (no public IP with --address public?)")
	}
	addr := t.SSHAddress()
	user := t.User
	if user == "" {
		user = s.cfg.User
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, errorf(KindTimeout, "connect %s: node deadline reached: %w", addr, ctx.Err())
		}
		return nil, errorf(KindUnreachable, "connect %s: %w", addr, err)
	}
	// Closing the connection is how every stage (handshake, command) stops
	// at the deadline.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	var hkKind string
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:              user,
		Auth:              s.auth,
		HostKeyCallback:   s.hostKeyCallback(&hkKind),
		HostKeyAlgorithms: s.knownAlgorithms(addr),
		Timeout:           s.cfg.DialTimeout,
	})
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, errorf(KindTimeout, "SSH handshake with %s: node deadline reached", addr)
		case hkKind != "":
			return nil, errorf(hkKind, "SSH %s: %w", addr, err)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, errorf(KindAuth, "SSH %s as %s: %w: check --ssh-user and that the key (--ssh-key or the agent) is authorized", addr, user, err)
		}
		return nil, errorf(KindUnreachable, "SSH %s: %w", addr, err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()

	sudo := ""
	if s.cfg.Sudo && user != "root" {
		sudo = "sudo -n "
	}
	out, stderr, code, err := s.run(ctx, client, nil, runScript(sudo))
	if err == nil && code == 127 && strings.Contains(stderr, "esaudit-no-esnode") {
		arch := archFromUname(stderr)
		bin, berr := s.esnodeFor(arch)
		if berr != nil {
			return nil, errorf(KindNoEsnode, "esnode is not installed on %s and cannot be uploaded: %w", addr, berr)
		}
		out, stderr, code, err = s.run(ctx, client, bin, uploadScript(sudo))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, errorf(KindTimeout, "esnode facts on %s: node deadline reached", addr)
		}
		return nil, err
	}
	if code != 0 {
		msg := strings.TrimSpace(lastBytes(stderr, 2000))
		if sudo != "" && (strings.Contains(msg, "a password is required") || strings.Contains(msg, "sudo:")) {
			return nil, errorf(KindSudo, "sudo -n esnode facts on %s failed (exit %d): %s: allow %s passwordless sudo for esnode, log in as root, or pass --sudo=false", addr, code, msg, user)
		}
		return nil, errorf(KindCommand, "esnode facts on %s exited %d: %s", addr, code, msg)
	}
	return out, nil
}

// runScript finds esnode on the node's PATH (plus the usual sbin dirs, since
// non-login shells often lack them) and runs it.
func runScript(sudo string) string {
	return `PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"; ` +
		`p=$(command -v esnode) || { echo "esaudit-no-esnode $(uname -m)" >&2; exit 127; }; ` +
		`exec ` + sudo + `"$p" facts`
}

// uploadScript receives esnode on stdin into a private directory in the
// user's home (CIS mounts /tmp noexec), runs it and removes it.
func uploadScript(sudo string) string {
	return `umask 077; d=$(mktemp -d "${HOME:-/root}/.esaudit.XXXXXXXX") || exit 125; ` +
		`trap 'rm -rf "$d"' EXIT HUP INT TERM; ` +
		`cat > "$d/esnode" || exit 125; chmod 700 "$d/esnode" || exit 125; ` +
		sudo + `"$d/esnode" facts`
}

func archFromUname(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "esaudit-no-esnode "); ok {
			switch strings.TrimSpace(rest) {
			case "x86_64", "amd64":
				return "amd64"
			case "aarch64", "arm64", "armv8l":
				return "arm64"
			default:
				return strings.TrimSpace(rest)
			}
		}
	}
	return "unknown"
}

func (s *SSH) esnodeFor(arch string) ([]byte, error) {
	if s.cfg.EsnodeBinary == nil {
		return nil, errors.New("no esnode binaries configured: pass --esnode-dir with esnode-linux-amd64/arm64")
	}
	s.binMu.Lock()
	defer s.binMu.Unlock()
	if b, ok := s.binary[arch]; ok {
		return b, nil
	}
	if err, ok := s.binErrs[arch]; ok {
		return nil, err
	}
	b, err := s.cfg.EsnodeBinary(arch)
	if err != nil {
		s.binErrs[arch] = err
		return nil, err
	}
	s.binary[arch] = b
	return b, nil
}

// run executes one command in a new session; it returns stdout, the tail of
// stderr and the exit status. Output beyond MaxOutput closes the
// connection: a hostile node cannot make the auditor buffer without bound.
func (s *SSH) run(ctx context.Context, client *ssh.Client, stdin []byte, cmd string) ([]byte, string, int, error) {
	sess, err := client.NewSession()
	if err != nil {
		return nil, "", 0, errorf(KindTransport, "open SSH session: %w", err)
	}
	defer sess.Close()
	stdout := newLimitBuffer(s.cfg.MaxOutput)
	stderr := newTailBuffer(64 << 10)
	sess.Stdout = stdout
	sess.Stderr = stderr
	if stdin != nil {
		sess.Stdin = bytes.NewReader(stdin)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-stdout.over:
		client.Close()
		<-done
		return nil, "", 0, errorf(KindOutputTooBig, "esnode facts output exceeds %d bytes: not a facts document", s.cfg.MaxOutput)
	case <-ctx.Done():
		client.Close()
		<-done
		return nil, "", 0, errorf(KindTimeout, "esnode facts: node deadline reached: %w", ctx.Err())
	}
	if stdout.overflow {
		return nil, "", 0, errorf(KindOutputTooBig, "esnode facts output exceeds %d bytes: not a facts document", s.cfg.MaxOutput)
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return stdout.buf.Bytes(), stderr.String(), ee.ExitStatus(), nil
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) {
		return nil, stderr.String(), 0, errorf(KindCommand, "esnode facts ended without an exit status (connection dropped?)")
	}
	if err != nil {
		return nil, stderr.String(), 0, errorf(KindTransport, "run esnode facts: %w", err)
	}
	return stdout.buf.Bytes(), stderr.String(), 0, nil
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
