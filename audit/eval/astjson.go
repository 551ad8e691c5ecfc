package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// parseInput turns a JSON document straight into OPA's value, without the
// generic map[string]any that ast.ValueFromReader builds and then converts
// (which, with large firewalls, cost a third of an evaluation). Numbers keep
// their literal text, as ValueFromReader's json.Number does. Anything it
// does not accept goes to ValueFromReader, which then reports the error.
func parseInput(data []byte) (ast.Value, error) {
	p := jsonParser{data: data}
	t, err := p.value(0)
	if err == nil {
		p.space()
		if p.pos != len(p.data) {
			err = errJSONFallback
		}
	}
	if err != nil {
		return ast.ValueFromReader(bytes.NewReader(data))
	}
	sharedStrings.add(p.strs)
	sharedSubtrees.add(p.subtrees)
	return t.Value, nil
}

// sharedStrings holds the key and short-string terms of the documents
// parsed so far, up to 16,384 of them, for every later parse: a fleet's
// documents repeat the same keys and words, and building them and a map of
// them anew for each document was a third of the parse.
var sharedStrings = newSharedTerms(1 << 14)

// sharedTerms maps JSON text to the term parsed from it, for every later
// parse, up to max entries (then it stops growing).
type sharedTerms struct {
	mu  sync.RWMutex
	m   map[string]*ast.Term
	max int
}

func newSharedTerms(max int) *sharedTerms {
	return &sharedTerms{m: map[string]*ast.Term{}, max: max}
}

// get is the shared term of text, if there is one.
func (st *sharedTerms) get(text []byte) *ast.Term {
	st.mu.RLock()
	t := st.m[string(text)] // no allocation for the lookup
	st.mu.RUnlock()
	return t
}

// add adds a document's new terms while there is room.
func (st *sharedTerms) add(terms map[string]*ast.Term) {
	if len(terms) == 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for text, t := range terms {
		if len(st.m) >= st.max {
			return
		}
		st.m[text] = t
	}
}

var errJSONFallback = fmt.Errorf("not handled by the fast parser")

// maxDepth bounds nesting, as encoding/json does (10000).
const maxDepth = 10000

// maxSharedString is the longest string value shared between the places
// it occurs: keys and short words (iptables, filter, tcp) repeat in every
// firewall rule and path entry, addresses and raw lines do not.
const maxSharedString = 24

type jsonParser struct {
	data []byte
	pos  int
	// strs shares one term per distinct key or short string not in
	// sharedStrings (terms are immutable once built, as OPA's own interned
	// terms are).
	strs map[string]*ast.Term
	// subtrees shares one term per distinct small object or array not in
	// sharedSubtrees.
	subtrees map[string]*ast.Term
	// members and elems are stacks the objects and arrays being read push
	// onto, so reading one allocates only the value itself.
	members [][2]*ast.Term
	elems   []*ast.Term
}

