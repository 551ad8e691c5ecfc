package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/node/boot"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// bootNode is one guest launched from the baked image and what boot must
// have made of it.
type bootNode struct {
	name        string
	userdata    string
	tags        map[string]string
	vpc         string
	heapPercent int
	source      string // boot.json cluster_name_source
	inst        *testcloud.Instance
}

// TestE2EBootOnGuest launches two nodes from a baked image (userdata empty
// with the es_cluster tag, and a key=value userdata) and checks on each
// guest that esnode-boot ran from its unit before Elasticsearch, rendered
// the per-boot files from IMDSv2, opened the ports to the metadata's subnet
// only, and that `esnode facts` reports the stand-in Elasticsearch really
// listening with the heap the files give. A reboot and a second boot by
// hand change nothing.
func TestE2EBootOnGuest(t *testing.T) {
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	cloud := testcloud.New(t)
	img := bakeImage(t, cloud)
	subnet := cloud.Subnet().String()
	key := NewKey(t)
	// The cluster's TLS material; zebra-cluster's for the dry run's tag change.
	secrets := guestSecrets(t, ctx, cloud, clusterTag, "zebra-cluster")

	nodes := []*bootNode{
		{name: "tag-only", userdata: "", tags: map[string]string{"es_cluster": clusterTag},
			vpc: vpcAround(cloud.Subnet()), heapPercent: 50, source: "tag es_cluster"},
		{name: "keyvalue-userdata", userdata: "cluster_name=" + clusterTag + "\nheap_percent=40\n",
			tags: map[string]string{"es_cluster": clusterTag}, vpc: vpcAround(cloud.Subnet()),
			heapPercent: 40, source: "userdata cluster_name"},
	}
	for _, n := range nodes {
		ls := testcloud.LaunchSpec{Image: img, AuthorizedKey: key.Authorized,
			Tags: n.tags, UserData: []byte(n.userdata), SubnetCIDR: subnet, VPCCIDR: n.vpc,
			BootTimeout: guestBootTimeout}
		secrets(&ls)
		inst, err := cloud.Launch(ctx, ls)
		if err != nil {
			t.Fatalf("launch %s from the baked image: %v", n.name, err)
		}
		n.inst = inst
	}

	for _, n := range nodes {
		t.Run(n.name, func(t *testing.T) {
			checkBootedNode(t, ctx, n, subnet)
		})
	}

	a := nodes[0]
	t.Run("reboot-changes-nothing", func(t *testing.T) {
		before := readBootState(t, ctx, a.inst)
		sums := fileSums(t, ctx, a.inst, before)
		if err := a.inst.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		checkBootedNode(t, ctx, a, subnet)
		after := readBootState(t, ctx, a.inst)
		if !after.BootedAt.After(before.BootedAt) {
			t.Errorf("boot.json booted_at %s after the reboot, %s before: esnode-boot did not run again", after.BootedAt, before.BootedAt)
		}
		if got := fileSums(t, ctx, a.inst, after); got != sums {
			t.Errorf("the reboot changed per-boot files:\nbefore:\n%s\nafter:\n%s", sums, got)
		}
	})

	t.Run("second-boot-by-hand", func(t *testing.T) {
		before := readBootState(t, ctx, a.inst)
		sums := fileSums(t, ctx, a.inst, before)
		out, err := a.inst.Exec(ctx, byHand+"boot 2>&1")
		if err != nil {
			t.Fatalf("esnode boot by hand: %v\n%s", err, out)
		}
		if !strings.Contains(out, "esnode boot: nothing to change") {
			t.Errorf("a second esnode boot did not say it changed nothing:\n%s", out)
		}
		if got := fileSums(t, ctx, a.inst, before); got != sums {
			t.Errorf("a second esnode boot changed files:\nbefore:\n%s\nafter:\n%s", sums, got)
		}
	})

	t.Run("dry-run-shows-diff-changes-nothing", func(t *testing.T) {
		st := readBootState(t, ctx, a.inst)
		sums := fileSums(t, ctx, a.inst, st)
		a.inst.SetTags(map[string]string{"es_cluster": "zebra-cluster"})
		defer a.inst.SetTags(a.tags)
		out, err := a.inst.Exec(ctx, byHand+"boot --dry-run 2>&1")
		if err != nil {
			t.Fatalf("esnode boot --dry-run: %v\n%s", err, out)
		}
		for _, want := range []string{"--- a" + boot.ElasticsearchYML, "-cluster.name: \"" + clusterTag + "\"", "+cluster.name: \"zebra-cluster\"", "would change"} {
			if !strings.Contains(out, want) {
				t.Errorf("dry run after a tag change lacks %q:\n%s", want, out)
			}
		}
		if got := fileSums(t, ctx, a.inst, st); got != sums {
			t.Errorf("--dry-run changed files:\nbefore:\n%s\nafter:\n%s", sums, got)
		}
		if after := readBootState(t, ctx, a.inst); !after.BootedAt.Equal(st.BootedAt) {
			t.Errorf("--dry-run rewrote boot.json (booted_at %s, was %s)", after.BootedAt, st.BootedAt)
		}
	})
}

