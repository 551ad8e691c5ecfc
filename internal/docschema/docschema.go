// Package docschema derives JSON Schemas (draft 2020-12) for esbake's
// versioned documents (esbake.facts/v1, esbake.report/v1) from the Go types
// that write them, so the published schemas in docs/schemas/ cannot drift
// from the encoder: a test regenerates them and compares.
//
// The mapping follows encoding/json: a field without omitempty is required
// and, when it is a pointer, slice, map or interface, may be null; a field
// with omitempty is optional. Structs allow no other properties, so a
// renamed field is caught by validation.
package docschema

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// Opaque are types documented elsewhere, rendered as a plain object with a
// description (the node spec has its own version, esbake/v1).
type Opaque map[reflect.Type]string

// Generate returns the schema of v's type, indented, with a trailing
// newline. constVersion pins the schema_version property.
func Generate(v any, id, title, constVersion string, opaque Opaque) ([]byte, error) {
	g := &gen{defs: map[string]any{}, opaque: opaque}
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	root := g.structBody(t)
	if props, ok := root["properties"].(map[string]any); ok {
		props["schema_version"] = map[string]any{"const": constVersion}
	}
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = id
	root["title"] = title
	if len(g.defs) > 0 {
		root["$defs"] = g.defs
	}
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

type gen struct {
	defs   map[string]any
	opaque Opaque
}

var timeType = reflect.TypeOf(time.Time{})

func (g *gen) schemaOf(t reflect.Type) any {
	if d, ok := g.opaque[t]; ok {
		return map[string]any{"type": "object", "description": d}
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.Pointer:
		return g.schemaOf(t.Elem())
	}
	switch t.Kind() {
	case reflect.Struct:
		return g.structSchema(t)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schemaOf(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	}
	return map[string]any{} // interface: any JSON value
}

// structSchema puts named structs into $defs (they repeat) and returns a
// reference; anonymous structs are inlined.
func (g *gen) structSchema(t reflect.Type) any {
	name := t.Name()
	if name == "" {
		return g.structBody(t)
	}
	key := strings.TrimPrefix(t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:]+"."+name, ".")
	if _, ok := g.defs[key]; !ok {
		g.defs[key] = map[string]any{} // placeholder against recursion
		g.defs[key] = g.structBody(t)
	}
	return map[string]any{"$ref": "#/$defs/" + key}
}

func (g *gen) structBody(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		s := g.schemaOf(f.Type)
		omit := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		switch f.Type.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			if !omit && f.Type.Kind() != reflect.Interface {
				s = map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
			}
		}
		props[name] = s
		if !omit {
			required = append(required, name)
		}
	}
	out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}
