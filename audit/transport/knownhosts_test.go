package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func testKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestHostKeyIndexMatchesKnownhosts: the indexed known_hosts check answers
// every question as x/crypto's knownhosts does (accept, revoked, unknown,
// mismatch with the same wanted keys and line numbers) on a file mixing
// plain, multi-host, ported, IPv6, hashed, wildcard, negated, @revoked,
// @cert-authority, commented and broken lines.
func TestHostKeyIndexMatchesKnownhosts(t *testing.T) {
	keys := make([]ssh.PublicKey, 8)
	for i := range keys {
		keys[i] = testKey(t)
	}
	line := func(hosts []string, k ssh.PublicKey) string { return knownhosts.Line(hosts, k) }
	hashed := knownhosts.HashHostname("hashed.example")
	lines := []string{
		"# a comment",
		line([]string{"10.0.0.1"}, keys[0]),
		line([]string{"10.0.0.2", "node-2.example"}, keys[1]),
		line([]string{"[10.0.0.3]:2222"}, keys[2]),
		line([]string{"10.0.0.1"}, keys[3]), // a second key for .1
		line([]string{"fe80::1"}, keys[4]),
		hashed + " " + strings.TrimPrefix(line([]string{"x"}, keys[5]), "x "),
		"*.wild.example " + strings.TrimPrefix(line([]string{"x"}, keys[6]), "x "),
		"!bad.wild.example,*.wild.example " + strings.TrimPrefix(line([]string{"x"}, keys[0]), "x "),
		"@revoked * " + strings.TrimPrefix(line([]string{"x"}, keys[7]), "x "),
		"@cert-authority *.ca.example " + strings.TrimPrefix(line([]string{"x"}, keys[1]), "x "),
		"10.0.0.9 ssh-ed25519 not-base64!!",
		"",
		"10.0.0.5:2200 " + strings.TrimPrefix(line([]string{"x"}, keys[5]), "x "),
	}
	file := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ref, err := knownhosts.New(file)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := newHostKeyIndex(file)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"10.0.0.1:22", "10.0.0.2:22", "node-2.example:22", "10.0.0.3:2222", "10.0.0.3:22", "[fe80::1]:22",
		"hashed.example:22", "a.wild.example:22", "bad.wild.example:22", "x.ca.example:22", "10.0.0.5:2200", "10.0.0.9:22", "unknown:22", ""}
	kinds := map[string]int{}
	for _, h := range hosts {
		for ki, k := range keys {
			remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 22}
			want := ref(h, remote, k)
			got := idx.check(h, remote, k)
			kinds[kind(want)]++
			if kind(got) != kind(want) {
				t.Errorf("%q key %d: index says %v, knownhosts %v", h, ki, got, want)
				continue
			}
			var gk, wk *knownhosts.KeyError
			if errors.As(want, &wk) && errors.As(got, &gk) && !reflect.DeepEqual(lineNums(gk), lineNums(wk)) {
				t.Errorf("%q key %d: wanted keys at lines %v, knownhosts %v", h, ki, lineNums(gk), lineNums(wk))
			}
			var gr, wr *knownhosts.RevokedError
			if errors.As(want, &wr) && errors.As(got, &gr) && (gr.Revoked.Line != wr.Revoked.Line || gr.Revoked.Filename != file) {
				t.Errorf("%q key %d: revoked at %s:%d, knownhosts line %d", h, ki, gr.Revoked.Filename, gr.Revoked.Line, wr.Revoked.Line)
			}
		}
	}
	// Every outcome must occur, or agreeing proves little.
	for _, k := range []string{"ok", "revoked", "unknown", "mismatch"} {
		if kinds[k] == 0 {
			t.Errorf("no question gave %s: %v", k, kinds)
		}
	}
}

func kind(err error) string {
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &re):
		return "revoked"
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return "unknown"
	case errors.As(err, &ke):
		return "mismatch"
	}
	return "error: " + err.Error()
}

func lineNums(ke *knownhosts.KeyError) []string {
	var out []string
	for _, k := range ke.Want {
		out = append(out, fmt.Sprintf("%s:%d", filepath.Base(k.Filename), k.Line))
	}
	return out
}

// BenchmarkHostKeyCheck10000 checks one node's key against a known_hosts
// of 10,000 plain entries, indexed and with x/crypto's linear scan.
func BenchmarkHostKeyCheck10000(b *testing.B) {
	key := testKey(b)
	var sb strings.Builder
	for i := range 10000 {
		fmt.Fprintln(&sb, knownhosts.Line([]string{fmt.Sprintf("[127.0.%d.%d]:2222", i/250, i%250)}, key))
	}
	file := filepath.Join(b.TempDir(), "known_hosts")
	if err := os.WriteFile(file, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	ref, err := knownhosts.New(file)
	if err != nil {
		b.Fatal(err)
	}
	idx, err := newHostKeyIndex(file)
	if err != nil {
		b.Fatal(err)
	}
	remote := &net.TCPAddr{IP: net.ParseIP("127.0.39.249"), Port: 2222}
	for _, c := range []struct {
		name string
		cb   ssh.HostKeyCallback
	}{{"index", idx.check}, {"knownhosts", ref}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.cb("127.0.39.249:2222", remote, key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
