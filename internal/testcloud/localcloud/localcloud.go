package localcloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// Options configures Start. The zero value is usable.
type Options struct {
	// Subnet is the host bridge subnet, and so the emulator's VPC. Zero picks a free
	// 10.213.N.0/24.
	Subnet netip.Prefix
	// EC2 is handed to ec2emu.New. Start always sets VPCCIDR (to the bridge subnet) and
	// Backend; Subnets, when nil, become the cloud's two zones (testcloud.Config.Zones:
	// halves of the bridge subnet, zones a and b, routed through the host), so every
	// address the emulator allocates is the guest's real address in its own subnet.
	// Subnets given here must lie inside Subnet; the cloud is then one flat subnet.
	EC2 ec2emu.Options
	// BootTimeout bounds one instance's wait for SSH; default 60s.
	BootTimeout time.Duration
	// NoUserDataRunner turns off the stand-in for cloud-init's script runner (see doc.go):
	// user data starting with "#!" is otherwise run once after the first boot.
	NoUserDataRunner bool
	// Logf, when set, receives backend events (launches, user data runs, shutdowns).
	Logf func(format string, args ...any)
}

// LocalCloud is a testcloud.Cloud driven by an ec2emu.Server: RunInstances boots real
// nspawn instances, CreateImage snapshots them.
type LocalCloud struct {
	opts     Options
	cloud    *testcloud.Cloud
	srv      *ec2emu.Server
	be       *backend
	endpoint string
	// guestSrv serves the emulator on the bridge, for guests (EC2 discovery).
	guestSrv      *http.Server
	guestEndpoint string

	ctx    context.Context // ends at Close; stops shutdown watchers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool

	seedMu sync.Mutex // held across image builds, so not mu (Close must not wait on it)
	seeds  []SeedImage
}

// Start creates the bridge, the emulator (serving on loopback) and the backend between
// them. Needs root and the tools testcloud.Requirements lists. Close removes everything.
func Start(ctx context.Context, opts Options) (*LocalCloud, error) {
	zones := 2
	if opts.EC2.Subnets != nil || opts.Subnet.IsValid() && opts.Subnet.Bits() > 28 {
		zones = 1
	}
	cloud, err := testcloud.NewCloud(ctx, testcloud.Config{Subnet: opts.Subnet, Zones: zones})
	if err != nil {
		return nil, fmt.Errorf("start local cloud: %w", err)
	}
	sub := cloud.Subnet()
	eo := opts.EC2
	eo.VPCCIDR = sub.String()
	if eo.Subnets == nil {
		for _, z := range cloud.Zones() {
			eo.Subnets = append(eo.Subnets, ec2emu.SubnetSpec{CIDR: z.CIDR.String(), Zone: z.Letter, MapPublicIP: true})
		}
	}
	for _, s := range eo.Subnets {
		p, err := netip.ParsePrefix(s.CIDR)
		if err != nil || !sub.Contains(p.Addr()) || p.Bits() < sub.Bits() {
			_ = cloud.Close()
			return nil, fmt.Errorf("start local cloud: emulator subnet %q must lie inside the bridge subnet %s (leave Options.EC2.Subnets nil to derive them)", s.CIDR, sub)
		}
	}
	lc := &LocalCloud{opts: opts, cloud: cloud}
	lc.ctx, lc.cancel = context.WithCancel(context.Background())
	lc.be = &backend{lc: lc, insts: map[string]*backendInstance{}, images: map[string]*testcloud.Image{},
		snapshots: map[string]bool{}, ips: map[string]string{}}
	eo.Backend = lc.be
	lc.srv = ec2emu.New(eo)
	lc.endpoint = lc.srv.Start()
	ln, err := net.Listen("tcp", net.JoinHostPort(cloud.Gateway().String(), "0"))
	if err != nil {
		lc.srv.Close()
		_ = cloud.Close()
		return nil, fmt.Errorf("start local cloud: serve the emulator to guests: %w", err)
	}
	lc.guestSrv = &http.Server{Handler: lc.srv, ReadHeaderTimeout: 10 * time.Second}
	go lc.guestSrv.Serve(ln) //nolint:errcheck // returns at Close
	lc.guestEndpoint = "http://" + ln.Addr().String()
	return lc, nil
}

