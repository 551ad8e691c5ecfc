package boot

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testpki"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

var testSHA512 = strings.Repeat("ab", 64)

// testRoot lays out a fake baked node: manifest, the seed's
// elasticsearch.yml and jvm.options, an iptables-restore stand-in for
// backend detection, and /proc/meminfo.
func testRoot(t *testing.T, n spec.Node, memKB uint64) string {
	t.Helper()
	root := t.TempDir()
	n.SetDefaults()
	if err := n.Validate(); err != nil {
		t.Fatalf("test spec invalid: %v", err)
	}
	m := spec.Manifest{APIVersion: spec.APIVersion, Spec: n, SpecHash: n.Hash(), Arch: "amd64"}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	seedYML, _ := os.ReadFile("testdata/seed-elasticsearch.yml")
	seedJVM, _ := os.ReadFile("testdata/seed-jvm.options")
	files := map[string][]byte{
		spec.ManifestPath:                        mb,
		ElasticsearchYML:                         seedYML,
		JVMOptions:                               seedJVM,
		"/usr/sbin/iptables-restore":             []byte("#!/bin/sh\n# stand-in for detection only\n"),
		"/proc/meminfo":                          []byte("MemTotal:       " + strconv.FormatUint(memKB, 10) + " kB\nMemFree: 1 kB\n"),
		"/etc/elasticsearch/jvm.options.d/.keep": nil,
	}
	for p, b := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The package's own modes, which boot must keep.
	os.Chmod(filepath.Join(root, ElasticsearchYML), 0o660)
	return root
}

// withTransportTLS names transport TLS material in n's security section and
// returns the store that holds it: Elasticsearch 8 does not start without
// transport TLS (TransportTLSBootstrapCheck), so neither does boot.
func withTransportTLS(t *testing.T, n spec.Node) (spec.Node, memSecrets) {
	t.Helper()
	ca := testpki.NewCA(t, "boot test transport CA")
	key, cert, _, _ := ca.Issue(t, "node", time.Now().Add(-time.Hour), time.Now().Add(48*time.Hour))
	n.Security = spec.Security{TransportKey: "/test/transport/key", TransportCertificate: "/test/transport/cert", TransportCA: "/test/transport/ca"}
	return n, memSecrets{"/test/transport/key": string(key), "/test/transport/cert": string(cert), "/test/transport/ca": string(ca.PEM)}
}

func testSpec() spec.Node {
	return spec.Node{
		Elasticsearch:   spec.Elasticsearch{Version: "8.15.3"},
		CloudWatchAgent: spec.CloudWatchAgent{Enabled: true, SHA512: testSHA512, LogGroup: "es-logs"},
	}
}

// snapshot is every file under root with its content and mode.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		info, _ := d.Info()
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out[rel+"/"] = info.Mode().String()
			return nil
		}
		b, _ := os.ReadFile(p)
		out[rel] = info.Mode().String() + "\n" + string(b)
		return nil
	})
	return out
}