func (p *jsonParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (*ast.Term, error) {
	if depth > maxDepth {
		return nil, errJSONFallback
	}
	p.space()
	if p.pos >= len(p.data) {
		return nil, errJSONFallback
	}
	switch c := p.data[p.pos]; {
	case (c == '{' || c == '[') && depth > 0:
		// Inside the document (the top level is never shared: the engine
		// adds input.derived to it).
		return p.smallComposite(depth)
	case c == '{' || c == '[':
		return p.composite(depth)
	case c == '"':
		return p.strTerm(false)
	case c == 't':
		return p.literal("true", ast.InternedTerm(true))
	case c == 'f':
		return p.literal("false", ast.InternedTerm(false))
	case c == 'n':
		return p.literal("null", ast.InternedNullTerm)
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, errJSONFallback
}

// composite reads the object or array at p.pos.
func (p *jsonParser) composite(depth int) (*ast.Term, error) {
	switch p.data[p.pos] {
	case '{':
		p.pos++
		p.space()
		if p.pos < len(p.data) && p.data[p.pos] == '}' {
			p.pos++
			return ast.NewTerm(ast.NewObject()), nil
		}
		base := len(p.members)
		for {
			p.space()
			k, err := p.strTerm(true)
			if err != nil {
				return nil, err
			}
			p.space()
			if p.pos >= len(p.data) || p.data[p.pos] != ':' {
				return nil, errJSONFallback
			}
			p.pos++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			p.members = append(p.members, [2]*ast.Term{k, v})
			if more, err := p.more('}'); err != nil {
				return nil, err
			} else if more {
				continue
			}
			members := p.members[base:]
			p.members = p.members[:base]
			if hasDuplicateKey(members) {
				// Insert keeps the last of duplicate keys, as encoding/json
				// does.
				obj := ast.NewObject()
				for _, m := range members {
					obj.Insert(m[0], m[1])
				}
				return ast.NewTerm(obj), nil
			}
			return ast.NewTerm(ast.NewObject(members...)), nil
		}
	case '[':
		p.pos++
		p.space()
		if p.pos < len(p.data) && p.data[p.pos] == ']' {
			p.pos++
			return ast.NewTerm(ast.NewArray()), nil
		}
		base := len(p.elems)
		for {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			p.elems = append(p.elems, v)
			if more, err := p.more(']'); err != nil {
				return nil, err
			} else if more {
				continue
			}
			// The array keeps its slice: copy it off the stack.
			elems := slices.Clone(p.elems[base:])
			p.elems = p.elems[:base]
			return ast.NewTerm(ast.NewArray(elems...)), nil
		}
	}
	return nil, errJSONFallback
}

// number reads the number at p.pos.
func (p *jsonParser) number() (*ast.Term, error) {
	start := p.pos
	for p.pos < len(p.data) {
		switch d := p.data[p.pos]; {
		case d >= '0' && d <= '9', d == '-', d == '+', d == '.', d == 'e', d == 'E':
			p.pos++
			continue
		}
		break
	}
	lit := p.data[start:p.pos]
	// Only what encoding/json accepts as a number.
	if !json.Valid(lit) {
		return nil, errJSONFallback
	}
	if t := ast.InternedIntNumberTermFromString(string(lit)); t != nil {
		return t, nil
	}
	return ast.NumberTerm(json.Number(lit)), nil
}

// maxSharedSubtree is the longest object or array (in bytes of JSON) shared
// between the places it occurs: empty lists and small objects ({"soft":
// 65535, "hard": 65535}, a rule's port range, its ctstate list) repeat in
// every firewall rule and document, and so do whole firewall rules across a
// fleet's nodes; building each anew was most of a parse. Subtrees are
// immutable once built, as shared strings are.
const maxSharedSubtree = 384

// sharedSubtrees are the small objects and arrays of the documents parsed
// so far, by their JSON text (4,096 at most: a few MiB).
var sharedSubtrees = newSharedTerms(1 << 12)

// smallComposite reads the object or array at p.pos, reusing the term of
// an earlier occurrence of the same short JSON text.
func (p *jsonParser) smallComposite(depth int) (*ast.Term, error) {
	end := p.smallEnd()
	if end < 0 {
		return p.composite(depth)
	}
	raw := p.data[p.pos:end]
	t := sharedSubtrees.get(raw)
	if t == nil {
		t = p.subtrees[string(raw)]
	}
	if t != nil {
		p.pos = end
		return t, nil
	}
	t, err := p.composite(depth)
	if err != nil || p.pos != end {
		return t, err
	}
	if p.subtrees == nil {
		p.subtrees = map[string]*ast.Term{}
	}
	p.subtrees[string(raw)] = t
	return t, nil
}

// smallEnd is the offset just past the object or array at p.pos when it
// closes within maxSharedSubtree bytes, else -1. It only matches brackets
// outside strings; composite validates the JSON.
func (p *jsonParser) smallEnd() int {
	depth, inString := 0, false
	limit := min(len(p.data), p.pos+maxSharedSubtree)
	for i := p.pos; i < limit; i++ {
		c := p.data[i]
		switch {
		case inString:
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// hasDuplicateKey reports whether two members share a key (keys from
// strTerm are shared, so equal keys are mostly the same pointer).
func hasDuplicateKey(members [][2]*ast.Term) bool {
	if len(members) > 16 {
		seen := make(map[ast.String]struct{}, len(members))
		for _, m := range members {
			k := m[0].Value.(ast.String)
			if _, ok := seen[k]; ok {
				return true
			}
			seen[k] = struct{}{}
		}
		return false
	}
	for i := 1; i < len(members); i++ {
		for j := range i {
			if members[i][0].Value.(ast.String) == members[j][0].Value.(ast.String) {
				return true
			}
		}
	}
	return false
}

func (p *jsonParser) literal(word string, t *ast.Term) (*ast.Term, error) {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		return nil, errJSONFallback
	}
	p.pos += len(word)
	return t, nil
}

// strTerm reads a string as a term, shared with earlier occurrences when
// it is a key or short.
func (p *jsonParser) strTerm(key bool) (*ast.Term, error) {
	plain, s, err := p.str()
	if err != nil {
		return nil, err
	}
	if plain != nil {
		if !key && len(plain) > maxSharedString {
			return ast.StringTerm(string(plain)), nil
		}
		if t := sharedStrings.get(plain); t != nil {
			return t, nil
		}
		// Indexing with string(plain) does not allocate.
		if t, ok := p.strs[string(plain)]; ok {
			return t, nil
		}
		s = string(plain)
	} else {
		if !key && len(s) > maxSharedString {
			return ast.StringTerm(s), nil
		}
		if t := sharedStrings.get([]byte(s)); t != nil {
			return t, nil
		}
		if t, ok := p.strs[s]; ok {
			return t, nil
		}
	}
	t := ast.InternedTerm(s)
	if p.strs == nil {
		p.strs = map[string]*ast.Term{}
	}
	p.strs[s] = t
	return t, nil
}

// str reads a string: plain ones (no escapes, valid UTF-8, no control
// characters) come back as the bytes between the quotes, the others
// decoded by encoding/json.
func (p *jsonParser) str() (plain []byte, decoded string, err error) {
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return nil, "", errJSONFallback
	}
	start := p.pos
	p.pos++
	isPlain := true
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			raw := p.data[start:p.pos]
			if isPlain && utf8.Valid(raw) {
				return raw[1 : len(raw)-1], "", nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, "", errJSONFallback
			}
			return nil, s, nil
		case c == '\\':
			isPlain = false
			p.pos += 2
			continue
		case c < 0x20:
			return nil, "", errJSONFallback
		}
		p.pos++
	}
	return nil, "", errJSONFallback
}

// more consumes what follows an object member or array element: ',' (more
// follows) or the closing byte (done); anything else falls back.
func (p *jsonParser) more(closing byte) (bool, error) {
	p.space()
	if p.pos >= len(p.data) {
		return false, errJSONFallback
	}
	switch p.data[p.pos] {
	case ',':
		p.pos++
		return true, nil
	case closing:
		p.pos++
		return false, nil
	}
	return false, errJSONFallback
}
