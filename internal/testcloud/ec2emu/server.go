package ec2emu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultAccountID is the account every caller is treated as.
const DefaultAccountID = "000000000000"

// ec2Namespace is the XML namespace EC2 puts on every response element.
const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// Timing controls how long a transitional state (pending, stopping, shutting-down) lasts.
// A resource leaves the state only once both conditions hold, so the zero Timing advances on
// the first observation after creation.
type Timing struct {
	// Polls is how many Describe responses show the transitional state before it advances.
	Polls int
	// Delay is the minimum wall time spent in the transitional state.
	Delay time.Duration
}

// Options configures a Server. The zero value is usable.
type Options struct {
	// Regions the emulator serves; requests for other regions fail with AuthFailure.
	// Default: us-east-1, us-west-2, eu-west-1.
	Regions []string
	// DefaultRegion is used when a request carries no SigV4 credential scope. Default: Regions[0].
	DefaultRegion string
	// AccountID of the caller. Default: DefaultAccountID.
	AccountID string
	// VPCCIDR of the default VPC seeded in every region. Default: 10.0.0.0/16.
	VPCCIDR string
	// Subnets seeded in each region's default VPC. Default: two public subnets,
	// 10.0.0.0/24 in zone "a" and 10.0.1.0/24 in zone "b".
	Subnets []SubnetSpec
	// InstanceTiming governs pending, stopping and shutting-down. Default: Polls 1.
	InstanceTiming *Timing
	// ImageTiming governs image pending→available and snapshot pending→completed. Default: Polls 1.
	ImageTiming *Timing
	// TerminatedRetention is how long terminated instances stay visible. Default: 1h as on AWS.
	TerminatedRetention time.Duration
	// EventualConsistency is how many calls naming a new instance or image by id answer
	// InvalidInstanceID.NotFound / InvalidAMIID.NotFound before it becomes visible, as AWS
	// does shortly after RunInstances, CreateImage and CopyImage. Default 0.
	EventualConsistency int
	// Backend, when set, backs instances with real guests. Nil means instances are pure state.
	Backend Backend
	// Addr, when set, makes Start listen there (for demos); default is a random loopback port.
	Addr string
	// PortAddress, when set, says where an instance's port lives for Session Manager port
	// forwarding (e.g. a test's echo server); otherwise a BackendInstance that implements
	// PortLocator says.
	PortAddress func(instanceID string, port int) (string, error)
	// RunCommandTimeScale multiplies Run Command's TimeoutSeconds and executionTimeout when
	// the emulator enforces them (0.001 lets AWS's 30-second minimum pass in 30 ms); the API
	// still validates the real ranges. Default 1.
	RunCommandTimeScale float64
}

// SubnetSpec describes a seeded or added subnet.
type SubnetSpec struct {
	CIDR string
	// Zone is the AZ suffix ("a") or full name ("us-east-1a").
	Zone string
	// MapPublicIP assigns a public address (from 192.0.2.0/24 without a backend) at launch.
	MapPublicIP bool
	Tags        map[string]string
}

// Server is the emulator. It is an http.Handler; Start serves it on loopback.
type Server struct {
	opts    Options
	account string

	mu          sync.Mutex
	regions     map[string]*region
	seq         int64
	pubIPs      map[string]bool
	faults      faultState
	backendErrs []error
	activeOps   int
	tokens      map[string]string // client token → reservation/image id
	sessions    map[string]*ssmSession
	runCmd      runCommandState        // ssm_command.go
	agents      map[string]*agentState // ssm_agent.go, by instance id
	s3          s3Store                // s3.go
	endpoint    string

	ctx       context.Context
	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	srv       *httptest.Server
	hsrv      *http.Server
	now       func() time.Time
}

// New returns a Server with seeded regions, default VPCs, subnets and default security groups.
func New(opts Options) *Server {
	if len(opts.Regions) == 0 {
		opts.Regions = []string{"us-east-1", "us-west-2", "eu-west-1"}
	}
	if opts.DefaultRegion == "" {
		opts.DefaultRegion = opts.Regions[0]
	}
	if opts.VPCCIDR == "" {
		opts.VPCCIDR = "10.0.0.0/16"
	}
	if opts.Subnets == nil {
		opts.Subnets = []SubnetSpec{
			{CIDR: "10.0.0.0/24", Zone: "a", MapPublicIP: true},
			{CIDR: "10.0.1.0/24", Zone: "b", MapPublicIP: true},
		}
	}
	if opts.InstanceTiming == nil {
		opts.InstanceTiming = &Timing{Polls: 1}
	}
	if opts.ImageTiming == nil {
		opts.ImageTiming = &Timing{Polls: 1}
	}
	if opts.TerminatedRetention == 0 {
		opts.TerminatedRetention = time.Hour
	}
	account := opts.AccountID
	if account == "" {
		account = DefaultAccountID
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:    opts,
		account: account,
		regions: map[string]*region{},
		pubIPs:  map[string]bool{},
		tokens:  map[string]string{},
		agents:  map[string]*agentState{},
		s3:      s3Store{buckets: map[string]*s3Bucket{}},
		ctx:     ctx,
		cancel:  cancel,
		now:     time.Now,
	}
	s.faults.init()
	for _, name := range opts.Regions {
		r := newRegion(s, name)
		s.regions[name] = r
		vpcID := r.addVPC(opts.VPCCIDR, true, nil)
		for _, sn := range opts.Subnets {
			if _, err := r.addSubnet(vpcID, sn, true); err != nil {
				panic(fmt.Sprintf("ec2emu: bad seed subnet %+v: %v", sn, err))
			}
		}
	}
	return s
}