// New starts a LocalCloud for a test and closes it in t.Cleanup, even when the test fails.
// Without root or the needed tools it skips the test, except in CI (CI=true), where it
// fails saying what is missing.
func New(t testing.TB) *LocalCloud {
	t.Helper()
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lc, err := Start(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("localcloud: %v", err)
	}
	t.Cleanup(func() {
		if err := lc.Close(); err != nil {
			t.Errorf("localcloud close: %v", err)
		}
	})
	return lc
}

// Close stops the emulator (waiting for backend work in flight), then terminates every
// instance and removes the bridge, namespaces, mounts and snapshot images. Safe to call
// more than once.
func (lc *LocalCloud) Close() error {
	lc.mu.Lock()
	if lc.closed {
		lc.mu.Unlock()
		return nil
	}
	lc.closed = true
	lc.mu.Unlock()
	_ = lc.guestSrv.Close()
	lc.srv.Close()
	lc.cancel()
	lc.wg.Wait()
	if err := lc.cloud.Close(); err != nil {
		return fmt.Errorf("close local cloud %s: %w", lc.cloud.ID(), err)
	}
	return nil
}

// Endpoint is the emulator's base URL, for the builder's ec2_endpoint, ssm_endpoint and
// sts_endpoint and the SDK clients' BaseEndpoint.
func (lc *LocalCloud) Endpoint() string { return lc.endpoint }

// GuestEndpoint is the emulator's URL on the bridge, reachable from guests in
// every zone: what a node's EC2 discovery calls (the Elasticsearch stand-in's
// ES_STANDIN_EC2_ENDPOINT, standin.Options.EC2Endpoint).
func (lc *LocalCloud) GuestEndpoint() string { return lc.guestEndpoint }

// GuestEndpointsDropIn is the test-only systemd drop-in every guest of the
// local cloud sees (under /run: never on its disk, so never in an image):
// it points esnode-boot.service's AWS SDK at GuestEndpoint through the SDK's
// own service-endpoint variables, AWS_ENDPOINT_URL_SSM and
// AWS_ENDPOINT_URL_EC2, as a VPC with interface endpoints would. The
// product keeps its real paths: the default credential chain (the instance
// profile's credentials from the guest's IMDS, when RunInstances names one)
// and the SDK's endpoint resolution.
const GuestEndpointsDropIn = "/run/systemd/system/esnode-boot.service.d/50-localcloud-endpoints.conf"

// GuestDrainEndpointsDropIn does the same for esnode-drain.service, whose
// lifecycle calls go to the emulator's Auto Scaling API
// (AWS_ENDPOINT_URL_AUTO_SCALING) and which reads the elastic password from
// Parameter Store or Secrets Manager (AWS_ENDPOINT_URL_SSM,
// AWS_ENDPOINT_URL_SECRETS_MANAGER).
const GuestDrainEndpointsDropIn = "/run/systemd/system/esnode-drain.service.d/50-localcloud-endpoints.conf"

func (lc *LocalCloud) guestDrainEndpointsDropIn() []byte {
	return []byte("# Test-only, written by internal/testcloud/localcloud: guests reach the\n" +
		"# Auto Scaling emulator here (the local cloud's stand-in for VPC endpoints).\n[Service]\n" +
		"Environment=AWS_ENDPOINT_URL_AUTO_SCALING=" + lc.guestEndpoint + "\n" +
		"Environment=AWS_ENDPOINT_URL_SSM=" + lc.guestEndpoint + "\n" +
		"Environment=AWS_ENDPOINT_URL_SECRETS_MANAGER=" + lc.guestEndpoint + "\n" +
		"Environment=AWS_ENDPOINT_URL_EC2=" + lc.guestEndpoint + "\n")
}

