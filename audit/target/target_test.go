package target

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseInventoryText(t *testing.T) {
	in := `# fleet
10.0.0.5
10.0.0.6:2222 user=admin name=es-data-2   # comment
es-master-1.example.com user=debian instance_id=i-0abc tag:role=master
[2001:db8::7]:22 name=v6
2001:db8::8
`
	ts, err := ParseInventory(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 5 {
		t.Fatalf("got %d targets", len(ts))
	}
	want := []struct {
		name, host string
		port       int
		user       string
	}{
		{"10.0.0.5", "10.0.0.5", 0, ""},
		{"es-data-2", "10.0.0.6", 2222, "admin"},
		{"es-master-1.example.com", "es-master-1.example.com", 0, "debian"},
		{"v6", "2001:db8::7", 22, ""},
		{"2001:db8::8", "2001:db8::8", 0, ""},
	}
	for i, w := range want {
		g := ts[i]
		if g.Name != w.name || g.Host != w.host || g.Port != w.port || g.User != w.user || g.Transport != SSH {
			t.Errorf("target %d = %+v, want %+v", i, g, w)
		}
	}
	if ts[2].InstanceID != "i-0abc" || ts[2].Tags["role"] != "master" {
		t.Errorf("instance_id/tag not parsed: %+v", ts[2])
	}
	if a := ts[1].SSHAddress(); a != "10.0.0.6:2222" {
		t.Errorf("SSHAddress = %s", a)
	}
	if a := ts[3].SSHAddress(); a != "[2001:db8::7]:22" {
		t.Errorf("SSHAddress v6 = %s", a)
	}
}

func TestParseInventoryYAML(t *testing.T) {
	in := `- host: 10.0.0.5
  user: admin
- host: 10.0.0.6
  port: 2200
  name: es-data-2
  tags: {es_cluster: aardvark-cluster}
`
	ts, err := ParseInventory(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].User != "admin" || ts[1].Port != 2200 || ts[1].Tags["es_cluster"] != "aardvark-cluster" {
		t.Errorf("YAML inventory = %+v", ts)
	}
	ts, err = ParseInventory(strings.NewReader("hosts:\n  - host: a\n  - host: b\n"))
	if err != nil || len(ts) != 2 {
		t.Errorf("hosts: form = %+v, %v", ts, err)
	}
}

func TestParseInventoryErrors(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.5 bogus":             "line 1",
		"10.0.0.5:99999":             "port",
		"a\nb\na":                    `names node "a" twice`,
		"10.0.0.5 color=blue":        `unknown key "color"`,
		"- host: a\n  colour: red\n": "YAML inventory",
		"- port: 22\n":               "has no host",
	} {
		_, err := ParseInventory(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func TestFactsFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"node-a.json", "node-b.json"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := FactsFiles([]string{filepath.Join(dir, "*.json"), filepath.Join(dir, "node-a.json")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Name != "node-a" || ts[1].Transport != File {
		t.Errorf("facts targets = %+v", ts)
	}
	if _, err := FactsFiles([]string{filepath.Join(dir, "missing.json")}); err == nil {
		t.Error("missing facts file must be an error")
	}
}
