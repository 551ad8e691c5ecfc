package boot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// CloudWatch agent paths, as its package installs them.
const (
	// CWAgentConfig is the agent's "old" single JSON configuration, which its
	// start translates with the files of amazon-cloudwatch-agent.d
	// (start-amazon-cloudwatch-agent.go translateConfig: --input and
	// --input-dir).
	CWAgentConfig = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
	// CWAgentFetchedConfig is where `fetch-config -c file:<CWAgentConfig>`
	// puts its copy (config-downloader: "file_" and the file's base name);
	// the ctl script then deletes CWAgentConfig itself.
	CWAgentFetchedConfig = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/file_amazon-cloudwatch-agent.json"
	CWAgentCtl           = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
	ESLogDir             = "/var/log/elasticsearch"
)

// RenderCWAgentConfig is the agent configuration shipping Elasticsearch's
// logs: the main log to a stream named by the instance id, the others to
// streams named <instance id>/<kind>. From 8.0 the deprecation and slow
// logs are JSON only (<cluster>_deprecation.json, ..._slowlog.json in 8.x's
// log4j2.properties), one record a line.
func RenderCWAgentConfig(cluster, instanceID, logGroup string, esMajor int) ([]byte, error) {
	type file struct {
		FilePath              string `json:"file_path"`
		LogGroupName          string `json:"log_group_name"`
		LogStreamName         string `json:"log_stream_name"`
		MultiLineStartPattern string `json:"multi_line_start_pattern,omitempty"`
		RetentionInDays       int    `json:"retention_in_days,omitempty"`
	}
	// Plain-text Elasticsearch log records start with "[YYYY-"; stack
	// traces continue them.
	const start = `^\[\d{4}-`
	ext, multi := ".log", start
	if esMajor >= 8 {
		ext, multi = ".json", ""
	}
	files := []file{
		{FilePath: fmt.Sprintf("%s/%s.log", ESLogDir, cluster), LogStreamName: instanceID, MultiLineStartPattern: start},
		{FilePath: fmt.Sprintf("%s/%s_deprecation%s", ESLogDir, cluster, ext), LogStreamName: instanceID + "/deprecation", MultiLineStartPattern: multi},
		{FilePath: fmt.Sprintf("%s/%s_index_search_slowlog%s", ESLogDir, cluster, ext), LogStreamName: instanceID + "/search-slowlog", MultiLineStartPattern: multi},
		{FilePath: fmt.Sprintf("%s/%s_index_indexing_slowlog%s", ESLogDir, cluster, ext), LogStreamName: instanceID + "/indexing-slowlog", MultiLineStartPattern: multi},
		{FilePath: ESLogDir + "/gc.log", LogStreamName: instanceID + "/gc"},
	}
	for i := range files {
		files[i].LogGroupName = logGroup
	}
	doc := map[string]any{
		// No run_as_user: the agent's default (root) can read
		// /var/log/elasticsearch (elasticsearch:elasticsearch 2750).
		"agent": map[string]any{"logfile": "/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log"},
		"logs": map[string]any{
			"logs_collected": map[string]any{
				"files": map[string]any{"collect_list": files},
			},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render CloudWatch agent config: %w", err)
	}
	return append(b, '\n'), nil
}

// cwFetchConfig translates the config into the agent's own files.
//
// Not with -s: that makes the ctl script run a blocking `systemctl restart`
// of the agent, whose unit is ordered after esnode-boot, which would wait
// for this very boot to end (a deadlock until the unit times out).
// cwRestart queues the restart without waiting instead.
func cwFetchConfig() Command {
	return Command{Name: CWAgentCtl, Args: []string{"-a", "fetch-config", "-m", "ec2", "-c", "file:" + CWAgentConfig}}
}

// removeFetchedCWConfig deletes an earlier fetch-config's copy of
// CWAgentConfig when the agent starts after this boot: its start merges
// CWAgentConfig with every file of amazon-cloudwatch-agent.d (the
// translator's default multi-config "remove"), so the copy would ship each
// log twice, or the old streams beside the new ones.
func removeFetchedCWConfig(e *bootEnv) error {
	p := filepath.Join(e.root, CWAgentFetchedConfig)
	err := os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove the CloudWatch agent's earlier fetched copy of its configuration, which it would merge with the new one: %w", err)
	}
	fmt.Fprintf(e.out, "esnode boot: removed %s (an earlier fetch-config's copy; the agent reads %s at start)\n", CWAgentFetchedConfig, CWAgentConfig)
	return nil
}

// cwRestart (re)starts the agent with the new config, without waiting.
func cwRestart() Command {
	return Command{Name: "systemctl", Args: []string{"--no-block", "restart", cwAgentUnit}}
}

const (
	cwAgentUnit = "amazon-cloudwatch-agent.service"
	bootUnit    = "esnode-boot.service"
)

// agentStartsAfterBoot reports whether systemd starts the CloudWatch agent
// once this boot ends, so its own start translates the configuration and
// fetch-config and a restart would only do the same work twice:
// esnode boot runs in esnode-boot.service's cgroup (selfCgroup is
// /proc/self/cgroup; the unit is ordered before the agent's), the agent's
// unit is enabled under root and has no cgroup beside boot's in the cgroup
// v2 hierarchy (cgroupFS, or cgroupFS/unified on a hybrid layout): systemd
// makes a unit's cgroup when it starts the unit and removes it when the
// unit stops. That is the first boot, and every boot the agent's
// configuration changed at. By hand, with the agent running, or with
// anything it cannot read, the answer is no and boot runs fetch-config
// (which checks the configuration) and restarts the agent.
func agentStartsAfterBoot(selfCgroup []byte, cgroupFS, root string) bool {
	own := ""
	for _, l := range strings.Split(string(selfCgroup), "\n") {
		if rest, ok := strings.CutPrefix(l, "0::"); ok {
			own = rest
		}
	}
	if path.Base(own) != bootUnit {
		return false
	}
	// The v2 hierarchy is the one holding boot's own cgroup.
	unified := ""
	for _, m := range []string{cgroupFS, filepath.Join(cgroupFS, "unified")} {
		_, errC := os.Stat(filepath.Join(m, "cgroup.controllers"))
		_, errOwn := os.Stat(filepath.Join(m, own))
		if errC == nil && errOwn == nil {
			unified = m
			break
		}
	}
	if unified == "" {
		return false
	}
	if _, err := os.Stat(filepath.Join(unified, path.Dir(own), cwAgentUnit)); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	_, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", cwAgentUnit))
	return err == nil
}
