// Package sshtest is an in-process SSH server for esaudit's tests: one
// server, any number of loopback listeners (one per simulated node), and a
// handler that plays each node's part for the commands esaudit sends.
// It is a stand-in for real nodes, not a shell: handlers look at the
// command text.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Session is one exec request.
type Session struct {
	Node    string
	User    string
	Command string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	// Closed is closed when the client's connection goes away.
	Closed <-chan struct{}
}

// Handler plays a node: it writes the command's output and returns its exit
// status.
type Handler func(s *Session) int

// Server serves SSH on loopback listeners.
type Server struct {
	HostKey   ssh.Signer
	ClientKey ssh.Signer
	handler   Handler
	config    *ssh.ServerConfig

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]bool
	wg        sync.WaitGroup
	closed    bool
}

// NewSigner makes an ed25519 key.
func NewSigner() ssh.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		panic(err)
	}
	return s
}

// New returns a server with fresh host and client keys; only ClientKey may
// log in.
func New(h Handler) *Server {
	s := &Server{HostKey: NewSigner(), ClientKey: NewSigner(), handler: h, conns: map[net.Conn]bool{}}
	s.config = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(s.ClientKey.PublicKey().Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	s.config.AddHostKey(s.HostKey)
	return s
}

// Listen serves node on a new loopback listener and returns host:port.
func (s *Server) Listen(node string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen: %w", err)
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(node, c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return ln.Addr().String(), nil
}

// Close stops every listener and connection and waits for the handlers.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for _, ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serve(node string, c net.Conn) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	defer sc.Close()
	closed := make(chan struct{})
	go func() {
		sc.Wait()
		close(closed)
	}()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go s.session(node, sc.User(), ch, creqs, closed)
	}
}

func (s *Server) session(node, user string, ch ssh.Channel, reqs <-chan *ssh.Request, closed <-chan struct{}) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		var p struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		code := s.handler(&Session{Node: node, User: user, Command: p.Command, Stdin: ch, Stdout: ch, Stderr: ch.Stderr(), Closed: closed})
		ch.CloseWrite()
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
		return
	}
}
