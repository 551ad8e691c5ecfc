package testcloud

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func testKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

func testImage(t testing.TB, spec ImageSpec) *Image {
	t.Helper()
	RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	img, err := EnsureImage(ctx, spec)
	if err != nil {
		t.Fatalf("EnsureImage(%s): %v", spec.Variant, err)
	}
	return img
}

func sshRun(t *testing.T, i *Instance, user string, signer ssh.Signer, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := i.SSH(ctx, user, signer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("ssh %s@%s %q: %v: %s", user, i.ID(), cmd, err, out)
	}
	return string(out)
}

func mustExec(t *testing.T, i *Instance, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := i.Exec(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const curlIMDSv2 = `TOKEN=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) && ` +
	`curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254`

func TestTwoInstances(t *testing.T) {
	img := testImage(t, BaseImage)
	c := New(t)
	signer, pub := testKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var insts [2]*Instance
	var errs [2]error
	var wg sync.WaitGroup
	for n := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			insts[n], errs[n] = c.Launch(ctx, LaunchSpec{
				Image: img, InstanceID: fmt.Sprintf("i-00000000000000%03d", n), AuthorizedKey: pub,
				Tags: map[string]string{"Name": fmt.Sprintf("node-%d", n)}, UserData: []byte(fmt.Sprintf("user-data-%d", n)),
			})
		}()
	}
	wg.Wait()
	for n, err := range errs {
		if err != nil {
			t.Fatalf("launch %d: %v", n, err)
		}
	}
	a, b := insts[0], insts[1]
	if a.PrivateIP() == b.PrivateIP() || !c.Subnet().Contains(mustAddr(t, a.PrivateIP())) {
		t.Fatalf("addresses %s, %s not distinct in %s", a.PrivateIP(), b.PrivateIP(), c.Subnet())
	}

	for n, i := range insts {
		// Its own IMDS, through the link-local address, with IMDSv2.
		if got := mustExec(t, i, curlIMDSv2+"/latest/meta-data/instance-id"); got != i.ID() {
			t.Errorf("instance %d IMDS instance-id = %q, want %q", n, got, i.ID())
		}
		if got := mustExec(t, i, curlIMDSv2+"/latest/meta-data/local-ipv4"); got != i.PrivateIP() {
			t.Errorf("instance %d IMDS local-ipv4 = %q, want %q", n, got, i.PrivateIP())
		}
		if got := mustExec(t, i, curlIMDSv2+"/latest/meta-data/tags/instance/Name"); got != fmt.Sprintf("node-%d", n) {
			t.Errorf("instance %d Name tag = %q", n, got)
		}
		if got := mustExec(t, i, curlIMDSv2+"/latest/user-data"); got != fmt.Sprintf("user-data-%d", n) {
			t.Errorf("instance %d user-data = %q", n, got)
		}
		// IMDSv1 is refused.
		if got := mustExec(t, i, `curl -s -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/meta-data/instance-id`); got != "401" {
			t.Errorf("instance %d IMDSv1 answered %s, want 401", n, got)
		}
		// The host sees the same service.
		if code, body := imdsGet(t, i.IMDSURL(), "/latest/meta-data/instance-id", true); code != 200 || body != i.ID() {
			t.Errorf("host view of instance %d IMDS = %d %q", n, code, body)
		}
		// systemd really runs the machine.
		if got, _ := i.Exec(ctx, "systemctl is-system-running --wait"); strings.TrimSpace(got) != "running" {
			failed, _ := i.Exec(ctx, "systemctl --failed --no-legend")
			t.Errorf("instance %d system state %q; failed units: %s", n, got, failed)
		}
		// The launch key works over SSH, for root and the cloud user.
		if got := strings.TrimSpace(sshRun(t, i, "root", signer, "cat /etc/hostname")); got != "ip-"+strings.ReplaceAll(i.PrivateIP(), ".", "-") {
			t.Errorf("instance %d hostname %q", n, got)
		}
		if got := strings.TrimSpace(sshRun(t, i, "admin", signer, "sudo -n id -u")); got != "0" {
			t.Errorf("instance %d admin sudo id -u = %q", n, got)
		}
	}

	// Services the host binds on the gateway are reachable from instances
	// (how artifact servers and the EC2 emulator are offered to guests).
	hl, err := net.Listen("tcp", net.JoinHostPort(c.Gateway().String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	hsrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("from-host")) })}
	go func() { _ = hsrv.Serve(hl) }()
	defer hsrv.Close()
	if got := mustExec(t, b, "curl -sf --max-time 5 http://"+hl.Addr().String()+"/"); got != "from-host" {
		t.Errorf("host service on the gateway from instance b = %q", got)
	}

	// Tags changed after launch show up in IMDS.
	a.SetTags(map[string]string{"Name": "renamed", "es:role": "master"})
	if got := mustExec(t, a, curlIMDSv2+"/latest/meta-data/tags/instance"); got != "Name\nes:role" {
		t.Errorf("tags after SetTags = %q", got)
	}

	// The other instance's IMDS is not reachable: neither its host-side
	// URL (loopback is per namespace) nor anything else answers as it.
	other := strings.TrimPrefix(b.IMDSURL(), "http://")
	if out, err := a.Exec(ctx, "curl -s --max-time 2 http://"+other+"/latest/meta-data/instance-id"); err == nil {
		t.Errorf("instance a reached b's IMDS at %s: %q", other, out)
	}

	// A service under systemd, reachable from the host (stand-in HTTP server).
	mustExec(t, a, `cat > /etc/systemd/system/standin-http.service <<'EOF'
[Unit]
Description=stand-in HTTP service for testcloud tests
[Service]
ExecStart=/usr/bin/python3 -m http.server 8080 --directory /etc
EOF
systemctl daemon-reload && systemctl start standin-http.service`)
	if got := strings.TrimSpace(mustExec(t, a, "systemctl is-active standin-http.service")); got != "active" {
		t.Fatalf("stand-in service is %q", got)
	}
	if err := waitHTTP(ctx, "http://"+net.JoinHostPort(a.PrivateIP(), "8080")+"/hostname"); err != nil {
		t.Errorf("stand-in service not reachable from host: %v", err)
	}

	// iptables rules stay inside the instance that set them.
	mustExec(t, a, `iptables -A INPUT -p tcp --dport 9999 -m comment --comment testcloud-marker -j DROP`)
	if !strings.Contains(mustExec(t, a, "iptables -S INPUT"), "testcloud-marker") {
		t.Fatal("marker rule not visible where it was set")
	}
	if out := mustExec(t, b, "iptables -S"); strings.Contains(out, "testcloud-marker") {
		t.Errorf("marker rule leaked into the other instance:\n%s", out)
	}
	if out, err := run(ctx, "iptables", "-S"); err != nil || strings.Contains(out, "testcloud-marker") {
		t.Errorf("marker rule leaked onto the host (err %v):\n%s", err, out)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func waitHTTP(ctx context.Context, url string) error {
	var last error
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestCISImage(t *testing.T) {
	img := testImage(t, CISImage)
	c := New(t)
	signer, pub := testKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	i, err := c.Launch(ctx, LaunchSpec{Image: img, AuthorizedKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/tmp", "/var/tmp"} {
		opts := mustExec(t, i, "findmnt -n -o OPTIONS "+d)
		if !strings.Contains(opts, "noexec") || strings.Count(strings.TrimSpace(opts), "\n") != 0 {
			t.Errorf("%s mount options %q: want exactly one mount, noexec", d, opts)
		}
		if out, err := i.Exec(ctx, "cp /bin/true "+d+"/t && "+d+"/t"); err == nil {
			t.Errorf("executing from %s worked (%q), want permission denied", d, out)
		}
	}
	rules := mustExec(t, i, "iptables -S INPUT")
	for _, want := range []string{"-P INPUT DROP", "--dport 22 -j ACCEPT", "RELATED,ESTABLISHED -j ACCEPT", "-i lo -j ACCEPT"} {
		if !strings.Contains(rules, want) {
			t.Errorf("INPUT rules lack %q:\n%s", want, rules)
		}
	}
	if got := strings.TrimSpace(sshRun(t, i, "root", signer, "umask")); got != "0027" {
		t.Errorf("SSH session umask %q, want 0027", got)
	}
	// IMDS answers through the DROP policy (replies are established).
	if got := mustExec(t, i, curlIMDSv2+"/latest/meta-data/instance-id"); got != i.ID() {
		t.Errorf("IMDS through CIS firewall = %q", got)
	}
	// A listening service other than SSH is firewalled from the host.
	mustExec(t, i, "systemd-run --unit=standin-http /usr/bin/python3 -m http.server 8080 --directory /etc")
	if out := mustExec(t, i, "curl -s -o /dev/null -w '%{http_code}' --retry 20 --retry-connrefused --retry-delay 1 http://127.0.0.1:8080/hostname"); out != "200" {
		t.Fatalf("stand-in service inside = %s", out)
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	if conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(i.PrivateIP(), "8080")); err == nil {
		conn.Close()
		t.Error("port 8080 reachable from the host despite INPUT DROP")
	}
}

func TestSnapshotRebootStopStart(t *testing.T) {
	img := testImage(t, BaseImage)
	c := New(t)
	signer, pub := testKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src, err := c.Launch(ctx, LaunchSpec{Image: img, AuthorizedKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, src, "echo baked > /etc/testcloud-marker && touch /run/testcloud-volatile && rm /etc/issue.net && rm -r /usr/share/doc/sudo")

	// Reboot: /run is fresh, the disk is kept, SSH comes back.
	if err := src.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := src.Exec(ctx, "test -e /run/testcloud-volatile"); err == nil {
		t.Errorf("/run survived the reboot (%q): no reboot happened", out)
	}
	if got := strings.TrimSpace(sshRun(t, src, "root", signer, "cat /etc/testcloud-marker")); got != "baked" {
		t.Errorf("marker after reboot %q", got)
	}

	// Stop / Start keep the disk.
	if err := src.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := src.State(); st != StateStopped {
		t.Fatalf("state after Stop = %s", st)
	}
	if _, err := src.Exec(ctx, "true"); err == nil {
		t.Error("Exec on a stopped instance worked")
	}
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(mustExec(t, src, "cat /etc/testcloud-marker")); got != "baked" {
		t.Errorf("marker after stop/start %q", got)
	}

	// Snapshot -> image -> new instance with the change.
	snap, err := src.SnapshotImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(snap.Dir, "etc/testcloud-marker")); err != nil {
		t.Fatalf("snapshot lacks the change: %v", err)
	}
	// The ref round-trips (the EC2 emulator stores only the ref).
	snap, err = ImageFromDir(snap.Ref(), "")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := c.Launch(ctx, LaunchSpec{Image: snap, AuthorizedKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(sshRun(t, dst, "root", signer, "cat /etc/testcloud-marker")); got != "baked" {
		t.Errorf("instance from snapshot: marker %q", got)
	}
	// Deletions carry over too; untouched files come from the base image.
	if out, err := dst.Exec(ctx, "ls /etc/issue.net /usr/share/doc/sudo"); err == nil {
		t.Errorf("deleted files are back in the snapshot instance: %q", out)
	}
	if got := mustExec(t, dst, "test -x /usr/sbin/sshd && cat /etc/debian_version"); got == "" {
		t.Error("base image content missing under the snapshot layer")
	}

	// A snapshot of an instance booted from a snapshot stacks again.
	mustExec(t, dst, "echo second > /etc/testcloud-marker2")
	snap2, err := dst.SnapshotImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	third, err := c.Launch(ctx, LaunchSpec{Image: snap2})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, third, "cat /etc/testcloud-marker /etc/testcloud-marker2"); got != "baked\nsecond\n" {
		t.Errorf("second-generation snapshot instance sees %q", got)
	}
	if err := third.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(dst.HostKey().Marshal(), src.HostKey().Marshal()) {
		t.Error("instance from snapshot reuses the source's host key")
	}
	if a, b := mustExec(t, dst, "cat /etc/machine-id"), mustExec(t, src, "cat /etc/machine-id"); a == b {
		t.Errorf("machine-id %q shared between source and snapshot instance", a)
	}

	// A power-off from inside ends the run: Stopped() closes, state stopped.
	if _, err := src.Exec(ctx, "systemctl --no-block poweroff"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-src.Stopped():
	case <-ctx.Done():
		t.Fatal("instance did not stop after poweroff")
	}
	if st := src.State(); st != StateStopped {
		t.Errorf("state after guest poweroff = %s", st)
	}

	// Images in use (booted from, or built on) survive ReleaseImage;
	// unused ones go.
	if err := c.ReleaseImage(snap); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(snap.Dir); err != nil {
		t.Errorf("image in use by %s was removed: %v", dst.ID(), err)
	}
	if err := dst.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseImage(snap); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(snap.Dir); err != nil {
		t.Errorf("image another snapshot builds on was removed: %v", err)
	}
	if err := c.ReleaseImage(snap2); err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseImage(snap); err != nil {
		t.Fatal(err)
	}
	for _, im := range []*Image{snap, snap2} {
		if _, err := os.Stat(im.Ref()); !os.IsNotExist(err) {
			t.Errorf("released image %s still there: %v", im.Ref(), err)
		}
	}
	if err := c.ReleaseImage(img); err == nil {
		t.Error("ReleaseImage accepted the cached base image")
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	img := testImage(t, BaseImage)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := NewCloud(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = c.Close()
		}
	}()
	i, err := c.Launch(ctx, LaunchSpec{Image: img})
	if err != nil {
		t.Fatal(err)
	}
	leader, err := i.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i.mu.Lock()
	nspawnPid := i.cmd.Process.Pid
	mockPid := i.imds.cmd.Process.Pid
	i.mu.Unlock()
	dir := c.dir

	closed = true
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	assertNoTrace(t, c.ID(), dir, leader, nspawnPid, mockPid)
}

func assertNoTrace(t *testing.T, id, dir string, pids ...int) {
	t.Helper()
	if ents, _ := os.ReadDir("/run/netns"); len(ents) > 0 {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), namePrefix+"-"+id) {
				t.Errorf("netns %s left", e.Name())
			}
		}
	}
	ents, _ := os.ReadDir("/sys/class/net")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), namePrefix+id) {
			t.Errorf("link %s left", e.Name())
		}
	}
	for _, r := range cgroupRoots() {
		cgs, _ := filepath.Glob(filepath.Join(r, namePrefix+"-"+id+"-*"))
		if len(cgs) > 0 {
			t.Errorf("cgroups left: %v", cgs)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), dir) {
		t.Errorf("mounts under %s left", dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("run dir %s left (%v)", dir, err)
	}
	for _, p := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p)); err == nil {
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			if !strings.Contains(string(st), ") Z ") {
				t.Errorf("process %d left: %s", p, st)
			}
		}
	}
}

