// Package gate is the bake-time policy gate shared by the elasticsearch-node
// provisioner and the elasticsearch-ami builder: collect the freshly baked
// guest's facts with the esnode it now carries, and evaluate the bake-stage
// policies on them in the plugin process, before any image exists.
package gate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/esbake/packer-plugin-elasticsearch/audit/eval"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

// EsnodePath is where esnode install puts esnode on the image.
const EsnodePath = "/usr/local/bin/esnode"

// Check runs command (an `esnode facts` invocation, as root) on the guest
// and returns the bake-stage findings of the policies in policiesDir (the
// embedded ones when empty).
func Check(ctx context.Context, comm packersdk.Communicator, command, policiesDir string) ([]eval.Finding, error) {
	engine, err := eval.New(ctx, eval.Options{Dir: policiesDir, Stage: "bake"})
	if err != nil {
		return nil, fmt.Errorf("load policies: %w", err)
	}
	// The guest is not trusted to bound its output: keep at most
	// MaxFactsBytes of stdout (a facts document is far smaller) and the
	// tail of stderr.
	out := &capWriter{max: MaxFactsBytes}
	errOut := &capWriter{max: 64 << 10, tail: true}
	cmd := &packersdk.RemoteCmd{Command: command, Stdout: out, Stderr: errOut}
	if err := comm.Start(ctx, cmd); err != nil {
		return nil, fmt.Errorf("run %q on the guest: %w", command, err)
	}
	if st := cmd.Wait(); st != 0 {
		return nil, fmt.Errorf("%q exited %d on the guest: %s", command, st, strings.TrimSpace(tail(bytes.NewReader(errOut.buf))))
	}
	if out.over {
		return nil, fmt.Errorf("%q printed more than %d bytes on the guest: not a facts document", command, MaxFactsBytes)
	}
	f, err := facts.Parse(out.buf)
	if err != nil {
		return nil, fmt.Errorf("the guest's facts: %w", err)
	}
	findings, err := engine.Evaluate(ctx, eval.Input{Facts: f, Policy: eval.DefaultPolicyOptions()})
	if err != nil {
		return nil, fmt.Errorf("evaluate the bake policies: %w", err)
	}
	return findings, nil
}

func tail(r io.Reader) string {
	b, _ := io.ReadAll(r)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// MaxFactsBytes bounds the facts the gate reads from the guest.
const MaxFactsBytes = 16 << 20

// capWriter keeps at most max bytes: the first ones, or with tail the last
// ones. It never fails a write, so the command runs to its end.
type capWriter struct {
	buf  []byte
	max  int
	tail bool
	over bool
}

func (c *capWriter) Write(p []byte) (int, error) {
	n := len(p)
	switch {
	case c.tail:
		c.buf = append(c.buf, p...)
		if len(c.buf) > c.max {
			c.buf = append(c.buf[:0], c.buf[len(c.buf)-c.max:]...)
			c.over = true
		}
	case len(c.buf)+len(p) > c.max:
		c.buf = append(c.buf, p[:c.max-len(c.buf)]...)
		c.over = true
	default:
		c.buf = append(c.buf, p...)
	}
	return n, nil
}
