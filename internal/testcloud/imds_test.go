package testcloud

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// requireGoOrMock skips (fails in CI) when the mock can be neither found
// nor installed.
func requireGoOrMock(t *testing.T) {
	t.Helper()
	if os.Getenv("ESBAKE_EC2_METADATA_MOCK") != "" {
		return
	}
	if _, err := exec.LookPath("go"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("need the go toolchain to install ec2-metadata-mock (or set ESBAKE_EC2_METADATA_MOCK)")
		}
		t.Skip("need the go toolchain to install ec2-metadata-mock")
	}
}

// imdsGet does an IMDSv2 GET (token first) or, with v1, a bare GET.
func imdsGet(t *testing.T, base, path string, v2 bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	if v2 {
		treq, _ := http.NewRequest(http.MethodPut, base+"/latest/api/token", nil)
		treq.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := http.DefaultClient.Do(treq)
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(tok) == 0 {
			t.Fatalf("token PUT: %s %q", resp.Status, tok)
		}
		req.Header.Set("X-aws-ec2-metadata-token", string(tok))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStartIMDS(t *testing.T) {
	requireGoOrMock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ep, stop, err := StartIMDS(ctx, IMDSConfig{
		InstanceID: "i-0abc0000000000001", InstanceType: "m6i.large", LocalIPv4: "10.213.7.20",
		MAC: "0e:11:22:33:44:55", SubnetCIDR: "10.213.7.0/24", VPCCIDR: "10.213.0.0/16",
		AvailabilityZone: "eu-west-1b", Region: "eu-west-1",
		Tags:     map[string]string{"Name": "es-node-1", "es:cluster": "logs", "Role": "data"},
		UserData: []byte("#!/bin/sh\necho hi\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	cases := map[string]string{
		"/latest/meta-data/instance-id":                 "i-0abc0000000000001",
		"/latest/meta-data/instance-type":               "m6i.large",
		"/latest/meta-data/local-ipv4":                  "10.213.7.20",
		"/latest/meta-data/mac":                         "0e:11:22:33:44:55",
		"/latest/meta-data/placement/availability-zone": "eu-west-1b",
		"/latest/meta-data/placement/region":            "eu-west-1",
		"/latest/meta-data/network/interfaces/macs/0e:11:22:33:44:55/subnet-ipv4-cidr-block": "10.213.7.0/24",
		"/latest/meta-data/network/interfaces/macs/0e:11:22:33:44:55/vpc-ipv4-cidr-block":    "10.213.0.0/16",
		"/latest/meta-data/tags/instance":                                                    "Name\nRole\nes:cluster",
		"/latest/meta-data/tags/instance/es:cluster":                                         "logs",
		"/latest/user-data": "#!/bin/sh\necho hi\n",
	}
	for path, want := range cases {
		code, body := imdsGet(t, ep, path, true)
		if code != 200 || body != want {
			t.Errorf("GET %s = %d %q, want 200 %q", path, code, body, want)
		}
	}
	code, body := imdsGet(t, ep, "/latest/dynamic/instance-identity/document", true)
	if code != 200 || !strings.Contains(body, `"instanceId": "i-0abc0000000000001"`) && !strings.Contains(body, `"instanceId":"i-0abc0000000000001"`) {
		t.Errorf("identity document = %d %s", code, body)
	}
	if code, _ := imdsGet(t, ep, "/latest/meta-data/tags/instance/Missing", true); code != 404 {
		t.Errorf("missing tag = %d, want 404", code)
	}
	// IMDSv2 only: no token, no answer — for mock paths and ours.
	for _, p := range []string{"/latest/meta-data/instance-id", "/latest/meta-data/tags/instance/Name", "/latest/user-data"} {
		if code, _ := imdsGet(t, ep, p, false); code != http.StatusUnauthorized {
			t.Errorf("IMDSv1 GET %s = %d, want 401", p, code)
		}
	}
	stop()
	if _, err := http.Get(ep + "/latest/meta-data/instance-id"); err == nil {
		t.Error("IMDS still answers after stop")
	}
}

func TestStartIMDSWithoutUserDataOrTags(t *testing.T) {
	requireGoOrMock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ep, stop, err := StartIMDS(ctx, IMDSConfig{InstanceID: "i-0abc0000000000002"})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, p := range []string{"/latest/user-data", "/latest/meta-data/tags/instance", "/latest/meta-data/spot/instance-action"} {
		if code, body := imdsGet(t, ep, p, true); code != 404 {
			t.Errorf("GET %s = %d %q, want 404 as on EC2", p, code, body)
		}
	}
}

func TestStartIMDSAllowingV1(t *testing.T) {
	requireGoOrMock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ep, stop, err := StartIMDS(ctx, IMDSConfig{InstanceID: "i-0abc0000000000004", AllowIMDSv1: true,
		Tags: map[string]string{"Name": "v1"}, IAMRole: "es-node"})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for path, want := range map[string]string{
		"/latest/meta-data/instance-id":               "i-0abc0000000000004",
		"/latest/meta-data/tags/instance/Name":        "v1",
		"/latest/meta-data/iam/security-credentials/": "es-node",
	} {
		if code, body := imdsGet(t, ep, path, false); code != 200 || body != want {
			t.Errorf("IMDSv1 GET %s = %d %q, want %q", path, code, body, want)
		}
	}
}
