package builder

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// amazon-ebs's names are accepted, used as ours, and warned about.
func TestPrepareAcceptsAmazonEBSAliasesWithWarnings(t *testing.T) {
	src := `
region        = "eu-west-2"
source_ami    = "ami-0123456789abcdef0"
instance_type = "m6i.large"
ami_name      = "es-8"
ssh_username  = "admin"
temporary_security_group_source_cidrs = ["203.0.113.0/24"]
custom_endpoint_ec2 = "http://127.0.0.1:4566"
aws_polling {
  delay_seconds = 3
  max_attempts  = 7
}
`
	f, diags := hclparse.NewParser().ParseHCL([]byte(src), "ebs.pkr.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var b Builder
	val, diags := hcldec.Decode(f.Body, b.ConfigSpec(), nil)
	if diags.HasErrors() {
		t.Fatalf("the HCL2 spec refuses amazon-ebs's names: %v", diags)
	}
	_, warns, err := b.Prepare(val)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	c := b.Config()
	if c.EC2Endpoint != "http://127.0.0.1:4566" {
		t.Errorf("ec2_endpoint = %q, want custom_endpoint_ec2's value", c.EC2Endpoint)
	}
	if c.Polling.DelaySeconds != 3 || c.Polling.MaxAttempts != 7 {
		t.Errorf("polling = %+v, want aws_polling's 3/7", c.Polling)
	}
	all := strings.Join(warns, "\n")
	for _, want := range []string{"`custom_endpoint_ec2` is deprecated", "rename it to `ec2_endpoint`", "`aws_polling` block is deprecated", "rename it to `polling`"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}

func TestPrepareRefusesAliasWithItsNewName(t *testing.T) {
	for name, set := range map[string]map[string]interface{}{
		"custom_endpoint_ec2": {"ec2_endpoint": "http://127.0.0.1:1", "custom_endpoint_ec2": "http://127.0.0.1:2"},
		"aws_polling":         {"polling": map[string]interface{}{"delay_seconds": 1}, "aws_polling": map[string]interface{}{"delay_seconds": 2}},
	} {
		t.Run(name, func(t *testing.T) {
			raw := validRaw()
			for k, v := range set {
				raw[k] = v
			}
			var b Builder
			_, _, err := b.Prepare(raw)
			if err == nil || !strings.Contains(err.Error(), "`"+name+"`") {
				t.Fatalf("err = %v, want one naming `%s`", err, name)
			}
		})
	}
}

// max_retries behaves as documented: unset and 0 are the default 8 retries,
// N is N retries, -1 none.
func TestMaxRetriesAsDocumented(t *testing.T) {
	for _, tc := range []struct {
		set          interface{}
		wantAttempts int
	}{{nil, DefaultMaxRetries + 1}, {0, DefaultMaxRetries + 1}, {1, 2}, {50, 51}, {-1, 1}} {
		raw := validRaw()
		if tc.set != nil {
			raw["max_retries"] = tc.set
		}
		var b Builder
		if _, _, err := b.Prepare(raw); err != nil {
			t.Fatalf("max_retries %v: %v", tc.set, err)
		}
		if got := b.Config().MaxAttempts(); got != tc.wantAttempts {
			t.Errorf("max_retries %v: %d attempts per call, want %d", tc.set, got, tc.wantAttempts)
		}
	}
	for _, bad := range []int{-2, 51} {
		raw := validRaw()
		raw["max_retries"] = bad
		var b Builder
		if _, _, err := b.Prepare(raw); err == nil || !strings.Contains(err.Error(), "`max_retries`") {
			t.Errorf("max_retries %d: err = %v, want one naming `max_retries`", bad, err)
		}
	}
}

// The credentials hint is given only when the credentials are the problem.
func TestValidateCredentialsHintOnlyForCredentialErrors(t *testing.T) {
	const credHint = "configure credentials"
	check := func(t *testing.T, endpoint string, ctx context.Context, wantHint bool, wantAlso string) {
		t.Helper()
		ac := &AccessConfig{Region: "eu-west-2", STSEndpoint: endpoint, MaxRetries: -1}
		if errs := ac.Prepare(); len(errs) > 0 {
			t.Fatal(errs)
		}
		d, err := NewDriver(ctx, ac)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.ValidateCredentials(ctx)
		if err == nil {
			t.Fatal("ValidateCredentials succeeded")
		}
		if got := strings.Contains(err.Error(), credHint); got != wantHint {
			t.Errorf("hint %q present = %v, want %v:\n%v", credHint, got, wantHint, err)
		}
		if wantAlso != "" && !strings.Contains(err.Error(), wantAlso) {
			t.Errorf("error lacks %q:\n%v", wantAlso, err)
		}
	}
	t.Run("rejected credentials", func(t *testing.T) {
		isolateAWSEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>1</RequestId></ErrorResponse>`))
		}))
		t.Cleanup(srv.Close)
		check(t, srv.URL, t.Context(), true, "InvalidClientTokenId")
	})
	t.Run("no credentials", func(t *testing.T) {
		isolateAWSEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		srv := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		check(t, srv.URL, t.Context(), true, "")
	})
	t.Run("refused connection", func(t *testing.T) {
		isolateAWSEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		check(t, "http://"+addr, t.Context(), false, "check `sts_endpoint`")
	})
	t.Run("interrupted", func(t *testing.T) {
		isolateAWSEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		check(t, "http://127.0.0.1:9", ctx, false, "")
	})
	if stsHint(errors.New("boom")) != "" {
		t.Error("an unclassified error got a hint")
	}
}
