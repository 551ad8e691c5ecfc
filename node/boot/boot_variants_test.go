package boot

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// fakeIMDSv2 is a minimal IMDSv2 stand-in for scenarios the mock cannot
// express cheaply: paths not in md answer 404; reads need the token.
func fakeIMDSv2(t *testing.T, md map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest/api/token" {
			if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "", http.StatusBadRequest)
				return
			}
			w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
			w.Write([]byte("stand-in-token"))
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != "stand-in-token" {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		v, ok := md[strings.TrimPrefix(r.URL.Path, "/latest/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(v))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func baseMetadata(userdata string) map[string]string {
	mac := "0e:00:00:00:00:09"
	m := map[string]string{
		"meta-data/instance-id":                 "i-0000000000000006",
		"meta-data/instance-type":               "m5.large",
		"meta-data/local-ipv4":                  "10.9.8.7",
		"meta-data/mac":                         mac,
		"meta-data/placement/availability-zone": "cn-north-1a",
		"meta-data/network/interfaces/macs/" + mac + "/subnet-ipv4-cidr-block": "10.9.8.0/24",
		// No vpc-ipv4-cidr-blocks and no placement/region: the fallbacks are used.
		"meta-data/network/interfaces/macs/" + mac + "/vpc-ipv4-cidr-block": "10.9.0.0/16",
	}
	if userdata != "" {
		m["user-data"] = userdata
	}
	return m
}

type fakeParams map[string]string

func (f fakeParams) GetParameter(_ context.Context, name string) (string, error) {
	v, ok := f[name]
	if !ok {
		return "", os.ErrNotExist
	}
	return v, nil
}

func TestBoot6xNFTablesAndKeystore(t *testing.T) {
	n := spec.Node{
		Elasticsearch: spec.Elasticsearch{Version: "6.8.23"},
		Firewall:      spec.Firewall{Backend: spec.FirewallNFTables},
		Cluster:       spec.Cluster{Name: "spec-cluster", MasterNodes: 3},
		ElasticHQ:     spec.ElasticHQ{Enabled: true, SHA512: testSHA512},
		System:        spec.System{MemoryLock: true},
	}
	root := testRoot(t, n, 4*1024*1024)
	ep := fakeIMDSv2(t, baseMetadata("discovery_access_key_param=/es/ak\ndiscovery_secret_key_param=/es/sk\n"))
	const access, secret = "AKIDSTANDIN0000", "stand-in-secret-value-do-not-log"
	rr := &RecordingRunner{}
	fw := &RecordingFirewall{}
	var out bytes.Buffer
	opts := Options{Root: root, IMDSEndpoint: ep, IMDSTimeout: 20 * time.Second, Out: &out, Runner: rr, Firewall: fw,
		Params: fakeParams{"/es/ak": access, "/es/sk": secret}}
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("boot: %v\n%s", err, out.String())
	}
	want := []string{ElasticsearchYML, JVMOptions, HQEnvFile, NFTablesConf, NFTablesFile}
	if strings.Join(res.Changed, ",") != strings.Join(want, ",") {
		t.Errorf("changed %v, want %v", res.Changed, want)
	}
	yml := flatYML(t, []byte(read(t, root, ElasticsearchYML)))
	for k, v := range map[string]any{
		"cluster.name": "spec-cluster", "discovery.zen.hosts_provider": "ec2", "transport.tcp.port": 9300,
		"discovery.ec2.endpoint": "https://ec2.cn-north-1.amazonaws.com.cn", "bootstrap.memory_lock": true,
		"reindex.remote.whitelist": "10.9.*:9200", "discovery.zen.minimum_master_nodes": 2,
		"node.attr.aws_availability_zone": "cn-north-1a",
	} {
		if !equalJSON(yml[k], v) {
			t.Errorf("elasticsearch.yml %s = %v, want %v", k, yml[k], v)
		}
	}
	if hq := read(t, root, HQEnvFile); !strings.Contains(hq, "\nHQ_DEFAULT_URL=http://10.9.8.7:9200\n") {
		t.Errorf("ElasticHQ's environment does not point at the node's own address:\n%s", hq)
	}
	jvm := read(t, root, JVMOptions)
	if !strings.Contains(jvm, HeapBeginMarker+"\n") || !strings.Contains(jvm, "\n-Xms2048m\n-Xmx2048m\n") {
		t.Errorf("6.x jvm.options:\n%s", jvm)
	}
	if _, err := os.Stat(filepath.Join(root, HeapFile)); err == nil {
		t.Error("6.x got a jvm.options.d file it would not read")
	}
	nft := read(t, root, NFTablesFile)
	if !strings.Contains(nft, "ip saddr 10.9.0.0/16 tcp dport 9200 accept") || !strings.Contains(nft, "ip saddr 10.9.0.0/16 tcp dport 22 accept") {
		t.Errorf("nft file:\n%s", nft)
	}
	if !strings.Contains(read(t, root, NFTablesConf), nftInclude) {
		t.Error("nftables.conf does not include esnode's file")
	}
	if len(fw.Applied) != 1 || fw.Applied[0].Backend != spec.FirewallNFTables || fw.Applied[0].Script != nft {
		t.Errorf("applied %+v", fw.Applied)
	}

	// The keys go to the keystore on stdin and nowhere else.
	if len(rr.Commands) != 2 {
		t.Fatalf("commands: %v", rr.Commands)
	}
	for i, setting := range []string{"discovery.ec2.access_key", "discovery.ec2.secret_key"} {
		c := rr.Commands[i]
		if c.String() != KeystoreTool+" add --stdin --force "+setting {
			t.Errorf("command %d: %s", i, c)
		}
		if v := []string{access, secret}[i]; string(c.Stdin) != v {
			t.Errorf("%s: stdin %q", setting, c.Stdin)
		}
		if strings.Contains(strings.Join(c.Args, " "), secret) || strings.Contains(strings.Join(c.Env, " "), secret) {
			t.Errorf("secret on the command line or in the environment: %v %v", c.Args, c.Env)
		}
	}
	state := read(t, root, StatePath)
	for where, s := range map[string]string{"output": out.String(), "boot.json": state, "Ran": strings.Join(res.Ran, "\n")} {
		if strings.Contains(s, secret) || strings.Contains(s, access) {
			t.Errorf("a discovery key leaked into %s", where)
		}
	}
	var st State
	json.Unmarshal([]byte(state), &st)
	if st.ClusterNameSource != "spec cluster.name" || st.TagsEnabled || st.Region != "cn-north-1" || st.VPCCIDR != "10.9.0.0/16" {
		t.Errorf("state: %+v", st)
	}

	res2, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Changed) != 0 {
		t.Errorf("second boot changed %v", res2.Changed)
	}
}

