package install

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ESConfigPath is the package's elasticsearch.yml.
const ESConfigPath = "/etc/elasticsearch/elasticsearch.yml"

// AutoConfigDisabledPrefix marks the lines install turns into comments.
const AutoConfigDisabledPrefix = "# esnode-install-disabled: "

// autoConfiguredKeys are the lines the 8.x package's security
// auto-configuration (postinst running elasticsearch-cli's
// AutoConfigureNode) appends that would break an auto-scaled node:
// cluster.initial_master_nodes: ["${HOSTNAME}"] bootstraps a private
// one-node cluster from the bake host's name, and http.host: 0.0.0.0 binds
// HTTP on every interface. The rest of the block (xpack.security.*, its
// certificates and keystore entries) is kept.
var autoConfiguredKeys = []string{"cluster.initial_master_nodes", "http.host"}

// neutraliseAutoConfig comments out the auto-configured keys set flat at
// column 0 (with any indented continuation lines), keeping the file's
// owner, group and mode. It returns the keys it disabled.
func neutraliseAutoConfig(path string) ([]string, error) {
	old, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ESConfigPath, err)
	}
	nb, keys := disableKeys(string(old), autoConfiguredKeys)
	if len(keys) == 0 {
		return nil, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := replaceKeepingOwner(path, []byte(nb), st); err != nil {
		return nil, err
	}
	return keys, nil
}

// replaceKeepingOwner atomically replaces elasticsearch.yml at path with
// data, keeping the owner, group and mode of st.
func replaceKeepingOwner(path string, data []byte, st os.FileInfo) error {
	tmp := filepath.Join(filepath.Dir(path), ".elasticsearch.yml.esnode-install")
	if err := os.WriteFile(tmp, data, st.Mode().Perm()); err != nil {
		return fmt.Errorf("write %s: %w", ESConfigPath, err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(tmp, int(sys.Uid), int(sys.Gid)); err != nil && os.Geteuid() == 0 {
			os.Remove(tmp)
			return fmt.Errorf("keep the owner of %s: %w", ESConfigPath, err)
		}
	}
	if err := os.Chmod(tmp, st.Mode().Perm()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", ESConfigPath, err)
	}
	return nil
}

// disableKeys comments out active `key:` lines at column 0 for the given
// keys, and the indented lines that continue them.
func disableKeys(text string, keys []string) (string, []string) {
	lines := strings.SplitAfter(text, "\n")
	var out strings.Builder
	var disabled []string
	inKey := false
	for _, l := range lines {
		if l == "" {
			continue
		}
		if inKey && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "-")) {
			out.WriteString(AutoConfigDisabledPrefix + l)
			continue
		}
		inKey = false
		for _, k := range keys {
			if strings.HasPrefix(l, k+":") {
				inKey = true
				disabled = append(disabled, k)
				break
			}
		}
		if inKey {
			out.WriteString(AutoConfigDisabledPrefix + l)
			continue
		}
		out.WriteString(l)
	}
	return out.String(), disabled
}
