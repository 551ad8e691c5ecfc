package facts

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fuzz tests run over their seeds in every `go test`; run one for longer
// with `go test -fuzz=FuzzX -fuzztime=10s ./facts/`. Each checks invariants
// of the output, not only that nothing panics.

func FuzzFlattenYAML(f *testing.F) {
	for _, s := range []string{
		"cluster.name: a\nnetwork.host: [10.0.0.5]\nhttp.cors.allow-origin: '*'\n",
		"a:\n  b: 1\na.b: 2\n",
		"a: &x [1, 2]\nb: *x\n",
		"<<: {a: 1}\n",
		"- 1\n",
		"? [a]\n: 1\n",
		"a: !!binary aGVsbG8=\n",
		"a: {b: {c: {d: [1, {e: f}]}}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, problems := FlattenYAML(data)
		if got == nil {
			t.Fatal("nil map")
		}
		if len(problems) == 0 {
			// Everything read: the result must encode as JSON for the document.
			if _, err := json.Marshal(got); err != nil {
				t.Fatalf("flattened YAML does not encode as JSON: %v", err)
			}
		}
	})
}

func FuzzParseJVMOptions(f *testing.F) {
	for _, s := range []string{
		"-Xms1g\n-Xms1g\n", "8-:-Xmx2g\n17-18:-Xms3g\n-9:-Xmx1g\n", "8:-XX:+UseG1GC\n# c\n\n",
		"99999999999999999999-:-Xmx1g\n", "-Xmx9999999999999t\n", "-XX:MaxHeapSize=1073741824\n", "junk\n",
	} {
		f.Add(s, 17)
	}
	f.Fuzz(func(t *testing.T, data string, jdk int) {
		apply, skipped, _ := ParseJVMOptions(data, jdk)
		for _, o := range append(apply, skipped...) {
			if !strings.HasPrefix(o.Option, "-") || o.Line < 1 {
				t.Fatalf("option %+v does not start with - or has no line", o)
			}
		}
		h := computeHeap([]jvmFile{{"f", data}}, data, "env", jdk)
		if h.XmsBytes < 0 || h.XmxBytes < 0 {
			t.Fatalf("negative heap %+v", h)
		}
		for _, d := range h.Duplicates {
			if d.Count < 2 || d.Count != len(d.Sources) {
				t.Fatalf("duplicate %+v", d)
			}
		}
	})
}

func FuzzParseJVMSize(f *testing.F) {
	for _, s := range []string{"1g", "512M", "0", "8388607t", "k", "-1g", "1.5g"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseJVMSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseJVMSize(%q) = %d", s, n)
		}
	})
}

func FuzzParseProcNetTCP(f *testing.F) {
	f.Add(procNetTCP, false)
	f.Add("   0: 00000000000000000000000001000000:0CEA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 100 0 0 10 0\n", true)
	f.Add("   0: 0100007F:FFFF 0:0 0A 0 0 0 4294967295 0 18446744073709551615\n", false)
	f.Fuzz(func(t *testing.T, data string, v6 bool) {
		rows, _ := ParseProcNetTCP(data, v6)
		for _, r := range rows {
			a, err := netip.ParseAddr(r.Address)
			if err != nil || a.Is6() != v6 {
				t.Fatalf("address %q: %v", r.Address, err)
			}
			if r.Port < 0 || r.Port > 65535 || r.State < 0 || r.State > 255 || r.UID < 0 {
				t.Fatalf("row out of range %+v", r)
			}
		}
	})
}

func FuzzParseIPTablesSave(f *testing.F) {
	f.Add(seedIPTables)
	f.Add("*filter\n-A INPUT ! -p tcp -m multiport --dports 1:2,3 -j ACCEPT\n-I INPUT 1 -s \"a b\" -j DROP\n")
	f.Add("*filter\n-A INPUT --dport 70000 -j ACCEPT\n-A INPUT -m comment --comment \"unterminated\n")
	f.Add("*nat\n:PREROUTING ACCEPT\n-A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080\nCOMMIT\n")
	f.Fuzz(func(t *testing.T, data string) {
		rs, _ := ParseIPTablesSave(data, "ipv4")
		for _, r := range rs.Rules {
			checkRule(t, r)
		}
	})
}

