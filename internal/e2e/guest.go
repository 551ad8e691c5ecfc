package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	sdkssh "github.com/hashicorp/packer-plugin-sdk/sdk-internals/communicator/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/node/install/standin"
)

// SafeBuffer is a bytes.Buffer for UI output written from RPC goroutines.
type SafeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SafeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SafeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Key is a launch key pair, as EC2's CreateKeyPair would hand out.
type Key struct {
	Signer     ssh.Signer
	Authorized string
}

// NewKey makes an ed25519 launch key.
func NewKey(t testing.TB) Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return Key{Signer: signer, Authorized: string(ssh.MarshalAuthorizedKey(signer.PublicKey()))}
}

// Communicator is the Packer SDK's SSH communicator connected to a guest,
// the one Packer's StepConnect would hand to provisioners.
func Communicator(t testing.TB, inst *testcloud.Instance, user string, key Key) packersdk.Communicator {
	t.Helper()
	addr := inst.SSHAddr()
	comm, err := sdkssh.New(addr, &sdkssh.Config{
		SSHConfig: &ssh.ClientConfig{
			User:            user,
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(key.Signer)},
			HostKeyCallback: inst.HostKeyCallback(),
			Timeout:         30 * time.Second,
		},
		Connection: sdkssh.ConnectFunc("tcp", addr),
	})
	if err != nil {
		t.Fatalf("SSH communicator to %s: %v", addr, err)
	}
	return comm
}

// ServeDir serves dir over HTTP on the cloud's bridge address, where guests
// reach the host; it stops when the test ends.
func ServeDir(t testing.TB, cloud *testcloud.Cloud, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(cloud.Gateway().String(), "0"))
	if err != nil {
		t.Fatalf("listen on the bridge: %v", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

// ServeStandins builds the stand-in artifacts of Elasticsearch version and
// serves them on the cloud's bridge; it returns them and the mirror URL.
func ServeStandins(t testing.TB, cloud *testcloud.Cloud, version string) (*standin.Artifacts, string) {
	t.Helper()
	dir := t.TempDir()
	arts, err := standin.Build(dir, version)
	if err != nil {
		t.Fatalf("build stand-ins: %v", err)
	}
	return arts, ServeDir(t, cloud, dir)
}

// launchGuest starts one guest from image in a new cloud, with a fresh
// launch key (ls.Image and ls.AuthorizedKey are set here).
func launchGuest(t testing.TB, ctx context.Context, image testcloud.ImageSpec, ls testcloud.LaunchSpec) (*testcloud.Cloud, *testcloud.Instance, Key) {
	t.Helper()
	img, err := testcloud.EnsureImage(ctx, image)
	if err != nil {
		t.Fatalf("image %s: %v", image.Variant, err)
	}
	cloud := testcloud.New(t)
	key := NewKey(t)
	ls.Image, ls.AuthorizedKey = img, key.Authorized
	inst, err := cloud.Launch(ctx, ls)
	if err != nil {
		t.Fatal(err)
	}
	return cloud, inst, key
}

// esVersion is the Elasticsearch release the guest tests bake (as stand-ins).
const esVersion = "8.15.3"
