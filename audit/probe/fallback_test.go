package probe

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestProbeHTTPFallbackBareAnswer: a plain-HTTP port that answers the TLS
// ClientHello without an "HTTP/" status line (as Python's http.server does
// for a request line it cannot parse: an HTTP/0.9-style bare body) must
// still be read over http under the default auto scheme (anonymously).
func TestProbeHTTPFallbackBareAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	handler := esOpenStandIn(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				first, err := br.Peek(1)
				if err != nil {
					return
				}
				if first[0] == 0x16 { // a TLS handshake record
					c.Write([]byte("<!DOCTYPE HTML>\n<title>Error response</title>\n"))
					return
				}
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				rw := &bareResponse{header: http.Header{}}
				handler.ServeHTTP(rw, req)
				resp := &http.Response{StatusCode: rw.status(), ProtoMajor: 1, ProtoMinor: 1, Header: rw.header,
					Body: readCloser{strings.NewReader(rw.body.String())}, ContentLength: int64(rw.body.Len()), Close: true}
				resp.Write(c)
			}(c)
		}
	}()
	host, port := split(t, "http://"+ln.Addr().String())
	p, err := New(Options{User: "monitor", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, p.Probe(context.Background(), host, []int{port}, port), port)
}

type bareResponse struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (b *bareResponse) Header() http.Header         { return b.header }
func (b *bareResponse) WriteHeader(code int)        { b.code = code }
func (b *bareResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bareResponse) status() int {
	if b.code == 0 {
		return http.StatusOK
	}
	return b.code
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