func FuzzParseNFTJSON(f *testing.F) {
	f.Add([]byte(nftRuleset))
	f.Add([]byte(`{"nftables":[{"rule":{"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"range":[9300,9200]}}}]}}]}`))
	f.Add([]byte(`{"nftables":[{"chain":{"hook":"input"}},{"rule":{"expr":[{"match":null},{"jump":1}]}}]}`))
	f.Add([]byte(`{"nftables":[{"rule":{"expr":[{"match":{"left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"set":[{"prefix":{"addr":"10.0.0.0","len":8}},{"range":["10.0.0.1","10.0.0.9"]},[1]]}}}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, _ := ParseNFTJSON(data)
		for _, r := range rs.Rules {
			checkRule(t, r)
		}
		for _, c := range rs.Chains {
			if c.Hook != "" && c.Policy == "" {
				t.Fatalf("base chain without policy %+v", c)
			}
		}
	})
}

func checkRule(t *testing.T, r FirewallRule) {
	t.Helper()
	if r.Chain == "" && r.Backend == "iptables" {
		t.Fatalf("rule without chain %+v", r)
	}
	if r.DPorts == nil || r.Sources == nil {
		t.Fatalf("nil lists in %+v (JSON must carry [] not null)", r)
	}
	for _, p := range r.DPorts {
		if p.From < 0 || p.To > 65535 || p.From > p.To {
			t.Fatalf("port range %+v", p)
		}
	}
}

func FuzzParseLimits(f *testing.F) {
	f.Add(procLimits)
	f.Add("Max open files 1 unlimited files\nMax processes 18446744073709551615 2\n")
	f.Fuzz(func(t *testing.T, data string) {
		got, _ := ParseLimits(data)
		for k, l := range got {
			if l.Soft < -1 || l.Hard < -1 {
				t.Fatalf("%s: %+v", k, l)
			}
		}
	})
}

func FuzzParseCmdline(f *testing.F) {
	f.Add([]byte("java\x00-Xms1g\x00-Xmx2g\x00org.elasticsearch.bootstrap.Elasticsearch\x00"))
	f.Add([]byte("\x00\x00-Xmx\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		args := ParseCmdline(data)
		xms, xmx := CmdlineHeap(args)
		if xms < 0 || xmx < 0 {
			t.Fatalf("negative heap %d %d", xms, xmx)
		}
		if len(args) > 0 && strings.Join(args, "\x00") != strings.TrimRight(string(data), "\x00") {
			t.Fatalf("split lost bytes: %q", args)
		}
	})
}

func FuzzParsePasswd(f *testing.F) {
	f.Add("root:x:0:0:root:/root:/bin/bash\nelasticsearch:x:112:117::/nonexistent:/bin/false\n")
	f.Add("a:x:-1:0:::\n::::::\n")
	f.Fuzz(func(t *testing.T, data string) {
		users, _ := ParsePasswd(data)
		for _, u := range users {
			if u.UID < 0 || u.GID < 0 || strings.Contains(u.Name, ":") {
				t.Fatalf("user %+v", u)
			}
		}
	})
}

func FuzzParseUnit(f *testing.F) {
	f.Add("[Service]\nUser=elasticsearch\nLimitNOFILE=65535\n[Install]\nWantedBy=multi-user.target\n")
	f.Add("[Service\nUser=\\\n")
	f.Add("x=y\n[A]\n=\n")
	f.Add("[Service]\nEnvironment=\"ES_JAVA_OPTS=-Xms1g -Xmx1g\" 'A=b' \"C=\\\"\"\n")
	f.Fuzz(func(t *testing.T, data string) {
		u, _ := ParseUnit(nil, data)
		for sec, keys := range u {
			for k, vs := range keys {
				for _, v := range vs {
					if v == "" {
						t.Fatalf("[%s] %s has an empty value kept", sec, k)
					}
				}
			}
		}
		if v := u.Last("Service", "LimitNOFILE"); v != "" {
			if l, err := unitLimit(v); err == nil && (l.Soft < -1 || l.Hard < -1) {
				t.Fatalf("limit %q parsed as %+v", v, l)
			}
		}
		for _, v := range u["Service"]["Environment"] {
			n := 0
			for _, w := range splitSystemdWords(v) {
				n += len(w)
			}
			if n > len(v) {
				t.Fatalf("Environment=%q split into more bytes than it has", v)
			}
		}
	})
}

func FuzzParseShellEnv(f *testing.F) {
	f.Add("ES_JAVA_OPTS=\"-Xms1g -Xmx1g\"\nexport A='b'\n")
	f.Add("=\n\"\n'a=\n")
	f.Fuzz(func(t *testing.T, data string) {
		for k := range ParseShellEnv(data) {
			if k == "" || strings.ContainsAny(k, " \t\"'\n") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}

// FuzzRootFSHost checks that no path, through any symlink, resolves outside
// the root.
func FuzzRootFSHost(f *testing.F) {
	for _, s := range []string{"/etc/x", "../../etc/passwd", "/abs/../../..", "/rel/x", "/loop/a", "/etc/../abs/etc"} {
		f.Add(s)
	}
	dir := f.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"etc", "sub"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for link, target := range map[string]string{"abs": "/", "rel": "../../..", "loop": "loop", "sub/up": "../../../../", "etc/esc": "/../../x"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			f.Fatal(err)
		}
	}
	r := rootFS{root: root}
	f.Fuzz(func(t *testing.T, p string) {
		for _, follow := range []bool{true, false} {
			h, err := r.host(p, follow)
			if err != nil {
				continue
			}
			if h != root && !strings.HasPrefix(h, root+string(filepath.Separator)) {
				t.Fatalf("%q resolved to %q, outside %q", p, h, root)
			}
		}
	})
}

func FuzzParseNFTText(f *testing.F) {
	f.Add(nftConf)
	f.Add("table inet x { chain c { type filter hook input priority 0; policy drop; tcp dport { 1-2, 3 } accept } }")
	f.Add("table { { } } }\n\"\\\n")
	f.Add("add table inet t\nadd chain inet t c { type filter hook input priority 0 ; }\n")
	f.Fuzz(func(t *testing.T, data string) {
		rs, _ := ParseNFTText(data)
		for _, r := range rs.Rules {
			checkRule(t, r)
			if r.Chain == "" {
				t.Fatalf("rule without chain %+v", r)
			}
		}
	})
}
