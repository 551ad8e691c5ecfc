package ec2emu

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A minimal S3 for Run Command output, path-style only (the SDK's s3 client with
// BaseEndpoint = the emulator and UsePathStyle = true): CreateBucket, HeadBucket,
// DeleteBucket, PutObject, GetObject, HeadObject, DeleteObject and ListObjectsV2. A request
// is S3 when its SigV4 credential scope names the s3 service. Buckets are global (one
// namespace for every region, as on AWS); no ACLs, versioning or multipart uploads.

// s3Store is every bucket. Guarded by Server.mu.
type s3Store struct {
	buckets map[string]*s3Bucket
}

type s3Bucket struct {
	name, region string
	created      time.Time
	objects      map[string]*s3Object
}

type s3Object struct {
	body     []byte
	etag     string
	modified time.Time
}

var reBucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// put stores an object; callers hold s.mu.
func (st *s3Store) put(bucket, key string, body []byte, now time.Time) error {
	b := st.buckets[bucket]
	if b == nil {
		return fmt.Errorf("bucket %s does not exist", bucket)
	}
	sum := md5.Sum(body)
	b.objects[key] = &s3Object{body: append([]byte(nil), body...), etag: `"` + hex.EncodeToString(sum[:]) + `"`, modified: now}
	return nil
}

// CreateBucket makes a bucket in region (as a test's setup would with the s3 client).
func (s *Server) CreateBucket(region, name string) error {
	if !reBucketName.MatchString(name) {
		return fmt.Errorf("bucket name %q is not valid: 3-63 lowercase letters, digits, dots and hyphens", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s3.buckets[name] != nil {
		return fmt.Errorf("bucket %s already exists", name)
	}
	s.s3.buckets[name] = &s3Bucket{name: name, region: region, created: s.now(), objects: map[string]*s3Object{}}
	return nil
}

// Objects lists the keys in bucket, sorted.
func (s *Server) Objects(bucket string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.s3.buckets[bucket]
	if b == nil {
		return nil
	}
	keys := make([]string, 0, len(b.objects))
	for k := range b.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// objectLeaks lists every object left in a bucket of region; callers hold s.mu.
func (s *Server) objectLeaks(region string) []Leak {
	var out []Leak
	names := make([]string, 0, len(s.s3.buckets))
	for n, b := range s.s3.buckets {
		if b.region == region {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		keys := make([]string, 0)
		for k := range s.s3.buckets[n].objects {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, Leak{Region: region, ID: k, Name: n})
		}
	}
	return out
}

type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Key       string   `xml:"Key,omitempty"`
	Bucket    string   `xml:"BucketName,omitempty"`
	RequestID string   `xml:"RequestId"`
}

func s3Status(code string) int {
	switch code {
	case "NoSuchBucket", "NoSuchKey":
		return http.StatusNotFound
	case "BucketNotEmpty", "BucketAlreadyOwnedByYou", "BucketAlreadyExists":
		return http.StatusConflict
	case "SlowDown", "RequestLimitExceeded", "ServiceUnavailable":
		return http.StatusServiceUnavailable
	case "NotImplemented":
		return http.StatusNotImplemented
	}
	return statusFor(code)
}

type listBucketResult struct {
	XMLName               xml.Name     `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name                  string       `xml:"Name"`
	Prefix                string       `xml:"Prefix"`
	KeyCount              int          `xml:"KeyCount"`
	MaxKeys               int          `xml:"MaxKeys"`
	IsTruncated           bool         `xml:"IsTruncated"`
	Contents              []s3Contents `xml:"Contents"`
	ContinuationToken     string       `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string       `xml:"NextContinuationToken,omitempty"`
	StartAfter            string       `xml:"StartAfter,omitempty"`
}

type s3Contents struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int    `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
}

// s3Action names the S3 operation of a path-style request.
func s3Action(method, bucket, key string, q url.Values) string {
	switch {
	case bucket == "":
		if method == http.MethodGet {
			return "ListBuckets"
		}
	case key == "":
		switch method {
		case http.MethodPut:
			return "CreateBucket"
		case http.MethodDelete:
			return "DeleteBucket"
		case http.MethodHead:
			return "HeadBucket"
		case http.MethodGet:
			if q.Get("list-type") == "2" {
				return "ListObjectsV2"
			}
			return "ListObjects"
		}
	default:
		switch method {
		case http.MethodPut:
			return "PutObject"
		case http.MethodGet:
			return "GetObject"
		case http.MethodHead:
			return "HeadObject"
		case http.MethodDelete:
			return "DeleteObject"
		}
	}
	return method
}

// serveS3 answers one S3 request; body is already read.
func (s *Server) serveS3(w http.ResponseWriter, r *http.Request, req *request, body []byte) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	q := r.URL.Query()
	req.service = "s3"
	req.action = s3Action(r.Method, bucket, key, q)
	req.p = params(url.Values{"Bucket": {bucket}, "Key": {key}})
	fail := func(code, msg string) {
		s.logCall(req, code)
		w.Header().Set("X-Amz-Request-Id", req.id)
		if r.Method == http.MethodHead {
			w.WriteHeader(s3Status(code))
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(s3Status(code))
		out, _ := xml.Marshal(s3Error{Code: code, Message: msg, Key: key, Bucket: bucket, RequestID: req.id})
		_, _ = w.Write(append([]byte(xml.Header), out...))
	}
	f := s.faults.decide(req.action)
	if f.latency > 0 {
		select {
		case <-time.After(f.latency):
		case <-r.Context().Done():
			return
		}
	}
	if f.err != nil && !f.afterApply {
		code := f.err.Code
		if code == "RequestLimitExceeded" {
			code = "SlowDown"
		}
		fail(code, f.err.Message)
		return
	}
	if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") || strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		decoded, err := decodeAWSChunked(body)
		if err != nil {
			fail("IncompleteBody", "cannot decode aws-chunked body: "+err.Error())
			return
		}
		body = decoded
	}

	s.mu.Lock()
	now := s.now()
	b := s.s3.buckets[bucket]
	var (
		code, msg string
		status    = http.StatusOK
		out       []byte
		headers   = map[string]string{}
	)
	switch req.action {
	case "CreateBucket":
		switch {
		case !reBucketName.MatchString(bucket):
			code, msg = "InvalidBucketName", "The specified bucket is not valid."
		case b != nil:
			code, msg = "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it."
		default:
			s.s3.buckets[bucket] = &s3Bucket{name: bucket, region: req.region.name, created: now, objects: map[string]*s3Object{}}
			headers["Location"] = "/" + bucket
		}
	case "DeleteBucket", "HeadBucket", "ListObjectsV2", "PutObject", "GetObject", "HeadObject", "DeleteObject":
		if b == nil {
			code, msg = "NoSuchBucket", "The specified bucket does not exist."
			break
		}
		switch req.action {
		case "DeleteBucket":
			if len(b.objects) > 0 {
				code, msg = "BucketNotEmpty", "The bucket you tried to delete is not empty."
			} else {
				delete(s.s3.buckets, bucket)
				status = http.StatusNoContent
			}
		case "HeadBucket":
			headers["X-Amz-Bucket-Region"] = b.region
		case "ListObjectsV2":
			out, code, msg = listObjectsV2(b, q)
			headers["Content-Type"] = "application/xml"
		case "PutObject":
			if r.Header.Get("X-Amz-Copy-Source") != "" {
				code, msg = "NotImplemented", "CopyObject is not served by the emulator."
				break
			}
			_ = s.s3.put(bucket, key, body, now)
			headers["ETag"] = b.objects[key].etag
		case "GetObject", "HeadObject":
			o := b.objects[key]
			if o == nil {
				code, msg = "NoSuchKey", "The specified key does not exist."
				break
			}
			headers["ETag"] = o.etag
			headers["Last-Modified"] = o.modified.UTC().Format(http.TimeFormat)
			headers["Content-Type"] = "application/octet-stream"
			headers["Content-Length"] = strconv.Itoa(len(o.body))
			// S3 returns the object's checksum; the SDK validates it (and logs when absent).
			sum := crc32.ChecksumIEEE(o.body)
			headers["X-Amz-Checksum-Crc32"] = base64.StdEncoding.EncodeToString([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
			headers["X-Amz-Checksum-Type"] = "FULL_OBJECT"
			if req.action == "GetObject" {
				out = o.body
			}
		case "DeleteObject":
			delete(b.objects, key) // deleting a missing key succeeds, as on S3
			status = http.StatusNoContent
		}
	default:
		code, msg = "NotImplemented", fmt.Sprintf("%s is not served by the emulator's S3 (it serves CreateBucket, HeadBucket, DeleteBucket, PutObject, GetObject, HeadObject, DeleteObject, ListObjectsV2; path-style only)", req.action)
	}
	s.mu.Unlock()
	if f.err != nil { // AfterApply
		code, msg = f.err.Code, f.err.Message
	}
	if code != "" {
		fail(code, msg)
		return
	}
	s.logCall(req, "")
	w.Header().Set("X-Amz-Request-Id", req.id)
	for k, v := range headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead && out != nil {
		_, _ = w.Write(out)
	}
}

func listObjectsV2(b *s3Bucket, q url.Values) ([]byte, string, string) {
	max := 1000
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, "InvalidArgument", "max-keys must be a non-negative integer"
		}
		max = min(n, 1000)
	}
	prefix := q.Get("prefix")
	after := q.Get("start-after")
	token := q.Get("continuation-token")
	if token != "" {
		k, err := hex.DecodeString(token)
		if err != nil {
			return nil, "InvalidArgument", "The continuation token provided is incorrect"
		}
		after = string(k)
	}
	keys := make([]string, 0, len(b.objects))
	for k := range b.objects {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	res := listBucketResult{Name: b.name, Prefix: prefix, MaxKeys: max, ContinuationToken: token, StartAfter: q.Get("start-after")}
	if len(keys) > max {
		keys = keys[:max]
		res.IsTruncated = true
		res.NextContinuationToken = hex.EncodeToString([]byte(keys[len(keys)-1]))
	}
	for _, k := range keys {
		o := b.objects[k]
		res.Contents = append(res.Contents, s3Contents{Key: k, LastModified: fmtTime(o.modified), ETag: o.etag, Size: len(o.body), StorageClass: "STANDARD"})
	}
	res.KeyCount = len(res.Contents)
	out, err := xml.Marshal(res)
	if err != nil {
		return nil, "InternalError", err.Error()
	}
	return append([]byte(xml.Header), out...), "", ""
}

// decodeAWSChunked strips the aws-chunked framing (hex-size[;chunk-signature=...]\r\n data
// \r\n ... 0\r\n trailers \r\n) the SDK uses for streaming uploads.
func decodeAWSChunked(body []byte) ([]byte, error) {
	rd := bufio.NewReader(bytes.NewReader(body))
	var out bytes.Buffer
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("chunk header: %w", err)
		}
		sizeHex, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
		n, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("chunk size %q", sizeHex)
		}
		if n == 0 {
			return out.Bytes(), nil // trailers (checksums) follow; not verified
		}
		if _, err := io.CopyN(&out, rd, n); err != nil {
			return nil, fmt.Errorf("chunk data: %w", err)
		}
		if _, err := rd.ReadString('\n'); err != nil {
			return nil, fmt.Errorf("chunk end: %w", err)
		}
	}
}

func (s *Server) writeS3Error(w http.ResponseWriter, req *request, code, msg string) {
	s.logCall(req, code)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(s3Status(code))
	out, _ := xml.Marshal(s3Error{Code: code, Message: msg, RequestID: req.id})
	_, _ = w.Write(append([]byte(xml.Header), out...))
}
