package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/esbake/packer-plugin-elasticsearch/audit/internal/fleetfacts"
	"github.com/esbake/packer-plugin-elasticsearch/audit/internal/sshtest"
	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
	"github.com/esbake/packer-plugin-elasticsearch/audit/transport"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

// fakeEngine is a stand-in for the OPA engine: one finding per node whose
// hostname ends in 7, so the fleet test checks plumbing, not policies.
type fakeEngine struct{ calls atomic.Int64 }

func (e *fakeEngine) Catalogue() []report.Rule {
	return []report.Rule{{ID: "TEST-001", Title: "Stand-in rule", Severity: "high", Remediation: "none"}}
}

func (e *fakeEngine) Evaluate(_ context.Context, in NodeInput) ([]report.Finding, error) {
	e.calls.Add(1)
	if strings.HasSuffix(in.Facts.Host.Hostname, "7") {
		return []report.Finding{{RuleID: "TEST-001", Title: "Stand-in rule", Severity: "high", Message: "hostname ends in 7"}}, nil
	}
	return nil, nil
}

// Node roles in the simulated fleet.
const (
	roleOK        = "ok"
	roleDead      = "dead"
	roleSlow      = "slow"
	roleJunk      = "junk"
	roleHuge      = "huge"
	roleBadSchema = "bad-schema"
)

// fleetRole gives 10 % of the nodes a bad role, spread through the fleet.
func fleetRole(i int) string {
	if i%10 != 3 {
		return roleOK
	}
	return []string{roleDead, roleSlow, roleJunk, roleHuge, roleBadSchema}[(i/10)%5]
}

type fleet struct {
	srv     *sshtest.Server
	targets []target.Target
	kh      string
	roles   map[string]string
}

// newFleet serves n simulated nodes from one in-process SSH server, one
// loopback listener (port) per node; dead nodes get a port nothing listens on.
// Healthy nodes answer with a minimal facts document.
func newFleet(tb testing.TB, n int) *fleet {
	return newFleetServing(tb, n, func(w io.Writer, name string) {
		doc, err := (&facts.Facts{SchemaVersion: facts.SchemaVersion, Host: facts.Host{Hostname: name}}).JSON()
		if err != nil {
			panic(err)
		}
		w.Write(doc)
	})
}

// newFleetServing is newFleet with healthy nodes' facts written by serve.
func newFleetServing(tb testing.TB, n int, serve func(w io.Writer, node string)) *fleet {
	tb.Helper()
	f := &fleet{roles: map[string]string{}}
	f.srv = sshtest.New(func(s *sshtest.Session) int {
		switch f.roles[s.Node] {
		case roleOK:
			serve(s.Stdout, s.Node)
			return 0
		case roleSlow:
			<-s.Closed
			return 1
		case roleJunk:
			io.WriteString(s.Stdout, "Segmentation fault (core dumped)\n<html>not json</html>")
			return 0
		case roleHuge:
			chunk := bytes.Repeat([]byte(`{"a":`), 16<<10)
			for {
				if _, err := s.Stdout.Write(chunk); err != nil {
					return 1
				}
			}
		case roleBadSchema:
			io.WriteString(s.Stdout, `{"schema_version":"esbake.facts/v0","host":{"hostname":"old"}}`)
			return 0
		}
		return 2
	})
	tb.Cleanup(f.srv.Close)
	var kh bytes.Buffer
	var addrs []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("node-%04d", i)
		role := fleetRole(i)
		f.roles[name] = role
		var addr string
		if role != roleDead {
			var err error
			addr, err = f.srv.Listen(name)
			if err != nil {
				tb.Fatal(err)
			}
		}
		addrs = append(addrs, addr)
	}
	// Dead nodes get their port only now, so no live listener can take a
	// port that was just freed.
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("node-%04d", i)
		addr := addrs[i]
		if addr == "" {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				tb.Fatal(err)
			}
			addr = ln.Addr().String()
			ln.Close()
		}
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		f.targets = append(f.targets, target.Target{Name: name, Host: host, Port: p, User: "auditor", Transport: target.SSH})
		fmt.Fprintln(&kh, knownhosts.Line([]string{knownhosts.Normalize(addr)}, f.srv.HostKey.PublicKey()))
	}
	f.kh = filepath.Join(tb.TempDir(), "known_hosts")
	if err := os.WriteFile(f.kh, kh.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f *fleet) options(eng Engine, nodeTimeout time.Duration) Options {
	return Options{
		Targets:     f.targets,
		Engine:      eng,
		NoProbes:    true,
		Parallel:    32,
		NodeTimeout: nodeTimeout,
		SSH: transport.SSHConfig{
			KnownHostsFile: f.kh,
			Signers:        []ssh.Signer{f.srv.ClientKey},
			MaxOutput:      1 << 20,
			Sudo:           true,
		},
	}
}