// Start serves the emulator on a loopback port (or Options.Addr) and returns its base URL,
// suitable for the SDK clients' BaseEndpoint.
func (s *Server) Start() string {
	if s.opts.Addr != "" {
		ln, err := net.Listen("tcp", s.opts.Addr)
		if err != nil {
			panic(fmt.Sprintf("ec2emu: listen on %s: %v (pick a free address)", s.opts.Addr, err))
		}
		s.hsrv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
		go s.hsrv.Serve(ln) //nolint:errcheck // Serve returns on Close
		s.mu.Lock()
		s.endpoint = "http://" + ln.Addr().String()
		s.mu.Unlock()
		return s.Endpoint()
	}
	s.srv = httptest.NewServer(s)
	s.mu.Lock()
	s.endpoint = s.srv.URL
	s.mu.Unlock()
	return s.srv.URL
}

// Endpoint returns the URL Start returned, or "" before Start.
func (s *Server) Endpoint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoint
}

// Close stops serving, cancels in-flight backend operations and waits for them. It is safe
// to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.srv != nil {
			s.srv.Close()
		}
		if s.hsrv != nil {
			_ = s.hsrv.Close()
		}
		s.closeSessions() // hijacked websockets outlive the HTTP server
		// Cancel under the lock so enqueue (which runs under it) never adds work after Wait began.
		s.mu.Lock()
		s.cancel()
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// apiError is an AWS error answer.
type apiError struct {
	Code    string
	Message string
	Status  int
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errf(code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...), Status: statusFor(code)}
}

// statusFor maps an error code to the HTTP status AWS answers it with.
func statusFor(code string) int {
	switch code {
	case "RequestLimitExceeded", "Unavailable", "ServiceUnavailable":
		return http.StatusServiceUnavailable
	case "InternalError", "InternalFailure", "InternalServerError":
		return http.StatusInternalServerError
	case "UnauthorizedOperation", "AuthFailure", "AccessDeniedException", "AccessDenied":
		return http.StatusForbidden
	case "MissingAuthenticationToken":
		return http.StatusUnauthorized
	case "DryRunOperation":
		return http.StatusPreconditionFailed
	}
	return http.StatusBadRequest
}

// Envelope is embedded in every EC2 response body for the <requestId> element. It is exported
// only because encoding/xml cannot marshal unexported embedded structs.
type Envelope struct {
	RequestID string `xml:"requestId"`
}

func (r *Envelope) setHeader(id string) { r.RequestID = id }

type header interface{ setHeader(id string) }

type returnResponse struct {
	Envelope
	Return bool `xml:"return"`
}

func okResponse() header { return &returnResponse{Return: true} }

// request is one API call being served.
type request struct {
	service string // ec2, ssm, sts
	action  string
	region  *region
	p       params
	body    []byte // JSON body for ssm
	id      string
	now     time.Time
}

