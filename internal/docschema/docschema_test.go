package docschema

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/audit"
	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

var update = flag.Bool("update", false, "rewrite docs/schemas/*.json")

const (
	factsSchema  = "../../docs/schemas/esbake.facts.v1.schema.json"
	reportSchema = "../../docs/schemas/esbake.report.v1.schema.json"
)

func schemas(t *testing.T) map[string][]byte {
	t.Helper()
	fb, err := Generate(&facts.Facts{}, "https://github.com/esbake/packer-plugin-elasticsearch/docs/schemas/esbake.facts.v1.schema.json",
		"esbake facts document ("+facts.SchemaVersion+", written by esnode facts)", facts.SchemaVersion,
		Opaque{reflect.TypeOf(spec.Node{}): "the node spec the image was baked from (esbake/v1, see docs/provisioners/node.mdx)"})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Generate(&report.Result{}, "https://github.com/esbake/packer-plugin-elasticsearch/docs/schemas/esbake.report.v1.schema.json",
		"esaudit report document ("+report.SchemaVersion+", esaudit --format json)", report.SchemaVersion, nil)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{factsSchema: fb, reportSchema: rb}
}

// TestSchemasUpToDate: the published schemas are what the Go types
// encode (go test ./internal/docschema -update rewrites them).
func TestSchemasUpToDate(t *testing.T) {
	for p, want := range schemas(t) {
		if *update {
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is stale or missing (%v): run go test ./internal/docschema -update", p, err)
		}
	}
}

// TestRealDocumentsValidate checks documents the tools really write: facts
// collected from a file system tree by the real collector, and the report
// of an esaudit run over them; a document with a renamed field fails.
func TestRealDocumentsValidate(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc", "elasticsearch"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "elasticsearch", "elasticsearch.yml"), []byte("cluster.name: aardvark\nnetwork.host: 0.0.0.0\nhttp.cors.enabled: true\nhttp.cors.allow-origin: \"*\"\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "elasticsearch", "jvm.options"), []byte("-Xms4g\n-Xms4g\n"), 0o644)
	f, err := facts.Collect(ctx, facts.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	fdoc, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateJSONSchema(fdoc, factsSchema); err != nil {
		t.Errorf("real facts document: %v", err)
	}
	ff := filepath.Join(t.TempDir(), "node.json")
	os.WriteFile(ff, fdoc, 0o644)
	dir := t.TempDir()
	wf := filepath.Join(dir, "w.yaml")
	os.WriteFile(wf, []byte("- rule: ES-NET-005\n  nodes: '*'\n  justification: lab\n  expires: 2026-12-31\n- rule: ES-SEC-003\n  nodes: '*'\n  justification: unused\n  expires: 2026-12-31\n"), 0o644)
	res, err := audit.Run(ctx, audit.Options{FactsFiles: []string{ff, filepath.Join(dir, "missing.json")}, Formats: []string{"json"}, OutDir: filepath.Join(dir, "out"), WaiversFile: wf, LenientWaivers: true, HistoryDir: filepath.Join(dir, "h")})
	if err != nil {
		// a missing facts file is a usage error: audit just the one node
		res, err = audit.Run(ctx, audit.Options{FactsFiles: []string{ff}, Formats: []string{"json"}, OutDir: filepath.Join(dir, "out"), WaiversFile: wf, LenientWaivers: true, HistoryDir: filepath.Join(dir, "h")})
		if err != nil {
			t.Fatal(err)
		}
	}
	rdoc, err := os.ReadFile(res.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateJSONSchema(rdoc, reportSchema); err != nil {
		t.Errorf("real report: %v", err)
	}
	if !bytes.Contains(rdoc, []byte(`"not_evaluated"`)) || !bytes.Contains(rdoc, []byte(`"unused_waivers"`)) {
		t.Errorf("the real report should exercise not_evaluated and unused_waivers")
	}
	for name, doc := range map[string][]byte{"facts": fdoc, "report": rdoc} {
		schema := factsSchema
		if name == "report" {
			schema = reportSchema
		}
		bad := bytes.Replace(doc, []byte(`"schema_version"`), []byte(`"schemaVersion"`), 1)
		if err := ValidateJSONSchema(bad, schema); err == nil {
			t.Errorf("%s: a renamed field passed the schema", name)
		}
		wrong := bytes.Replace(doc, []byte(`"esbake.`), []byte(`"esbake.x`), 1)
		if err := ValidateJSONSchema(wrong, schema); err == nil || !strings.Contains(err.Error(), "schema_version") {
			t.Errorf("%s: another schema version passed: %v", name, err)
		}
	}
}
