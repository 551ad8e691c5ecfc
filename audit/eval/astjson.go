package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	v, err := p.value(0)
	if err == nil {
		p.space()
		if p.pos != len(p.data) {
			err = errJSONFallback
		}
	}
	if err != nil {
		return ast.ValueFromReader(bytes.NewReader(data))
	}
	return v, nil
}

var errJSONFallback = fmt.Errorf("not handled by the fast parser")

// maxDepth bounds nesting, as encoding/json does (10000).
const maxDepth = 10000

type jsonParser struct {
	data []byte
	pos  int
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

func (p *jsonParser) value(depth int) (ast.Value, error) {
	if depth > maxDepth {
		return nil, errJSONFallback
	}
	p.space()
	if p.pos >= len(p.data) {
		return nil, errJSONFallback
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		p.pos++
		var terms [][2]*ast.Term
		p.space()
		if p.pos < len(p.data) && p.data[p.pos] == '}' {
			p.pos++
			return ast.NewObject(), nil
		}
		for {
			p.space()
			k, err := p.str()
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
			terms = append(terms, [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(v)})
			if more, err := p.more('}'); err != nil {
				return nil, err
			} else if more {
				continue
			}
			// Insert keeps the last of duplicate keys, as encoding/json does.
			obj := ast.NewObject()
			for _, t := range terms {
				obj.Insert(t[0], t[1])
			}
			return obj, nil
		}
	case c == '[':
		p.pos++
		var elems []*ast.Term
		p.space()
		if p.pos < len(p.data) && p.data[p.pos] == ']' {
			p.pos++
			return ast.NewArray(), nil
		}
		for {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			elems = append(elems, ast.NewTerm(v))
			if more, err := p.more(']'); err != nil {
				return nil, err
			} else if more {
				continue
			}
			return ast.NewArray(elems...), nil
		}
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return ast.String(s), nil
	case c == 't':
		return p.literal("true", ast.Boolean(true))
	case c == 'f':
		return p.literal("false", ast.Boolean(false))
	case c == 'n':
		return p.literal("null", ast.Null{})
	case c == '-' || c >= '0' && c <= '9':
		start := p.pos
		for p.pos < len(p.data) {
			switch d := p.data[p.pos]; {
			case d >= '0' && d <= '9', d == '-', d == '+', d == '.', d == 'e', d == 'E':
				p.pos++
				continue
			}
			break
		}
		lit := string(p.data[start:p.pos])
		// Only what encoding/json accepts as a number.
		if !json.Valid(p.data[start:p.pos]) {
			return nil, errJSONFallback
		}
		return ast.Number(lit), nil
	}
	return nil, errJSONFallback
}

func (p *jsonParser) literal(word string, v ast.Value) (ast.Value, error) {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		return nil, errJSONFallback
	}
	p.pos += len(word)
	return v, nil
}

// str reads a string; plain ones (no escapes, valid UTF-8, no control
// characters) are sliced directly, the others go through encoding/json.
func (p *jsonParser) str() (string, error) {
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return "", errJSONFallback
	}
	start := p.pos
	p.pos++
	plain := true
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			raw := p.data[start:p.pos]
			if plain && utf8.Valid(raw) {
				return string(raw[1 : len(raw)-1]), nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", errJSONFallback
			}
			return s, nil
		case c == '\\':
			plain = false
			p.pos += 2
			continue
		case c < 0x20:
			return "", errJSONFallback
		}
		p.pos++
	}
	return "", errJSONFallback
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
