// Package transport fetches a node's facts document (the output of `esnode
// facts`) over SSH, SSM Run Command, in-process for the local machine, or
// from a captured file. Transports return raw bytes; the caller parses and
// checks the schema version, so junk is reported the same way everywhere.
package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

// DefaultMaxOutput bounds a facts document: real ones are tens of KiB, so
// anything near this is a hostile or broken node (and --parallel times it
// bounds the auditor's memory).
const DefaultMaxOutput = 8 << 20

// Error kinds, as reported per node.
const (
	KindUnreachable   = "unreachable"
	KindTimeout       = "timeout"
	KindHostKey       = "host-key"
	KindAuth          = "auth"
	KindSudo          = "sudo"
	KindNoEsnode      = "esnode-missing"
	KindCommand       = "command-failed"
	KindOutputTooBig  = "output-too-large"
	KindInvalidOutput = "invalid-output"
	KindTransport     = "transport"
	// KindAgentOffline: SSM could not reach the node's agent (Undeliverable, or the
	// instance is not a managed instance at all); the node was not audited.
	KindAgentOffline = "agent-offline"
)

// Error is a node-level failure with a kind for reports.
type Error struct {
	Kind string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(kind, format string, a ...any) error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, a...)}
}

// KindOf classifies err: its Error kind, timeout for deadline errors,
// transport otherwise.
func KindOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout
	}
	return KindTransport
}

// Transport fetches one node's facts document.
type Transport interface {
	Fetch(ctx context.Context, t target.Target) ([]byte, error)
}

// Preparer is a transport that starts work for many nodes at once (SSM sends
// one command for a batch of instances) before the per-node Fetch calls.
type Preparer interface {
	Prepare(ctx context.Context, ts []target.Target) error
}

// Closer releases a transport's resources (the SSH agent connection).
type Closer interface {
	Close() error
}

// Local collects the facts of this machine in-process.
type Local struct {
	// Options are passed to facts.Collect; Root "/" and Live by default.
	Options *facts.Options
}

// Fetch implements Transport.
func (l Local) Fetch(ctx context.Context, _ target.Target) ([]byte, error) {
	opts := facts.Options{Root: "/", Live: true}
	if l.Options != nil {
		opts = *l.Options
	}
	f, err := facts.Collect(ctx, opts)
	if err != nil {
		return nil, errorf(KindCommand, "collect local facts: %w", err)
	}
	return f.JSON()
}

// File reads a captured facts document.
type File struct {
	MaxBytes int64
}

// Fetch implements Transport.
func (fl File) Fetch(_ context.Context, t target.Target) ([]byte, error) {
	max := fl.MaxBytes
	if max <= 0 {
		max = DefaultMaxOutput
	}
	f, err := os.Open(t.FactsFile)
	if err != nil {
		return nil, errorf(KindUnreachable, "open facts file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, errorf(KindUnreachable, "read facts file %s: %w", t.FactsFile, err)
	}
	if int64(len(b)) > max {
		return nil, errorf(KindOutputTooBig, "facts file %s is larger than %d bytes: not a facts document", t.FactsFile, max)
	}
	return b, nil
}

// limitBuffer keeps up to max bytes and reports overflow once.
type limitBuffer struct {
	buf      bytes.Buffer
	max      int64
	over     chan struct{}
	overflow bool
}

func newLimitBuffer(max int64) *limitBuffer {
	return &limitBuffer{max: max, over: make(chan struct{})}
}

func (l *limitBuffer) Write(p []byte) (int, error) {
	if l.overflow {
		return 0, errors.New("output limit exceeded")
	}
	if int64(l.buf.Len()+len(p)) > l.max {
		l.overflow = true
		close(l.over)
		return 0, errors.New("output limit exceeded")
	}
	return l.buf.Write(p)
}

// tailBuffer keeps the last max bytes written and never fails a write:
// stderr is for messages, and a chatty healthy node must not fail.
type tailBuffer struct {
	buf []byte
	max int
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		p = p[len(p)-t.max:]
		t.buf = t.buf[:0]
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
