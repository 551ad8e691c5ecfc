package standin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The stand-in agent's start reads its configuration as the real
// start-amazon-cloudwatch-agent does: amazon-cloudwatch-agent.json and the
// files of amazon-cloudwatch-agent.d not ending in .tmp, merged; a
// configuration it cannot translate fails the start (exit 1); none at all
// ends it without starting (exit 0).
func TestStandInCWAgentStartReadsItsConfiguration(t *testing.T) {
	need(t, "python3")
	script := filepath.Join(t.TempDir(), "start-amazon-cloudwatch-agent")
	if err := os.WriteFile(script, []byte(embedded("start-amazon-cloudwatch-agent", "")), 0o755); err != nil {
		t.Fatal(err)
	}
	const main = `{"logs":{"logs_collected":{"files":{"collect_list":[{"file_path":"/var/log/elasticsearch/c.log","log_stream_name":"i-01"}]}}}}`
	start := func(t *testing.T, files map[string]string) (etc string, cmd *exec.Cmd, out *strings.Builder) {
		t.Helper()
		etc = t.TempDir()
		for name, body := range files {
			p := filepath.Join(etc, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		cmd = exec.CommandContext(ctx, "python3", script)
		cmd.Env = append(os.Environ(), "ESBAKE_CWAGENT_ETC="+etc)
		out = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return etc, cmd, out
	}

	t.Run("merges the file and the directory, not .tmp", func(t *testing.T) {
		etc, _, out := start(t, map[string]string{
			"amazon-cloudwatch-agent.json":                    main,
			"amazon-cloudwatch-agent.d/file_other.json":       `{"agent":{"region":"eu-west-1"}}`,
			"amazon-cloudwatch-agent.d/file_pending.json.tmp": `not json: a fetch-config in progress`,
		})
		toml := filepath.Join(etc, "amazon-cloudwatch-agent.toml")
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, err := os.ReadFile(toml)
			if err == nil {
				s := string(b)
				if !strings.Contains(s, `"log_stream_name": "i-01"`) || !strings.Contains(s, "file_other.json") || strings.Contains(s, "pending") {
					t.Errorf("merged configuration:\n%s", s)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no translated configuration after 30s:\n%s", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	for name, tc := range map[string]struct {
		files  map[string]string
		exit   int
		saying string
	}{
		"invalid JSON":          {map[string]string{"amazon-cloudwatch-agent.json": main[:20]}, 1, "Configuration validation first phase failed"},
		"not an object":         {map[string]string{"amazon-cloudwatch-agent.json": `[1]`}, 1, "not a JSON object"},
		"a file without a path": {map[string]string{"amazon-cloudwatch-agent.json": `{"logs":{"logs_collected":{"files":{"collect_list":[{"log_group_name":"g"}]}}}}`}, 1, "file_path is required"},
		"no configuration":      {nil, 0, "no json configuration"},
	} {
		t.Run(name, func(t *testing.T) {
			etc, cmd, out := start(t, tc.files)
			err := cmd.Wait()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.exit || !strings.Contains(out.String(), tc.saying) {
				t.Errorf("exit %d, want %d saying %q:\n%s", code, tc.exit, tc.saying, out)
			}
			if _, err := os.Stat(filepath.Join(etc, "amazon-cloudwatch-agent.toml")); err == nil {
				t.Error("a configuration was translated although the start failed")
			}
		})
	}
}
