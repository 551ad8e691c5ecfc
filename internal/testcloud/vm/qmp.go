package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmp is a minimal QEMU Machine Protocol client: one command at a time,
// asynchronous events skipped.
type qmp struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialQMP connects to QEMU's QMP socket (waiting for QEMU to create it)
// and leaves capabilities negotiation mode.
func dialQMP(ctx context.Context, path string, exited <-chan struct{}) (*qmp, error) {
	for {
		c, err := net.DialTimeout("unix", path, 2*time.Second)
		if err == nil {
			q := &qmp{conn: c, r: bufio.NewReader(c)}
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := q.r.ReadBytes('\n'); err != nil { // greeting
				c.Close()
				return nil, fmt.Errorf("QMP greeting: %w", err)
			}
			if _, err := q.cmd("qmp_capabilities", nil); err != nil {
				c.Close()
				return nil, err
			}
			return q, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to QMP %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-exited:
			return nil, fmt.Errorf("QEMU exited before its QMP socket %s answered", path)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cmd runs one QMP command and returns its "return" value.
func (q *qmp) cmd(name string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": name}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	_ = q.conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", name, err)
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("QMP %s: %w", name, err)
		}
		var resp struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := json.Unmarshal(line, &resp); err != nil {
			return nil, fmt.Errorf("QMP %s: bad reply %q: %w", name, line, err)
		}
		switch {
		case resp.Event != "":
			continue
		case resp.Error != nil:
			return nil, fmt.Errorf("QMP %s: %s: %s", name, resp.Error.Class, resp.Error.Desc)
		default:
			return resp.Return, nil
		}
	}
}

// status is the VM's run state (query-status): "running", "paused",
// "inmigrate", "postmigrate", ...
func (q *qmp) status() (string, error) {
	r, err := q.cmd("query-status", nil)
	if err != nil {
		return "", err
	}
	var s struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(r, &s); err != nil {
		return "", fmt.Errorf("query-status: %w", err)
	}
	return s.Status, nil
}

// migrationStatus is query-migrate's status ("active", "completed",
// "failed", ...) and error description.
func (q *qmp) migrationStatus() (string, string, error) {
	r, err := q.cmd("query-migrate", nil)
	if err != nil {
		return "", "", err
	}
	var s struct {
		Status string `json:"status"`
		Error  string `json:"error-desc"`
	}
	if err := json.Unmarshal(r, &s); err != nil {
		return "", "", fmt.Errorf("query-migrate: %w", err)
	}
	return s.Status, s.Error, nil
}

func (q *qmp) close() { q.conn.Close() }
