package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/localcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testpki"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// elasticPassword is the elastic user's password every test cluster gets:
// a test value, which no output may show.
const elasticPassword = "e2e-stand-in-elastic-password"

// ssmPutter stores SecureString parameters in the emulator at endpoint.
func ssmPutter(t testing.TB, ctx context.Context, endpoint, region string) func(name, value string) {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	params := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(endpoint) })
	return func(name, value string) {
		t.Helper()
		if _, err := params.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value), Type: "SecureString", Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
}

// putClusterMaterial stores a cluster's material where clusterSecurity
// names it: a CA of the cluster's own, a node certificate it signed (valid
// 180 days, shared by the cluster's nodes) and the elastic password. It
// returns the CA.
func putClusterMaterial(t testing.TB, ctx context.Context, endpoint, region, cluster string) *testpki.CA {
	t.Helper()
	put := ssmPutter(t, ctx, endpoint, region)
	ca := testpki.NewCA(t, cluster+" transport CA")
	key, cert, _, _ := ca.Issue(t, "node."+cluster, time.Now().Add(-time.Hour), time.Now().Add(180*24*time.Hour))
	put("/es/"+cluster+"/transport/key", string(key))
	put("/es/"+cluster+"/transport/cert", string(cert))
	put("/es/"+cluster+"/transport/ca", string(ca.PEM))
	put("/es/"+cluster+"/elastic-password", elasticPassword)
	return ca
}

// putLocalCloudMaterial is putClusterMaterial in a local cloud's emulator,
// in the region its guests run in.
func putLocalCloudMaterial(t testing.TB, ctx context.Context, lc *localcloud.LocalCloud, cluster string) *testpki.CA {
	t.Helper()
	return putClusterMaterial(t, ctx, lc.Endpoint(), localRegion, cluster)
}

// guestSecrets gives guests of a plain test cloud (no EC2 emulator) what a
// local cloud gives its own: Parameter Store with the clusters' material
// (an emulator served on the cloud's bridge), an instance profile role in
// IMDS, and the test-only drop-in pointing esnode-boot at the emulator. It
// returns the change to make to each LaunchSpec.
func guestSecrets(t testing.TB, ctx context.Context, cloud *testcloud.Cloud, clusters ...string) func(*testcloud.LaunchSpec) {
	t.Helper()
	srv := ec2emu.New(ec2emu.Options{})
	host := srv.Start()
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", net.JoinHostPort(cloud.Gateway().String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln) //nolint:errcheck // returns at Close
	t.Cleanup(func() { hs.Close() })
	for _, c := range clusters {
		putClusterMaterial(t, ctx, host, "us-east-1", c) // the region testcloud's IMDS reports
	}
	dropIn := []byte("# Test-only (internal/e2e guestSecrets): Parameter Store for esnode-boot.\n[Service]\n" +
		"Environment=AWS_ENDPOINT_URL_SSM=http://" + ln.Addr().String() + "\n")
	return func(ls *testcloud.LaunchSpec) {
		ls.IAMRole = "esnode-node"
		if ls.RunFiles == nil {
			ls.RunFiles = map[string][]byte{}
		}
		ls.RunFiles[localcloud.GuestEndpointsDropIn] = dropIn
	}
}

// byHand runs esnode with esnode-boot.service's environment, as an
// operator would on a node whose VPC endpoints the unit names (here the
// test-only drop-in's Parameter Store).
const byHand = "env $(systemctl show esnode-boot.service -p Environment --value) /usr/local/bin/esnode "

// launchSecuredGuest is launchGuest for a guest that boots an 8.x node:
// its Parameter Store holds the clusters' material (guestSecrets).
func launchSecuredGuest(t testing.TB, ctx context.Context, image testcloud.ImageSpec, ls testcloud.LaunchSpec, clusters ...string) (*testcloud.Cloud, *testcloud.Instance, Key) {
	t.Helper()
	img, err := testcloud.EnsureImage(ctx, image)
	if err != nil {
		t.Fatalf("image %s: %v", image.Variant, err)
	}
	cloud := testcloud.New(t)
	key := NewKey(t)
	ls.Image, ls.AuthorizedKey = img, key.Authorized
	guestSecrets(t, ctx, cloud, clusters...)(&ls)
	inst, err := cloud.Launch(ctx, ls)
	if err != nil {
		t.Fatal(err)
	}
	return cloud, inst, key
}

// TestE2EBootRefusesES8WithoutTransportTLSOnGuest: an 8.x image baked
// without a security section boots a node Elasticsearch would refuse
// (security on by default, no transport TLS, a private address): esnode
// boot fails closed, saying what to set, and Elasticsearch stays down,
// nothing listening on 9300; the stand-in itself refuses the same node
// when started by hand, in Elastic's words.
func TestE2EBootRefusesES8WithoutTransportTLSOnGuest(t *testing.T) {
	testcloud.RequireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cloud := testcloud.New(t)
	img := bakeNodeWith(t, cloud, bakeOptions{Spec: func(n *spec.Node) { n.Security = spec.Security{} }}).Image
	key := NewKey(t)
	inst, err := cloud.Launch(ctx, testcloud.LaunchSpec{Image: img, AuthorizedKey: key.Authorized,
		Tags: map[string]string{"es_cluster": clusterTag}, BootTimeout: guestBootTimeout})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer wcancel()
	bootSt, esSt := waitUnitsSettled(wctx, inst)
	if bootSt != "failed" || esSt == "active" {
		t.Fatalf("esnode-boot %s, elasticsearch %s; want failed and not active", bootSt, esSt)
	}
	sh := func(cmd string) string {
		t.Helper()
		out, err := inst.Exec(ctx, cmd)
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		return strings.TrimSpace(out)
	}
	j := sh("journalctl -u esnode-boot --no-pager -o cat")
	for _, want := range []string{"Elasticsearch " + esVersion + " would refuse to start", "TransportTLSBootstrapCheck",
		"security_transport_key=", "The last good configuration was left untouched"} {
		if !strings.Contains(j, want) {
			t.Errorf("esnode-boot's journal lacks %q:\n%s", want, j)
		}
	}
	if l := sh("ss -Hltn 'sport = :9300' | wc -l"); l != "0" {
		t.Errorf("something listens on 9300 after the refused boot")
	}
	if n := sh("grep -c 'BEGIN esnode boot' /etc/elasticsearch/elasticsearch.yml || true"); n != "0" {
		t.Errorf("the refused boot wrote elasticsearch.yml's managed block")
	}
	// What boot would have written, by hand: the stand-in refuses it too.
	sh(`printf 'network.host: %s\ndiscovery.seed_hosts: [%s]\n' ` + inst.PrivateIP() + ` ` + inst.PrivateIP() + ` >> /etc/elasticsearch/elasticsearch.yml`)
	// (As its unit would run it; the unit itself requires a successful esnode-boot.)
	out, _ := inst.Exec(ctx, "timeout 60 systemd-run --quiet --wait --pipe --collect -p User=elasticsearch -p Group=elasticsearch "+
		"-p LimitNOFILE=65535 -p LimitNPROC=4096 -p LimitAS=infinity -p LimitFSIZE=infinity "+
		"-E ES_HOME=/usr/share/elasticsearch -E ES_PATH_CONF=/etc/elasticsearch /usr/share/elasticsearch/bin/elasticsearch 2>&1; echo exit=$?")
	if !strings.Contains(out, "Transport SSL must be enabled if security is enabled") || !strings.Contains(out, "exit=78") {
		t.Errorf("the stand-in did not refuse an 8.x node with security on and no transport TLS on %s:\n%s", inst.PrivateIP(), out)
	}
}
