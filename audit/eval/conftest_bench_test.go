package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/audit/internal/fleetfacts"
	"github.com/esbake/packer-plugin-elasticsearch/policies"
)

// conftestVersion is the conftest release P3 compares against, built once
// from the Go module proxy.
const conftestVersion = "v0.71.1"

// p3Docs is how many facts documents each side evaluates per iteration.
const p3Docs = 200

var (
	conftestOnce sync.Once
	conftestBin  string
	conftestErr  error
)

// conftestBinary builds conftest once into the cache (outside the
// checkout), keyed by its version, and reuses it afterwards.
func conftestBinary(b *testing.B) string {
	b.Helper()
	conftestOnce.Do(func() {
		cache := os.Getenv("ESBAKE_CACHE")
		if cache == "" {
			cache = "/var/cache/esbake"
		}
		bin := filepath.Join(cache, "bin", "conftest-"+conftestVersion)
		if _, err := os.Stat(bin); err == nil {
			conftestBin = bin
			return
		}
		tmp, err := os.MkdirTemp("", "esbake-conftest-")
		if err != nil {
			conftestErr = err
			return
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command("go", "install", "github.com/open-policy-agent/conftest@"+conftestVersion)
		cmd.Dir = tmp // outside this module: go install pkg@version ignores go.mod anyway
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			conftestErr = fmt.Errorf("build conftest %s from the Go proxy: %w\n%s", conftestVersion, err, out)
			return
		}
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			conftestErr = fmt.Errorf("cache dir for conftest: %w: set ESBAKE_CACHE to a writable directory", err)
			return
		}
		data, err := os.ReadFile(filepath.Join(tmp, "conftest"))
		if err == nil {
			// Write then rename, so a concurrent run never sees half a binary.
			err = os.WriteFile(bin+".tmp", data, 0o755)
		}
		if err == nil {
			err = os.Rename(bin+".tmp", bin)
		}
		if err != nil {
			conftestErr = fmt.Errorf("cache conftest: %w", err)
			return
		}
		conftestBin = bin
	})
	if conftestErr != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal(conftestErr)
		}
		b.Skip(conftestErr)
	}
	return conftestBin
}

// p3Inputs writes n input documents (alternately seed-style and clean
// nodes, the clean ones with a realistic 60-rule firewall, each with its own
// name) to dir and returns their paths and bytes.
// Each file is the whole policy input ({"facts": ..., "node": ...,
// "probes": ..., "policy": ...}): conftest passes a file as `input` as is,
// and our engine gets the same bytes through EvaluateJSON.
func p3Inputs(b *testing.B, dir string, n int) ([]string, [][]byte) {
	b.Helper()
	paths := make([]string, n)
	docs := make([][]byte, n)
	for i := range n {
		in := cleanNode()
		fleetfacts.WithFirewallRules(in.Facts, 60)
		if i%2 == 0 {
			in = seedNode()
		}
		in.Node.Name = fmt.Sprintf("node-%04d", i)
		in.Node.InstanceID = fmt.Sprintf("i-%017x", i)
		doc, err := json.Marshal(in)
		if err != nil {
			b.Fatal(err)
		}
		paths[i] = filepath.Join(dir, fmt.Sprintf("node-%04d.json", i))
		if err := os.WriteFile(paths[i], doc, 0o644); err != nil {
			b.Fatal(err)
		}
		docs[i] = doc
	}
	return paths, docs
}

// p3Policies copies the policies our engine evaluates (every .rego but the
// tests) to a directory for conftest.
func p3Policies(b *testing.B, dir string) {
	b.Helper()
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		data, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(p)), data, 0o644)
	})
	if err != nil {
		b.Fatal(err)
	}
}

// conftestResult is one entry of `conftest test -o json`.
type conftestResult struct {
	Filename  string            `json:"filename"`
	Namespace string            `json:"namespace"`
	Failures  []json.RawMessage `json:"failures"`
}

// BenchmarkP3EngineVersusConftest is issue 6's P3: the same policies on
// the same p3Docs input documents, evaluated by our engine (query prepared
// once, documents evaluated one after another in one goroutine) and by the
// conftest CLI (one `conftest test --all-namespaces` process over all the
// files, as one would run it on captured facts). Each iteration runs both;
// the metrics are documents per second for each and their ratio. Both must
// report the same number of findings, or the comparison is meaningless.
func BenchmarkP3EngineVersusConftest(b *testing.B) {
	ctx := context.Background()
	conftest := conftestBinary(b)
	work := b.TempDir()
	polDir := filepath.Join(work, "policies")
	inDir := filepath.Join(work, "facts")
	for _, d := range []string{polDir, inDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	p3Policies(b, polDir)
	paths, docs := p3Inputs(b, inDir, p3Docs)

	e, err := New(ctx, Options{})
	if err != nil {
		b.Fatal(err)
	}
	args := append([]string{"test", "--all-namespaces", "--no-color", "-o", "json", "-p", polDir}, paths...)

	// conftest's fixed cost per process (start, load and compile the
	// policies), from a run over one document: reported apart so the
	// steady-state rate is visible too.
	start := time.Now()
	if out, err := exec.Command(conftest, "test", "--all-namespaces", "--no-color", "-o", "json", "-p", polDir, paths[1]).Output(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			b.Fatalf("conftest on one document: %v\n%s%s", err, out, errText(err))
		}
	}
	conftestFixed := time.Since(start)

	var engineDur, conftestDur time.Duration
	findings := 0
	for b.Loop() {
		start := time.Now()
		ours := 0
		for _, d := range docs {
			found, err := e.EvaluateJSON(ctx, d)
			if err != nil {
				b.Fatal(err)
			}
			ours += len(found)
		}
		engineDur += time.Since(start)

		start = time.Now()
		out, err := exec.Command(conftest, args...).Output()
		conftestDur += time.Since(start)
		// conftest exits 1 when there are failures, which there are (the
		// seed-style nodes); anything else is a broken run.
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
			b.Fatalf("conftest: %v\n%s", err, errText(err))
		}
		var results []conftestResult
		if err := json.Unmarshal(out, &results); err != nil {
			b.Fatalf("conftest -o json output: %v\n%.2000s", err, out)
		}
		theirs, files := 0, map[string]bool{}
		for _, r := range results {
			theirs += len(r.Failures)
			files[r.Filename] = true
		}
		if theirs != ours || len(files) != len(docs) || ours == 0 {
			b.Fatalf("conftest found %d failures in %d files, our engine %d findings in %d documents: they do not evaluate the same thing", theirs, len(files), ours, len(docs))
		}
		findings = ours
	}
	b.Logf("%d documents, %d findings from each side; conftest fixed cost per process %s", len(docs), findings, conftestFixed)
	n := float64(b.N * len(docs))
	engineRate := n / engineDur.Seconds()
	conftestRate := n / conftestDur.Seconds()
	b.ReportMetric(engineRate, "engine-docs/s")
	b.ReportMetric(conftestRate, "conftest-docs/s")
	b.ReportMetric(engineRate/conftestRate, "engine/conftest")
	if steady := conftestDur - time.Duration(b.N)*conftestFixed; steady > 0 {
		b.ReportMetric(n/steady.Seconds(), "conftest-steady-docs/s")
	}
}

func errText(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
