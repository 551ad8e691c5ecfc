package ec2emu

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/smux"
	"golang.org/x/net/websocket"
)

// The data channel: the websocket at a session's StreamUrl. The emulator
// plays both Session Manager's service and the SSM agent on the instance:
// it checks the token the client opens with, runs the port session
// handshake, then relays each tunnelled connection to the instance's port.
//
// The handshake advertises agent version emuAgentVersion, newer than
// 3.1.1511.0, so the session-manager-plugin multiplexes connections with
// smux (keepalive off) as it does against current agents, rather than the
// legacy one-connection-at-a-time forwarding: the SSH communicator may open
// a connection before sshd listens, and smux keeps each attempt separate.
const (
	dataChannelPath = "/v1/data-channel/"
	emuAgentVersion = "3.3.1611.0"
)

// Retransmission of unacknowledged output, as the agent does: the plugin
// drops (without acknowledging) output that arrives before its port session
// is ready.
const (
	resendAfter     = time.Second
	resendMaxTries  = 30
	resendTick      = 250 * time.Millisecond
	openReadTimeout = 30 * time.Second
)

type pendingOutput struct {
	raw   []byte
	sent  time.Time
	tries int
}

// dataChannel is one connected websocket of a session.
type dataChannel struct {
	s  *Server
	ss *ssmSession
	ws *websocket.Conn

	wmu     sync.Mutex // orders sequence numbers and websocket writes
	outSeq  int64
	unacked map[int64]*pendingOutput

	// Read loop only.
	expected  int64
	inBuf     map[int64]*clientMessage
	handshook bool
	muxIn     *io.PipeWriter

	mmu       sync.Mutex // guards muxIn and mux against close from other goroutines
	mux       *smux.Session
	closeOnce sync.Once
	done      chan struct{}
	closed    atomic.Bool
}

// serveDataChannel upgrades a StreamUrl request to the data channel.
func (s *Server) serveDataChannel(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, dataChannelPath)
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil {
		http.Error(w, "no session "+id, http.StatusNotFound)
		return
	}
	// websocket.Server without a Handshake accepts clients that send no
	// Origin, as the plugin's gorilla client does not.
	websocket.Server{Handler: func(ws *websocket.Conn) { s.runDataChannel(ss, ws) }}.ServeHTTP(w, r)
}

func (s *Server) runDataChannel(ss *ssmSession, ws *websocket.Conn) {
	defer ws.Close()
	// The client's first frame is OpenDataChannelInput (JSON) with the token.
	_ = ws.SetReadDeadline(time.Now().Add(openReadTimeout))
	var first []byte
	if err := websocket.Message.Receive(ws, &first); err != nil {
		return
	}
	var open struct {
		MessageSchemaVersion, RequestId, TokenValue, ClientId, ClientVersion string
	}
	if err := json.Unmarshal(first, &open); err != nil || open.TokenValue == "" {
		ss.setError(fmt.Sprintf("first data channel frame is not OpenDataChannelInput: %q", first))
		return
	}
	_ = ws.SetReadDeadline(time.Time{})
	dc := &dataChannel{s: s, ss: ss, ws: ws, unacked: map[int64]*pendingOutput{}, inBuf: map[int64]*clientMessage{},
		done: make(chan struct{})}
	s.mu.Lock()
	if open.TokenValue != ss.token || ss.status == SessionTerminated {
		s.mu.Unlock()
		ss.rejected.Add(1)
		// Closing without a word is what the service does with a bad token.
		return
	}
	old := ss.dc
	ss.dc = dc
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	ss.connects.Add(1)
	defer func() {
		dc.close()
		s.mu.Lock()
		if ss.dc == dc {
			ss.dc = nil
		}
		s.mu.Unlock()
	}()

	if err := dc.sendHandshakeRequest(); err != nil {
		return
	}
	go dc.resendLoop()
	for {
		var raw []byte
		if err := websocket.Message.Receive(ws, &raw); err != nil {
			return
		}
		m, err := unmarshalClientMessage(raw)
		if err != nil {
			ss.setError("bad client message: " + err.Error())
			continue
		}
		switch m.MessageType {
		case msgAcknowledge:
			var ack struct {
				AcknowledgedMessageSequenceNumber int64
			}
			if json.Unmarshal(m.Payload, &ack) == nil {
				dc.wmu.Lock()
				delete(dc.unacked, ack.AcknowledgedMessageSequenceNumber)
				dc.wmu.Unlock()
			}
		case msgInputStream:
			if err := dc.sendAck(m); err != nil {
				return
			}
			if m.SequenceNumber < dc.expected {
				continue // a retransmission of something already handled
			}
			dc.inBuf[m.SequenceNumber] = m
			for {
				next, ok := dc.inBuf[dc.expected]
				if !ok {
					break
				}
				delete(dc.inBuf, dc.expected)
				dc.expected++
				if err := dc.handleInput(next); err != nil {
					ss.setError(err.Error())
					return
				}
			}
		}
		if dc.closed.Load() {
			return
		}
	}
}

