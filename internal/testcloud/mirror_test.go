package testcloud

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestReadAptSources(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sources.list.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"sources.list": "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example.com/debian bookworm main contrib\ndeb-src http://src.example.com/debian bookworm main\n",
		"sources.list.d/a.sources": "Types: deb deb-src\n# note\nURIs: http://a.example.com/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n" +
			"Types: deb\nURIs: http://off.example.com/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n",
		"sources.list.d/b.list.disabled": "deb http://disabled.example.com/debian bookworm main\n",
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadAptSources(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []AptSource{
		{URI: "http://mirror.example.com/debian", Suites: []string{"bookworm"}, Components: []string{"main", "contrib"}},
		{URI: "http://a.example.com/debian", Suites: []string{"bookworm", "bookworm-updates"}, Components: []string{"main"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadAptSources:\n got %+v\nwant %+v", got, want)
	}

	old := aptConfigRoot
	aptConfigRoot = root
	defer func() { aptConfigRoot = old }()
	m, err := DebianMirror("bookworm-updates")
	if err != nil || m != "http://a.example.com/debian" {
		t.Fatalf("DebianMirror(bookworm-updates) = %q, %v", m, err)
	}
	if _, err := DebianMirror("trixie"); err == nil {
		t.Fatal("DebianMirror(trixie) found a mirror no source serves")
	}
}

func TestImageKeyDependsOnPackagesAndVariant(t *testing.T) {
	base := BaseImage.key("bookworm")
	if base != BaseImage.key("bookworm") {
		t.Fatal("key is not stable")
	}
	others := []string{
		CISImage.key("bookworm"),
		BaseImage.key("trixie"),
		ImageSpec{Variant: VariantBase, ExtraPackages: []string{"jq"}}.key("bookworm"),
	}
	for _, o := range others {
		if o == base {
			t.Fatalf("key %s does not change with the spec", o)
		}
	}
	// Order and duplicates of the package list do not matter.
	a := ImageSpec{ExtraPackages: []string{"jq", "curl"}}.key("bookworm")
	b := ImageSpec{ExtraPackages: []string{"curl", "jq", "jq"}}.key("bookworm")
	if a != b {
		t.Fatalf("package order changed the key: %s vs %s", a, b)
	}
}
