package ec2emu

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Session Manager: StartSession, TerminateSession and ResumeSession over
// SSM's JSON 1.1 API, and (ssm_datachannel.go) the data channel websocket
// the session-manager-plugin connects to. Only port forwarding is served
// (the document AWS-StartPortForwardingSession),
// which is what `ssh_interface = "session_manager"` uses.

// PortLocator is optionally implemented by a BackendInstance whose guest is
// reachable from the emulator's host: it answers where the instance's port
// lives ("10.0.0.5:22"), so a Session Manager port forwarding session can be
// relayed there. The emulator plays the SSM agent on the instance.
type PortLocator interface {
	PortAddress(port int) (string, error)
}

// Session states as DescribeSessions reports them.
const (
	SessionConnected  = "Connected"
	SessionTerminated = "Terminated"
)

// portForwardingDocs are the SSM documents the emulator's "agent" serves.
var portForwardingDocs = map[string]bool{
	"AWS-StartPortForwardingSession": true,
}

// ssmSession is one Session Manager session. Fields other than the
// counters are guarded by Server.mu.
type ssmSession struct {
	id, region, target, document, token string
	port                                int
	localPort                           string
	status                              string
	seq                                 int64
	dc                                  *dataChannel // the connected websocket, nil when none

	connects  atomic.Int64 // data channels opened with the right token
	streams   atomic.Int64 // tunnelled connections relayed to the instance
	bytesUp   atomic.Int64 // bytes from the client to the instance
	bytesDown atomic.Int64 // bytes from the instance to the client
	rejected  atomic.Int64 // data channels refused for a wrong token or an ended session

	errMu   sync.Mutex
	lastErr string
}

// SessionInfo describes a Session Manager session for assertions.
type SessionInfo struct {
	ID, Region, Target, Document, Status string
	Port                                 int
	// DataChannels is how many websocket connections presented the session's token.
	DataChannels int64
	// Streams is how many tunnelled connections were relayed to the instance's port.
	Streams int64
	// BytesToInstance and BytesFromInstance count the relayed payload bytes.
	BytesToInstance, BytesFromInstance int64
	// Rejected counts data channels refused (wrong token, session ended).
	Rejected int64
	// LastError is the last problem the data channel met ("" if none).
	LastError string
}

// Sessions lists every session started, oldest first.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SessionInfo, 0, len(s.sessions))
	for _, ss := range sortedBySeq(s.sessions, sessionSeq) {
		out = append(out, SessionInfo{ID: ss.id, Region: ss.region, Target: ss.target, Document: ss.document,
			Status: ss.status, Port: ss.port, DataChannels: ss.connects.Load(), Streams: ss.streams.Load(),
			BytesToInstance: ss.bytesUp.Load(), BytesFromInstance: ss.bytesDown.Load(),
			Rejected: ss.rejected.Load(), LastError: ss.lastError()})
	}
	return out
}

// sessionLeaks lists sessions nobody terminated; callers hold s.mu.
func (s *Server) sessionLeaks(region string) []Leak {
	var out []Leak
	for _, ss := range sortedBySeq(s.sessions, sessionSeq) {
		if ss.region == region && ss.status != SessionTerminated {
			out = append(out, Leak{Region: region, ID: ss.id, Name: ss.target, State: ss.status})
		}
	}
	return out
}

func sessionSeq(ss *ssmSession) int64 { return ss.seq }

func (ss *ssmSession) lastError() string {
	ss.errMu.Lock()
	defer ss.errMu.Unlock()
	return ss.lastErr
}

