package install

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// maxChecksumFile bounds a checksum file; real ones are a line or a few.
const maxChecksumFile = 1 << 20

// fetched is an artifact downloaded into the work directory and verified.
type fetched struct {
	spec.Artifact
	// HostPath is where the file is on this machine; NodePath is the same
	// file as the target (and commands run in it) see it.
	HostPath string
	NodePath string
	// Sum is the verified SHA-512, lower-case hex.
	Sum string
}

var sha512Hex = regexp.MustCompile(`^[0-9a-fA-F]{128}$`)

// fetcher downloads artifacts and their checksum files.
type fetcher struct {
	client *http.Client
	// allowHTTP lets checksum files come over plain http:// (the spec's
	// allow_insecure_http).
	allowHTTP bool
	// retryDelay is the pause before retrying a transient failure.
	retryDelay time.Duration
}

// expectedSum resolves an artifact's expected SHA-512: the sum in the spec,
// or the one read from its `file:<url>` checksum file.
func (f *fetcher) expectedSum(ctx context.Context, a spec.Artifact) (string, error) {
	sum := strings.TrimSpace(a.SHA512)
	if sum == "" {
		return "", fmt.Errorf("artifact %s (%s) has no SHA-512: set its sha512 in the node spec (required with mirror_url or a custom url)", a.Name, a.URL)
	}
	ref, ok := strings.CutPrefix(sum, "file:")
	if !ok {
		if !sha512Hex.MatchString(sum) {
			return "", fmt.Errorf("artifact %s: sha512 %q is neither 128 hex digits nor file:<url>", a.Name, sum)
		}
		return strings.ToLower(sum), nil
	}
	// The artifact may come over http (it is checked against this sum);
	// the sum itself must not, or one on-path change swaps both.
	if spec.InsecureChecksum(sum) && !f.allowHTTP {
		return "", fmt.Errorf("artifact %s: its checksum file %s is plain http://, so whoever can change the traffic can swap the package and its checksum together; use https://, put the SHA-512 in the spec, or set allow_insecure_http = true", a.Name, ref)
	}
	var buf bytes.Buffer
	err := f.retry(ctx, func() error {
		buf.Reset()
		body, err := f.open(ctx, ref)
		if err != nil {
			return err
		}
		defer body.Close()
		n, err := io.Copy(&buf, io.LimitReader(body, maxChecksumFile+1))
		if err != nil {
			return fmt.Errorf("read %s: %w", ref, err)
		}
		if n > maxChecksumFile {
			return permanent(fmt.Errorf("%s is over %d bytes; that is not a checksum file", ref, maxChecksumFile))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("artifact %s: fetch its checksum file: %w", a.Name, err)
	}
	got, err := parseChecksumFile(buf.Bytes(), a.FileName)
	if err != nil {
		return "", fmt.Errorf("artifact %s: checksum file %s: %w", a.Name, ref, err)
	}
	return got, nil
}

// parseChecksumFile finds the SHA-512 of name in a checksum file: sha512sum
// lines `<sum>  <name>` (or `<sum> *<name>`), BSD lines
// `SHA512 (<name>) = <sum>`, or a bare sum alone in the file.
func parseChecksumFile(data []byte, name string) (string, error) {
	var bare []string
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxChecksumFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "SHA512 ("); ok {
			file, sum, ok := strings.Cut(rest, ") = ")
			if ok && sha512Hex.MatchString(strings.TrimSpace(sum)) {
				if path.Base(file) == name {
					return strings.ToLower(strings.TrimSpace(sum)), nil
				}
				names = append(names, file)
			}
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || !sha512Hex.MatchString(fields[0]) {
			continue
		}
		if len(fields) == 1 {
			bare = append(bare, fields[0])
			continue
		}
		file := strings.TrimPrefix(strings.Join(fields[1:], " "), "*")
		if path.Base(file) == name {
			return strings.ToLower(fields[0]), nil
		}
		names = append(names, file)
	}
	switch {
	case len(bare) == 1 && len(names) == 0:
		return strings.ToLower(bare[0]), nil
	case len(names) > 0:
		return "", fmt.Errorf("lists no SHA-512 for %s (it lists %s); point sha512 at the checksum file of this artifact", name, strings.Join(names, ", "))
	default:
		return "", fmt.Errorf("holds no SHA-512 (expected `<128 hex digits>  %s` or a bare sum)", name)
	}
}

// download fetches a into dir, verifying its SHA-512 against want before
// the file gets its final name; a mismatch leaves nothing behind.
func (f *fetcher) download(ctx context.Context, a spec.Artifact, want, hostDir, nodeDir string) (*fetched, error) {
	if a.FileName == "" || a.FileName == "." || a.FileName == ".." || strings.ContainsAny(a.FileName, "/\\\x00") {
		return nil, fmt.Errorf("artifact %s: %q is not a usable file name; give the artifact a URL that ends in its file name", a.Name, a.FileName)
	}
	final := filepath.Join(hostDir, a.FileName)
	part := final + ".part"
	var got string
	err := f.retry(ctx, func() error {
		body, err := f.open(ctx, a.URL)
		if err != nil {
			return err
		}
		defer body.Close()
		out, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return permanent(fmt.Errorf("create %s: %w", part, err))
		}
		h := sha512.New()
		_, err = io.Copy(io.MultiWriter(out, h), body)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(part)
			return fmt.Errorf("download %s: %w", a.URL, err)
		}
		got = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", a.Name, err)
	}
	if got != want {
		os.Remove(part)
		return nil, fmt.Errorf("artifact %s (%s) failed SHA-512 verification: expected %s, got %s; the download is corrupt or not the release the spec pins, so nothing was installed: check the artifact and the sha512 in the node spec", a.Name, a.URL, want, got)
	}
	if err := os.Rename(part, final); err != nil {
		os.Remove(part)
		return nil, fmt.Errorf("artifact %s: %w", a.Name, err)
	}
	return &fetched{Artifact: a, HostPath: final, NodePath: path.Join(nodeDir, a.FileName), Sum: got}, nil
}