func startMock(t *testing.T, cfg testcloud.IMDSConfig) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ep, stop, err := testcloud.StartIMDS(ctx, cfg)
	if err != nil {
		// CI and developers both have the Go proxy; never skip this.
		t.Fatalf("start amazon-ec2-metadata-mock: %v", err)
	}
	t.Cleanup(stop)
	return ep
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBootAgainstMetadataMock runs boot against AWS's IMDS mock (IMDSv2
// only) twice: the first run renders every file, the second changes none.
func TestBootAgainstMetadataMock(t *testing.T) {
	ep := startMock(t, testcloud.IMDSConfig{
		InstanceID:       "i-0feedfacecafe0001",
		InstanceType:     "r6g.large",
		LocalIPv4:        "10.213.20.17",
		MAC:              "0e:11:22:33:44:55",
		SubnetCIDR:       "10.213.20.0/22",
		VPCCIDR:          "10.213.0.0/16",
		Region:           "eu-west-2",
		AvailabilityZone: "eu-west-2b",
		Tags:             map[string]string{"es_cluster": "logs-prod", "Name": "es-node"},
		UserData:         []byte("# esnode\nnode_roles: [master, data]\nheap_percent: 25\n"),
	})
	n, secrets := withTransportTLS(t, testSpec())
	root := testRoot(t, n, 16*1024*1024)          // 16 GiB
	now := time.Now().UTC().Truncate(time.Second) // the test certificate's validity
	ymlPath := filepath.Join(root, ElasticsearchYML)
	if os.Geteuid() == 0 {
		// Boot must keep the package's root:elasticsearch ownership.
		if err := os.Chown(ymlPath, 0, 4242); err != nil {
			t.Fatal(err)
		}
	}
	rr := &RecordingRunner{}
	fw := &RecordingFirewall{}
	var out bytes.Buffer
	opts := Options{
		Root: root, IMDSEndpoint: ep, IMDSTimeout: 30 * time.Second, Out: &out, Runner: rr, Firewall: fw, Secrets: secrets,
		Now: func() time.Time { return now },
	}
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("boot: %v\n%s", err, out.String())
	}
	wantChanged := []string{ElasticsearchYML, HeapFile, IPTablesRules, CWAgentConfig}
	if strings.Join(res.Changed, ",") != strings.Join(wantChanged, ",") {
		t.Errorf("changed %v, want %v", res.Changed, wantChanged)
	}

	yml := flatYML(t, []byte(read(t, root, ElasticsearchYML)))
	for k, v := range map[string]any{
		"cluster.name":                 "logs-prod",
		"node.name":                    "i-0feedfacecafe0001",
		"network.host":                 "10.213.20.17",
		"discovery.seed_providers":     "ec2",
		"discovery.ec2.tag.es_cluster": "logs-prod",
		"discovery.ec2.endpoint":       "https://ec2.eu-west-2.amazonaws.com",
		"reindex.remote.whitelist":     "10.213.*:9200",
	} {
		if !equalJSON(yml[k], v) {
			t.Errorf("elasticsearch.yml %s = %v, want %v", k, yml[k], v)
		}
	}
	if !equalJSON(yml["node.roles"], []any{"master", "data"}) {
		t.Errorf("node.roles from userdata: %v", yml["node.roles"])
	}
	if _, ok := yml["http.cors.allow-origin"]; ok {
		t.Error("CORS written although not configured (the seed's '*' survived)")
	}
	st, err := os.Stat(ymlPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o660 {
		t.Errorf("elasticsearch.yml mode %v, want 0660 as before", st.Mode().Perm())
	}
	if os.Geteuid() == 0 && st.Sys().(*syscall.Stat_t).Gid != 4242 {
		t.Errorf("elasticsearch.yml group %d, want 4242 as before", st.Sys().(*syscall.Stat_t).Gid)
	}

	heap := read(t, root, HeapFile)
	if !strings.Contains(heap, "\n-Xms4096m\n-Xmx4096m\n") {
		t.Errorf("heap file (25%% of 16 GiB):\n%s", heap)
	}
	if read(t, root, JVMOptions) != mustRead(t, "testdata/seed-jvm.options") {
		t.Error("jvm.options changed on 8.x")
	}

	rules := read(t, root, IPTablesRules)
	for _, l := range []string{
		":INPUT DROP", "-A INPUT -j ESNODE-INPUT",
		"-A ESNODE-INPUT -s 10.213.0.0/16 -p tcp -m tcp --dport 9200 -j ACCEPT",
		"-A ESNODE-INPUT -s 10.213.0.0/16 -p tcp -m tcp --dport 9300 -j ACCEPT",
		"-A ESNODE-INPUT -s 10.213.0.0/16 -p tcp -m tcp --dport 22 -j ACCEPT",
	} {
		if !strings.Contains(rules, l) {
			t.Errorf("rules.v4 lacks %q:\n%s", l, rules)
		}
	}
	if len(fw.Applied) != 1 || fw.Applied[0].Backend != spec.FirewallIPTables || !strings.Contains(fw.Applied[0].Script, "--dport 9300") {
		t.Errorf("firewall applied: %+v", fw.Applied)
	}

	var cw struct {
		Logs struct {
			LogsCollected struct {
				Files struct {
					CollectList []struct {
						FilePath      string `json:"file_path"`
						LogGroupName  string `json:"log_group_name"`
						LogStreamName string `json:"log_stream_name"`
					} `json:"collect_list"`
				} `json:"files"`
			} `json:"logs_collected"`
		} `json:"logs"`
	}
	if err := json.Unmarshal([]byte(read(t, root, CWAgentConfig)), &cw); err != nil {
		t.Fatal(err)
	}
	first := cw.Logs.LogsCollected.Files.CollectList[0]
	if first.FilePath != "/var/log/elasticsearch/logs-prod.log" || first.LogGroupName != "es-logs" || first.LogStreamName != "i-0feedfacecafe0001" {
		t.Errorf("CloudWatch agent main log: %+v", first)
	}
	if len(rr.Commands) != 2 || rr.Commands[0].String() != CWAgentCtl+" -a fetch-config -m ec2 -c file:"+CWAgentConfig ||
		rr.Commands[1].String() != "systemctl --no-block restart amazon-cloudwatch-agent.service" {
		t.Errorf("commands: %v", rr.Commands)
	}

	var state State
	if err := json.Unmarshal([]byte(read(t, root, StatePath)), &state); err != nil {
		t.Fatal(err)
	}
	if state.InstanceID != "i-0feedfacecafe0001" || state.SubnetCIDR != "10.213.20.0/22" || state.VPCCIDR != "10.213.0.0/16" ||
		state.AvailabilityZone != "eu-west-2b" || state.Region != "eu-west-2" || state.ClusterName != "logs-prod" ||
		state.Tags["Name"] != "es-node" || !state.BootedAt.Equal(opts.Now()) || state.Userdata.Form != FormYAML {
		t.Errorf("boot.json: %+v", state)
	}
	sums := map[string]string{}
	for _, f := range state.Files {
		sums[f.Path] = f.SHA256
	}
	if sums[ElasticsearchYML] != sha256Hex([]byte(read(t, root, ElasticsearchYML))) {
		t.Error("boot.json sha256 of elasticsearch.yml does not match the file")
	}

	// Second boot, same inputs: nothing changes, the agent is not reloaded.
	before := snapshot(t, root)
	rr.Commands = nil
	res2, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("second boot: %v", err)
	}
	if len(res2.Changed) != 0 {
		t.Errorf("second boot changed %v", res2.Changed)
	}
	if len(rr.Commands) != 0 {
		t.Errorf("second boot ran %v", rr.Commands)
	}
	if len(fw.Applied) != 2 {
		t.Error("the firewall must be applied on every boot (the kernel forgets it)")
	}
	after := snapshot(t, root)
	for k, v := range before {
		if k != strings.TrimPrefix(StatePath, "/") && after[k] != v {
			t.Errorf("second boot changed %s", k)
		}
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestBootDryRun shows the diff and touches nothing.
func TestBootDryRun(t *testing.T) {
	ep := startMock(t, testcloud.IMDSConfig{
		LocalIPv4: "10.213.0.10", SubnetCIDR: "10.213.0.0/24", Tags: map[string]string{"es_cluster": "dry"},
	})
	n, secrets := withTransportTLS(t, testSpec())
	root := testRoot(t, n, 8*1024*1024)
	before := snapshot(t, root)
	rr := &RecordingRunner{}
	fw := &RecordingFirewall{}
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Root: root, IMDSEndpoint: ep, DryRun: true, Out: &out, Runner: rr, Firewall: fw, Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changed) != 4 {
		t.Errorf("dry run would change %v", res.Changed)
	}
	o := out.String()
	for _, w := range []string{
		"--- a/etc/elasticsearch/elasticsearch.yml\n+++ b/etc/elasticsearch/elasticsearch.yml\n",
		"+cluster.name: \"dry\"\n",
		"-network.host: [10.0.1.23]\n+" + DisabledPrefix + "network.host: [10.0.1.23]\n",
		"--- /dev/null\n+++ b" + HeapFile + "\n",
		"+-Xmx4096m\n",
		"would run: " + cwFetchConfig().String(),
	} {
		if !strings.Contains(o, w) {
			t.Errorf("dry-run output lacks %q:\n%s", w, o)
		}
	}
	if len(rr.Commands) != 0 || len(fw.Applied) != 0 {
		t.Errorf("dry run ran %v / applied %v", rr.Commands, fw.Applied)
	}
	after := snapshot(t, root)
	if len(after) != len(before) {
		t.Errorf("dry run created or removed files: %d -> %d entries", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("dry run changed %s", k)
		}
	}
}

