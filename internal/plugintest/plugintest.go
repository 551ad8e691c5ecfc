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
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/packer-plugin-sdk/plugin"
	"github.com/hashicorp/packer-plugin-sdk/rpc"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
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
		buildErr = buildPlugin(built)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// buildPlugin builds esnode for this machine's architecture into the
// plugin's embed folder (as make does for every architecture), then the
// plugin itself.
func buildPlugin(out string) error {
	modRoot, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("find the module root: %w", err)
	}
	root := strings.TrimSpace(string(modRoot))
	esnode := filepath.Join(root, "provisioner", "esnodebin", "esnode-linux-"+runtime.GOARCH)
	steps := [][]string{
		{"go", "build", "-o", esnode, "./cmd/esnode"},
		{"go", "build", "-o", out, "./cmd/packer-plugin-elasticsearch"},
	}
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, b)
		}
	}
	return nil
}

// Start runs `bin start <kind> <name>` as Packer does and returns an RPC
// client connected to it; the process is killed when the test ends.
func Start(t testing.TB, bin, kind, name string) *rpc.Client {
	t.Helper()
	client, stop, err := StartPlugin(bin, kind, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return client
}

// StartPlugin starts the plugin as Packer does: magic cookie, `start <kind>
// <name>`, the handshake line, then the SDK's RPC client. stop kills it.
func StartPlugin(bin, kind, name string) (client *rpc.Client, stop func(), err error) {
	cmd := exec.Command(bin, "start", kind, name)
	cmd.Env = append(os.Environ(), plugin.MagicCookieKey+"="+plugin.MagicCookieValue)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start plugin: %w", err)
	}
	kill := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		kill()
		return nil, nil, fmt.Errorf("plugin printed no handshake line within 30s; stderr:\n%s", stderr.String())
	}
	// API major | API minor | network | address
	parts := strings.Split(strings.TrimSpace(line), "|")
	if len(parts) != 4 {
		kill()
		return nil, nil, fmt.Errorf("handshake line %q is not major|minor|network|address; stderr:\n%s", line, stderr.String())
	}
	conn, err := net.Dial(parts[2], parts[3])
	if err != nil {
		kill()
		return nil, nil, fmt.Errorf("dial plugin at %s %s: %w", parts[2], parts[3], err)
	}
	client, err = rpc.NewClient(conn)
	if err != nil {
		kill()
		return nil, nil, fmt.Errorf("rpc client: %w", err)
	}
	return client, func() { _ = client.Close(); kill() }, nil
}

// Template is a parsed .pkr.hcl file with its variables evaluated.
type Template struct {
	File *hcl.File
	Ctx  *hcl.EvalContext
}

// LoadTemplate is ParseTemplate for tests.
func LoadTemplate(t testing.TB, name string, src []byte, vars map[string]cty.Value) *Template {
	t.Helper()
	tp, err := ParseTemplate(name, src, vars)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// ParseTemplate parses src (the template text) and evaluates its variable
// defaults, overridden by vars; a variable with neither is an error, as in
// Packer.
func ParseTemplate(name string, src []byte, vars map[string]cty.Value) (*Template, error) {
	f, diags := hclparse.NewParser().ParseHCL(src, name)
	if diags.HasErrors() {
		return nil, fmt.Errorf("parse %s: %s", name, diags.Error())
	}
	content, diags := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "packer"}, {Type: "variable", LabelNames: []string{"name"}}, {Type: "locals"},
		{Type: "source", LabelNames: []string{"type", "name"}}, {Type: "build"},
	}})
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s: %s", name, diags.Error())
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
			return nil, fmt.Errorf("variable %q has no default and no value was given", vname)
		}
		v, diags := def.Expr.Value(nil)
		if diags.HasErrors() {
			return nil, fmt.Errorf("variable %q: %s", vname, diags.Error())
		}
		values[vname] = v
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(values)},
		// The few of Packer's functions the example's locals use.
		Functions: map[string]function.Function{
			"timestamp": function.New(&function.Spec{Type: function.StaticReturnType(cty.String), Impl: func([]cty.Value, cty.Type) (cty.Value, error) {
				return cty.StringVal(time.Now().UTC().Format(time.RFC3339)), nil
			}}),
			"formatdate": stdlib.FormatDateFunc,
			"regex":      stdlib.RegexFunc,
			"can":        tryfunc.CanFunc,
		},
	}
	locals := map[string]cty.Value{}
	for _, b := range content.Blocks {
		if b.Type != "locals" {
			continue
		}
		attrs, diags := b.Body.JustAttributes()
		if diags.HasErrors() {
			return nil, fmt.Errorf("%s: locals: %s", name, diags.Error())
		}
		for lname, a := range attrs {
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() {
				return nil, fmt.Errorf("local %q: %s", lname, diags.Error())
			}
			locals[lname] = v
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
	return &Template{File: f, Ctx: ctx}, nil
}

// Source is the body of source "<typ>" "<name>".
func (tp *Template) Source(t testing.TB, typ, name string) hcl.Body {
	t.Helper()
	b, err := tp.SourceBody(typ, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SourceBody is the body of source "<typ>" "<name>".
func (tp *Template) SourceBody(typ, name string) (hcl.Body, error) {
	content, _, _ := tp.File.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "source", LabelNames: []string{"type", "name"}}}})
	for _, b := range content.Blocks {
		if b.Labels[0] == typ && b.Labels[1] == name {
			return b.Body, nil
		}
	}
	return nil, fmt.Errorf("no source %q %q", typ, name)
}

// Provisioner is the body of the first provisioner "<typ>" of the first build.
func (tp *Template) Provisioner(t testing.TB, typ string) hcl.Body {
	t.Helper()
	b, err := tp.ProvisionerBody(typ)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ProvisionerBody is the body of the first provisioner "<typ>".
func (tp *Template) ProvisionerBody(typ string) (hcl.Body, error) {
	content, _, _ := tp.File.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "build"}}})
	for _, build := range content.Blocks {
		inner, _, _ := build.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "provisioner", LabelNames: []string{"type"}}}})
		for _, p := range inner.Blocks {
			if p.Labels[0] == typ {
				return p.Body, nil
			}
		}
	}
	return nil, fmt.Errorf("no provisioner %q", typ)
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
