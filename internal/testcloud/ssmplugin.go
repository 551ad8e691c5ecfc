package testcloud

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// sessionManagerPluginPins pins the session-manager-plugin build (the
// module has no go.mod); scripts/install-deps.sh reads the same file.
//
//go:embed session-manager-plugin.pins
var sessionManagerPluginPins []byte

// EnsureSessionManagerPlugin returns the path of AWS's session-manager-plugin
// binary: $ESBAKE_SESSION_MANAGER_PLUGIN, or the one scripts/install-deps.sh
// put in the cache, or one built now the same way (from source, in a
// throwaway module, dependencies pinned by session-manager-plugin.pins,
// cached by the pins' hash).
func EnsureSessionManagerPlugin(ctx context.Context) (string, error) {
	sum := sha256.Sum256(sessionManagerPluginPins)
	key := hex.EncodeToString(sum[:])
	return cachedTool(ctx, "session-manager-plugin", "ESBAKE_SESSION_MANAGER_PLUGIN", key, func(ctx context.Context, dir string) (string, error) {
		var mod bytes.Buffer
		mod.WriteString("module esbake.invalid/session-manager-plugin-build\ngo 1.26\nrequire (\n")
		sc := bufio.NewScanner(bytes.NewReader(sessionManagerPluginPins))
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
				mod.WriteString("\t" + line + "\n")
			}
		}
		mod.WriteString(")\n")
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), mod.Bytes(), 0o644); err != nil {
			return "", err
		}
		out := filepath.Join(dir, "session-manager-plugin")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "github.com/aws/session-manager-plugin/src/sessionmanagerplugin-main")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build session-manager-plugin (needs the Go toolchain and the module proxy; run scripts/install-deps.sh or set ESBAKE_SESSION_MANAGER_PLUGIN to a binary): %w\n%s", err, b)
		}
		return out, nil
	})
}
