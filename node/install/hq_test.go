package install

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chainedLinkTarball is the review's archive: hq/p -> ".", so hq/p/p/.../r
// is physically hq/r while it spells a path deep in the release, and its
// target "../../..." (lexically inside) climbs to "/"; hq/r/<victim>/pwned
// then names any absolute path.
func chainedLinkTarball(t *testing.T, victim string) []byte {
	// Enough ".." to reach "/" from a tree beside victim (the check adds
	// one level), and under the kernel's 40 links per lookup.
	depth := strings.Count(victim, "/") + 3
	deep := strings.Repeat("p/", depth)
	up := strings.TrimSuffix(strings.Repeat("../", depth), "/")
	return standinHQTarball(t,
		tarEntry{name: "hq/", dir: true},
		tarEntry{name: "hq/application.py", body: "#\n", mode: 0o644},
		tarEntry{name: "hq/p", link: "."},
		tarEntry{name: "hq/" + deep + "r", link: up},
		tarEntry{name: "hq/r" + victim + "/pwned", body: "owned\n", mode: 0o644},
	)
}

func TestHQTarballChainedSymlinksWriteNothingOutside(t *testing.T) {
	for name, extract := range map[string]func(tarball, dir string) error{
		"check":   checkHQTarball,
		"extract": extractTarball,
	} {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			victim := filepath.Join(base, "victim")
			if err := os.Mkdir(victim, 0o755); err != nil {
				t.Fatal(err)
			}
			tree := filepath.Join(base, "tree")
			os.Mkdir(tree, 0o755)
			tgz := filepath.Join(base, "hq.tar.gz")
			os.WriteFile(tgz, chainedLinkTarball(t, victim), 0o644)
			err := extract(tgz, tree)
			if err == nil || !strings.Contains(err.Error(), "refusing the tarball") {
				t.Errorf("err = %v, want the tarball refused", err)
			}
			if ents, _ := os.ReadDir(victim); len(ents) > 0 {
				t.Errorf("the tarball wrote outside its tree: %s holds %v", victim, ents)
			}
		})
	}
}

func TestHQTarballLinkThroughLinkRefused(t *testing.T) {
	base := t.TempDir()
	tgz := filepath.Join(base, "hq.tar.gz")
	// b spells "a/a/../.." (lexically the release itself) but a is ".",
	// so b is two directories above the release.
	os.WriteFile(tgz, standinHQTarball(t,
		tarEntry{name: "hq/application.py", body: "#\n", mode: 0o644},
		tarEntry{name: "hq/a", link: "."},
		tarEntry{name: "hq/b", link: "a/a/../.."},
	), 0o644)
	os.Mkdir(filepath.Join(base, "tree"), 0o755)
	err := extractTarball(tgz, filepath.Join(base, "tree"))
	if err == nil || !strings.Contains(err.Error(), "resolves outside the release") {
		t.Errorf("err = %v, want the escaping link refused", err)
	}
}

func TestHQTarballInnerLinksKept(t *testing.T) {
	base := t.TempDir()
	tgz := filepath.Join(base, "hq.tar.gz")
	os.WriteFile(tgz, standinHQTarball(t,
		tarEntry{name: "hq/application.py", body: "#\n", mode: 0o644},
		tarEntry{name: "hq/static/app.js", body: "//\n", mode: 0o644},
		tarEntry{name: "hq/assets", link: "static"},
		tarEntry{name: "hq/static/main.js", link: "../static/app.js"},
	), 0o644)
	tree := filepath.Join(base, "tree")
	os.Mkdir(tree, 0o755)
	if err := extractTarball(tgz, tree); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(tree, "assets", "main.js")); err != nil || string(b) != "//\n" {
		t.Errorf("assets/main.js = %q, %v", b, err)
	}
}

// FuzzHQTarball feeds arbitrary tar streams to the check: whatever it
// accepts or refuses, nothing appears outside the tree, and an accepted
// tree holds no link that resolves outside it.
func FuzzHQTarball(f *testing.F) {
	for _, tgz := range [][]byte{
		chainedLinkTarball(&testing.T{}, "/tmp/esbake-fuzz-victim"),
		standinHQTarball(&testing.T{}),
		standinHQTarball(&testing.T{}, tarEntry{name: "hq/application.py", body: "#\n"}, tarEntry{name: "hq/a", link: "."}, tarEntry{name: "hq/b", link: "a/a/../.."}, tarEntry{name: "hq/b/x", body: "x"}),
		standinHQTarball(&testing.T{}, tarEntry{name: "hq/application.py", link: "/etc/passwd"}),
	} {
		zr, err := gzip.NewReader(bytes.NewReader(tgz))
		if err != nil {
			f.Fatal(err)
		}
		var raw bytes.Buffer
		raw.ReadFrom(zr)
		f.Add(raw.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		tree := filepath.Join(base, "tree")
		os.Mkdir(tree, 0o755)
		os.Mkdir(filepath.Join(base, "victim"), 0o755)
		err := extractTar(bytes.NewReader(data), tree, "fuzz.tar.gz")
		if ents, _ := os.ReadDir(base); len(ents) != 2 {
			t.Fatalf("entries beside the tree: %v", ents)
		}
		if ents, _ := os.ReadDir(filepath.Join(base, "victim")); len(ents) != 0 {
			t.Fatalf("wrote outside the tree: %v", ents)
		}
		if err != nil {
			return
		}
		filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil // dangling: resolves nowhere
			}
			if real != tree && !strings.HasPrefix(real, tree+string(filepath.Separator)) {
				t.Errorf("accepted link %s resolves outside the tree, to %s", p, real)
			}
			return nil
		})
	})
}