func newSessionToken() string {
	var b [48]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// dispatchSSMSession serves the Session Manager actions; ok is false for
// other actions. Runs under s.mu.
func (s *Server) dispatchSSMSession(req *request) (out any, aerr *apiError, ok bool) {
	switch req.action {
	case "StartSession", "TerminateSession", "ResumeSession":
	default:
		return nil, nil, false
	}
	var in struct {
		Target       string
		DocumentName string
		Parameters   map[string][]string
		SessionId    string
	}
	if len(req.body) > 0 {
		if err := json.Unmarshal(req.body, &in); err != nil {
			return nil, errf("SerializationException", "cannot decode request JSON: %v", err), true
		}
	}
	if s.sessions == nil {
		s.sessions = map[string]*ssmSession{}
	}
	switch req.action {
	case "StartSession":
		out, aerr = s.startSession(req, in.Target, in.DocumentName, in.Parameters)
	case "TerminateSession":
		if in.SessionId == "" {
			return nil, errf("ValidationException", "1 validation error detected: Value null at 'sessionId' failed to satisfy constraint: Member must not be null"), true
		}
		// As on AWS, terminating an unknown or ended session is not an error.
		if ss := s.sessions[in.SessionId]; ss != nil {
			s.terminateSession(ss)
		}
		out = map[string]any{"SessionId": in.SessionId}
	case "ResumeSession":
		ss := s.sessions[in.SessionId]
		if ss == nil || ss.status == SessionTerminated {
			return nil, errf("DoesNotExistException", "Session %s does not exist or has ended.", in.SessionId), true
		}
		out = map[string]any{"SessionId": ss.id, "TokenValue": ss.token, "StreamUrl": s.streamURL(ss.id)}
	}
	return out, aerr, true
}

func (s *Server) startSession(req *request, target, doc string, params map[string][]string) (any, *apiError) {
	if target == "" {
		return nil, errf("ValidationException", "1 validation error detected: Value null at 'target' failed to satisfy constraint: Member must not be null")
	}
	if doc == "" {
		doc = "SSM-SessionManagerRunShell"
	}
	if !portForwardingDocs[doc] {
		return nil, errf("InvalidDocument", "document %s is not served by the emulator: only port forwarding (AWS-StartPortForwardingSession) is", doc)
	}
	// The SSM agent only registers on a running instance whose role allows
	// it; anything else is "not connected", which clients retry.
	in := req.region.instances[target]
	if in == nil || in.hidden > 0 || in.state != "running" || in.iamProfile == "" {
		return nil, errf("TargetNotConnected", "%s is not connected.", target)
	}
	port := 22
	if v := params["portNumber"]; len(v) > 0 {
		p, err := strconv.Atoi(v[0])
		if err != nil || p < 1 || p > 65535 {
			return nil, errf("ValidationException", "portNumber %q is not a port number", v[0])
		}
		port = p
	} else if doc == "AWS-StartPortForwardingSession" {
		return nil, errf("InvalidParameters", "Parameter \"portNumber\" is required by document %s.", doc)
	}
	local := ""
	if v := params["localPortNumber"]; len(v) > 0 {
		if p, err := strconv.Atoi(v[0]); err != nil || p < 0 || p > 65535 {
			return nil, errf("ValidationException", "localPortNumber %q is not a port number", v[0])
		}
		local = v[0]
	}
	ss := &ssmSession{id: s.newID("emu"), region: req.region.name, target: target, document: doc,
		token: newSessionToken(), port: port, localPort: local, status: SessionConnected,
		seq: s.nextSeq()}
	s.sessions[ss.id] = ss
	return map[string]any{"SessionId": ss.id, "TokenValue": ss.token, "StreamUrl": s.streamURL(ss.id)}, nil
}

// streamURL is the data channel URL on this emulator; callers hold s.mu.
func (s *Server) streamURL(id string) string {
	base := strings.Replace(s.endpoint, "http://", "ws://", 1)
	return base + dataChannelPath + id + "?role=publish_subscribe"
}

// terminateSession ends ss and tells its client; callers hold s.mu.
func (s *Server) terminateSession(ss *ssmSession) {
	if ss.status == SessionTerminated {
		return
	}
	ss.status = SessionTerminated
	if dc := ss.dc; dc != nil {
		ss.dc = nil
		// Outside the lock: it writes to the websocket.
		go dc.closeChannel("")
	}
}

// sessionPortAddress is where the target's port lives; callers hold s.mu.
func (s *Server) sessionPortAddress(ss *ssmSession) (string, error) {
	if f := s.opts.PortAddress; f != nil {
		return f(ss.target, ss.port)
	}
	r := s.regions[ss.region]
	in := r.instances[ss.target]
	if in == nil || in.state != "running" {
		return "", fmt.Errorf("instance %s is not running", ss.target)
	}
	if pl, ok := in.be.(PortLocator); ok {
		return pl.PortAddress(ss.port)
	}
	return "", fmt.Errorf("nothing says where instance %s's port %d is: the backend instance does not implement PortLocator and Options.PortAddress is unset", ss.target, ss.port)
}