func TestBootNeedsAClusterName(t *testing.T) {
	root := testRoot(t, testSpec(), 8*1024*1024)
	before := snapshot(t, root)
	ep := fakeIMDSv2(t, baseMetadata(""))
	_, err := Run(context.Background(), Options{Root: root, IMDSEndpoint: ep, IMDSTimeout: 20 * time.Second, Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{}})
	if err == nil {
		t.Fatal("boot without any cluster name succeeded")
	}
	for _, w := range []string{"es_cluster", "cluster_name", "cluster.name", "InstanceMetadataTags=enabled"} {
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

func TestBootRejectsBadUserdata(t *testing.T) {
	root := testRoot(t, testSpec(), 8*1024*1024)
	before := snapshot(t, root)
	ep := fakeIMDSv2(t, baseMetadata("cluster_name=a\nheap_gb=4\n"))
	_, err := Run(context.Background(), Options{Root: root, IMDSEndpoint: ep, IMDSTimeout: 20 * time.Second, Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{}})
	if err == nil || !strings.Contains(err.Error(), "unknown key(s) heap_gb") || !strings.Contains(err.Error(), "left untouched") {
		t.Fatalf("error: %v", err)
	}
	for k, v := range snapshot(t, root) {
		if before[k] != v {
			t.Errorf("failed boot changed %s", k)
		}
	}
}

func TestBootTagMismatchWarns(t *testing.T) {
	n, secrets := withTransportTLS(t, testSpec())
	root := testRoot(t, n, 8*1024*1024)
	md := baseMetadata("cluster_name=from-userdata\n")
	md["meta-data/tags/instance"] = "es_cluster"
	md["meta-data/tags/instance/es_cluster"] = "from-tag"
	ep := fakeIMDSv2(t, md)
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Root: root, IMDSEndpoint: ep, IMDSTimeout: 20 * time.Second, Out: &out, Runner: &RecordingRunner{}, Firewall: &RecordingFirewall{}, Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	if res.State.ClusterName != "from-userdata" {
		t.Errorf("cluster %s, want userdata's", res.State.ClusterName)
	}
	if !strings.Contains(out.String(), `tag is "from-tag" but the cluster name is "from-userdata"`) {
		t.Errorf("no mismatch warning:\n%s", out.String())
	}
}

// TestSSMParamsClient drives the real Parameter Store client against a
// stand-in SSM endpoint on loopback, set by option and by environment.
func TestSSMParamsClient(t *testing.T) {
	var gotBody map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AmazonSSM.GetParameter" {
			http.Error(w, "unexpected target", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &gotBody)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"Parameter":{"Name":"/es/ak","Type":"SecureString","Value":"stand-in-value","Version":1}}`)
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDIN")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "stand-in")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	for _, viaEnv := range []bool{false, true} {
		endpoint := srv.URL
		if viaEnv {
			t.Setenv("AWS_ENDPOINT_URL_SSM", srv.URL)
			endpoint = ""
		}
		p, err := NewSSMParams(context.Background(), "eu-west-2", endpoint, "")
		if err != nil {
			t.Fatal(err)
		}
		v, err := p.GetParameter(context.Background(), "/es/ak")
		if err != nil {
			t.Fatalf("viaEnv=%v: %v", viaEnv, err)
		}
		if v != "stand-in-value" || gotBody["Name"] != "/es/ak" || gotBody["WithDecryption"] != true {
			t.Errorf("viaEnv=%v: value %q, request %v", viaEnv, v, gotBody)
		}
	}
}
