package testcloud

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MetadataMockModule is the amazon-ec2-metadata-mock version every IMDS
// runs; the binary is installed into the cache on first use.
const MetadataMockModule = "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@v1.13.0"

// IMDSConfig is what one instance's metadata service reports.
type IMDSConfig struct {
	InstanceID       string
	InstanceType     string
	ImageID          string
	LocalIPv4        string
	MAC              string
	SubnetCIDR       string
	VPCCIDR          string
	SubnetID         string
	VPCID            string
	AvailabilityZone string
	Region           string
	AccountID        string
	PublicKey        string // OpenSSH authorized_keys line, served at public-keys/0/openssh-key
	Tags             map[string]string
	UserData         []byte
	// AllowIMDSv1 also answers requests without a token (EC2's
	// HttpTokens=optional). The default is IMDSv2 only.
	AllowIMDSv1 bool
	// IAMRole, if set, is the role name served under iam/security-credentials/.
	IAMRole string
	// TargetLifecycleState, if set, answers autoscaling/target-lifecycle-state
	// on every request (the EC2 emulator's Server.TargetLifecycleState); ""
	// means the instance is in no Auto Scaling group, which EC2 answers 404.
	TargetLifecycleState func() string
}

func (c IMDSConfig) withDefaults() IMDSConfig {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.InstanceID, "i-0123456789abcdef0")
	def(&c.InstanceType, "t3.medium")
	def(&c.ImageID, "ami-0123456789abcdef0")
	def(&c.LocalIPv4, "10.213.0.10")
	def(&c.MAC, "0e:00:00:00:00:01")
	def(&c.SubnetCIDR, "10.213.0.0/24")
	def(&c.VPCCIDR, c.SubnetCIDR)
	def(&c.SubnetID, "subnet-0123456789abcdef0")
	def(&c.VPCID, "vpc-0123456789abcdef0")
	def(&c.Region, "us-east-1")
	def(&c.AvailabilityZone, c.Region+"a")
	def(&c.AccountID, "123456789012")
	return c
}

