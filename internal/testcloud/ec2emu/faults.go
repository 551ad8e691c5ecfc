package ec2emu

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Fault makes matching calls fail, slow down, or both.
type Fault struct {
	// Action is the API action ("RunInstances", "PutParameter"); "" or "*" matches every action.
	Action string `json:"action"`
	// Code is the error code to answer with; empty injects only Latency.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Status overrides the HTTP status; 0 uses the one AWS sends for Code.
	Status int `json:"status,omitempty"`
	// Nth (1-based) fails only the Nth matching call counted from when the fault was added;
	// 0 fails every matching call.
	Nth int `json:"nth,omitempty"`
	// Count is how many consecutive calls fail from the Nth on (default 1). Retryable codes
	// (InternalError, RequestLimitExceeded) are retried by the SDK, so a Count of 1 with such a
	// code is usually invisible to the caller.
	Count int `json:"count,omitempty"`
	// Latency delays every matching call (JSON: a Go duration string such as "250ms").
	Latency time.Duration `json:"-"`
	// AfterApply performs the action and then answers with the error anyway, as when a
	// Envelope is lost: the resource exists but the caller never learns its id.
	AfterApply bool `json:"after_apply,omitempty"`
}

// Call is one API call as the emulator saw it.
type Call struct {
	Time    time.Time           `json:"time"`
	Region  string              `json:"region"`
	Service string              `json:"service"` // ec2, ssm, sts
	Action  string              `json:"action"`
	Params  map[string][]string `json:"params,omitempty"` // Query parameters (ec2, sts)
	Body    string              `json:"body,omitempty"`   // JSON body (ssm)
	// ErrorCode is the code answered, "" on success.
	ErrorCode string `json:"error_code,omitempty"`
}

type activeFault struct {
	Fault
	id   int
	seen int
}

type faultState struct {
	mu       sync.Mutex
	faults   []*activeFault
	nextID   int
	throttle float64
	rng      *rand.Rand
	calls    []Call
}

func (f *faultState) init() { f.rng = rand.New(rand.NewSource(1)) }

type decision struct {
	err        *apiError
	latency    time.Duration
	afterApply bool
}

func (f *faultState) decide(action string) decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d decision
	if f.throttle > 0 && f.rng.Float64() < f.throttle {
		d.err = errf("RequestLimitExceeded", "Request limit exceeded.")
		return d
	}
	for _, af := range f.faults {
		if af.Action != "" && af.Action != "*" && af.Action != action {
			continue
		}
		af.seen++
		d.latency += af.Latency
		if af.Code == "" {
			continue
		}
		count := af.Count
		if count <= 0 {
			count = 1
		}
		if af.Nth == 0 || (af.seen >= af.Nth && af.seen < af.Nth+count) {
			if d.err == nil {
				msg := af.Message
				if msg == "" {
					msg = fmt.Sprintf("injected fault for %s", action)
				}
				d.err = &apiError{Code: af.Code, Message: msg, Status: af.Status}
				if d.err.Status == 0 {
					d.err.Status = statusFor(af.Code)
				}
				d.afterApply = af.AfterApply
			}
		}
	}
	return d
}

// InjectFault adds a fault and returns its id for RemoveFault.
func (s *Server) InjectFault(f Fault) int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.nextID++
	s.faults.faults = append(s.faults.faults, &activeFault{Fault: f, id: s.faults.nextID})
	return s.faults.nextID
}

// RemoveFault drops one fault.
func (s *Server) RemoveFault(id int) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	for i, af := range s.faults.faults {
		if af.id == id {
			s.faults.faults = append(s.faults.faults[:i], s.faults.faults[i+1:]...)
			return
		}
	}
}

// ClearFaults drops every fault and turns throttling off.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.faults = nil
	s.faults.throttle = 0
}

// SetThrottle answers the given fraction (0..1) of all API calls with RequestLimitExceeded
// (HTTP 503; ThrottlingException for SSM). The choice is pseudo-random from seed, so a run
// with the same call sequence throttles the same calls.
func (s *Server) SetThrottle(rate float64, seed int64) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.throttle = rate
	s.faults.rng = rand.New(rand.NewSource(seed))
}

// Calls returns every API call so far, oldest first.
func (s *Server) Calls() []Call {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return append([]Call(nil), s.faults.calls...)
}

// CallCount counts calls of one action (all actions for "").
func (s *Server) CallCount(action string) int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	n := 0
	for _, c := range s.faults.calls {
		if action == "" || c.Action == action {
			n++
		}
	}
	return n
}

