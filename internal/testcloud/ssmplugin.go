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
	"sync"
)

// sessionManagerPluginPins pins the session-manager-plugin build (the
// module has no go.mod); scripts/install-deps.sh reads the same file.
//
//go:embed session-manager-plugin.pins
var sessionManagerPluginPins []byte

var smpInstallMu sync.Mutex

// EnsureSessionManagerPlugin returns the path of AWS's session-manager-plugin
// binary: $ESBAKE_SESSION_MANAGER_PLUGIN, or the one scripts/install-deps.sh
// put in the cache, or one built now the same way (from source, in a
// throwaway module outside the checkout, dependencies pinned by
// session-manager-plugin.pins, cached by the pins' hash).
func EnsureSessionManagerPlugin(ctx context.Context) (string, error) {
	if p := os.Getenv("ESBAKE_SESSION_MANAGER_PLUGIN"); p != "" {
		return p, nil
	}
	sum := sha256.Sum256(sessionManagerPluginPins)
	key := hex.EncodeToString(sum[:])
	bin := filepath.Join(CacheDir(), "bin")
	p := filepath.Join(bin, "session-manager-plugin")
	keyFile := filepath.Join(bin, ".session-manager-plugin.key")
	fresh := func() bool {
		k, err := os.ReadFile(keyFile)
		_, serr := os.Stat(p)
		return err == nil && serr == nil && strings.TrimSpace(string(k)) == key
	}
	smpInstallMu.Lock()
	defer smpInstallMu.Unlock()
	if fresh() {
		return p, nil
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", bin, err)
	}
	unlock, err := LockFile(ctx, filepath.Join(bin, ".session-manager-plugin.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if fresh() {
		return p, nil
	}
	tmp, err := os.MkdirTemp("", "esbake-smp-build-")
	if err != nil {
		return "", fmt.Errorf("create build module dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	var mod bytes.Buffer
	mod.WriteString("module esbake.invalid/session-manager-plugin-build\ngo 1.26\nrequire (\n")
	sc := bufio.NewScanner(bytes.NewReader(sessionManagerPluginPins))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			mod.WriteString("\t" + line + "\n")
		}
	}
	mod.WriteString(")\n")
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), mod.Bytes(), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(tmp, "session-manager-plugin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "github.com/aws/session-manager-plugin/src/sessionmanagerplugin-main")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build session-manager-plugin (needs the Go toolchain and the module proxy; run scripts/install-deps.sh or set ESBAKE_SESSION_MANAGER_PLUGIN to a binary): %w\n%s", err, b)
	}
	// Copy then rename within bin, so a concurrent reader never sees a
	// half-written binary (tmp may be on another filesystem).
	b, err := os.ReadFile(out)
	if err != nil {
		return "", err
	}
	part := p + ".part"
	if err := os.WriteFile(part, b, 0o755); err != nil {
		return "", fmt.Errorf("install session-manager-plugin: %w", err)
	}
	if err := os.Rename(part, p); err != nil {
		return "", fmt.Errorf("install session-manager-plugin: %w", err)
	}
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o644); err != nil {
		return "", err
	}
	return p, nil
}