// A crashed run leaves a run dir nobody holds, a netns, a link and a
// mount; the next cloud removes them.
func TestReapLeftovers(t *testing.T) {
	RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := "dead"
	dir := filepath.Join(RunDir(), id)
	ns := namePrefix + "-" + id + "-1"
	link := namePrefix + id + "br"
	if err := os.MkdirAll(filepath.Join(dir, "pids", "x", "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reapCloud(context.Background(), id, dir) })
	for _, args := range [][]string{{"netns", "add", ns}, {"link", "add", link, "type", "bridge"}} {
		if _, err := run(ctx, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run(ctx, "mount", "-t", "tmpfs", "tmpfs", filepath.Join(dir, "pids", "x", "mnt")); err != nil {
		t.Fatal(err)
	}
	cgs, err := makeCgroups(namePrefix + "-" + id + "-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, cg := range cgs {
		if err := os.Mkdir(filepath.Join(cg, "payload"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := ReapLeftovers(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoTrace(t, id, dir)
}

// A run with another ESBAKE_CACHE has its own run dirs but shares the
// host's namespaces and links: its reaping must leave a live cloud of this
// run alone, and a cloud of this run must still be reaped once it is gone.
func TestReapSparesLiveCloudsOfOtherCaches(t *testing.T) {
	RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := NewCloud(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if !linkExists(c.bridge) {
		t.Fatalf("bridge %s missing", c.bridge)
	}
	t.Setenv("ESBAKE_CACHE", t.TempDir())
	if err := ReapLeftovers(ctx); err != nil {
		t.Fatal(err)
	}
	if !linkExists(c.bridge) {
		t.Fatalf("a run with another cache reaped the live cloud %s (bridge %s gone)", c.ID(), c.bridge)
	}
	// Dead: the liveness locks released, the bridge left behind as a
	// crash would leave it.
	c.alive()
	if err := ReapLeftovers(ctx); err != nil {
		t.Fatal(err)
	}
	if linkExists(c.bridge) {
		t.Errorf("the bridge %s of a dead cloud survived reaping by a run with another cache", c.bridge)
	}
}

// Clouds started together (parallel test packages) get their own subnet
// and bridge, and reject addresses they cannot route.
func TestCloudsAreIndependent(t *testing.T) {
	RequireHost(t)
	var cs [2]*Cloud
	var errs [2]error
	var wg sync.WaitGroup
	for n := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cs[n], errs[n] = NewCloud(ctx, Config{})
		}()
	}
	wg.Wait()
	for n := range cs {
		if errs[n] != nil {
			t.Fatal(errs[n])
		}
		c := cs[n]
		t.Cleanup(func() { _ = c.Close() })
	}
	if cs[0].Subnet().Overlaps(cs[1].Subnet()) || cs[0].ID() == cs[1].ID() {
		t.Fatalf("clouds share subnet or id: %s/%s %s/%s", cs[0].ID(), cs[0].Subnet(), cs[1].ID(), cs[1].Subnet())
	}
	if !cs[0].Subnet().Contains(cs[0].Gateway()) || !linkExists(cs[0].bridge) {
		t.Fatalf("gateway %s / bridge %s missing", cs[0].Gateway(), cs[0].bridge)
	}
	ctx := context.Background()
	img := &Image{Dir: t.TempDir(), Name: "unused"}
	if _, err := cs[0].Launch(ctx, LaunchSpec{Image: img, PrivateIP: "192.0.2.10"}); err == nil || !strings.Contains(err.Error(), "not a host address") {
		t.Errorf("launch outside the subnet: %v", err)
	}
	if _, err := cs[0].Launch(ctx, LaunchSpec{Image: img, PrivateIP: cs[0].Gateway().String()}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("launch on the gateway address: %v", err)
	}
	if _, err := cs[0].Launch(ctx, LaunchSpec{}); err == nil {
		t.Error("launch without an image worked")
	}
	dir, id := cs[0].dir, cs[0].ID()
	if err := cs[0].Close(); err != nil {
		t.Fatal(err)
	}
	assertNoTrace(t, id, dir)
	if !linkExists(cs[1].bridge) {
		t.Error("closing one cloud removed the other's bridge")
	}
}

func TestZonePlacement(t *testing.T) {
	vpc := netip.MustParsePrefix("10.213.9.0/24")
	lo, hi := splitPrefix(vpc)
	if lo.String() != "10.213.9.0/25" || hi.String() != "10.213.9.128/25" {
		t.Fatalf("splitPrefix(%s) = %s, %s", vpc, lo, hi)
	}
	c := &Cloud{subnet: vpc, usedIPs: map[netip.Addr]bool{}, zones: []Zone{
		{Letter: "a", CIDR: lo, Gateway: lo.Addr().Next(), SubnetID: "subnet-a"},
		{Letter: "b", CIDR: hi, Gateway: hi.Addr().Next(), SubnetID: "subnet-b"}}}
	for _, z := range c.zones {
		c.usedIPs[z.Gateway] = true
	}
	for _, tc := range []struct {
		spec     LaunchSpec
		zone, ip string
	}{
		{LaunchSpec{}, "a", "10.213.9.10"},
		{LaunchSpec{AZ: "us-east-1b"}, "b", "10.213.9.138"},
		{LaunchSpec{SubnetCIDR: "10.213.9.128/25"}, "b", "10.213.9.139"},
		{LaunchSpec{SubnetID: "subnet-a"}, "a", "10.213.9.11"},
		{LaunchSpec{PrivateIP: "10.213.9.200", AZ: "us-east-1a"}, "b", "10.213.9.200"},
	} {
		_, zi, ip, err := c.allocate(tc.spec)
		if err != nil || c.zones[zi].Letter != tc.zone || ip.String() != tc.ip {
			t.Errorf("allocate(%+v) = zone %s %s %v, want zone %s %s", tc.spec, c.zones[zi].Letter, ip, err, tc.zone, tc.ip)
		}
	}
	for _, bad := range []LaunchSpec{{PrivateIP: "10.213.9.129"}, {PrivateIP: "10.213.9.127"}, {PrivateIP: "10.213.10.5"}, {AZ: "us-east-1c"}} {
		if _, _, ip, err := c.allocate(bad); err == nil {
			t.Errorf("allocate(%+v) = %s, want an error", bad, ip)
		}
	}
	s := c.withDefaults(LaunchSpec{}, c.zones[1], netip.MustParseAddr("10.213.9.140"))
	if s.SubnetCIDR != hi.String() || s.VPCCIDR != vpc.String() || s.AZ != "us-east-1b" || s.SubnetID != "subnet-b" {
		t.Errorf("IMDS defaults in zone b: %+v", s)
	}
}
