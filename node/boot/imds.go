package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// DefaultIMDSTimeout bounds how long boot waits for instance metadata in all.
const DefaultIMDSTimeout = 2 * time.Minute

// Metadata is what boot learns about the instance from IMDSv2.
type Metadata struct {
	InstanceID       string            `json:"instance_id"`
	InstanceType     string            `json:"instance_type"`
	LocalIPv4        string            `json:"local_ipv4"`
	MAC              string            `json:"mac"`
	SubnetCIDR       string            `json:"subnet_cidr"`
	VPCCIDRs         []string          `json:"vpc_cidrs"`
	AvailabilityZone string            `json:"availability_zone"`
	Region           string            `json:"region"`
	TagsEnabled      bool              `json:"tags_enabled"`
	Tags             map[string]string `json:"tags"`
	UserData         []byte            `json:"-"`
}

// errNotFound is a 404 from metadata: the item does not exist.
var errNotFound = errors.New("not found in instance metadata")

// errIMDSv1Only is returned when the service refuses IMDSv2 session tokens.
var errIMDSv1Only = errors.New("the instance metadata service refused an IMDSv2 session token")

type metadataReader struct {
	c        *imds.Client
	endpoint string
	timeout  time.Duration
	watch    *tokenWatch
}

// tokenWatch sees every HTTP exchange of the IMDS client and remembers a
// refused token request: the SDK's error for it does not unwrap to a status.
type tokenWatch struct {
	next    imds.HTTPClient
	refused atomic.Int32 // HTTP status of the last refused PUT /latest/api/token
}

func (w *tokenWatch) Do(r *http.Request) (*http.Response, error) {
	resp, err := w.next.Do(r)
	if err == nil && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/latest/api/token") {
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
			w.refused.Store(int32(resp.StatusCode))
		default:
			w.refused.Store(0)
		}
	}
	return resp, err
}

func newMetadataReader(endpoint string, timeout time.Duration) *metadataReader {
	if timeout <= 0 {
		timeout = DefaultIMDSTimeout
	}
	// The SDK's own IMDS client settings: fail fast where nothing listens.
	hc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = time.Second }).
		WithTransportOptions(func(tr *http.Transport) { tr.ResponseHeaderTimeout = 2 * time.Second })
	watch := &tokenWatch{next: hc}
	opts := imds.Options{
		Endpoint:   endpoint,
		HTTPClient: watch,
		// IMDSv2 only: a failed token request is an error, never a silent
		// downgrade to unauthenticated IMDSv1 reads.
		EnableFallback:    aws.FalseTernary,
		ClientEnableState: imds.ClientEnabled,
	}
	shown := endpoint
	if shown == "" {
		shown = "the default endpoint (169.254.169.254)"
	}
	return &metadataReader{c: imds.New(opts), endpoint: shown, timeout: timeout, watch: watch}
}

// fetch reads everything boot needs, retrying until the overall deadline.
// Reads that need no other answer go out at once, then those that need the
// MAC or the tag keys: two round trips' worth of waiting instead of one per
// item. Errors are reported in the order the items were always read, so the
// first missing item named is the same whatever answers first.
func (r *metadataReader) fetch(ctx context.Context) (*Metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	md := &Metadata{Tags: map[string]string{}}

	var ud []byte
	var udErr error
	udDone := make(chan struct{})
	go func() {
		defer close(udDone)
		ud, udErr = r.userData(ctx)
	}()
	first := r.getAll(ctx, []string{"instance-id", "instance-type", "local-ipv4", "mac",
		"placement/availability-zone", "placement/region", "tags/instance"})
	required := []*string{&md.InstanceID, &md.InstanceType, &md.LocalIPv4, &md.MAC, &md.AvailabilityZone}
	for i, dst := range required {
		if err := first[i].err; err != nil {
			return nil, r.wrap(missing(first[i].path, err))
		}
		*dst = strings.TrimSpace(first[i].s)
	}
	region, tags := first[5], first[6]

	macPath := "network/interfaces/macs/" + md.MAC + "/"
	second := []string{macPath + "subnet-ipv4-cidr-block", macPath + "vpc-ipv4-cidr-blocks"}
	var tagKeys []string
	if tags.err == nil {
		tagKeys = strings.Fields(tags.s)
		for _, k := range tagKeys {
			second = append(second, "tags/instance/"+k)
		}
	}
	got := r.getAll(ctx, second)
	if err := got[0].err; err != nil {
		return nil, r.wrap(missing(got[0].path, err))
	}
	md.SubnetCIDR = strings.TrimSpace(got[0].s)
	blocks, e := got[1].s, got[1].err
	if errors.Is(e, errNotFound) {
		blocks, e = r.get(ctx, macPath+"vpc-ipv4-cidr-block")
	}
	if e != nil {
		return nil, r.wrap(fmt.Errorf("read the VPC CIDR: %w", e))
	}
	md.VPCCIDRs = strings.Fields(blocks)
	switch {
	case region.err == nil:
		md.Region = strings.TrimSpace(region.s)
	case errors.Is(region.err, errNotFound):
		md.Region = regionFromAZ(md.AvailabilityZone)
	default:
		return nil, r.wrap(region.err)
	}
	switch {
	case tags.err == nil:
		md.TagsEnabled = true
		for i, k := range tagKeys {
			v := got[2+i]
			if v.err != nil && !errors.Is(v.err, errNotFound) {
				return nil, r.wrap(v.err)
			}
			md.Tags[k] = v.s
		}
	case errors.Is(tags.err, errNotFound):
		// Instance tags in metadata are off; the spec's defaults apply.
	default:
		return nil, r.wrap(tags.err)
	}
	<-udDone
	if udErr != nil && !errors.Is(udErr, errNotFound) {
		return nil, r.wrap(udErr)
	}
	md.UserData = ud
	if err := md.check(); err != nil {
		return nil, err
	}
	return md, nil
}