// TestFleet1000 audits 1,000 simulated SSH nodes of which 10 % are dead
// (connection refused), slow (beyond the node deadline), or hostile (junk,
// endless output, wrong schema): the run finishes and accounts for every
// node with the right error kind.
func TestFleet1000(t *testing.T) {
	const n = 1000
	f := newFleet(t, n)
	eng := &fakeEngine{}
	var progress atomic.Int64
	// The deadline must hold for healthy nodes on a loaded 2-core CI machine
	// under -race; slow nodes wait for it, so it sets the test's length.
	opts := f.options(eng, 20*time.Second)
	opts.Progress = func(done, total int) {
		progress.Store(int64(done))
		if total != n {
			t.Errorf("progress total = %d", total)
		}
	}
	opts.Formats = []string{"json", "junit", "sarif"}
	opts.OutDir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	s := r.Summary
	t.Logf("fleet of %d: %d ok, %d node errors, %d violations in %s (parallel %d, node timeout %s)",
		s.Nodes, s.NodesOK, s.NodeErrors, s.Violations, time.Since(start).Round(time.Millisecond), opts.Parallel, opts.NodeTimeout)
	if s.Nodes != n || s.NodesOK+s.NodeErrors != n || len(r.Nodes) != n {
		t.Fatalf("not every node accounted for: %+v", s)
	}
	if progress.Load() != n {
		t.Errorf("progress reached %d, want %d", progress.Load(), n)
	}
	wantKind := map[string]string{
		roleOK: "", roleDead: transport.KindUnreachable, roleSlow: transport.KindTimeout,
		roleJunk: transport.KindInvalidOutput, roleHuge: transport.KindOutputTooBig, roleBadSchema: transport.KindInvalidOutput,
	}
	counts := map[string]int{}
	seen := map[string]bool{}
	for _, node := range r.Nodes {
		seen[node.Name] = true
		role := f.roles[node.Name]
		counts[role]++
		if node.ErrorKind != wantKind[role] {
			t.Errorf("%s (%s): kind %q (%s), want %q", node.Name, role, node.ErrorKind, node.Error, wantKind[role])
		}
		if role == roleOK && node.Status != report.NodeOK {
			t.Errorf("%s: status %s", node.Name, node.Status)
		}
		if role == roleBadSchema && !strings.Contains(node.Error, "esbake.facts/v0") {
			t.Errorf("%s: wrong-schema error does not name the version: %s", node.Name, node.Error)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct nodes in the report, want %d", len(seen), n)
	}
	if counts[roleOK] != 900 || s.NodeErrors != 100 || s.NodesOK != 900 {
		t.Errorf("roles %v, summary %+v", counts, s)
	}
	if got := eng.calls.Load(); got != 900 {
		t.Errorf("engine evaluated %d nodes, want 900", got)
	}
	// Hostnames ending in 7 (all healthy: bad nodes end in 3) get a finding.
	if s.Violations != 100 {
		t.Errorf("violations = %d, want 100", s.Violations)
	}
	if res.ExitCode != ExitTool || len(res.Files) != 3 {
		t.Errorf("exit %d, files %v", res.ExitCode, res.Files)
	}
}

// BenchmarkFleet (P2): wall time and peak RSS of auditing 1,000 and
// 10,000 nodes over real SSH (in-process servers, one loopback port per
// node) that serve a realistic facts document (the clean node, firewall
// grown to fleetFirewallRules rules), 10 % of them dead, slow (hanging until
// the node deadline), or hostile (junk, endless output, wrong schema),
// judged by the embedded OPA policies, with every report format written.
// healthy-s is when the last healthy node was judged; the slow-node tail
// (slow nodes waiting out their deadline) is tail-s, and writing the
// reports after the last node reports-s. Peak RSS is reset
// before each case and covers the whole process, SSH servers included.
func BenchmarkFleet(b *testing.B) {
	tmpl := cleanFactsTemplate(b)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes-%d", n), func(b *testing.B) {
			f := newFleetServing(b, n, tmpl.write)
			eng, err := newEvalEngine(context.Background(), PolicySource{}, DefaultStage, Selection{})
			if err != nil {
				b.Fatal(err)
			}
			timed := &timedEngine{evalEngine: eng}
			runtime.GC()
			debug.FreeOSMemory()
			resetHWM(b)
			for b.Loop() {
				opts := f.options(timed, fleetNodeTimeout)
				opts.Parallel = fleetParallel
				opts.Formats = []string{"table", "json", "sarif", "junit", "html"}
				opts.OutDir = b.TempDir()
				opts.Stdout = io.Discard
				start, cpu0 := time.Now(), processCPU()
				timed.start = start
				var nodesDone time.Duration
				opts.Progress = func(done, total int) {
					if done == total {
						nodesDone = time.Since(start)
					}
				}
				res, err := Run(context.Background(), opts)
				if err != nil {
					b.Fatal(err)
				}
				wall := time.Since(start)
				s := res.Report.Summary
				// A healthy node may miss its deadline on an overloaded
				// machine: counted and reported, fatal only beyond 1 %.
				missed := n*9/10 - s.NodesOK
				if s.Nodes != n || missed < 0 || missed > n/100 {
					b.Fatalf("summary = %+v", s)
				}
				b.ReportMetric(float64(missed), "healthy-missed")
				healthy := time.Duration(timed.last.Load())
				b.ReportMetric(healthy.Seconds(), "healthy-s")
				b.ReportMetric((nodesDone - healthy).Seconds(), "tail-s")
				b.ReportMetric((wall - nodesDone).Seconds(), "reports-s")
				b.ReportMetric(wall.Seconds(), "wall-s")
				// CPU of the whole process (auditor and the in-process SSH
				// servers): on a shared machine wall time follows the load,
				// this does not.
				b.ReportMetric((processCPU() - cpu0).Seconds(), "cpu-s")
			}
			if hwm := vmHWM(); hwm > 0 {
				b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
			}
			b.ReportMetric(loadAvg(), "loadavg-1m")
		})
	}
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFleetFacts (P2 at 100,000): the same realistic facts document
// read from 10,000 and 100,000 --facts files (hard links to a copy per
// 60,000 files, so the disk holds two) and judged by the embedded OPA policies, every
// report format written: the cost of evaluation and reports alone as the
// fleet grows, without SSH.
func BenchmarkFleetFacts(b *testing.B) {
	tmpl := cleanFactsTemplate(b)
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("nodes-%d", n), func(b *testing.B) {
			dir := b.TempDir()
			var doc bytes.Buffer
			tmpl.write(&doc, "fleet-node")
			first := filepath.Join(dir, "node-000000.json")
			if err := os.WriteFile(first, doc.Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
			src := first
			for i := 1; i < n; i++ {
				p := filepath.Join(dir, fmt.Sprintf("node-%06d.json", i))
				var err error
				if i%60000 == 0 {
					// ext4 allows 65,000 links to a file: a fresh copy now
					// and then.
					src, err = p, os.WriteFile(p, doc.Bytes(), 0o644)
				} else {
					err = os.Link(src, p)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			debug.FreeOSMemory()
			resetHWM(b)
			for b.Loop() {
				opts := Options{
					FactsFiles: []string{filepath.Join(dir, "*.json")},
					NoProbes:   true,
					Parallel:   runtime.GOMAXPROCS(0) * 2,
					Formats:    []string{"table", "json", "sarif", "junit", "html"},
					OutDir:     b.TempDir(),
					Stdout:     io.Discard,
				}
				var nodesDone time.Duration
				start, cpu0 := time.Now(), processCPU()
				opts.Progress = func(done, total int) {
					if done == total {
						nodesDone = time.Since(start)
					}
				}
				res, err := Run(context.Background(), opts)
				if err != nil {
					b.Fatal(err)
				}
				wall := time.Since(start)
				if s := res.Report.Summary; s.Nodes != n || s.NodesOK != n {
					b.Fatalf("summary = %+v", s)
				}
				b.ReportMetric(nodesDone.Seconds(), "nodes-s")
				b.ReportMetric((wall - nodesDone).Seconds(), "reports-s")
				b.ReportMetric(wall.Seconds(), "wall-s")
				b.ReportMetric((processCPU() - cpu0).Seconds(), "cpu-s")
			}
			if hwm := vmHWM(); hwm > 0 {
				b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
			}
			b.ReportMetric(loadAvg(), "loadavg-1m")
		})
	}
}

// The fleet benchmark's settings: a node deadline a loaded machine's
// healthy nodes meet, and enough nodes in flight that nodes hanging until
// it do not hold up the rest.
const (
	fleetNodeTimeout   = 10 * time.Second
	fleetParallel      = 256
	fleetFirewallRules = 60
)

// factsTemplate is a facts document with the node's name spliced in per
// node, so 10,000 nodes do not hold 10,000 copies.
type factsTemplate struct{ before, after []byte }

func cleanFactsTemplate(tb testing.TB) factsTemplate {
	f := fleetfacts.WithFirewallRules(fleetfacts.Clean(), fleetFirewallRules)
	f.Host.Hostname = "@NODE@"
	doc, err := f.JSON()
	if err != nil {
		tb.Fatal(err)
	}
	before, after, ok := bytes.Cut(doc, []byte("@NODE@"))
	if !ok {
		tb.Fatal("no hostname placeholder in the facts document")
	}
	return factsTemplate{before, after}
}

func (t factsTemplate) write(w io.Writer, node string) {
	w.Write(append(append(append([]byte(nil), t.before...), node...), t.after...))
}

// timedEngine records when (since start) the last evaluation ended.
type timedEngine struct {
	*evalEngine
	start time.Time
	last  atomic.Int64
}

func (e *timedEngine) Evaluate(ctx context.Context, in NodeInput) ([]report.Finding, error) {
	out, err := e.evalEngine.Evaluate(ctx, in)
	d := int64(time.Since(e.start))
	for {
		cur := e.last.Load()
		if d <= cur || e.last.CompareAndSwap(cur, d) {
			break
		}
	}
	return out, err
}

// resetHWM resets the process's peak RSS (VmHWM), so each case reports its
// own peak.
func resetHWM(tb testing.TB) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Logf("cannot reset peak RSS (%v): the figure includes earlier cases", err)
	}
}

// loadAvg is the 1-minute load average, to read the figures against.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return v
}

// vmHWM is the process's peak resident set (VmHWM), in bytes. It covers the
// whole test process, the in-process SSH server included.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fs := strings.Fields(rest)
			if len(fs) >= 1 {
				kb, _ := strconv.ParseInt(fs[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