func (ss *ssmSession) setError(msg string) {
	ss.errMu.Lock()
	ss.lastErr = msg
	ss.errMu.Unlock()
}

func (dc *dataChannel) handleInput(m *clientMessage) error {
	switch m.PayloadType {
	case payloadHandshakeResponse:
		var resp struct {
			ClientVersion          string
			ProcessedClientActions []struct {
				ActionType   string
				ActionStatus int
				Error        string
			}
			Errors []string
		}
		if err := json.Unmarshal(m.Payload, &resp); err != nil {
			return fmt.Errorf("handshake response: %w", err)
		}
		if len(resp.Errors) > 0 {
			return fmt.Errorf("client refused the handshake: %v", resp.Errors)
		}
		okType := false
		for _, a := range resp.ProcessedClientActions {
			okType = okType || (a.ActionType == "SessionType" && a.ActionStatus == 1)
		}
		if !okType {
			return fmt.Errorf("client did not accept session type Port: %+v", resp.ProcessedClientActions)
		}
		dc.startMux()
		dc.handshook = true
		payload, _ := json.Marshal(map[string]any{"HandshakeTimeToComplete": int64(time.Millisecond), "CustomerMessage": ""})
		return dc.sendOutput(payloadHandshakeComplete, payload)
	case payloadOutput:
		if !dc.handshook {
			return errors.New("stream data before the handshake completed")
		}
		dc.mmu.Lock()
		in := dc.muxIn
		dc.mmu.Unlock()
		if in == nil {
			return errors.New("stream data but no smux session")
		}
		if _, err := in.Write(m.Payload); err != nil {
			return fmt.Errorf("smux session ended: %w", err)
		}
	case payloadFlag:
		if len(m.Payload) >= 4 && binary.BigEndian.Uint32(m.Payload) == flagTerminateSession {
			dc.s.mu.Lock()
			dc.s.terminateSession(dc.ss)
			dc.s.mu.Unlock()
		}
	}
	return nil
}

func (dc *dataChannel) sendHandshakeRequest() error {
	props := map[string]string{"portNumber": strconv.Itoa(dc.ss.port), "type": "LocalPortForwarding"}
	if dc.ss.localPort != "" {
		props["localPortNumber"] = dc.ss.localPort
	}
	params, _ := json.Marshal(map[string]any{"SessionType": "Port", "Properties": props})
	payload, _ := json.Marshal(map[string]any{
		"AgentVersion":           emuAgentVersion,
		"RequestedClientActions": []map[string]any{{"ActionType": "SessionType", "ActionParameters": json.RawMessage(params)}},
	})
	return dc.sendOutput(payloadHandshakeRequest, payload)
}

// sendOutput sends an output_stream_data message with the next sequence
// number and keeps it until the client acknowledges it.
func (dc *dataChannel) sendOutput(payloadType uint32, payload []byte) error {
	dc.wmu.Lock()
	defer dc.wmu.Unlock()
	m := &clientMessage{MessageType: msgOutputStream, SchemaVersion: 1, SequenceNumber: dc.outSeq,
		MessageID: newMessageID(), PayloadType: payloadType, Payload: payload}
	raw := m.marshal()
	dc.unacked[dc.outSeq] = &pendingOutput{raw: raw, sent: time.Now()}
	dc.outSeq++
	return websocket.Message.Send(dc.ws, raw)
}

func (dc *dataChannel) sendAck(m *clientMessage) error {
	payload, _ := json.Marshal(map[string]any{
		"AcknowledgedMessageType":           m.MessageType,
		"AcknowledgedMessageId":             uuidString(m.MessageID),
		"AcknowledgedMessageSequenceNumber": m.SequenceNumber,
		"IsSequentialMessage":               true,
	})
	ack := &clientMessage{MessageType: msgAcknowledge, SchemaVersion: 1, Flags: 3, MessageID: newMessageID(), Payload: payload}
	dc.wmu.Lock()
	defer dc.wmu.Unlock()
	return websocket.Message.Send(dc.ws, ack.marshal())
}

