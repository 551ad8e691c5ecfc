package eval

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/esbake/packer-plugin-elasticsearch/audit/internal/fleetfacts"
)

// TestParseInputMatchesOPA: the direct JSON-to-value parser gives exactly
// what ast.ValueFromReader gives, on the fixtures, large firewalls, random
// rulesets and the awkward corners of JSON (escapes, surrogate pairs,
// invalid UTF-8, number spellings, duplicate keys, deep nesting), and
// rejects what it rejects.
func TestParseInputMatchesOPA(t *testing.T) {
	var docs [][]byte
	add := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	add(cleanNode())
	add(seedNode())
	big := cleanNode()
	fleetfacts.WithFirewallRules(big.Facts, 200)
	add(big)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		in := cleanNode()
		in.Facts.Firewall = randomFirewall(rng, 30)
		add(in)
	}
	for _, s := range []string{
		`{"a":"tab\there \"quoted\" \\ \/ \u00e9 \ud83d\ude00 \u0000"}`,
		"{\"raw\":\"caf\xc3\xa9 and \xff broken\"}",
		`[0, -0, 1.50, 1e3, 1E+3, -2.5e-7, 12345678901234567890123, 0.1]`,
		`{"k":1,"k":2,"k":{"x":[true,false,null]}}`,
		` { "sp" : [ 1 , { } , [ ] , "" ] } `,
		`"just a string"`, `42`, `null`,
		// Small subtrees are shared by their JSON text: brackets and
		// escaped quotes inside strings must not end them early.
		`{"a":["]","\"]","{"],"b":{"c":"}","d":["\\"]},"e":["]","\"]","{"],"f":[[],{}],"g":[[],{}]}`,
		`{"a":[{"x":"]"}],"b":[{"x":"]"}, {"x":"]"}],"c":{"k":[1,2]},"d":{"k":[1,2]}}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	} {
		docs = append(docs, []byte(s))
	}
	check := func(i int, d []byte) {
		want, werr := ast.ValueFromReader(bytes.NewReader(d))
		got, gerr := parseInput(d)
		if werr != nil || gerr != nil {
			t.Errorf("doc %d: errors %v / %v", i, werr, gerr)
			return
		}
		if got.Compare(want) != 0 || got.String() != want.String() {
			t.Errorf("doc %d differs:\nparseInput:      %.400s\nValueFromReader: %.400s", i, got, want)
		}
	}
	// Once, then again with the strings of every document shared, from
	// several goroutines at once (as esaudit's workers parse).
	for i, d := range docs {
		check(i, d)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i, d := range docs {
				check(i, d)
			}
		})
	}
	wg.Wait()
	for _, bad := range []string{``, `{`, `{"a":}`, `[1,]`, `{"a" 1}`, `1.`, `tru`, `"open`, "\"ctl\x01\"", `NaN`, `{"a":[1,]}`, `{"a":{"b" 1}}`, `{"a":[}`} {
		if _, err := parseInput([]byte(bad)); err == nil {
			t.Errorf("%q: parsed, want an error", bad)
		}
	}
}

func BenchmarkParseInput(b *testing.B) {
	in := cleanNode()
	fleetfacts.WithFirewallRules(in.Facts, 200)
	doc, err := json.Marshal(in)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseInput(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ValueFromReader", func(b *testing.B) {
		for b.Loop() {
			if _, err := ast.ValueFromReader(bytes.NewReader(doc)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestParseInputSharesOnlyInnerTerms: small objects and arrays are shared
// between documents, never a document's top level, which the engine
// changes (input.derived).
func TestParseInputSharesOnlyInnerTerms(t *testing.T) {
	doc := []byte(`{"x":{"y":[]}}`)
	a, err := parseInput(doc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseInput(doc)
	if err != nil {
		t.Fatal(err)
	}
	ao, bo := a.(ast.Object), b.(ast.Object)
	if ao == bo {
		t.Fatal("two documents share their top-level object")
	}
	if ao.Get(ast.StringTerm("x")) != bo.Get(ast.StringTerm("x")) {
		t.Error("the small object x is not shared")
	}
	ao.Insert(ast.StringTerm("derived"), ast.StringTerm("mine"))
	if bo.Get(ast.StringTerm("derived")) != nil {
		t.Error("adding to one document changed the other")
	}
}
