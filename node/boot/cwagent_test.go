package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCWAgentLogNamesPerMajor: 8.x writes its deprecation and slow logs as
// .json only, so collecting the .log names would ship nothing.
func TestCWAgentLogNamesPerMajor(t *testing.T) {
	for major, want := range map[int][]string{
		7: {"/var/log/elasticsearch/logs-prod_deprecation.log", "/var/log/elasticsearch/logs-prod_index_search_slowlog.log", "/var/log/elasticsearch/logs-prod_index_indexing_slowlog.log"},
		8: {"/var/log/elasticsearch/logs-prod_deprecation.json", "/var/log/elasticsearch/logs-prod_index_search_slowlog.json", "/var/log/elasticsearch/logs-prod_index_indexing_slowlog.json"},
	} {
		b, err := RenderCWAgentConfig("logs-prod", "i-01", "elasticsearch", major)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), `"file_path": "`+w+`"`) {
				t.Errorf("%d.x config lacks %s:\n%s", major, w, b)
			}
		}
		if !strings.Contains(string(b), `"file_path": "/var/log/elasticsearch/logs-prod.log"`) {
			t.Errorf("%d.x: main log missing", major)
		}
	}
}

func TestAgentStartsAfterBoot(t *testing.T) {
	root, cg := t.TempDir(), t.TempDir()
	mk := func(p string) {
		t.Helper()
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk(filepath.Join(root, "etc/systemd/system/multi-user.target.wants"))
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants", cwAgentUnit)
	if err := os.Symlink("/lib/systemd/system/"+cwAgentUnit, wants); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mk(filepath.Join(cg, "system.slice", bootUnit))
	fromUnit := []byte("0::/system.slice/esnode-boot.service\n")
	if !agentStartsAfterBoot(fromUnit, cg, root) {
		t.Error("from its unit, the agent enabled and not started: systemd starts it after boot")
	}
	for name, self := range map[string][]byte{
		"by hand":   []byte("0::/user.slice/user-0.slice/session-1.scope\n"),
		"cgroup v1": []byte("1:name=systemd:/system.slice/esnode-boot.service\n"),
		"unknown":   nil,
	} {
		if agentStartsAfterBoot(self, cg, root) {
			t.Errorf("%s: the restart was skipped", name)
		}
	}
	// The agent running (its cgroup there): restart it.
	mk(filepath.Join(cg, "system.slice", cwAgentUnit))
	if agentStartsAfterBoot(fromUnit, cg, root) {
		t.Error("the agent is running: it must be restarted")
	}
	os.Remove(filepath.Join(cg, "system.slice", cwAgentUnit))
	// Not enabled: nothing starts it.
	os.Remove(wants)
	if agentStartsAfterBoot(fromUnit, cg, root) {
		t.Error("the agent's unit is not enabled: it must be restarted")
	}
	// Not cgroup v2: cannot tell.
	os.Symlink("/lib/systemd/system/"+cwAgentUnit, wants)
	os.Remove(filepath.Join(cg, "cgroup.controllers"))
	if agentStartsAfterBoot(fromUnit, cg, root) {
		t.Error("no cgroup v2: cannot tell, must restart")
	}
	// A hybrid layout: the v2 hierarchy at unified/ (systemd mirrors its
	// units there).
	hybrid := filepath.Join(cg, "unified")
	mk(filepath.Join(hybrid, "system.slice", bootUnit))
	if err := os.WriteFile(filepath.Join(hybrid, "cgroup.controllers"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !agentStartsAfterBoot(fromUnit, cg, root) {
		t.Error("hybrid layout, the agent not started: systemd starts it after boot")
	}
	mk(filepath.Join(hybrid, "system.slice", cwAgentUnit))
	if agentStartsAfterBoot(fromUnit, cg, root) {
		t.Error("hybrid layout, the agent running: it must be restarted")
	}
	// Boot's own cgroup missing from the hierarchy: not the one it runs in.
	os.RemoveAll(filepath.Join(hybrid, "system.slice"))
	if agentStartsAfterBoot(fromUnit, cg, root) {
		t.Error("boot's cgroup is not in the hierarchy: cannot tell, must restart")
	}
}
