package facts

import (
	"fmt"
	"sort"

	"gopkg.in/yaml.v3"
)

// maxYAMLNodes bounds the walk, so alias bombs ("billion laughs") end in an
// error instead of exhausting memory.
const maxYAMLNodes = 100000

// FlattenYAML reads elasticsearch.yml into dotted keys the way Elasticsearch
// does: `a: {b: 1}` and `a.b: 1` both give "a.b". Scalars keep their YAML
// type (bool, int, float, string, nil); lists stay lists. Problems lists
// what Elasticsearch would refuse (a key set twice, a non-scalar key) and
// parse errors; the keys read before a problem are still returned.
func FlattenYAML(data []byte) (map[string]any, []string) {
	out := map[string]any{}
	var problems []string
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return out, []string{fmt.Sprintf("not valid YAML: %v", err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return out, nil // empty file, or only comments
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			return out, nil
		}
		return out, []string{fmt.Sprintf("line %d: the document is not a mapping of settings", root.Line)}
	}
	w := yamlWalker{out: out, lines: map[string]int{}}
	w.mapping("", root)
	problems = append(problems, w.problems...)
	return out, problems
}

type yamlWalker struct {
	out      map[string]any
	lines    map[string]int
	problems []string
	nodes    int
}

func (w *yamlWalker) budget(n *yaml.Node) bool {
	w.nodes++
	if w.nodes == maxYAMLNodes+1 {
		w.problems = append(w.problems, fmt.Sprintf("line %d: more than %d YAML nodes (alias expansion?); the rest is ignored", n.Line, maxYAMLNodes))
	}
	return w.nodes <= maxYAMLNodes
}

func (w *yamlWalker) mapping(prefix string, n *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !w.budget(k) {
			return
		}
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			w.problems = append(w.problems, fmt.Sprintf("line %d: a setting name must be a plain string", k.Line))
			continue
		}
		if k.Tag == "!!merge" {
			w.problems = append(w.problems, fmt.Sprintf("line %d: YAML merge keys (<<) are not read", k.Line))
			continue
		}
		key := k.Value
		if prefix != "" {
			key = prefix + "." + key
		}
		w.value(key, v, k.Line, 0)
	}
}

func (w *yamlWalker) value(key string, v *yaml.Node, line, depth int) {
	if !w.budget(v) {
		return
	}
	if depth > 50 {
		w.problems = append(w.problems, fmt.Sprintf("line %d: %s: aliases nest too deep", line, key))
		return
	}
	switch v.Kind {
	case yaml.AliasNode:
		if v.Alias == nil {
			w.problems = append(w.problems, fmt.Sprintf("line %d: %s: unknown alias", line, key))
			return
		}
		w.value(key, v.Alias, line, depth+1)
	case yaml.MappingNode:
		w.mapping(key, v)
	default:
		val, err := w.plain(v, 0)
		if err != nil {
			w.problems = append(w.problems, fmt.Sprintf("line %d: %s: %v", line, key, err))
			return
		}
		if first, dup := w.lines[key]; dup {
			w.problems = append(w.problems, fmt.Sprintf("line %d: %s is already set on line %d; Elasticsearch refuses duplicate settings", line, key, first))
		} else {
			w.lines[key] = line
		}
		w.out[key] = val
	}
}

// plain converts a scalar or sequence to Go values; maps inside lists keep
// their shape with string keys.
func (w *yamlWalker) plain(v *yaml.Node, depth int) (any, error) {
	if depth > 50 {
		return nil, fmt.Errorf("nesting too deep")
	}
	if !w.budget(v) {
		return nil, fmt.Errorf("too many YAML nodes")
	}
	switch v.Kind {
	case yaml.AliasNode:
		if v.Alias == nil {
			return nil, fmt.Errorf("unknown alias")
		}
		return w.plain(v.Alias, depth+1)
	case yaml.ScalarNode:
		var x any
		if err := v.Decode(&x); err != nil {
			return v.Value, nil // keep the text of an odd scalar (e.g. bad !!timestamp)
		}
		switch t := x.(type) {
		case int, int64, uint64, float64, bool, string, nil:
			return t, nil
		default:
			return v.Value, nil
		}
	case yaml.SequenceNode:
		list := make([]any, 0, len(v.Content))
		for _, c := range v.Content {
			x, err := w.plain(c, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, x)
		}
		return list, nil
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(v.Content); i += 2 {
			x, err := w.plain(v.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			m[v.Content[i].Value] = x
		}
		return m, nil
	}
	return nil, fmt.Errorf("unsupported YAML node")
}

// sortedKeys is for stable output in tests and docs.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
