package boot

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Userdata forms, as recorded in boot.json.
const (
	FormNone        = "none"         // empty userdata
	FormIgnored     = "ignored"      // a script, cloud-config or MIME document not meant for esnode
	FormKeyValue    = "key=value"    // key=value lines
	FormYAML        = "yaml"         // a YAML mapping
	FormCloudConfig = "cloud-config" // #cloud-config with a top-level esnode: mapping
)

// Userdata is what the instance's userdata asks of esnode. Nil or zero
// fields were not given.
type Userdata struct {
	Form                    string   `json:"form"`
	ClusterName             string   `json:"cluster_name,omitempty"`
	NodeRoles               []string `json:"node_roles,omitempty"`
	HeapPercent             int      `json:"heap_percent,omitempty"`
	HeapMB                  int      `json:"heap_mb,omitempty"`
	CORSAllowOrigin         string   `json:"cors_allow_origin,omitempty"`
	DiscoveryAccessKeyParam string   `json:"discovery_access_key_param,omitempty"`
	DiscoverySecretKeyParam string   `json:"discovery_secret_key_param,omitempty"`
	// InitialMasterNodes is non-nil only when userdata names the key.
	InitialMasterNodes []string `json:"initial_master_nodes,omitempty"`
	// Security holds the security_<field> keys: references (names or
	// ARNs), never the secrets themselves.
	Security spec.Security `json:"security,omitzero"`
}

// KnownUserdataKeys lists every key userdata may set.
var KnownUserdataKeys = []string{
	"cluster_name",
	"node_roles",
	"heap_percent",
	"heap_mb",
	"cors_allow_origin",
	"discovery_access_key_param",
	"discovery_secret_key_param",
	"initial_master_nodes",
	"security_transport_key", "security_transport_certificate", "security_transport_ca",
	"security_transport_pkcs12", "security_transport_pkcs12_password",
	"security_http_key", "security_http_certificate", "security_http_ca",
	"security_http_pkcs12", "security_http_pkcs12_password",
	"security_elastic_password",
}

const userdataHelp = "esnode reads empty userdata, key=value lines, a YAML mapping, or #cloud-config with an esnode: mapping (see `esnode boot` docs)"