// missing names the item a 404 was for.
func missing(path string, err error) error {
	if errors.Is(err, errNotFound) {
		return fmt.Errorf("instance metadata has no %s: %w", path, err)
	}
	return err
}

// answer is one metadata read.
type answer struct {
	path, s string
	err     error
}

// getAll reads paths concurrently; answers come back in the order asked.
func (r *metadataReader) getAll(ctx context.Context, paths []string) []answer {
	out := make([]answer, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := r.get(ctx, p)
			out[i] = answer{path: p, s: s, err: err}
		}()
	}
	wg.Wait()
	return out
}

func (md *Metadata) check() error {
	if net.ParseIP(md.LocalIPv4).To4() == nil {
		return fmt.Errorf("instance metadata local-ipv4 %q is not an IPv4 address", md.LocalIPv4)
	}
	if _, _, err := net.ParseCIDR(md.SubnetCIDR); err != nil {
		return fmt.Errorf("instance metadata subnet-ipv4-cidr-block %q is not a CIDR: %w", md.SubnetCIDR, err)
	}
	if len(md.VPCCIDRs) == 0 {
		return fmt.Errorf("instance metadata lists no VPC CIDR for interface %s", md.MAC)
	}
	for _, c := range md.VPCCIDRs {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return fmt.Errorf("instance metadata vpc-ipv4-cidr-block %q is not a CIDR: %w", c, err)
		}
	}
	if md.Region == "" {
		return fmt.Errorf("instance metadata gives no region (availability zone %q)", md.AvailabilityZone)
	}
	// The region ends up in elasticsearch.yml (the EC2 endpoint) and in
	// API hosts: a metadata service that lies must not inject anything.
	if !regionName.MatchString(md.Region) {
		return fmt.Errorf("instance metadata region %q is not an AWS region name (such as eu-west-2); is the metadata endpoint the instance's own?", md.Region)
	}
	return nil
}

// regionName is an AWS region: eu-west-2, us-gov-west-1, cn-north-1,
// us-isob-east-1.
var regionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

func (r *metadataReader) wrap(err error) error {
	if errors.Is(err, errIMDSv1Only) {
		return fmt.Errorf("instance metadata at %s: %w; esnode reads metadata with IMDSv2 only and does not fall back to IMDSv1. "+
			"Check that the instance's metadata endpoint is enabled and supports tokens (aws ec2 modify-instance-metadata-options --http-endpoint enabled --http-tokens required) and that --imds-endpoint points at a real IMDSv2 service", r.endpoint, err)
	}
	if errors.Is(err, errNotFound) {
		return fmt.Errorf("instance metadata at %s: %w; is it an EC2 instance metadata service?", r.endpoint, err)
	}
	return fmt.Errorf("instance metadata at %s did not answer within %s: %w; the last good configuration was left untouched. "+
		"Check that the instance's metadata endpoint is enabled (aws ec2 modify-instance-metadata-options --http-endpoint enabled) and reachable", r.endpoint, r.timeout, err)
}

// get reads one metadata path, retrying transient failures until ctx ends.
func (r *metadataReader) get(ctx context.Context, path string) (string, error) {
	var out string
	err := r.retry(ctx, path, func() error {
		res, err := r.c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
		if err != nil {
			return err
		}
		defer res.Content.Close()
		b, err := io.ReadAll(io.LimitReader(res.Content, 1<<20))
		out = string(b)
		return err
	})
	return out, err
}

func (r *metadataReader) userData(ctx context.Context) ([]byte, error) {
	var out []byte
	err := r.retry(ctx, "user-data", func() error {
		res, err := r.c.GetUserData(ctx, &imds.GetUserDataInput{})
		if err != nil {
			return err
		}
		defer res.Content.Close()
		// EC2 caps userdata at 16 KiB; anything much larger is not ours.
		out, err = io.ReadAll(io.LimitReader(res.Content, 1<<20))
		return err
	})
	return out, err
}

func (r *metadataReader) retry(ctx context.Context, what string, op func() error) error {
	delay := 200 * time.Millisecond
	for {
		err := op()
		if err == nil {
			return nil
		}
		if code := int(r.watch.refused.Load()); code != 0 {
			return fmt.Errorf("%w (PUT /latest/api/token answered %d %s)", errIMDSv1Only, code, http.StatusText(code))
		}
		if httpStatus(err) == http.StatusNotFound {
			return errNotFound
		}
		if ctx.Err() != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("read %s: %w", what, err)
		case <-time.After(delay):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

func httpStatus(err error) int {
	var se interface{ HTTPStatusCode() int }
	if errors.As(err, &se) {
		return se.HTTPStatusCode()
	}
	return 0
}

// regionFromAZ derives a region from a standard AZ name (us-east-1a).
func regionFromAZ(az string) string {
	if len(az) < 2 {
		return ""
	}
	last := az[len(az)-1]
	if last < 'a' || last > 'z' {
		return ""
	}
	return az[:len(az)-1]
}