// open returns the body of an https://, http:// or file:// URL.
func (f *fetcher) open(ctx context.Context, raw string) (io.ReadCloser, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, permanent(fmt.Errorf("%q is not a URL: %w", raw, err))
	}
	switch u.Scheme {
	case "file":
		fh, err := os.Open(u.Path)
		if err != nil {
			return nil, permanent(fmt.Errorf("open %s: %w", raw, err))
		}
		return fh, nil
	case "http", "https":
	default:
		return nil, permanent(fmt.Errorf("%q must be an https://, http:// or file:// URL", raw))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, permanent(fmt.Errorf("request %s: %w", raw, err))
	}
	resp, err := f.noDowngrade().Do(req)
	if err != nil {
		var de downgradeError
		if errors.As(err, &de) {
			return nil, permanent(err)
		}
		return nil, fmt.Errorf("GET %s: %w", raw, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		err := fmt.Errorf("GET %s: %s", raw, resp.Status)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return nil, err
		}
		return nil, permanent(err)
	}
	return resp.Body, nil
}

type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

// permanent marks an error that a retry cannot fix.
func permanent(err error) error { return permanentError{err} }

// retry runs fn up to three times while it fails transiently (network
// errors, 5xx, 429).
func (f *fetcher) retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (after: %w)", ctx.Err(), err)
			case <-time.After(f.retryDelay * time.Duration(attempt)):
			}
		}
		err = fn()
		var p permanentError
		if err == nil || errors.As(err, &p) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// downgradeError is a redirect from https:// to http://.
type downgradeError struct{ from, to string }

func (e downgradeError) Error() string {
	return fmt.Sprintf("%s redirects to plain http (%s); esnode never follows https to http: fix the server or the URL", e.from, e.to)
}

// noDowngrade is the fetcher's client refusing redirects from https to
// http (and keeping the client's own redirect policy otherwise).
func (f *fetcher) noDowngrade() *http.Client {
	c := *f.client
	inner := f.client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		for _, v := range via {
			if v.URL.Scheme == "https" && req.URL.Scheme != "https" {
				return downgradeError{from: via[0].URL.String(), to: req.URL.String()}
			}
		}
		if inner != nil {
			return inner(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}
