// Package plugintest drives the built plugin binary the way Packer does:
// handshake over the magic cookie, the SDK's RPC client, and HCL2 blocks
// decoded against the spec the plugin itself returns.
package plugintest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/packer-plugin-sdk/plugin"
	"github.com/hashicorp/packer-plugin-sdk/rpc"
	"github.com/zclconf/go-cty/cty"
)

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// Binary builds cmd/packer-plugin-elasticsearch once per test process and
// returns its path. With ESBAKE_PLUGIN_BIN set, that binary is used instead
// (make test passes the one it just built).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ESBAKE_PLUGIN_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "esbake-plugin-")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "packer-plugin-elasticsearch")
		cmd := exec.Command("go", "build", "-o", built, "github.com/esbake/packer-plugin-elasticsearch/cmd/packer-plugin-elasticsearch")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build plugin: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// Start runs `bin start <kind> <name>` as Packer does and returns an RPC
// client connected to it; the process is killed when the test ends.
func Start(t testing.TB, bin, kind, name string) *rpc.Client {
	t.Helper()
	cmd := exec.Command(bin, "start", kind, name)
	cmd.Env = append(os.Environ(), plugin.MagicCookieKey+"="+plugin.MagicCookieValue)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("plugin printed no handshake line within 30s; stderr:\n%s", stderr.String())
	}
	// API major | API minor | network | address
	parts := strings.Split(strings.TrimSpace(line), "|")
	if len(parts) != 4 {
		t.Fatalf("handshake line %q is not major|minor|network|address; stderr:\n%s", line, stderr.String())
	}
	conn, err := net.Dial(parts[2], parts[3])
	if err != nil {
		t.Fatalf("dial plugin at %s %s: %v", parts[2], parts[3], err)
	}
	client, err := rpc.NewClient(conn)
	if err != nil {
		t.Fatalf("rpc client: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// Template is a parsed .pkr.hcl file with its variables evaluated.
type Template struct {
	File *hcl.File
	Ctx  *hcl.EvalContext
}

// LoadTemplate parses src (the template text) and evaluates its variable
// defaults, overridden by vars; a variable with neither is an error, as in
// Packer.
func LoadTemplate(t testing.TB, name string, src []byte, vars map[string]cty.Value) *Template {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCL(src, name)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %s", name, diags.Error())
	}
	content, diags := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "packer"}, {Type: "variable", LabelNames: []string{"name"}},
		{Type: "source", LabelNames: []string{"type", "name"}}, {Type: "build"},
	}})
	if diags.HasErrors() {
		t.Fatalf("%s: %s", name, diags.Error())
	}
	values := map[string]cty.Value{}
	for _, b := range content.Blocks {
		if b.Type != "variable" {
			continue
		}
		attrs, _ := b.Body.JustAttributes()
		vname := b.Labels[0]
		if v, ok := vars[vname]; ok {
			values[vname] = v
			continue
		}
		def, ok := attrs["default"]
		if !ok {
			t.Fatalf("variable %q has no default and the test gave no value", vname)
		}
		v, diags := def.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatalf("variable %q: %s", vname, diags.Error())
		}
		values[vname] = v
	}
	return &Template{File: f, Ctx: &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(values)}}}
}

// Source is the body of source "<typ>" "<name>".
func (tp *Template) Source(t testing.TB, typ, name string) hcl.Body {
	t.Helper()
	content, _, _ := tp.File.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "source", LabelNames: []string{"type", "name"}}}})
	for _, b := range content.Blocks {
		if b.Labels[0] == typ && b.Labels[1] == name {
			return b.Body
		}
	}
	t.Fatalf("no source %q %q", typ, name)
	return nil
}

// Provisioner is the body of the first provisioner "<typ>" of the first build.
func (tp *Template) Provisioner(t testing.TB, typ string) hcl.Body {
	t.Helper()
	content, _, _ := tp.File.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "build"}}})
	for _, build := range content.Blocks {
		inner, _, _ := build.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "provisioner", LabelNames: []string{"type"}}}})
		for _, p := range inner.Blocks {
			if p.Labels[0] == typ {
				return p.Body
			}
		}
	}
	t.Fatalf("no provisioner %q", typ)
	return nil
}

// PackerVars is the second raw config Packer passes to Prepare.
func PackerVars(builderType string) map[string]interface{} {
	return map[string]interface{}{
		"packer_build_name":          "node",
		"packer_builder_type":        builderType,
		"packer_core_version":        "1.11.2",
		"packer_debug":               false,
		"packer_force":               false,
		"packer_on_error":            "cleanup",
		"packer_user_variables":      map[string]string{},
		"packer_sensitive_variables": []string{},
	}
}
