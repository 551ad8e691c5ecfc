package e2e

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/vm"
	"github.com/esbake/packer-plugin-elasticsearch/node/boot"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// vmMaxMapCount is an unusual vm.max_map_count (above Elasticsearch's
// minimum, so the spec validates), one no kernel has by default.
const vmMaxMapCount = 262201

// TestE2EBootOnVMKernel is what a container cannot show: a node baked (on
// a fast nspawn guest) with system.max_map_count set, booted in QEMU with
// its own kernel. esnode boot runs at boot from IMDS reached through the
// VM's metadata NIC, the guest kernel has the spec's vm.max_map_count
// (the host's differs), and after a real reboot boot runs again, the
// rendered files are unchanged and the sysctl is applied again. The node
// is 7.17: an 8.x node needs its transport TLS material from Parameter
// Store (esnode boot refuses it otherwise), which the VM's restricted
// user-mode network does not reach; the kernel behaviour is the same.
func TestE2EBootOnVMKernel(t *testing.T) {
	vm.RequireHost(t) // includes testcloud's needs (the bake runs on nspawn)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	host, err := os.ReadFile("/proc/sys/vm/max_map_count")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(host)) == strconv.Itoa(vmMaxMapCount) {
		t.Fatalf("the host's vm.max_map_count is already %d: the test could not tell the guest's kernel from the host's", vmMaxMapCount)
	}

	cloud := testcloud.New(t)
	// Baked on a fast nspawn guest from the image QEMU boots, with an
	// unusual max_map_count so the guest kernel's value proves boot set it.
	img := bakeNodeWith(t, cloud, bakeOptions{Base: testcloud.KernelImage, Version: es7Version,
		Spec: func(n *spec.Node) { n.System.MaxMapCount = vmMaxMapCount }}).Image
	t0 := time.Now()
	disk, err := vm.NewDisk(ctx, img, t.TempDir())
	if err != nil {
		t.Fatalf("VM disk from the baked image: %v", err)
	}
	t.Logf("VM disk from the baked image in %s", time.Since(t0).Round(time.Second))

	key := NewKey(t)
	const id = "i-0e2e0000000000f01"
	g := vm.LaunchT(t, ctx, vm.LaunchSpec{Disk: disk, AuthorizedKey: key.Authorized, MemoryMB: 1536,
		IMDS: testcloud.IMDSConfig{InstanceID: id, Tags: map[string]string{"es_cluster": clusterTag},
			UserData: []byte("cluster_name=" + clusterTag + "\nheap_percent=40\n")}})
	t.Logf("disk and full boot (%s) to SSH in %s", vm.Accel(), time.Since(t0).Round(time.Second))
	sh := func(cmd string) string {
		t.Helper()
		out, err := g.Exec(ctx, cmd)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}

	// The launch key works for admin, as on EC2.
	c, err := g.SSH(ctx, "admin", key.Signer)
	if err != nil {
		t.Fatalf("SSH as admin with the launch key: %v", err)
	}
	c.Close()

	first := checkVMBoot(t, ctx, g, id)
	sums := fileSums(t, ctx, g, first, boot.ElasticsearchYML, boot.HeapFile)
	if got := sh("cat /proc/sys/vm/max_map_count"); got != strconv.Itoa(vmMaxMapCount) {
		t.Errorf("guest kernel vm.max_map_count = %s, want the spec's %d", got, vmMaxMapCount)
	}
	if now, _ := os.ReadFile("/proc/sys/vm/max_map_count"); string(now) != string(host) {
		t.Errorf("the host's vm.max_map_count changed from %q to %q", host, now)
	}

	oldBoot, err := g.BootID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if err := g.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("reboot to SSH in %s", time.Since(t0).Round(time.Second))
	if newBoot, _ := g.BootID(ctx); newBoot == oldBoot {
		t.Fatalf("boot id %s unchanged: the VM did not reboot", newBoot)
	}
	second := checkVMBoot(t, ctx, g, id)
	if !second.BootedAt.After(first.BootedAt) {
		t.Errorf("boot.json booted_at %s after the reboot, %s before: esnode boot did not run again", second.BootedAt, first.BootedAt)
	}
	if got := fileSums(t, ctx, g, second, boot.ElasticsearchYML, boot.HeapFile); got != sums {
		t.Errorf("the reboot changed what boot rendered:\nbefore:\n%s\nafter:\n%s", sums, got)
	}
	if got := sh("cat /proc/sys/vm/max_map_count"); got != strconv.Itoa(vmMaxMapCount) {
		t.Errorf("after the reboot the guest kernel's vm.max_map_count = %s, want %d", got, vmMaxMapCount)
	}
	if now, _ := os.ReadFile("/proc/sys/vm/max_map_count"); string(now) != string(host) {
		t.Errorf("the host's vm.max_map_count changed from %q to %q", host, now)
	}
}

// checkVMBoot waits for esnode-boot.service of the current boot and checks
// it ran successfully from IMDS; it returns boot.json.
func checkVMBoot(t *testing.T, ctx context.Context, g *vm.VM, id string) *boot.State {
	t.Helper()
	var state string
	for deadline := time.Now().Add(5 * time.Minute); ; {
		out, _ := g.Exec(ctx, "systemctl is-active esnode-boot.service || true")
		state = strings.TrimSpace(out)
		if state == "active" || state == "failed" || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	journal, _ := g.Exec(ctx, "journalctl -b -u esnode-boot.service -o cat --no-pager | tail -40")
	if state != "active" {
		t.Fatalf("esnode-boot.service is %q, want active\njournal:\n%s", state, journal)
	}
	if !strings.Contains(journal, "esnode boot: ") {
		t.Errorf("esnode-boot's journal of this boot has no esnode boot summary:\n%s", journal)
	}
	out, err := g.Exec(ctx, "systemctl show -p Result -p ExecMainStartTimestampMonotonic --value esnode-boot.service")
	if f := strings.Fields(out); err != nil || len(f) != 2 || f[0] != "success" || f[1] == "0" {
		t.Errorf("esnode-boot.service Result and start %q (%v), want success at this boot", out, err)
	}
	st := readBootState(t, ctx, g)
	if st.InstanceID != id || st.ClusterName != clusterTag || st.LocalIPv4 != testcloud.VMGuestIP {
		t.Errorf("boot.json: instance %s cluster %s ip %s; IMDS serves %s %s %s", st.InstanceID, st.ClusterName, st.LocalIPv4, id, clusterTag, testcloud.VMGuestIP)
	}
	return st
}
