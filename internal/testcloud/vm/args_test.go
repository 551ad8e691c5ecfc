package vm

import (
	"strings"
	"testing"
)

// TestQEMUArgs checks the command line's isolation and wiring without
// running QEMU: SSH only on the host's loopback, both NICs restricted,
// 169.254.169.254:80 forwarded to this VM's IMDS port and nothing else,
// and a restore reading the state file.
func TestQEMUArgs(t *testing.T) {
	o := qemuOpts{dir: "/run/x/vm-1", disk: "/run/x/vm-1/disk.qcow2", kernel: "/k", initrd: "/i",
		m: machine{MemoryMB: 1024, CPUs: 2}, imdsPort: 41234, incoming: "/c/snap/state"}
	args := qemuArgs(o, 2222)
	joined := strings.Join(args, "\n")
	var netdevs []string
	for i, a := range args {
		if a == "-netdev" && i+1 < len(args) {
			netdevs = append(netdevs, args[i+1])
		}
	}
	if len(netdevs) != 2 {
		t.Fatalf("want two user-mode NICs, got %q", netdevs)
	}
	for _, n := range netdevs {
		if !strings.HasPrefix(n, "user,") || !strings.Contains(n, ",restrict=on") {
			t.Errorf("netdev %q is not a restricted user-mode network", n)
		}
	}
	if want := "hostfwd=tcp:127.0.0.1:2222-:22"; !strings.Contains(netdevs[0], want) {
		t.Errorf("eth0 %q lacks %s", netdevs[0], want)
	}
	if want := "net=169.254.169.0/24,guestfwd=tcp:169.254.169.254:80-cmd:socat - TCP:127.0.0.1:41234"; !strings.Contains(netdevs[1], want) {
		t.Errorf("eth1 %q lacks %s", netdevs[1], want)
	}
	if strings.Contains(netdevs[1], "hostfwd") || strings.Count(netdevs[1], "guestfwd") != 1 {
		t.Errorf("eth1 %q must forward only the IMDS address", netdevs[1])
	}
	if !strings.Contains(joined, "-incoming\nexec:cat '/c/snap/state'") {
		t.Errorf("restore does not read the state file:\n%s", joined)
	}
	if Accel() == "tcg" && !strings.Contains(joined, "-machine\npc,hpet=off") {
		t.Errorf("TCG without -machine pc,hpet=off:\n%s", joined)
	}
	o.incoming, o.imdsPort = "", 0
	plain := strings.Join(qemuArgs(o, 2222), "\n")
	if strings.Contains(plain, "-incoming") || !strings.Contains(plain, "cmd:socat - OPEN:/dev/null") {
		t.Errorf("a boot without IMDS or state:\n%s", plain)
	}
}
