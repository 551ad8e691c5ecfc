package install

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

func TestParseChecksumFile(t *testing.T) {
	a := strings.Repeat("ab", 64)
	b := strings.Repeat("cd", 64)
	for _, tc := range []struct {
		name, data, want, err string
	}{
		{"sha512sum", a + "  x.deb\n", a, ""},
		{"binary mode", a + " *x.deb\n", a, ""},
		{"several files", b + "  y.deb\n" + a + "  dist/x.deb\n", a, ""},
		{"bsd", "SHA512 (x.deb) = " + a + "\n", a, ""},
		{"bare", a + "\n", a, ""},
		{"upper case", strings.ToUpper(a) + "  x.deb\n", a, ""},
		{"comment", "# sums\n" + a + "  x.deb\n", a, ""},
		{"other file", b + "  y.deb\n", "", "lists no SHA-512 for x.deb (it lists y.deb)"},
		{"garbage", "<html>not found</html>\n", "", "holds no SHA-512"},
		{"short sum", "abcd  x.deb\n", "", "holds no SHA-512"},
		{"two bare sums", a + "\n" + b + "\n", "", "holds no SHA-512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseChecksumFile([]byte(tc.data), "x.deb")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestChecksumFileNotFoundNamesArtifact(t *testing.T) {
	fx := newFixture(t, esVersion8, false, false)
	fx.node.Plugins[0].SHA512 = "file:" + fx.srv.URL + "/missing.sha512"
	_, err := fx.run()
	if err == nil || !strings.Contains(err.Error(), "artifact plugin/discovery-ec2: fetch its checksum file") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v", err)
	}
	if files := treeFiles(t, fx.root); len(files) > 0 {
		t.Errorf("files left: %v", files)
	}
}

func TestWaitLocks(t *testing.T) {
	root := t.TempDir()
	f := fsys{root}
	lock := f.host("/var/lib/dpkg/lock-frontend")
	os.MkdirAll(filepath.Dir(lock), 0o755)
	if err := os.WriteFile(lock, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if waited, err := waitLocks(context.Background(), f, time.Second, time.Millisecond); err != nil || waited {
		t.Fatalf("free lock: waited=%v err=%v", waited, err)
	}
	// Hold the lock as dpkg would (an OFD lock conflicts within one process
	// too, so the test can play the other apt).
	fd, err := unix.Open(lock, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	_, err = waitLocks(context.Background(), f, 0, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "/var/lib/dpkg/lock-frontend is still locked") {
		t.Fatalf("held lock: err = %v", err)
	}
	lk.Type = unix.F_UNLCK
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	if held, err := lockHeld(lock); err != nil || held {
		t.Fatalf("released lock: held=%v err=%v", held, err)
	}
}

func TestWaitCloudInit(t *testing.T) {
	r := &RecordingRunner{}
	var warned []string
	warn := func(f string, a ...any) { warned = append(warned, f) }
	st, err := waitCloudInit(context.Background(), r, time.Minute, warn)
	if err != nil || st != "done" || strings.Join(r.Lines(), ";") != "cloud-init status --wait" {
		t.Fatalf("st=%q err=%v ran=%q", st, err, r.Lines())
	}
	r.Respond = func(Command) ([]byte, error) { return []byte("status: error"), errors.New("exit status 1") }
	if st, err := waitCloudInit(context.Background(), r, time.Minute, warn); err != nil || st != "finished with errors" || len(warned) != 1 {
		t.Fatalf("error status: st=%q err=%v warned=%v", st, err, warned)
	}
	if _, err := waitCloudInit(context.Background(), blockingRunner{}, time.Millisecond, warn); err == nil || !strings.Contains(err.Error(), "did not finish within") {
		t.Fatalf("timeout: err = %v", err)
	}
}

func TestRetryStopsOnPermanentErrors(t *testing.T) {
	f := &fetcher{}
	calls := 0
	err := f.retry(context.Background(), func() error { calls++; return permanent(errors.New("404")) })
	if err == nil || calls != 1 {
		t.Fatalf("permanent: calls=%d err=%v", calls, err)
	}
	calls = 0
	err = f.retry(context.Background(), func() error {
		calls++
		if calls < 3 {
			return errors.New("connection reset")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("transient: calls=%d err=%v", calls, err)
	}
}

// blockingRunner is a cloud-init that never finishes: it returns only when
// its context ends, as exec.CommandContext does.
type blockingRunner struct{}

func (blockingRunner) Run(ctx context.Context, _ Command) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestChecksumOverPlainHTTPRefused: an on-path attacker could swap a
// package and its checksum file together when the checksum comes over
// http://; only allow_insecure_http lets it. The package itself may come
// over http (a mirror): it is checked against a sum that did not.
func TestChecksumOverPlainHTTPRefused(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("ab", 64) + "  x.deb\n"))
	}))
	defer plain.Close()
	a := spec.Artifact{Name: "elasticsearch", URL: plain.URL + "/x.deb", FileName: "x.deb", SHA512: "file:" + plain.URL + "/x.deb.sha512"}
	f := &fetcher{client: plain.Client()}
	if _, err := f.expectedSum(context.Background(), a); err == nil || !strings.Contains(err.Error(), "allow_insecure_http") {
		t.Fatalf("checksum over http: err = %v, want a refusal naming allow_insecure_http", err)
	}
	f.allowHTTP = true
	if got, err := f.expectedSum(context.Background(), a); err != nil || got != strings.Repeat("ab", 64) {
		t.Fatalf("with allow_insecure_http: %q, %v", got, err)
	}
	// The spec says so before any bake.
	n := spec.Node{Elasticsearch: spec.Elasticsearch{Version: "8.15.3", SHA512: a.SHA512}}
	n.SetDefaults()
	if err := n.Validate(); err == nil || !strings.Contains(err.Error(), "elasticsearch.sha512: reads its checksum over plain http://") {
		t.Errorf("spec: %v", err)
	}
	n.AllowInsecureHTTP = true
	if err := n.Validate(); err != nil {
		t.Errorf("spec with allow_insecure_http: %v", err)
	}
}

// TestRedirectToPlainHTTPRefused: https never redirects esnode to http.
func TestRedirectToPlainHTTPRefused(t *testing.T) {
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		w.Write([]byte("swapped package"))
	}))
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/x.deb", http.StatusFound))
	defer tlsSrv.Close()
	f := &fetcher{client: tlsSrv.Client(), allowHTTP: true}
	body, err := f.open(context.Background(), tlsSrv.URL+"/x.deb")
	if err == nil {
		body.Close()
		t.Fatal("https -> http redirect followed")
	}
	var p permanentError
	if !strings.Contains(err.Error(), "never follows https to http") || !errors.As(err, &p) {
		t.Errorf("err = %v, want a permanent downgrade refusal", err)
	}
	if plainHits.Load() != 0 {
		t.Error("the plain-http server was asked")
	}
}