func (dc *dataChannel) resendLoop() {
	t := time.NewTicker(resendTick)
	defer t.Stop()
	for {
		select {
		case <-dc.done:
			return
		case <-t.C:
		}
		dc.wmu.Lock()
		for seq, p := range dc.unacked {
			if time.Since(p.sent) < resendAfter {
				continue
			}
			if p.tries >= resendMaxTries {
				delete(dc.unacked, seq)
				continue
			}
			p.tries++
			p.sent = time.Now()
			_ = websocket.Message.Send(dc.ws, p.raw)
		}
		dc.wmu.Unlock()
	}
}

// closeChannel tells the client the session ended (it exits on that) and
// closes the websocket.
func (dc *dataChannel) closeChannel(output string) {
	payload, _ := json.Marshal(map[string]any{
		"MessageId": uuidString(newMessageID()), "CreatedDate": time.Now().UTC().Format(time.RFC3339),
		"DestinationId": dc.ss.target, "SessionId": dc.ss.id, "MessageType": msgChannelClosed,
		"SchemaVersion": 1, "Output": output,
	})
	m := &clientMessage{MessageType: msgChannelClosed, SchemaVersion: 1, MessageID: newMessageID(), Payload: payload}
	dc.wmu.Lock()
	_ = websocket.Message.Send(dc.ws, m.marshal())
	dc.wmu.Unlock()
	dc.close()
}

func (dc *dataChannel) close() {
	dc.closeOnce.Do(func() {
		dc.closed.Store(true)
		close(dc.done)
		dc.mmu.Lock()
		muxIn, mux := dc.muxIn, dc.mux
		dc.mmu.Unlock()
		if muxIn != nil {
			_ = muxIn.Close()
		}
		if mux != nil {
			_ = mux.Close()
		}
		_ = dc.ws.Close()
	})
}

// muxConn carries the smux session over the data channel: what smux
// writes goes out as Output payloads, Output payloads from the client are
// what it reads.
type muxConn struct {
	dc *dataChannel
	r  *io.PipeReader
}

func (c *muxConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *muxConn) Write(p []byte) (int, error) {
	const chunk = 16 << 10
	for off := 0; off < len(p); off += chunk {
		end := min(off+chunk, len(p))
		if err := c.dc.sendOutput(payloadOutput, append([]byte(nil), p[off:end]...)); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

func (c *muxConn) Close() error { return c.r.Close() }

func (dc *dataChannel) startMux() {
	pr, pw := io.Pipe()
	cfg := smux.DefaultConfig()
	cfg.KeepAliveDisabled = true // the plugin disables it for agents this new
	mux, err := smux.Server(&muxConn{dc: dc, r: pr}, cfg)
	if err != nil {
		dc.ss.setError("smux server: " + err.Error())
		return
	}
	dc.mmu.Lock()
	dc.muxIn, dc.mux = pw, mux
	dc.mmu.Unlock()
	if dc.closed.Load() { // closed while starting: close() saw no mux
		_ = pw.Close()
		_ = mux.Close()
	}
	go func() {
		for {
			st, err := mux.AcceptStream()
			if err != nil {
				return
			}
			go dc.relay(st)
		}
	}()
}

// relay connects one tunnelled connection to the instance's port.
func (dc *dataChannel) relay(st *smux.Stream) {
	defer st.Close()
	dc.s.mu.Lock()
	addr, err := dc.s.sessionPortAddress(dc.ss)
	dc.s.mu.Unlock()
	var conn net.Conn
	if err == nil {
		conn, err = net.DialTimeout("tcp", addr, 10*time.Second)
	}
	if err != nil {
		// What the agent does when the destination refuses.
		dc.ss.setError("connect to destination: " + err.Error())
		flag := make([]byte, 4)
		binary.BigEndian.PutUint32(flag, flagConnectToPortError)
		_ = dc.sendOutput(payloadFlag, flag)
		return
	}
	defer conn.Close()
	dc.ss.streams.Add(1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, _ := io.Copy(conn, st)
		dc.ss.bytesUp.Add(n)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	n, _ := io.Copy(st, conn)
	dc.ss.bytesDown.Add(n)
	_ = st.Close()
	wg.Wait()
}

// closeSessions drops every data channel (Server.Close).
func (s *Server) closeSessions() {
	s.mu.Lock()
	var dcs []*dataChannel
	for _, ss := range s.sessions {
		if ss.dc != nil {
			dcs = append(dcs, ss.dc)
			ss.dc = nil
		}
	}
	s.mu.Unlock()
	for _, dc := range dcs {
		dc.close()
	}
}
