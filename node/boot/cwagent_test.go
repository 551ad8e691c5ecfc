package boot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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

// TestBootLeavesTheAgentToItsStart: when systemd starts the agent after
// boot (the first boot), its own start translates the configuration, so
// boot writes it and runs neither fetch-config nor a restart, and removes
// an earlier fetch-config's copy, which the start would merge with it.
// With the agent running, fetch-config and the restart run.
func TestBootLeavesTheAgentToItsStart(t *testing.T) {
	n, secrets := withTransportTLS(t, testSpec())
	root := testRoot(t, n, 8*1024*1024)
	fetched := filepath.Join(root, CWAgentFetchedConfig)
	if err := os.MkdirAll(filepath.Dir(fetched), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fetched, []byte(`{"logs":{"logs_collected":{"files":{"collect_list":[{"file_path":"/var/log/elasticsearch/old-cluster.log"}]}}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(filepath.Dir(fetched), "file_operators-own.json")
	if err := os.WriteFile(other, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	md := baseMetadata("cluster_name=logs-prod\n")
	ep := fakeIMDSv2(t, md)
	startsAfterBoot := true
	rr := &RecordingRunner{}
	var out bytes.Buffer
	opts := Options{Root: root, IMDSEndpoint: ep, IMDSTimeout: 20 * time.Second, Out: &out, Runner: rr, Firewall: &RecordingFirewall{},
		Secrets: secrets, agentStartsAfterBoot: func() bool { return startsAfterBoot }}
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("boot: %v\n%s", err, out.String())
	}
	if !slices.Contains(res.Changed, CWAgentConfig) {
		t.Errorf("changed %v: the agent's configuration was not written", res.Changed)
	}
	if !strings.Contains(read(t, root, CWAgentConfig), `"log_stream_name": "i-0000000000000006"`) {
		t.Errorf("agent config:\n%s", read(t, root, CWAgentConfig))
	}
	for _, c := range rr.Commands {
		if c.Name == CWAgentCtl || c.Name == "systemctl" {
			t.Errorf("ran %s although the agent's start reads the configuration", c)
		}
	}
	if _, err := os.Stat(fetched); !os.IsNotExist(err) {
		t.Errorf("the earlier fetched copy is still there (stat: %v): the agent would merge it with the new configuration", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a configuration boot did not write was touched: %v", err)
	}

	// The agent running (by hand, or restarted): a changed configuration
	// is fetched, checked and the agent restarted.
	startsAfterBoot = false
	md["meta-data/instance-id"] = "i-0000000000000007"
	opts.IMDSEndpoint = fakeIMDSv2(t, md)
	rr.Commands = nil
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatalf("second boot: %v\n%s", err, out.String())
	}
	var ran []string
	for _, c := range rr.Commands {
		if c.Name == CWAgentCtl || c.Name == "systemctl" {
			ran = append(ran, c.String())
		}
	}
	if want := []string{cwFetchConfig().String(), cwRestart().String()}; !slices.Equal(ran, want) {
		t.Errorf("with the agent running ran %q, want %q", ran, want)
	}
}