// mockConfig renders the ec2-metadata-mock JSON config (-c) for c.
func (c IMDSConfig) mockConfig() ([]byte, error) {
	host := "ip-" + strings.ReplaceAll(c.LocalIPv4, ".", "-") + "." + c.Region + ".compute.internal"
	md := map[string]any{
		"ami-id":                      c.ImageID,
		"instance-id":                 c.InstanceID,
		"instance-type":               c.InstanceType,
		"instance-life-cycle":         "on-demand",
		"local-ipv4":                  c.LocalIPv4,
		"local-hostname":              host,
		"hostname":                    host,
		"mac":                         c.MAC,
		"mac-mac":                     c.MAC,
		"mac-local-ipv4s":             c.LocalIPv4,
		"mac-local-hostname":          host,
		"mac-subnet-id":               c.SubnetID,
		"mac-subnet-ipv4-cidr-block":  c.SubnetCIDR,
		"mac-vpc-id":                  c.VPCID,
		"mac-vpc-ipv4-cidr-block":     c.VPCCIDR,
		"mac-vpc-ipv4-cidr-blocks":    c.VPCCIDR,
		"mac-owner-id":                c.AccountID,
		"placement-availability-zone": c.AvailabilityZone,
		"placement-region":            c.Region,
	}
	if c.PublicKey != "" {
		md["public-key"] = strings.TrimSpace(c.PublicKey)
	}
	if c.IAMRole != "" {
		md["iam-security-credentials-role"] = c.IAMRole
	}
	doc := map[string]any{
		"accountId":               c.AccountID,
		"imageId":                 c.ImageID,
		"availabilityZone":        c.AvailabilityZone,
		"ramdiskId":               nil,
		"kernelId":                nil,
		"devpayProductCodes":      nil,
		"marketplaceProductCodes": nil,
		"version":                 "2017-09-30",
		"privateIp":               c.LocalIPv4,
		"billingProducts":         nil,
		"instanceId":              c.InstanceID,
		"pendingTime":             time.Now().UTC().Format(time.RFC3339),
		"architecture":            "x86_64",
		"instanceType":            c.InstanceType,
		"region":                  c.Region,
	}
	cfg := map[string]any{
		"metadata": map[string]any{"values": md},
		"dynamic":  map[string]any{"values": map[string]any{"instance-identity-document": doc}},
	}
	if len(c.UserData) > 0 {
		cfg["userdata"] = map[string]any{"values": map[string]any{
			"userdata": base64.StdEncoding.EncodeToString(c.UserData),
		}}
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// EnsureMetadataMock returns the path of an ec2-metadata-mock binary:
// $ESBAKE_EC2_METADATA_MOCK if set, else <cache>/bin/ec2-metadata-mock,
// installed with `go install` (from the Go module proxy) when missing.
func EnsureMetadataMock(ctx context.Context) (string, error) {
	return cachedTool(ctx, "ec2-metadata-mock", "ESBAKE_EC2_METADATA_MOCK", "", func(ctx context.Context, dir string) (string, error) {
		cmd := exec.CommandContext(ctx, "go", "install", MetadataMockModule)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
		cmd.Dir = dir // outside any module, so go.mod of the caller is not touched
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go install %s (needs the Go toolchain and the module proxy; or set ESBAKE_EC2_METADATA_MOCK to a binary): %w\n%s", MetadataMockModule, err, out)
		}
		return filepath.Join(dir, "ec2-metadata-mock"), nil
	})
}

// imdsServer is one running metadata service: an ec2-metadata-mock
// process on a host loopback port, fronted by a Go handler.
//
// The Go handler exists because the mock cannot express everything EC2
// serves: it has only two fixed tag keys (Name, Test), so
// /latest/meta-data/tags/instance[/KEY] is answered here from the real tag
// map; autoscaling/target-lifecycle-state follows the emulator's Auto
// Scaling group (the mock's asglifecycle mode only plays a fixed script);
// user-data is 404 when none was given (the mock would serve its
// sample); spot/ is 404 (on-demand instances have no spot paths). Tokens
// stay the mock's business: tag and user-data answers first ask the mock
// whether the caller's token is valid. Requests reach the mock one at a
// time because its token map is not safe for concurrent use.
type imdsServer struct {
	cfg     IMDSConfig
	cmd     *exec.Cmd
	mockURL *url.URL
	proxy   *httputil.ReverseProxy
	mu      sync.Mutex // serialises calls into the mock; guards cfg.Tags
	servers []*http.Server
	logFile *os.File
	done    chan struct{}
	pidFile string
}

// startIMDSServer starts the mock for cfg, logging to logPath. pidFile, if
// set, records the mock's pid for crash cleanup.
func startIMDSServer(ctx context.Context, cfg IMDSConfig, dir string, pidFile string) (*imdsServer, error) {
	cfg = cfg.withDefaults()
	bin, err := EnsureMetadataMock(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create IMDS dir: %w", err)
	}
	conf, err := cfg.mockConfig()
	if err != nil {
		return nil, fmt.Errorf("render IMDS mock config: %w", err)
	}
	confPath := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return nil, fmt.Errorf("write IMDS mock config: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "ec2-metadata-mock.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open IMDS log: %w", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreeLoopbackPort()
		if err != nil {
			logf.Close()
			return nil, err
		}
		args := []string{"-n", "127.0.0.1", "-p", fmt.Sprint(port), "-c", confPath}
		if !cfg.AllowIMDSv1 {
			args = append([]string{"-I"}, args...)
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("start %s: %w", bin, err)
		}
		s := &imdsServer{cfg: cfg, cmd: cmd, logFile: logf, done: make(chan struct{}), pidFile: pidFile}
		go func() { _ = cmd.Wait(); close(s.done) }()
		if pidFile != "" {
			_ = writePidFile(pidFile, cmd.Process.Pid)
		}
		s.mockURL = &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port)}
		if err := s.waitReady(ctx); err != nil {
			lastErr = err
			s.stopMock()
			if ctx.Err() != nil {
				break
			}
			continue
		}
		s.proxy = &httputil.ReverseProxy{
			// Rewrite (not Director) so no X-Forwarded-For is added.
			Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(s.mockURL); r.Out.Host = r.In.Host },
		}
		return s, nil
	}
	logf.Close()
	return nil, fmt.Errorf("ec2-metadata-mock did not come up (see %s): %w", filepath.Join(dir, "ec2-metadata-mock.log"), lastErr)
}