// imdsV1Server answers metadata GETs without a token, as IMDSv1 does, and
// refuses the IMDSv2 token PUT.
func imdsV1Server(t *testing.T, tokenStatus int) (string, *int) {
	var mu sync.Mutex
	gets := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			http.Error(w, "v1 only", tokenStatus)
			return
		}
		mu.Lock()
		gets++
		mu.Unlock()
		switch r.URL.Path {
		case "/latest/meta-data/instance-id":
			w.Write([]byte("i-0v1only"))
		default:
			w.Write([]byte("10.0.0.1"))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &gets
}

func TestBootRefusesIMDSv1(t *testing.T) {
	for _, code := range []int{http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed} {
		ep, gets := imdsV1Server(t, code)
		root := testRoot(t, testSpec(), 8*1024*1024)
		before := snapshot(t, root)
		start := time.Now()
		_, err := Run(context.Background(), Options{Root: root, IMDSEndpoint: ep, IMDSTimeout: time.Minute, Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{}})
		if err == nil {
			t.Fatalf("token status %d: boot accepted an IMDSv1-only service", code)
		}
		for _, w := range []string{"IMDSv2", "does not fall back to IMDSv1", http.StatusText(code)} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("token status %d: error %q lacks %q", code, err, w)
			}
		}
		if *gets != 0 {
			t.Errorf("token status %d: %d unauthenticated metadata reads were made", code, *gets)
		}
		// A refusal is final: it must not wait out the retry deadline.
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("token status %d: refusal took %v", code, d)
		}
		for k, v := range snapshot(t, root) {
			if before[k] != v {
				t.Errorf("failed boot changed %s", k)
			}
		}
	}
}

func TestBootMetadataNeverAnswers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	root := testRoot(t, testSpec(), 8*1024*1024)
	before := snapshot(t, root)
	_, err = Run(context.Background(), Options{Root: root, IMDSEndpoint: ep, IMDSTimeout: 2 * time.Second, Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{}})
	if err == nil {
		t.Fatal("boot succeeded without metadata")
	}
	for _, w := range []string{"did not answer within 2s", "last good configuration was left untouched", ep} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	for k, v := range snapshot(t, root) {
		if before[k] != v {
			t.Errorf("failed boot changed %s", k)
		}
	}
}
