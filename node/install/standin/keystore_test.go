package standin

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

// The stand-in keystore tool writes Elasticsearch's format for each major,
// which facts/parse_keystore.go (written from KeyStoreWrapper) reads; and it
// behaves as the real tool does on the commands esnode and the stand-in use.
func TestStandInKeystoreFormat(t *testing.T) {
	need(t, "dpkg-deb", "python3")
	for _, tc := range []struct {
		version  string
		format   int
		multiAdd bool // add takes several settings (7.8 and later)
	}{{"6.8.23", 3, false}, {"7.17.25", 4, true}, {"8.15.3", 6, true}} {
		t.Run(tc.version, func(t *testing.T) {
			a, err := Build(t.TempDir(), tc.version)
			if err != nil {
				t.Fatal(err)
			}
			root := extract(t, a.Elasticsearch.Path)
			home, conf := filepath.Join(root, "usr/share/elasticsearch"), t.TempDir()
			tool := func(stdin string, args ...string) (string, error) {
				cmd := exec.Command(filepath.Join(home, "bin/elasticsearch-keystore"), args...)
				cmd.Env = append(os.Environ(), "ES_PATH_CONF="+conf, "ES_HOME="+home)
				cmd.Stdin = strings.NewReader(stdin)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			if out, err := tool("", "add", "--stdin", "discovery.ec2.access_key"); err == nil || !strings.Contains(out, "keystore not found") {
				t.Errorf("add without --force on a missing keystore: %v %q, want a refusal", err, out)
			}
			// From 7.8 add takes several settings, before one
			// (AddStringKeyStoreCommand).
			out, err := tool("AKIDSTANDIN\nstand-in-secret\n", "add", "-x", "-f", "discovery.ec2.access_key", "discovery.ec2.secret_key")
			if tc.multiAdd && err != nil {
				t.Fatalf("add: %v\n%s", err, out)
			}
			if !tc.multiAdd {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 64 || !strings.Contains(out, "ERROR: Found multiple arguments for option [arguments], but you asked for only one") {
					t.Fatalf("%s: add of two settings: %v %q, want exit 64 and joptsimple's refusal", tc.version, err, out)
				}
				if _, err := os.Stat(filepath.Join(conf, "elasticsearch.keystore")); err == nil {
					t.Error("the refused add created the keystore")
				}
				for name, value := range map[string]string{"discovery.ec2.access_key": "AKIDSTANDIN", "discovery.ec2.secret_key": "stand-in-secret"} {
					if out, err := tool(value+"\n", "add", "-x", "-f", name); err != nil {
						t.Fatalf("add %s: %v\n%s", name, err, out)
					}
				}
			}
			if out, err := tool("x\n", "add", "-x", "discovery.ec2.access_key"); err == nil || !strings.Contains(out, "already exists") {
				t.Errorf("add over an existing setting without --force: %v %q", err, out)
			}
			b, err := os.ReadFile(filepath.Join(conf, "elasticsearch.keystore"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "stand-in-secret") {
				t.Error("the keystore holds a value in clear")
			}
			kc, err := facts.ParseKeystore(b)
			if err != nil {
				t.Fatalf("facts.ParseKeystore: %v", err)
			}
			want := []string{"discovery.ec2.access_key", "discovery.ec2.secret_key", "keystore.seed"}
			if kc.FormatVersion != tc.format || !reflect.DeepEqual(kc.Entries, want) {
				t.Errorf("parsed format %d entries %v, want %d %v", kc.FormatVersion, kc.Entries, tc.format, want)
			}
			if out, err := tool("", "show", "discovery.ec2.secret_key"); err != nil || out != "stand-in-secret\n" {
				t.Errorf("show: %v %q", err, out)
			}
			if out, err := tool("", "remove", "discovery.ec2.access_key"); err != nil {
				t.Fatalf("remove: %v\n%s", err, out)
			}
			if out, err := tool("", "list"); err != nil || out != "discovery.ec2.secret_key\nkeystore.seed\n" {
				t.Errorf("list after remove: %v %q", err, out)
			}
			// A corrupted byte fails the checksum, as Lucene's footer check does.
			b, _ = os.ReadFile(filepath.Join(conf, "elasticsearch.keystore"))
			b[len(b)/2] ^= 1
			os.WriteFile(filepath.Join(conf, "elasticsearch.keystore"), b, 0o600)
			if out, err := tool("", "list"); err == nil || !strings.Contains(out, "checksum") {
				t.Errorf("list of a corrupted keystore: %v %q", err, out)
			}
		})
	}
}
