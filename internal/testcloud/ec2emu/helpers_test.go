package ec2emu

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

type env struct {
	t   *testing.T
	srv *Server
	url string
	ctx context.Context
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	srv := New(opts)
	url := srv.Start()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, srv: srv, url: url, ctx: ctx}
}

// cfg builds an SDK config the way a user would, with static credentials and a fast
// standard retryer (no client-side rate limiting so throttling tests measure the server).
func (e *env) cfg(region string, maxAttempts int) aws.Config {
	e.t.Helper()
	cfg, err := config.LoadDefaultConfig(e.ctx,
		config.WithRegion(region),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDEMULATOR", "secret", "")),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.RateLimiter = ratelimit.None
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		}))
	if err != nil {
		e.t.Fatalf("load SDK config: %v", err)
	}
	return cfg
}

func (e *env) ec2(region string) *ec2.Client {
	return ec2.NewFromConfig(e.cfg(region, 3), func(o *ec2.Options) { o.BaseEndpoint = aws.String(e.url) })
}

func (e *env) ec2Attempts(region string, attempts int) *ec2.Client {
	return ec2.NewFromConfig(e.cfg(region, attempts), func(o *ec2.Options) { o.BaseEndpoint = aws.String(e.url) })
}

func (e *env) ssm(region string) *ssm.Client {
	return ssm.NewFromConfig(e.cfg(region, 3), func(o *ssm.Options) { o.BaseEndpoint = aws.String(e.url) })
}

func (e *env) sts() *sts.Client {
	return sts.NewFromConfig(e.cfg("us-east-1", 3), func(o *sts.Options) { o.BaseEndpoint = aws.String(e.url) })
}

// wantCode asserts err is a smithy APIError with code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want API error %s, got %v", code, err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("want error code %s, got %s (%v)", code, ae.ErrorCode(), err)
	}
}

// must(call())(t) fails the test on error and returns the value.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func (e *env) seedImage(name string) string {
	e.t.Helper()
	id, err := e.srv.AddImage(ImageSpec{Name: name, Tags: map[string]string{"os": "debian"}, ImdsSupport: "v2.0",
		CreationDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		e.t.Fatalf("seed image: %v", err)
	}
	return id
}

const fast = time.Millisecond

var waitMax = 30 * time.Second