// checkIdentity reads instance-id from the mock with token and compares it
// with the configured one.
func (s *imdsServer) checkIdentity(ctx context.Context, token string) error {
	if s.cfg.InstanceID == "" {
		return nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.mockURL.String()+"/latest/meta-data/instance-id", nil)
	req.Header.Set("X-aws-ec2-metadata-token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("read instance-id from the mock: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if got := strings.TrimSpace(string(b)); resp.StatusCode != http.StatusOK || got != s.cfg.InstanceID {
		return fmt.Errorf("the mock on %s answers for instance %q (%s), not %s: another process holds the port", s.mockURL.Host, got, resp.Status, s.cfg.InstanceID)
	}
	return nil
}

func (s *imdsServer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, s.mockURL.String()+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			token, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// The port was free when picked, not when the mock bound it: a
				// mock of another instance (or run) may hold it and this one
				// have exited. Only our own instance id proves it is ours.
				if err = s.checkIdentity(ctx, string(token)); err == nil {
					return nil
				}
				return err
			}
			err = fmt.Errorf("token PUT answered %s", resp.Status)
		}
		select {
		case <-s.done:
			return fmt.Errorf("ec2-metadata-mock exited: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for ec2-metadata-mock: %w (last: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tokenValid reports whether r may read metadata: a token the mock
// accepts, or no token at all when IMDSv1 is allowed.
func (s *imdsServer) tokenValid(r *http.Request) bool {
	tok := r.Header.Get("X-aws-ec2-metadata-token")
	if tok == "" {
		return s.cfg.AllowIMDSv1
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, s.mockURL.String()+"/latest/meta-data/instance-id", nil)
	req.Header.Set("X-aws-ec2-metadata-token", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

func (s *imdsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	asgPath := p == "/latest/meta-data/autoscaling" || p == "/latest/meta-data/autoscaling/" ||
		p == "/latest/meta-data/autoscaling/target-lifecycle-state"
	state := ""
	if asgPath && s.cfg.TargetLifecycleState != nil {
		// Asked before s.mu: the emulator may hold its own lock while it
		// updates this server's tags.
		state = s.cfg.TargetLifecycleState()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case p == "/latest/meta-data/tags/instance" || p == "/latest/meta-data/tags/instance/" ||
		strings.HasPrefix(p, "/latest/meta-data/tags/instance/"):
		if !s.tokenValid(r) {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		if len(s.cfg.Tags) == 0 {
			http.NotFound(w, r)
			return
		}
		key := strings.TrimPrefix(strings.TrimPrefix(p, "/latest/meta-data/tags/instance"), "/")
		if key == "" {
			keys := make([]string, 0, len(s.cfg.Tags))
			for k := range s.cfg.Tags {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, strings.Join(keys, "\n"))
			return
		}
		v, ok := s.cfg.Tags[key]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, v)
	case asgPath:
		if !s.tokenValid(r) {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		if state == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		if strings.HasSuffix(p, "/target-lifecycle-state") {
			_, _ = io.WriteString(w, state)
		} else {
			_, _ = io.WriteString(w, "target-lifecycle-state")
		}
	case (p == "/latest/user-data" || p == "/latest/user-data/") && len(s.cfg.UserData) == 0,
		strings.HasPrefix(p, "/latest/meta-data/spot/"):
		if !s.tokenValid(r) {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		http.NotFound(w, r)
	case p == "/latest/user-data" || p == "/latest/user-data/":
		// Serve the raw bytes ourselves: the mock prints decoded user-data
		// as text, which would mangle binary (gzip) user-data.
		if !s.tokenValid(r) {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.Copy(w, bytes.NewReader(s.cfg.UserData))
	default:
		s.proxy.ServeHTTP(w, r)
	}
}

// setTags replaces the tags served under tags/instance.
func (s *imdsServer) setTags(tags map[string]string) {
	cp := make(map[string]string, len(tags))
	for k, v := range tags {
		cp[k] = v
	}
	s.mu.Lock()
	s.cfg.Tags = cp
	s.mu.Unlock()
}

// serve serves the handler on l until close.
func (s *imdsServer) serve(l net.Listener) {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	go func() { _ = srv.Serve(l) }()
}

func (s *imdsServer) stopMock() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Process.Kill()
	}
	<-s.done
	if s.pidFile != "" {
		_ = os.Remove(s.pidFile)
	}
}

func (s *imdsServer) close() {
	for _, srv := range s.servers {
		_ = srv.Close()
	}
	s.stopMock()
	s.logFile.Close()
}

// FreeLoopbackPort asks the kernel for a free port on 127.0.0.1.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartIMDS runs a standalone IMDSv2-only metadata service for cfg on a
// host loopback port, for tests that need IMDS but no instance (e.g. unit
// tests of `esnode boot`). endpoint is like "http://127.0.0.1:PORT" (no
// trailing slash), usable as the aws-sdk-go-v2 imds client's Endpoint.
// stop kills the mock and removes its temp dir.
func StartIMDS(ctx context.Context, cfg IMDSConfig) (endpoint string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "esbake-imds-")
	if err != nil {
		return "", nil, fmt.Errorf("create IMDS temp dir: %w", err)
	}
	s, err := startIMDSServer(ctx, cfg, dir, "")
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.close()
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("listen for IMDS: %w", err)
	}
	s.serve(l)
	var once sync.Once
	return "http://" + l.Addr().String(), func() {
		once.Do(func() { s.close(); os.RemoveAll(dir) })
	}, nil
}

var errNotRoot = errors.New("root (for network namespaces, mounts and systemd-nspawn)")