// ResetCalls empties the call log.
func (s *Server) ResetCalls() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.calls = nil
}

func (s *Server) logCall(req *request, code string) {
	c := Call{Time: time.Now(), Service: req.service, Action: req.action, ErrorCode: code}
	if req.region != nil {
		c.Region = req.region.name
	}
	if req.service == "ssm" {
		c.Body = string(req.body)
	} else {
		c.Params = map[string][]string{}
		for k, v := range req.p {
			if k != "Action" && k != "Version" {
				c.Params[k] = append([]string(nil), v...)
			}
		}
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.calls = append(s.faults.calls, c)
}

type faultJSON struct {
	Fault
	Latency string `json:"latency,omitempty"`
}

// serveAdmin is the JSON admin API:
//
//	GET    /_emu/leaks     Leaks()
//	GET    /_emu/calls     Calls();  DELETE resets the log
//	POST   /_emu/faults    one Fault object or an array; answers {"ids":[...]}
//	DELETE /_emu/faults    ClearFaults()
//	POST   /_emu/throttle  {"rate":0.3,"seed":1}
//	POST   /_emu/images    one ImageSpec; answers {"image_id":"ami-..."}
//	POST   /_emu/agents    {"instance_id":"i-...","status":"ConnectionLost"} (SetAgentStatus)
//	POST   /_emu/buckets   {"region":"us-east-1","name":"b"} (CreateBucket)
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	bad := func(err error) { writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()}) }
	switch r.Method + " " + r.URL.Path {
	case "GET /_emu/leaks":
		writeJSON(w, http.StatusOK, s.Leaks())
	case "GET /_emu/calls":
		writeJSON(w, http.StatusOK, s.Calls())
	case "DELETE /_emu/calls":
		s.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	case "POST /_emu/faults":
		var raw json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			bad(fmt.Errorf("decode fault JSON: %w", err))
			return
		}
		var list []faultJSON
		if len(raw) > 0 && raw[0] == '[' {
			if err := json.Unmarshal(raw, &list); err != nil {
				bad(fmt.Errorf("decode fault array: %w", err))
				return
			}
		} else {
			var one faultJSON
			if err := json.Unmarshal(raw, &one); err != nil {
				bad(fmt.Errorf("decode fault: %w", err))
				return
			}
			list = append(list, one)
		}
		// Validate every fault before adding any, so a bad list changes nothing.
		faults := make([]Fault, 0, len(list))
		for _, fj := range list {
			f := fj.Fault
			if fj.Latency != "" {
				d, err := time.ParseDuration(fj.Latency)
				if err != nil {
					bad(fmt.Errorf("latency %q: %w (use a Go duration like 250ms)", fj.Latency, err))
					return
				}
				f.Latency = d
			}
			faults = append(faults, f)
		}
		ids := []int{}
		for _, f := range faults {
			ids = append(ids, s.InjectFault(f))
		}
		writeJSON(w, http.StatusOK, map[string][]int{"ids": ids})
	case "DELETE /_emu/faults":
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case "POST /_emu/throttle":
		var t struct {
			Rate float64 `json:"rate"`
			Seed int64   `json:"seed"`
		}
		if err := json.NewDecoder(r.Body).Decode(&t); err != nil {
			bad(fmt.Errorf("decode throttle JSON: %w", err))
			return
		}
		s.SetThrottle(t.Rate, t.Seed)
		w.WriteHeader(http.StatusNoContent)
	case "POST /_emu/images":
		var spec ImageSpec
		if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
			bad(fmt.Errorf("decode image spec: %w", err))
			return
		}
		id, err := s.AddImage(spec)
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"image_id": id})
	case "POST /_emu/agents":
		var a struct {
			InstanceID string `json:"instance_id"`
			Status     string `json:"status"`
		}
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			bad(fmt.Errorf("decode agent JSON: %w", err))
			return
		}
		if err := s.SetAgentStatus(a.InstanceID, a.Status); err != nil {
			bad(err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "POST /_emu/buckets":
		var b struct{ Region, Name string }
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			bad(fmt.Errorf("decode bucket JSON: %w", err))
			return
		}
		if b.Region == "" {
			b.Region = s.opts.DefaultRegion
		}
		if err := s.CreateBucket(b.Region, b.Name); err != nil {
			bad(err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		paths := []string{"GET /_emu/leaks", "GET|DELETE /_emu/calls", "POST|DELETE /_emu/faults", "POST /_emu/throttle", "POST /_emu/images", "POST /_emu/agents", "POST /_emu/buckets"}
		sort.Strings(paths)
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "unknown admin endpoint", "endpoints": paths})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
