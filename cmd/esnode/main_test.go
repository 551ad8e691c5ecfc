package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

func TestExitCodes(t *testing.T) {
	specFile := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(specFile, []byte(`{"api_version":"esbake/v1","elasticsearch":{"version":"5.6.0"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"install"}, 2, "--spec is required"},
		{[]string{"install", "--spec", "/nonexistent/spec.json"}, 1, "read the node spec"},
		{[]string{"install", "--spec", specFile}, 1, "elasticsearch.version"},
		{[]string{"boot", "--bogus"}, 2, "bogus"},
		{[]string{"facts", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"facts", "--root", "/nonexistent"}, 2, "--root /nonexistent is not a directory"},
		{[]string{"version"}, 0, "esnode "},
		{[]string{"install", "--help"}, 0, "-wait-cloud-init duration"},
		{[]string{"boot", "-h"}, 0, "-imds-timeout duration"},
		{[]string{"facts", "--help"}, 0, "schema " + facts.SchemaVersion},
		{[]string{"drain", "--root", t.TempDir()}, 1, "esnode boot has not run successfully on this node"},
		{[]string{"drain", "--help"}, 0, "-hook string"},
		{[]string{"drain", "--now", "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), c.args, &out, &errb)
		if code != c.code {
			t.Errorf("esnode %v exited %d, want %d (stderr %q)", c.args, code, c.code, errb.String())
		}
		if !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("esnode %v: output lacks %q:\n%s%s", c.args, c.want, out.String(), errb.String())
		}
	}
}

func TestFactsOfAnEmptyRoot(t *testing.T) {
	root := t.TempDir()
	outFile := filepath.Join(t.TempDir(), "facts.json")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"facts", "--root", root, "--out", outFile}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := facts.Parse(b)
	if err != nil {
		t.Fatalf("facts document does not parse: %v", err)
	}
	if f.Root != root || f.Live {
		t.Errorf("root %q live %v, want %q and not live", f.Root, f.Live, root)
	}
	if len(f.Errors) == 0 {
		t.Error("an empty root should report what it could not read in errors")
	}
}