var (
	kvLine       = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$`)
	topLevelKey  = regexp.MustCompile(`(?m)^esnode\s*:`)
	clusterNameR = spec.ClusterNamePattern
	ssmParamName = regexp.MustCompile(`^[A-Za-z0-9_.\-/]+$`)
)

// ParseUserdata reads userdata in any of the documented forms.
func ParseUserdata(raw []byte) (*Userdata, error) {
	data := raw
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		// cloud-init accepts gzip-compressed userdata; so do we.
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("userdata looks gzip-compressed but is not: %w", err)
		}
		data, err = io.ReadAll(io.LimitReader(zr, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("decompress userdata: %w", err)
		}
	}
	text := strings.TrimPrefix(string(data), "\ufeff")
	trimmed := strings.TrimSpace(text)
	if trimmed == "" {
		return &Userdata{Form: FormNone}, nil
	}
	first := strings.TrimSpace(strings.SplitN(trimmed, "\n", 2)[0])
	switch {
	case strings.HasPrefix(first, "#cloud-config"):
		return parseCloudConfig(text)
	case strings.HasPrefix(first, "#!"):
		if topLevelKey.MatchString(text) {
			return nil, fmt.Errorf("userdata is a shell script (#!) that also has an esnode: line; a script is not read by esnode. Move the esnode settings into #cloud-config under a top-level esnode: mapping, or use key=value userdata")
		}
		return &Userdata{Form: FormIgnored}, nil
	case strings.HasPrefix(strings.ToLower(first), "content-type:") || strings.HasPrefix(first, "#include") ||
		strings.HasPrefix(first, "#cloud-boothook") || strings.HasPrefix(first, "#part-handler") ||
		strings.HasPrefix(first, "#upstart-job") || strings.HasPrefix(first, "## template:"):
		// MIME multi-part and other cloud-init formats are for cloud-init.
		return &Userdata{Form: FormIgnored}, nil
	}
	if isKeyValue(text) {
		return parseKeyValue(text)
	}
	return parseYAMLForm(text)
}

// isKeyValue reports whether every content line is key=value.
func isKeyValue(text string) bool {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !kvLine.MatchString(line) {
			return false
		}
		n++
	}
	return n > 0
}

func parseKeyValue(text string) (*Userdata, error) {
	vals := map[string]rawValue{}
	var order []string
	sc := bufio.NewScanner(strings.NewReader(text))
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := kvLine.FindStringSubmatch(line)
		key, val := m[1], strings.TrimSpace(m[2])
		if i := strings.Index(val, " #"); i >= 0 && !isQuoted(val) {
			val = strings.TrimSpace(val[:i])
		}
		val = unquote(val)
		if _, dup := vals[key]; dup {
			return nil, fmt.Errorf("userdata line %d: %s is set twice; keep one", lineNo, key)
		}
		vals[key] = rawValue{scalar: val, line: lineNo}
		order = append(order, key)
	}
	u := &Userdata{Form: FormKeyValue}
	return u, u.apply(vals, order)
}

func isQuoted(s string) bool {
	return len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'')
}

func unquote(s string) string {
	if !isQuoted(s) {
		return s
	}
	if s[0] == '"' {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
	}
	return s[1 : len(s)-1]
}

func parseCloudConfig(text string) (*Userdata, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		if topLevelKey.MatchString(text) {
			return nil, fmt.Errorf("userdata #cloud-config has an esnode: section but is not valid YAML: %w", err)
		}
		// Not ours to judge: cloud-init reports its own config's errors.
		return &Userdata{Form: FormIgnored}, nil
	}
	root := mappingOf(&doc)
	if root == nil {
		return &Userdata{Form: FormIgnored}, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "esnode" {
			u, err := parseMapping(root.Content[i+1], "esnode: section of #cloud-config userdata")
			if err != nil {
				return nil, err
			}
			u.Form = FormCloudConfig
			return u, nil
		}
	}
	return &Userdata{Form: FormIgnored}, nil
}

func parseYAMLForm(text string) (*Userdata, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, fmt.Errorf("userdata is neither key=value lines nor valid YAML (%v); %s", err, userdataHelp)
	}
	m := mappingOf(&doc)
	if m == nil {
		return nil, fmt.Errorf("userdata is not a key=value list nor a YAML mapping; %s", userdataHelp)
	}
	// Tolerate the cloud-config shape without its header: esnode: {...}.
	if len(m.Content) == 2 && m.Content[0].Value == "esnode" {
		m = m.Content[1]
	}
	u, err := parseMapping(m, "userdata")
	if err != nil {
		return nil, err
	}
	u.Form = FormYAML
	return u, nil
}

func mappingOf(doc *yaml.Node) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	return n
}

type rawValue struct {
	scalar string
	list   []string
	isList bool
	line   int
}

func parseMapping(m *yaml.Node, where string) (*Userdata, error) {
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s (line %d) must be a mapping of key: value; %s", where, m.Line, userdataHelp)
	}
	vals := map[string]rawValue{}
	var order []string
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		rv := rawValue{line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				rv.scalar = ""
			} else {
				rv.scalar = v.Value
			}
		case yaml.SequenceNode:
			rv.isList = true
			rv.list = []string{}
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s line %d: %s must list plain values", where, it.Line, k.Value)
				}
				rv.list = append(rv.list, it.Value)
			}
		default:
			return nil, fmt.Errorf("%s line %d: %s must be a value or a list, not a mapping", where, v.Line, k.Value)
		}
		if _, dup := vals[k.Value]; dup {
			return nil, fmt.Errorf("%s line %d: %s is set twice; keep one", where, k.Line, k.Value)
		}
		vals[k.Value] = rv
		order = append(order, k.Value)
	}
	u := &Userdata{}
	return u, u.apply(vals, order)
}

// apply checks and stores the values; every problem is reported at once.
func (u *Userdata) apply(vals map[string]rawValue, order []string) error {
	known := map[string]bool{}
	for _, k := range KnownUserdataKeys {
		known[k] = true
	}
	var unknown []string
	for _, k := range order {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("userdata has unknown key(s) %s; known keys are %s", strings.Join(unknown, ", "), strings.Join(KnownUserdataKeys, ", "))
	}
	var problems []string
	bad := func(key string, rv rawValue, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("line %d: %s %s", rv.line, key, fmt.Sprintf(format, args...)))
	}
	scalar := func(key string) (string, rawValue, bool) {
		rv, ok := vals[key]
		if !ok {
			return "", rv, false
		}
		if rv.isList {
			bad(key, rv, "must be a single value, not a list")
			return "", rv, false
		}
		if strings.TrimSpace(rv.scalar) == "" {
			bad(key, rv, "is empty; give a value or remove the key")
			return "", rv, false
		}
		return strings.TrimSpace(rv.scalar), rv, true
	}
	list := func(key string) ([]string, rawValue, bool) {
		rv, ok := vals[key]
		if !ok {
			return nil, rv, false
		}
		items := rv.list
		if !rv.isList {
			s := strings.TrimSpace(rv.scalar)
			s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
			items = nil
			for _, p := range strings.Split(s, ",") {
				if p = unquote(strings.TrimSpace(p)); p != "" {
					items = append(items, p)
				}
			}
		}
		out := []string{}
		for _, it := range items {
			if it = strings.TrimSpace(it); it != "" {
				out = append(out, it)
			}
		}
		return out, rv, true
	}

	if v, rv, ok := scalar("cluster_name"); ok {
		if !clusterNameR.MatchString(v) {
			bad("cluster_name", rv, "%q is not a usable cluster name (letters, digits, _ and -, at most 255)", v)
		}
		u.ClusterName = v
	}
	if roles, rv, ok := list("node_roles"); ok {
		if len(roles) == 0 {
			bad("node_roles", rv, "is empty; list roles such as master, data, ingest, or remove the key")
		}
		for _, r := range roles {
			if !knownRoles[r] {
				bad("node_roles", rv, "%q is not an Elasticsearch node role (%s)", r, strings.Join(sortedKeys(knownRoles), ", "))
			}
		}
		if err := spec.CheckRoles(roles); err != nil {
			bad("node_roles", rv, "%v", err)
		}
		u.NodeRoles = roles
	}
	if v, rv, ok := scalar("heap_percent"); ok {
		n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
		if err != nil || n < 1 || n > spec.MaxHeapPercent {
			bad("heap_percent", rv, "%q is not a whole percentage in 1-%d", v, spec.MaxHeapPercent)
		}
		u.HeapPercent = n
	}
	if v, rv, ok := scalar("heap_mb"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 256 || n > spec.DefaultHeapMaxMB {
			bad("heap_mb", rv, "%q is not a heap size in MiB from 256 to %d (the JVM stops compressing object pointers near 32 GiB)", v, spec.DefaultHeapMaxMB)
		}
		u.HeapMB = n
	}
	if _, hasP := vals["heap_percent"]; hasP {
		if rv, hasMB := vals["heap_mb"]; hasMB {
			bad("heap_mb", rv, "and heap_percent are both set; keep one")
		}
	}
	if v, rv, ok := scalar("cors_allow_origin"); ok {
		if err := spec.CheckCORSOrigin(v); err != nil {
			bad("cors_allow_origin", rv, "%s", err)
		}
		u.CORSAllowOrigin = v
	}
	if v, rv, ok := scalar("discovery_access_key_param"); ok {
		if !ssmParamName.MatchString(v) || len(v) > 2048 {
			bad("discovery_access_key_param", rv, "%q is not an SSM parameter name", v)
		}
		u.DiscoveryAccessKeyParam = v
	}
	if v, rv, ok := scalar("discovery_secret_key_param"); ok {
		if !ssmParamName.MatchString(v) || len(v) > 2048 {
			bad("discovery_secret_key_param", rv, "%q is not an SSM parameter name", v)
		}
		u.DiscoverySecretKeyParam = v
	}
	_, hasAccess := vals["discovery_access_key_param"]
	_, hasSecret := vals["discovery_secret_key_param"]
	if hasAccess != hasSecret {
		problems = append(problems, "discovery_access_key_param and discovery_secret_key_param go together: set both (SSM parameter names) or neither (the instance profile is used)")
	}
	if nodes, rv, ok := list("initial_master_nodes"); ok {
		if len(nodes) == 0 {
			bad("initial_master_nodes", rv, "is empty; list the master-eligible node names (instance ids) or remove the key")
		}
		if d := spec.Duplicates(nodes); len(d) > 0 {
			bad("initial_master_nodes", rv, "lists %s more than once; Elasticsearch refuses duplicate entries: list each node once", strings.Join(d, ", "))
		}
		u.InitialMasterNodes = nodes
	}
	for _, f := range spec.SecurityFields {
		if v, rv, ok := scalar("security_" + f); ok {
			if _, err := spec.ParseSecretRef(v, ""); err != nil {
				bad("security_"+f, rv, "%v", err)
			}
			*u.Security.Field(f) = v
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("userdata is invalid:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// knownRoles mirrors the spec's role list (not exported there).
var knownRoles = map[string]bool{
	"master": true, "data": true, "data_content": true, "data_hot": true, "data_warm": true,
	"data_cold": true, "data_frozen": true, "ingest": true, "ml": true,
	"remote_cluster_client": true, "transform": true, "voting_only": true,
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
