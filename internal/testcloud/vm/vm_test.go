package vm

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
)

func newKey(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, string(ssh.MarshalAuthorizedKey(s.PublicKey()))
}

var (
	snapOnce sync.Once
	snap     *Snapshot
	snapErr  error
)

// testSnapshot is the cached saved state of the kernel image (built on
// first use: image ~30 s on top of the CIS image, disk ~20 s, one full
// boot).
func testSnapshot(t testing.TB) *Snapshot {
	t.Helper()
	snapOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		d, err := BaseDisk(ctx)
		if err != nil {
			snapErr = err
			return
		}
		snap, snapErr = EnsureSnapshot(ctx, d)
	})
	if snapErr != nil {
		t.Fatal(snapErr)
	}
	return snap
}

// sshRun runs cmd over c and returns its output.
func sshRun(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// imdsFromGuest is what the guest gets from 169.254.169.254 with IMDSv2
// (token PUT, then GET with the token), and what it gets without a token.
const imdsFromGuest = `set -e
tok=$(curl -sf -m 20 --retry 15 --retry-connrefused --retry-delay 1 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
id=$(curl -sf -m 20 -H "X-aws-ec2-metadata-token: $tok" http://169.254.169.254/latest/meta-data/instance-id)
v1=$(curl -s -m 20 -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/meta-data/instance-id)
echo "$id $v1"
`

// TestVMRestoredFromSnapshot restores two VMs from the saved state and
// checks, in each, SSH with its own launch key and its own IMDS through
// the guestfwd NIC; then that a sysctl in one guest changes its kernel
// and not the host's, and that a reboot inside it comes back.
func TestVMRestoredFromSnapshot(t *testing.T) {
	RequireHost(t)
	s := testSnapshot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	type guest struct {
		vm     *VM
		signer ssh.Signer
		id     string
	}
	var guests []*guest
	for i, id := range []string{"i-0a11ce0000000001a", "i-0b0b000000000002b"} {
		signer, pub := newKey(t)
		v := LaunchT(t, ctx, LaunchSpec{Snapshot: s, AuthorizedKey: pub, Hostname: fmt.Sprintf("vm-%d", i),
			IMDS: testcloud.IMDSConfig{InstanceID: id, Tags: map[string]string{"Name": fmt.Sprintf("vm-%d", i)}}})
		guests = append(guests, &guest{vm: v, signer: signer, id: id})
	}

	for i, g := range guests {
		t.Run(g.id, func(t *testing.T) {
			c, err := g.vm.SSH(ctx, "admin", g.signer)
			if err != nil {
				t.Fatalf("SSH as admin with the launch key: %v", err)
			}
			defer c.Close()
			out, err := sshRun(c, "hostname; date +%s")
			if err != nil {
				t.Fatalf("hostname over SSH: %v: %s", err, out)
			}
			f := strings.Fields(out)
			if len(f) != 2 || f[0] != fmt.Sprintf("vm-%d", i) {
				t.Errorf("guest says %q, want hostname vm-%d and a date", out, i)
			} else if sec, _ := strconv.ParseInt(f[1], 10, 64); sec < time.Now().Add(-5*time.Minute).Unix() {
				t.Errorf("guest clock %s is stale after the restore (host %s)", time.Unix(sec, 0).UTC(), time.Now().UTC())
			}
			// The other guest's key is not accepted here.
			other := guests[1-i]
			if c2, err := g.vm.SSH(ctx, "admin", other.signer); err == nil {
				c2.Close()
				t.Errorf("VM %s accepts the launch key of VM %s", g.id, other.id)
			}
			out, err = sshRun(c, imdsFromGuest)
			if err != nil {
				t.Fatalf("IMDSv2 from the guest: %v: %s", err, out)
			}
			if got := strings.Fields(out); len(got) != 2 || got[0] != g.id || got[1] != "401" {
				t.Errorf("guest's IMDS: instance-id and tokenless status %q, want %s and 401", out, g.id)
			}
		})
	}

	a := guests[0]
	t.Run("sysctl-is-the-guest-kernels", func(t *testing.T) {
		hostBefore, err := os.ReadFile("/proc/sys/vm/max_map_count")
		if err != nil {
			t.Fatal(err)
		}
		want := 262147
		if strings.TrimSpace(string(hostBefore)) == strconv.Itoa(want) {
			want = 262149
		}
		out, err := a.vm.Exec(ctx, fmt.Sprintf("sysctl -w vm.max_map_count=%d >/dev/null && cat /proc/sys/vm/max_map_count", want))
		if err != nil {
			t.Fatalf("sysctl in the guest: %v: %s", err, out)
		}
		if strings.TrimSpace(out) != strconv.Itoa(want) {
			t.Errorf("guest vm.max_map_count is %q after sysctl -w %d", out, want)
		}
		hostAfter, _ := os.ReadFile("/proc/sys/vm/max_map_count")
		if string(hostAfter) != string(hostBefore) {
			t.Errorf("sysctl in the guest changed the host's vm.max_map_count: %q → %q", hostBefore, hostAfter)
		}
		other, err := guests[1].vm.Exec(ctx, "cat /proc/sys/vm/max_map_count")
		if err != nil || strings.TrimSpace(other) == strconv.Itoa(want) {
			t.Errorf("the other guest's vm.max_map_count is %q (%v), want its own kernel's default", other, err)
		}
	})

	t.Run("reboot-inside", func(t *testing.T) {
		before, err := a.vm.BootID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.vm.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		after, err := a.vm.BootID(ctx)
		if err != nil || after == before {
			t.Fatalf("boot id %q after the reboot (%v), %q before", after, err, before)
		}
		c, err := a.vm.SSH(ctx, "admin", a.signer)
		if err != nil {
			t.Fatalf("SSH with the launch key after the reboot: %v", err)
		}
		defer c.Close()
		out, err := sshRun(c, "cat /proc/sys/vm/max_map_count; hostname")
		if err != nil {
			t.Fatal(err)
		}
		// A fresh kernel: the sysctl set by hand is gone, the hostname
		// written to /etc/hostname stays.
		if f := strings.Fields(out); len(f) != 2 || f[0] != "65530" || f[1] != "vm-0" {
			t.Errorf("after the reboot: max_map_count and hostname %q, want the kernel default 65530 and vm-0", out)
		}
		if out, err := sshRun(c, imdsFromGuest); err != nil || !strings.HasPrefix(out, a.id+" ") {
			t.Errorf("IMDS after the reboot: %q (%v), want instance id %s", out, err, a.id)
		}
	})
}
