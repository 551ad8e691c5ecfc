package builder

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// isolateAWSEnv gives the default credential chain stand-in static
// credentials and nothing else: no shared files, no IMDS.
func isolateAWSEnv(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "AKIDSTANDIN",
		"AWS_SECRET_ACCESS_KEY":       "stand-in-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             empty,
		"AWS_SHARED_CREDENTIALS_FILE": empty,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_EC2":        "",
	} {
		t.Setenv(k, v)
	}
}

const describeRegionsXML = `<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
<requestId>stand-in</requestId><regionInfo><item><regionName>eu-west-2</regionName><regionEndpoint>ec2.eu-west-2.example.com</regionEndpoint></item></regionInfo></DescribeRegionsResponse>`

const throttledXML = `<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>stand-in</RequestID></Response>`

// throttlingServer answers the first n requests with RequestLimitExceeded.
func throttlingServer(t *testing.T, n int32) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		if form.Get("Action") != "DescribeRegions" {
			http.Error(w, "unexpected action "+form.Get("Action"), http.StatusBadRequest)
			return
		}
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDSTANDIN/") {
			http.Error(w, "request not signed with the default-chain credentials", http.StatusForbidden)
			return
		}
		if calls.Add(1) <= n {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, throttledXML)
			return
		}
		io.WriteString(w, describeRegionsXML)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestDriverRetriesThrottlingUpToMaxRetries(t *testing.T) {
	isolateAWSEnv(t)
	srv, calls := throttlingServer(t, 3)
	ac := &AccessConfig{Region: "eu-west-2", EC2Endpoint: srv.URL, MaxRetries: 3}
	if errs := ac.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	d, err := NewDriver(t.Context(), ac, WithMaxBackoff(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.EC2("eu-west-2").DescribeRegions(t.Context(), &ec2.DescribeRegionsInput{})
	if err != nil {
		t.Fatalf("DescribeRegions through 3 throttles with max_retries 3: %v", err)
	}
	if len(out.Regions) != 1 || aws.ToString(out.Regions[0].RegionName) != "eu-west-2" {
		t.Errorf("regions = %+v", out.Regions)
	}
	if got := calls.Load(); got != 4 {
		t.Errorf("server saw %d requests, want 4 (1 + 3 retries)", got)
	}
}

func TestDriverGivesUpAfterMaxRetries(t *testing.T) {
	isolateAWSEnv(t)
	srv, calls := throttlingServer(t, 100)
	ac := &AccessConfig{Region: "eu-west-2", EC2Endpoint: srv.URL, MaxRetries: 2}
	if errs := ac.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	d, err := NewDriver(t.Context(), ac, WithMaxBackoff(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.EC2("eu-west-2").DescribeRegions(t.Context(), &ec2.DescribeRegionsInput{})
	if errorCode(err) != "RequestLimitExceeded" {
		t.Fatalf("err = %v, want RequestLimitExceeded after the retries", err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("server saw %d requests, want 3 (1 + 2 retries)", got)
	}
}

func TestDriverNoRetries(t *testing.T) {
	isolateAWSEnv(t)
	srv, calls := throttlingServer(t, 100)
	ac := &AccessConfig{Region: "eu-west-2", EC2Endpoint: srv.URL, MaxRetries: -1}
	if errs := ac.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	d, err := NewDriver(t.Context(), ac, WithMaxBackoff(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.EC2("eu-west-2").DescribeRegions(t.Context(), &ec2.DescribeRegionsInput{}); err == nil {
		t.Fatal("DescribeRegions succeeded against a server that always throttles")
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("server saw %d requests, want 1 with max_retries = -1", got)
	}
}
