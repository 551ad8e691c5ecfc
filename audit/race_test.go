package audit

import (
	"context"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
	"github.com/esbake/packer-plugin-elasticsearch/audit/transport"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

// funcTransport fetches with a function (tests).
type funcTransport func(ctx context.Context, t target.Target) ([]byte, error)

func (f funcTransport) Fetch(ctx context.Context, t target.Target) ([]byte, error) { return f(ctx, t) }

func cleanFactsJSON(t testing.TB, host string) []byte {
	f := &facts.Facts{SchemaVersion: facts.SchemaVersion, Host: facts.Host{Hostname: host, MemTotalBytes: 8 << 30}}
	b, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sshTargets(n int) []target.Target {
	ts := make([]target.Target, n)
	for i := range ts {
		ts[i] = target.Target{Name: "n" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Host: "192.0.2.1", Transport: target.SSH}
	}
	return ts
}

// TestRunCancelWhileDispatching is the regression test for issue 18 item
// 9: cancelling while the dispatcher hands out nodes made the dispatcher
// and a worker both write the same node's result (a data race under
// -race, and a cancelled node reported as audited or the reverse). Every
// node must end with exactly one result, and the progress callback must
// never run concurrently.
func TestRunCancelWhileDispatching(t *testing.T) {
	for round := 0; round < 20; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		var calls atomic.Int32
		var inProgress atomic.Int32
		tr := funcTransport(func(ctx context.Context, tg target.Target) ([]byte, error) {
			if calls.Add(1) == 2 {
				cancel()
			}
			return cleanFactsJSON(t, tg.Name), nil
		})
		res, err := Run(ctx, Options{
			Targets: sshTargets(40), Parallel: 2, NoProbes: true, Engine: &fakeEngine{},
			Transports: map[string]transport.Transport{target.SSH: tr},
			Progress: func(done, total int) {
				if inProgress.Add(1) != 1 {
					t.Error("progress called concurrently")
				}
				inProgress.Add(-1)
			},
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		audited, cancelled := 0, 0
		for _, n := range res.Report.Nodes {
			switch {
			case n.Status == report.NodeOK:
				audited++
			case strings.Contains(n.Error, "run cancelled"):
				cancelled++
			default:
				t.Errorf("%s: %s %s", n.Name, n.Status, n.Error)
			}
		}
		if audited+cancelled != 40 || audited != int(calls.Load()) {
			t.Errorf("round %d: %d audited + %d cancelled, %d fetches", round, audited, cancelled, calls.Load())
		}
	}
}

// TestFDExhaustionFailsRun is the regression test for issue 18 item 13:
// EMFILE from the auditor's own dial was reported as an unreachable node,
// and with --allow-node-errors a partial run passed. It is now a
// local-resources error naming the fix, and the run exits 3.
func TestFDExhaustionFailsRun(t *testing.T) {
	tr := funcTransport(func(ctx context.Context, tg target.Target) ([]byte, error) {
		if tg.Name == "nb" {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)}
		}
		return cleanFactsJSON(t, tg.Name), nil
	})
	res, err := Run(context.Background(), Options{Targets: sshTargets(3), NoProbes: true, Engine: &fakeEngine{},
		Transports: map[string]transport.Transport{target.SSH: tr}, AllowNodeErrors: true})
	if err != nil {
		t.Fatal(err)
	}
	var nb report.Node
	for _, n := range res.Report.Nodes {
		if n.Name == "nb" {
			nb = n
		}
	}
	if nb.ErrorKind != KindLocalResources || !strings.Contains(nb.Error, "ulimit -n") || !strings.Contains(nb.Error, "--parallel") {
		t.Errorf("EMFILE node: kind %q, error %q", nb.ErrorKind, nb.Error)
	}
	if res.ExitCode != ExitTool {
		t.Errorf("exit %d with --allow-node-errors, want %d", res.ExitCode, ExitTool)
	}
}

func TestCapParallel(t *testing.T) {
	if p, msg := capParallel(500, 1024); p != 120 || !strings.Contains(msg, "lowered to 120") || !strings.Contains(msg, "1024") {
		t.Errorf("500 at 1024 files: %d %q", p, msg)
	}
	if p, msg := capParallel(32, 1<<20); p != 32 || msg != "" {
		t.Errorf("32 at 1M files: %d %q", p, msg)
	}
	if p, _ := capParallel(32, 10); p != 1 {
		t.Errorf("tiny limit: %d", p)
	}
	if _, err := Run(context.Background(), Options{Targets: sshTargets(1), Parallel: -5}); err == nil || !strings.Contains(err.Error(), "--parallel -5") {
		t.Errorf("--parallel -5: %v", err)
	}
}