// checkBootedNode asserts everything a boot from the baked image must have
// produced on n's guest.
func checkBootedNode(t *testing.T, ctx context.Context, n *bootNode, subnet string) {
	t.Helper()
	inst := n.inst
	ip, id := inst.PrivateIP(), inst.ID()
	sh := func(cmd string) string {
		t.Helper()
		out, err := inst.Exec(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	bootSt, esSt := waitUnitsSettled(wctx, inst)
	cancel()
	if bootSt != "active" || esSt != "active" {
		t.Fatalf("esnode-boot.service is %q and elasticsearch.service %q, want both active\nesnode-boot journal:\n%s\nelasticsearch journal:\n%s",
			bootSt, esSt, sh("journalctl -b -u esnode-boot.service --no-pager | tail -40"),
			sh("journalctl -b -u elasticsearch.service --no-pager | tail -20"))
	}

	// esnode-boot ran at this boot, from its unit, and finished before
	// Elasticsearch was started.
	show := func(unit, prop string) string {
		t.Helper()
		return sh("systemctl show -p " + prop + " --value " + unit)
	}
	if r := show("esnode-boot.service", "Result"); r != "success" {
		t.Errorf("esnode-boot.service Result=%s", r)
	}
	mono := func(unit, prop string) uint64 {
		t.Helper()
		v, err := strconv.ParseUint(show(unit, prop), 10, 64)
		if err != nil {
			t.Fatalf("%s %s: %v", unit, prop, err)
		}
		return v
	}
	bootStart := mono("esnode-boot.service", "ExecMainStartTimestampMonotonic")
	bootExit := mono("esnode-boot.service", "ExecMainExitTimestampMonotonic")
	bootActive := mono("esnode-boot.service", "ActiveEnterTimestampMonotonic")
	esStart := mono("elasticsearch.service", "ExecMainStartTimestampMonotonic")
	if bootStart == 0 || bootExit == 0 || esStart == 0 {
		t.Errorf("esnode-boot ran %d..%d, elasticsearch started at %d (µs since boot): a unit did not run at this boot", bootStart, bootExit, esStart)
	}
	if bootExit > esStart || bootActive > esStart {
		t.Errorf("elasticsearch.service started at %d µs, before esnode-boot finished (exit %d µs, active %d µs)", esStart, bootExit, bootActive)
	}
	if j := sh("journalctl -b -u esnode-boot.service -o cat --no-pager"); !strings.Contains(j, "esnode boot: ") {
		t.Errorf("esnode-boot's journal of this boot has no esnode boot summary:\n%s", j)
	}
	// 8.x starts only with transport TLS: the cluster's material, from Parameter Store.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		j := sh("journalctl -b -u elasticsearch.service -o cat --no-pager")
		if strings.Contains(j, "transport TLS on (verification_mode certificate, client_authentication required)") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the stand-in did not turn transport TLS on:\n%s", j)
			break
		}
	}
	if j := sh("journalctl -b -u esnode-boot.service -o cat --no-pager"); strings.Contains(j, "PRIVATE KEY") || strings.Contains(j, elasticPassword) {
		t.Errorf("a secret in esnode-boot's journal")
	}

	st := readBootState(t, ctx, inst)
	if st.InstanceID != id || st.LocalIPv4 != ip || st.SubnetCIDR != subnet || st.VPCCIDR != n.vpc {
		t.Errorf("boot.json saw instance %s ip %s subnet %s vpc %s; IMDS serves %s %s %s %s",
			st.InstanceID, st.LocalIPv4, st.SubnetCIDR, st.VPCCIDR, id, ip, subnet, n.vpc)
	}
	if st.ClusterName != clusterTag || st.ClusterNameSource != n.source {
		t.Errorf("cluster %q from %q, want %q from %q", st.ClusterName, st.ClusterNameSource, clusterTag, n.source)
	}

	// The managed block of elasticsearch.yml, as facts flattens it.
	fc := guestFacts(t, ctx, inst)
	yml := fc.Elasticsearch.YML
	// Reindex sources span the VPC (a subnet is one AZ).
	wl, err := boot.ReindexWhitelist(n.vpc, spec.DefaultHTTPPort)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"cluster.name":                 clusterTag,
		"node.name":                    id,
		"network.host":                 ip,
		"discovery.seed_providers":     "ec2",
		"discovery.ec2.tag.es_cluster": clusterTag,
		"discovery.ec2.host_type":      "private_ip",
		"reindex.remote.whitelist":     strings.Join(wl, ","),
	} {
		if got := ymlString(yml[k]); got != want {
			t.Errorf("elasticsearch.yml %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := yml["cluster.initial_master_nodes"]; ok {
		t.Errorf("elasticsearch.yml sets cluster.initial_master_nodes on an auto-scaled node: %v", yml["cluster.initial_master_nodes"])
	}
	if len(fc.Elasticsearch.YMLErrors) > 0 {
		t.Errorf("elasticsearch.yml errors: %v", fc.Elasticsearch.YMLErrors)
	}
	ymlText := sh("cat " + boot.ElasticsearchYML)
	if strings.Count(ymlText, boot.BeginMarker) != 1 || strings.Count(ymlText, boot.EndMarker) != 1 {
		t.Errorf("elasticsearch.yml must hold exactly one managed block:\n%s", ymlText)
	}

	// Heap: percent of the guest's MemTotal, clamped, in jvm.options.d.
	memKB, err := strconv.ParseUint(sh("awk '/^MemTotal:/ {print $2}' /proc/meminfo"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	wantMB := int(memKB/1024) * n.heapPercent / 100
	wantMB = max(wantMB, spec.DefaultHeapMinMB)
	wantMB = min(wantMB, spec.DefaultHeapMaxMB)
	heapFile := sh("cat " + boot.HeapFile)
	if !hasLine(heapFile, fmt.Sprintf("-Xms%dm", wantMB)) || !hasLine(heapFile, fmt.Sprintf("-Xmx%dm", wantMB)) || strings.Count(heapFile, "-Xm") != 2 {
		t.Errorf("%s for %d%% of %d kB, want -Xms%dm -Xmx%dm:\n%s", boot.HeapFile, n.heapPercent, memKB, wantMB, wantMB, heapFile)
	}
	wantBytes := int64(wantMB) << 20
	if h := fc.Elasticsearch.Heap; h.XmsBytes != wantBytes || h.XmxBytes != wantBytes {
		t.Errorf("facts heap from the files Xms %d Xmx %d, want %d", h.XmsBytes, h.XmxBytes, wantBytes)
	}
	if p := fc.Elasticsearch.Process; p == nil {
		t.Errorf("facts found no running Elasticsearch process")
	} else {
		if p.XmsBytes != fc.Elasticsearch.Heap.XmsBytes || p.XmxBytes != fc.Elasticsearch.Heap.XmxBytes {
			t.Errorf("live process heap Xms %d Xmx %d differs from the files' %d %d", p.XmsBytes, p.XmxBytes, fc.Elasticsearch.Heap.XmsBytes, fc.Elasticsearch.Heap.XmxBytes)
		}
		if p.User != "elasticsearch" {
			t.Errorf("Elasticsearch runs as %q, want elasticsearch", p.User)
		}
	}

	// facts reports what is really listening: the stand-in on the
	// instance's address, as elasticsearch, and the host can reach it.
	for _, port := range []int{spec.DefaultHTTPPort, spec.DefaultTransportPort} {
		var found []facts.Listener
		for _, l := range fc.Listeners {
			if l.Port == port {
				found = append(found, l)
			}
		}
		if len(found) != 1 || found[0].Address != ip || found[0].User != "elasticsearch" || found[0].Process == "" || found[0].PID != pidOf(fc.Elasticsearch.Process) {
			t.Errorf("listeners on %d: %+v; want one on %s by the elasticsearch process (pid %d, user elasticsearch)", port, found, ip, pidOf(fc.Elasticsearch.Process))
		}
	}
	if body, err := httpGet(ctx, "http://"+ip+":9200/"); err != nil {
		t.Errorf("GET / of the node from the host (in its subnet): %v", err)
	} else if !strings.Contains(body, clusterTag) {
		t.Errorf("the node answers GET / without its cluster name %q:\n%s", clusterTag, body)
	}

	// Firewall: Elasticsearch's ports from the VPC (nodes span AZs), HQ
	// from the subnet, SSH from the VPC, everything else dropped.
	if st.FirewallBackend != spec.FirewallIPTables {
		t.Fatalf("boot chose the %q firewall backend; the CIS image uses iptables", st.FirewallBackend)
	}
	rules := sh("iptables -S")
	for _, want := range []string{"-P INPUT DROP", "-A INPUT -j " + boot.Chain} {
		if !hasLine(rules, want) {
			t.Errorf("iptables -S lacks %q:\n%s", want, rules)
		}
	}
	for port, src := range map[int]string{9200: n.vpc, 9300: n.vpc, 5000: subnet, 22: n.vpc} {
		var got []string
		for _, l := range strings.Split(rules, "\n") {
			if strings.HasPrefix(l, "-A "+boot.Chain+" ") && strings.Contains(l, fmt.Sprintf("--dport %d ", port)) {
				got = append(got, l)
			}
		}
		// Accepted from its sources, then dropped for everyone else, so
		// the image's own accepts after the jump (SSH from anywhere on
		// the CIS image) cannot widen it.
		want := []string{
			fmt.Sprintf("-A %s -s %s -p tcp -m tcp --dport %d -j ACCEPT", boot.Chain, src, port),
			fmt.Sprintf("-A %s -p tcp -m tcp --dport %d -j DROP", boot.Chain, port),
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("port %d in %s: %q, want %q", port, boot.Chain, got, want)
		}
	}
	if saved := sh("cat " + boot.IPTablesRules); !hasLine(saved, ":INPUT DROP [0:0]") && !strings.Contains(saved, ":INPUT DROP") {
		t.Errorf("%s does not persist INPUT DROP:\n%s", boot.IPTablesRules, saved)
	}

	// The services boot configures run after every boot, not only the
	// first: the CloudWatch agent (restarted by boot, its unit not
	// enabled, as the real package ships it) and ElasticHQ.
	var svc string
	for deadline := time.Now().Add(time.Minute); ; {
		svc = sh("systemctl is-active amazon-cloudwatch-agent.service elastichq.service || true")
		if svc == "active\nactive" || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if svc != "active\nactive" {
		t.Errorf("amazon-cloudwatch-agent.service and elastichq.service are %q, want both active", strings.Fields(svc))
	}

	// Nothing else in INPUT opens the service ports (the image's own
	// rules come after the jump and must not accept them).
	for _, l := range strings.Split(rules, "\n") {
		if strings.HasPrefix(l, "-A INPUT ") && strings.Contains(l, "-j ACCEPT") {
			for _, p := range []string{"9200", "9300", "5000"} {
				if strings.Contains(l, "--dport "+p+" ") || !strings.Contains(l, "--dport") && !strings.Contains(l, "-i lo") && !strings.Contains(l, "--ctstate") {
					t.Errorf("INPUT rule %q accepts port %s outside %s", l, p, boot.Chain)
				}
			}
		}
	}

	// CloudWatch agent: streams named by instance id.
	if cw := sh("cat /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"); !strings.Contains(cw, `"log_stream_name": "`+id+`"`) && !strings.Contains(cw, `"log_stream_name":"`+id+`"`) {
		t.Errorf("CloudWatch agent config does not name the stream by instance id %s:\n%s", id, cw)
	}
	// ... and the agent read it at its start (the stand-in writes what it
	// merged where the real agent writes its TOML).
	if cw := sh("cat /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.toml"); !strings.Contains(cw, `"log_stream_name": "`+id+`"`) {
		t.Errorf("the CloudWatch agent did not start with the stream named by instance id %s:\n%s", id, cw)
	}
}

func pidOf(p *facts.Process) int {
	if p == nil {
		return 0
	}
	return p.PID
}

func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// ymlString renders a flattened YAML value for comparison: lists joined by
// commas, scalars as printed.
func ymlString(v any) string {
	if l, ok := v.([]any); ok {
		s := make([]string, len(l))
		for i, e := range l {
			s[i] = fmt.Sprint(e)
		}
		return strings.Join(s, ",")
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// guestExec is what both kinds of guest offer: a root shell command.
type guestExec interface {
	Exec(ctx context.Context, command string) (string, error)
}

func readBootState(t *testing.T, ctx context.Context, inst guestExec) *boot.State {
	t.Helper()
	out, err := inst.Exec(ctx, "cat "+boot.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	var st boot.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%s: %v\n%s", boot.StatePath, err, out)
	}
	return &st
}

// fileSums lists the sha256 of every file boot.json says boot rendered, as
// the guest has them now, and of the always paths.
func fileSums(t *testing.T, ctx context.Context, inst guestExec, st *boot.State, always ...string) string {
	t.Helper()
	if len(st.Files) == 0 && len(always) == 0 {
		t.Fatal("boot.json lists no rendered files")
	}
	paths := slices.Clone(always)
	for _, f := range st.Files {
		if !slices.Contains(always, f.Path) {
			paths = append(paths, f.Path)
		}
	}
	sort.Strings(paths)
	out, err := inst.Exec(ctx, "sha256sum "+strings.Join(paths, " "))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// guestFacts runs `esnode facts` on the guest, retrying until the
// Elasticsearch process and its two listeners are there (the stand-in
// takes a moment to bind after its unit is active).
func guestFacts(t *testing.T, ctx context.Context, inst *testcloud.Instance) *facts.Facts {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := inst.Exec(ctx, "/usr/local/bin/esnode facts")
		if err != nil {
			t.Fatalf("esnode facts on the guest: %v", err)
		}
		var f facts.Facts
		if err := json.Unmarshal([]byte(out), &f); err != nil {
			t.Fatalf("esnode facts output is not a facts document: %v\n%s", err, out)
		}
		n := 0
		for _, l := range f.Listeners {
			if l.Port == spec.DefaultHTTPPort || l.Port == spec.DefaultTransportPort {
				n++
			}
		}
		if (f.Elasticsearch.Process != nil && n >= 2) || time.Now().After(deadline) {
			return &f
		}
		time.Sleep(time.Second)
	}
}

func httpGet(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

// BenchmarkE2EBootVersusInstall is P1: what a baked image saves at boot.
// Each iteration bakes a node (a fresh CIS-like instance, `esnode install`
// from stand-ins over HTTP on the bridge, timed by wall clock over SSH),
// launches a node from the baked image and reads how long
// esnode-boot.service ran at that first boot (systemd's
// ExecMainStart..ExecMainExit), then runs `esnode boot` by hand after the
// instance's es_cluster tag changed, so it rewrites elasticsearch.yml and
// the CloudWatch config (wall clock through nsenter). The image is 8.x
// with the cluster's security section (transport TLS material and the
// elastic password fetched from Parameter Store, the password put in the
// keystore by the keystore tool at first boot). A second, plain image
// (7.17, no security section: no fetch, no keystore) is baked and booted
// the same way. Metrics: install-s/op, boot-s/op (the 8.x unit at first
// boot), boot-less-keystore-s/op (that unit minus the keystore tool's run),
// boot-plain-s/op (the 7.17 unit at first boot), boot-plain-own-s/op (of
// that, esnode boot's own work: the total of its summary line, which
// starts after the process's start-up and ends before its exit),
// boot-hand-s/op, and install/boot, install/boot-plain and
// install/boot-plain-own, the ratios. The log shows each first boot's own
// summary line, where the unit's time went stage by stage. ns/op is the
// whole cycle and means little.
func BenchmarkE2EBootVersusInstall(b *testing.B) {
	testcloud.RequireHost(b)
	cloud := testcloud.New(b)
	key := NewKey(b)
	secrets := guestSecrets(b, context.Background(), cloud, clusterTag, clusterTag+"-b")
	var install, unit, keystore, plain, plainOwn, hand time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		bk := bakeNode(b, cloud)
		install += bk.Install
		inst, fb := benchFirstBoot(b, ctx, cloud, bk, key, secrets)
		unit += fb.Unit
		keystore += fb.Keystore

		inst.SetTags(map[string]string{"es_cluster": clusterTag + "-b"})
		t0 := time.Now()
		out, err := inst.Exec(ctx, byHand+"boot 2>&1")
		hand += time.Since(t0)
		if err != nil || !strings.Contains(out, "changed") {
			cancel()
			b.Fatalf("esnode boot by hand after a tag change: %v\n%s", err, out)
		}
		benchDone(b, ctx, cloud, bk, inst)

		bk7 := bakeNodeWith(b, cloud, bakeOptions{Version: es7Version})
		inst7, fb7 := benchFirstBoot(b, ctx, cloud, bk7, key, nil)
		plain += fb7.Unit
		plainOwn += fb7.Own
		benchDone(b, ctx, cloud, bk7, inst7)
		cancel()
	}
	n := float64(b.N)
	b.ReportMetric(install.Seconds()/n, "install-s/op")
	b.ReportMetric(unit.Seconds()/n, "boot-s/op")
	b.ReportMetric((unit-keystore).Seconds()/n, "boot-less-keystore-s/op")
	b.ReportMetric(plain.Seconds()/n, "boot-plain-s/op")
	b.ReportMetric(plainOwn.Seconds()/n, "boot-plain-own-s/op")
	b.ReportMetric(hand.Seconds()/n, "boot-hand-s/op")
	if unit > 0 && plain > 0 && plainOwn > 0 {
		b.ReportMetric(install.Seconds()/unit.Seconds(), "install/boot")
		b.ReportMetric(install.Seconds()/plain.Seconds(), "install/boot-plain")
		b.ReportMetric(install.Seconds()/plainOwn.Seconds(), "install/boot-plain-own")
		b.Logf("P1: esnode install %.2fs; esnode boot at first boot %.3fs with TLS material and the elastic password (%.0fx faster), %.3fs of it besides the keystore tool's %.3fs; %.3fs plain 7.17 (%.0fx), of which esnode boot's own work %.3fs (%.0fx); by hand after a tag change %.3fs",
			install.Seconds()/n, unit.Seconds()/n, install.Seconds()/unit.Seconds(), (unit-keystore).Seconds()/n, keystore.Seconds()/n,
			plain.Seconds()/n, install.Seconds()/plain.Seconds(), plainOwn.Seconds()/n, install.Seconds()/plainOwn.Seconds(), hand.Seconds()/n)
	}
}

// firstBoot is what one first boot's esnode-boot.service took.
type firstBoot struct {
	Unit     time.Duration // systemd's ExecMainStart..ExecMainExit
	Own      time.Duration // esnode boot's own work: its summary line's total
	Keystore time.Duration // the keystore tool's lane (0 without one)
}

// benchFirstBoot launches a node from bk's image and returns it with what
// esnode-boot.service took at its first boot, logging boot's summary.
func benchFirstBoot(b testing.TB, ctx context.Context, cloud *testcloud.Cloud, bk *baked, key Key, secrets func(*testcloud.LaunchSpec)) (*testcloud.Instance, firstBoot) {
	b.Helper()
	ls := testcloud.LaunchSpec{Image: bk.Image, AuthorizedKey: key.Authorized,
		Tags: map[string]string{"es_cluster": clusterTag}, BootTimeout: guestBootTimeout}
	if secrets != nil {
		secrets(&ls)
	}
	inst, err := cloud.Launch(ctx, ls)
	if err != nil {
		b.Fatal(err)
	}
	if bootSt, esSt := waitUnitsSettled(ctx, inst); bootSt != "active" || esSt != "active" {
		j, _ := inst.Exec(ctx, "journalctl -b -u esnode-boot.service -o cat --no-pager | tail -20")
		b.Fatalf("%s: esnode-boot.service %q, elasticsearch.service %q after the first boot:\n%s", bk.Spec.Elasticsearch.Version, bootSt, esSt, j)
	}
	out, err := inst.Exec(ctx, "systemctl show -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic --value esnode-boot.service")
	f := strings.Fields(out)
	if err != nil || len(f) != 2 {
		b.Fatalf("esnode-boot timestamps %q: %v", out, err)
	}
	start, _ := strconv.ParseUint(f[0], 10, 64)
	exit, _ := strconv.ParseUint(f[1], 10, 64)
	if start == 0 || exit < start {
		b.Fatalf("esnode-boot ran from %d to %d µs: not at this boot", start, exit)
	}
	took := time.Duration(exit-start) * time.Microsecond
	summary, _ := inst.Exec(ctx, "journalctl -b -u esnode-boot.service -o cat --no-pager | grep -E 'esnode boot: (changed|nothing)'")
	summary = strings.TrimSpace(summary)
	// esnode boot's own work is its summary's total, which starts after
	// the process's start-up (exec, the Go runtime and package
	// initialisation) and ends before its exit: the rest of the unit.
	m := regexp.MustCompile(` in ([0-9.]+(?:ms|s|µs))(?: \(|$)`).FindStringSubmatch(summary)
	if m == nil {
		b.Fatalf("%s: no total in esnode boot's summary line %q", bk.Spec.Elasticsearch.Version, summary)
	}
	own, err := time.ParseDuration(m[1])
	if err != nil || own <= 0 || own > took {
		b.Fatalf("%s: esnode boot's summary total %q does not fit in its unit's %s (%v)", bk.Spec.Elasticsearch.Version, m[1], took, err)
	}
	// The keystore tool (a JVM on a real node) is apply's longest lane;
	// what the unit took besides it is the rest of boot's work.
	var keystore time.Duration
	besides := ""
	if m := regexp.MustCompile(`elasticsearch-keystore ([0-9.]+(?:ms|s|µs))`).FindStringSubmatch(summary); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil {
			keystore = d
			besides = fmt.Sprintf(", %s besides the keystore tool", (took - d).Round(100*time.Microsecond))
		}
	}
	b.Logf("%s first boot: unit %s%s, of which %s before boot's first stage or after its last; %s", bk.Spec.Elasticsearch.Version, took.Round(100*time.Microsecond), besides, (took - own).Round(time.Millisecond), summary)
	return inst, firstBoot{Unit: took, Own: own, Keystore: keystore}
}

// benchDone terminates inst and releases bk's image.
func benchDone(b testing.TB, ctx context.Context, cloud *testcloud.Cloud, bk *baked, inst *testcloud.Instance) {
	b.Helper()
	if err := inst.Terminate(ctx); err != nil {
		b.Errorf("terminate: %v", err)
	}
	if err := cloud.ReleaseImage(bk.Image); err != nil {
		b.Errorf("release the baked image: %v", err)
	}
}