func (lc *LocalCloud) guestEndpointsDropIn() []byte {
	return []byte("# Test-only, written by internal/testcloud/localcloud: guests reach the\n" +
		"# EC2/SSM emulator here (the local cloud's stand-in for VPC endpoints).\n[Service]\n" +
		"Environment=AWS_ENDPOINT_URL_SSM=" + lc.guestEndpoint + "\n" +
		"Environment=AWS_ENDPOINT_URL_EC2=" + lc.guestEndpoint + "\n")
}

// Server is the EC2 emulator (fault injection, seeding, state for assertions).
func (lc *LocalCloud) Server() *ec2emu.Server { return lc.srv }

// Cloud is the nspawn instance cloud under the emulator.
func (lc *LocalCloud) Cloud() *testcloud.Cloud { return lc.cloud }

// Instance returns the guest backing EC2 instance id, or nil when the emulator never
// launched one for it (no such id, or Launch has not returned yet or failed).
func (lc *LocalCloud) Instance(id string) *testcloud.Instance {
	lc.be.mu.Lock()
	defer lc.be.mu.Unlock()
	if bi := lc.be.insts[id]; bi != nil {
		return bi.inst
	}
	return nil
}

// WaitIdle waits until the emulator has no backend work queued or running (launches,
// stops, snapshots, terminations), so host-side state matches the API's.
func (lc *LocalCloud) WaitIdle(ctx context.Context) error {
	if err := lc.srv.WaitIdle(ctx); err != nil {
		return fmt.Errorf("local cloud: %w", err)
	}
	return nil
}

// LeakReport is what a run left behind, in the API and on the host.
type LeakReport struct {
	ec2emu.Report
	// Guests lists testcloud instances that are not terminated, as "id (state)".
	Guests []string `json:"guests"`
	// BackendErrors are errors backend calls returned (a failed launch, stop, snapshot...).
	// They do not make the report non-empty, but a test usually wants none.
	BackendErrors []string `json:"backend_errors"`
}

// Empty reports whether no API resource (other than SSM parameters) and no guest is left.
func (r LeakReport) Empty() bool { return r.Report.Empty() && len(r.Guests) == 0 }

// String summarises the report.
func (r LeakReport) String() string {
	s := r.Report.String() + fmt.Sprintf("\nguests=%d", len(r.Guests))
	for _, g := range r.Guests {
		s += "\n  " + g
	}
	for _, e := range r.BackendErrors {
		s += "\n  backend error: " + e
	}
	return s
}

// Leaks waits (up to a minute) for backend work to finish, then reports what is left: the
// emulator's leak report plus guests still alive on the host.
func (lc *LocalCloud) Leaks() LeakReport {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	idleErr := lc.srv.WaitIdle(ctx)
	rep := LeakReport{Report: lc.srv.Leaks(), Guests: []string{}, BackendErrors: []string{}}
	for _, i := range lc.cloud.Instances() {
		rep.Guests = append(rep.Guests, fmt.Sprintf("%s (%s)", i.ID(), i.State()))
	}
	sort.Strings(rep.Guests)
	for _, e := range lc.srv.BackendErrors() {
		rep.BackendErrors = append(rep.BackendErrors, e.Error())
	}
	if idleErr != nil {
		rep.BackendErrors = append(rep.BackendErrors, idleErr.Error())
	}
	return rep
}

func (lc *LocalCloud) logf(format string, args ...any) {
	if lc.opts.Logf != nil {
		lc.opts.Logf("localcloud: "+format, args...)
	}
}

// Available reports whether Start can work here, and if not, what is missing.
func Available() error {
	if m := testcloud.Requirements(); len(m) > 0 {
		return errors.New("local cloud needs: " + strings.Join(m, "; "))
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("local cloud needs network namespaces: %w", err)
	}
	return nil
}
