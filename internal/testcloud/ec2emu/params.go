package ec2emu

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// params is a decoded EC2 Query request. EC2 flattens lists as Name.1, Name.2, ... and
// structures as Name.Member.
type params url.Values

func (p params) str(k string) string { return url.Values(p).Get(k) }

func (p params) has(k string) bool { _, ok := p[k]; return ok }

func (p params) boolean(k string) bool { return strings.EqualFold(p.str(k), "true") }

// integer returns the value of k, def when absent, and an InvalidParameterValue error when not a number.
func (p params) integer(k string, def int) (int, *apiError) {
	v := p.str(k)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errf("InvalidParameterValue", "Value (%s) for parameter %s is invalid. Expected an integer.", v, k)
	}
	return n, nil
}

// count returns how many consecutive indexed members prefix.1, prefix.2, ... exist.
func (p params) count(prefix string) int {
	n := 0
	for {
		pre := prefix + "." + strconv.Itoa(n+1)
		found := false
		for k := range p {
			if k == pre || strings.HasPrefix(k, pre+".") {
				found = true
				break
			}
		}
		if !found {
			return n
		}
		n++
	}
}

// list returns the values of prefix.1, prefix.2, ...
func (p params) list(prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := p[prefix+"."+strconv.Itoa(i)]
		if !ok || len(v) == 0 {
			return out
		}
		out = append(out, v[0])
	}
}

type filter struct {
	name   string
	values []string
}

func (p params) filters() []filter {
	var out []filter
	for i := 1; i <= p.count("Filter"); i++ {
		pre := "Filter." + strconv.Itoa(i)
		out = append(out, filter{name: p.str(pre + ".Name"), values: p.list(pre + ".Value")})
	}
	return out
}

type tag struct{ key, value string }

// tags reads prefix.N.Key / prefix.N.Value.
func (p params) tags(prefix string) []tag {
	var out []tag
	for i := 1; i <= p.count(prefix); i++ {
		pre := prefix + "." + strconv.Itoa(i)
		out = append(out, tag{key: p.str(pre + ".Key"), value: p.str(pre + ".Value")})
	}
	return out
}

// tagSpecs returns the tags of TagSpecification entries for resourceType.
func (p params) tagSpecs(resourceType string) map[string]string {
	out := map[string]string{}
	for i := 1; i <= p.count("TagSpecification"); i++ {
		pre := "TagSpecification." + strconv.Itoa(i)
		if p.str(pre+".ResourceType") != resourceType {
			continue
		}
		for _, t := range p.tags(pre + ".Tag") {
			out[t.key] = t.value
		}
	}
	return out
}

// validTagSpecs rejects TagSpecification resource types the action cannot tag.
func (p params) validTagSpecs(allowed ...string) *apiError {
	for i := 1; i <= p.count("TagSpecification"); i++ {
		rt := p.str("TagSpecification." + strconv.Itoa(i) + ".ResourceType")
		ok := false
		for _, a := range allowed {
			ok = ok || rt == a
		}
		if !ok {
			return errf("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
	}
	return nil
}

// glob matches EC2 filter wildcards: * any run, ? one character.
func glob(pattern, s string) bool {
	p, t := []rune(pattern), []rune(s)
	pi, ti, star, mark := 0, 0, -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// fieldFunc returns a resource's values for a filter name; ok=false means the filter is unknown.
type fieldFunc func(name string) (vals []string, ok bool)

// matchFilters reports whether a resource passes every filter; unknown filter names fail the call.
func matchFilters(fs []filter, tags map[string]string, field fieldFunc) (bool, *apiError) {
	for _, f := range fs {
		var vals []string
		switch {
		case strings.HasPrefix(f.name, "tag:"):
			if v, ok := tags[strings.TrimPrefix(f.name, "tag:")]; ok {
				vals = []string{v}
			}
		case f.name == "tag-key":
			for k := range tags {
				vals = append(vals, k)
			}
		case f.name == "tag-value":
			for _, v := range tags {
				vals = append(vals, v)
			}
		default:
			var ok bool
			vals, ok = field(f.name)
			if !ok {
				return false, errf("InvalidParameterValue", "The filter '%s' is invalid", f.name)
			}
		}
		hit := false
		for _, want := range f.values {
			for _, v := range vals {
				if glob(want, v) {
					hit = true
				}
			}
		}
		if !hit {
			return false, nil
		}
	}
	return true, nil
}

func one(s string) []string { return []string{s} }

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// tagList renders tags sorted by key for a stable <tagSet>.
func tagList(m map[string]string) []tagXML {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]tagXML, 0, len(keys))
	for _, k := range keys {
		out = append(out, tagXML{Key: k, Value: m[k]})
	}
	return out
}

type tagXML struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// page slices items for MaxResults/NextToken. Tokens are the decimal offset, prefixed so a
// foreign token is rejected.
func page[T any](p params, items []T, minMax, maxMax int) ([]T, string, *apiError) {
	start := 0
	if tok := p.str("NextToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "emu-"))
		if err != nil || !strings.HasPrefix(tok, "emu-") || n < 0 || n > len(items) {
			return nil, "", errf("InvalidParameterValue", "Invalid NextToken %q (tokens expire when the result set changes; restart pagination)", tok)
		}
		start = n
	}
	if !p.has("MaxResults") {
		return items[start:], "", nil
	}
	max, aerr := p.integer("MaxResults", 0)
	if aerr != nil {
		return nil, "", aerr
	}
	if max < minMax || max > maxMax {
		return nil, "", errf("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Parameter must be between %d and %d.", max, minMax, maxMax)
	}
	end := start + max
	if end >= len(items) {
		return items[start:], "", nil
	}
	return items[start:end], "emu-" + strconv.Itoa(end), nil
}