var credScope = regexp.MustCompile(`Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request`)

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ServeHTTP answers EC2 and STS Query calls, SSM JSON 1.1 calls and the /_emu admin API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_emu/") {
		s.serveAdmin(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, dataChannelPath) {
		s.serveDataChannel(w, r)
		return
	}
	reqID := newRequestID()
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	req := &request{id: reqID, body: body}
	target := r.Header.Get("X-Amz-Target")
	regionName := s.opts.DefaultRegion
	auth := r.Header.Get("Authorization")
	m := credScope.FindStringSubmatch(auth)
	if m != nil {
		regionName = m[1]
	}
	if m != nil && m[2] == "s3" {
		s.mu.Lock()
		req.region = s.regions[regionName]
		s.mu.Unlock()
		if req.region == nil {
			req.service = "s3"
			s.writeS3Error(w, req, "AuthorizationHeaderMalformed", fmt.Sprintf("region %q is not served by this emulator (serving %v)", regionName, s.opts.Regions))
			return
		}
		s.serveS3(w, r, req, body)
		return
	}
	if strings.HasPrefix(target, "AmazonSSM.") {
		req.service = "ssm"
		req.action = strings.TrimPrefix(target, "AmazonSSM.")
	} else if strings.HasPrefix(target, "secretsmanager.") {
		req.service = "secretsmanager"
		req.action = strings.TrimPrefix(target, "secretsmanager.")
	} else {
		form, perr := url.ParseQuery(string(body))
		if perr != nil {
			s.writeError(w, req, errf("MalformedQueryString", "cannot parse form body: %v", perr))
			return
		}
		for k, v := range r.URL.Query() {
			if _, ok := form[k]; !ok {
				form[k] = v
			}
		}
		req.p = params(form)
		req.action = req.p.str("Action")
		req.service = "ec2"
		switch req.p.str("Version") {
		case "2011-06-15":
			req.service = "sts"
		case "2011-01-01":
			req.service = "autoscaling"
		}
	}
	if auth == "" || !strings.HasPrefix(auth, "AWS4-HMAC-SHA256") {
		s.writeError(w, req, errf("MissingAuthenticationToken", "request must be signed with SigV4 (an Authorization header is required)"))
		return
	}
	if req.action == "" {
		s.writeError(w, req, errf("MissingAction", "the request must contain the parameter Action"))
		return
	}

	s.mu.Lock()
	rg := s.regions[regionName]
	s.mu.Unlock()
	if rg == nil && req.service != "sts" {
		s.writeError(w, req, errf("AuthFailure", "region %q is not served by this emulator (serving %v)", regionName, s.opts.Regions))
		return
	}
	req.region = rg

	f := s.faults.decide(req.action)
	if f.latency > 0 {
		select {
		case <-time.After(f.latency):
		case <-r.Context().Done():
			return
		}
	}
	if f.err != nil && !f.afterApply {
		s.logCall(req, f.err.Code)
		s.writeError(w, req, f.err)
		return
	}

	s.mu.Lock()
	req.now = s.now()
	var out any
	var aerr *apiError
	switch req.service {
	case "ec2":
		out, aerr = s.dispatchEC2(req)
	case "ssm":
		out, aerr = s.dispatchSSM(req)
	case "secretsmanager":
		out, aerr = s.dispatchSecretsManager(req)
	case "sts":
		out, aerr = s.dispatchSTS(req)
	case "autoscaling":
		out, aerr = s.dispatchAutoScaling(req)
	}
	s.mu.Unlock()

	if f.err != nil {
		aerr = f.err
	}
	code := ""
	if aerr != nil {
		code = aerr.Code
	}
	s.logCall(req, code)
	if aerr != nil {
		s.writeError(w, req, aerr)
		return
	}
	s.writeResult(w, req, out)
}

func (s *Server) writeResult(w http.ResponseWriter, req *request, out any) {
	switch req.service {
	case "ssm", "secretsmanager":
		writeJSON(w, http.StatusOK, out)
		return
	case "sts", "autoscaling":
		ns := "https://sts.amazonaws.com/doc/2011-06-15/"
		if req.service == "autoscaling" {
			ns = autoscalingNamespace
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, `<%sResponse xmlns="%s"><%sResult>`, req.action, ns, req.action)
		_, _ = io.WriteString(w, out.(string))
		fmt.Fprintf(w, `</%sResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`, req.action, req.id, req.action)
		return
	}
	h := out.(header)
	h.setHeader(req.id)
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	start := xml.StartElement{Name: xml.Name{Local: req.action + "Response"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: ec2Namespace}}}
	if err := xml.NewEncoder(&buf).EncodeElement(h, start); err != nil {
		s.writeError(w, req, errf("InternalError", "marshal response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) writeError(w http.ResponseWriter, req *request, e *apiError) {
	status := e.Status
	if status == 0 {
		status = statusFor(e.Code)
	}
	switch req.service {
	case "ssm", "secretsmanager":
		code := e.Code
		if code == "RequestLimitExceeded" {
			code = "ThrottlingException"
			status = http.StatusBadRequest
		}
		w.Header().Set("X-Amzn-ErrorType", code)
		w.Header().Set("X-Amzn-RequestId", req.id)
		writeJSON(w, status, map[string]string{"__type": code, "message": e.Message})
		return
	case "sts", "autoscaling":
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
			xmlEscape(e.Code), xmlEscape(e.Message), req.id)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `%s<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
		xml.Header, xmlEscape(e.Code), xmlEscape(e.Message), req.id)
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// nextSeq returns a counter used to order resources by creation; callers hold s.mu.
func (s *Server) nextSeq() int64 {
	s.seq++
	return s.seq
}

// newID returns prefix-<17 hex digits>; callers hold s.mu.
func (s *Server) newID(prefix string) string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])[:17]
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func itoa(n int) string { return strconv.Itoa(n) }
