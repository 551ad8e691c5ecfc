package boot

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// Markers of the managed block in elasticsearch.yml and of lines boot turned
// into comments because the block now owns their key.
const (
	BeginMarker    = "# BEGIN esnode boot (managed; edits are replaced at boot)"
	EndMarker      = "# END esnode boot"
	DisabledPrefix = "# esnode-boot-disabled: "
	beginPrefix    = "# BEGIN esnode boot"
	endPrefix      = "# END esnode boot"
)

// ownedKeys are the settings the managed block owns, whether or not this
// boot writes them: an active line with one of them outside the block is
// commented out (flat form) or refused (nested form), because ES refuses
// duplicate keys and an old value must not linger (such as CORS '*').
var ownedKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range []string{
		"cluster.name", "node.name", "network.host",
		"http.port", "transport.port", "transport.tcp.port",
		"discovery.seed_providers", "discovery.zen.hosts_provider",
		"discovery.ec2.any_group", "discovery.ec2.host_type", "discovery.ec2.endpoint",
		"cloud.node.auto_attributes", "cluster.routing.allocation.awareness.attributes",
		"reindex.remote.whitelist",
		"http.cors.enabled", "http.cors.allow-origin",
		"bootstrap.memory_lock",
		"cluster.initial_master_nodes", "discovery.zen.minimum_master_nodes",
		"http.host", "transport.host",
		"node.attr.aws_availability_zone",
		"node.roles", "node.master", "node.data", "node.ingest", "node.ml",
	} {
		m[k] = true
	}
	return m
}()

// ownedPrefixes are setting families owned as a whole: a second tag filter
// would silently narrow discovery.
var ownedPrefixes = []string{"discovery.ec2.tag."}

func isOwned(key string) bool {
	if ownedKeys[key] {
		return true
	}
	for _, p := range ownedPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// ownedWith is isOwned plus, when this boot writes TLS settings, the
// xpack.security.* families it writes (security.go): a node without a
// security section keeps whatever TLS settings it has.
func ownedWith(settings []setting) func(string) bool {
	fams := map[string]bool{}
	for _, st := range settings {
		for _, f := range []string{"xpack.security.transport.ssl", "xpack.security.http.ssl"} {
			if strings.HasPrefix(st.key, f+".") {
				fams[f] = true
			}
		}
		if st.key == "xpack.security.enabled" {
			fams[st.key] = true
		}
	}
	return func(k string) bool {
		if isOwned(k) {
			return true
		}
		for f := range fams {
			if k == f || strings.HasPrefix(k, f+".") {
				return true
			}
		}
		return false
	}
}

// setting is one line of the managed block; value is already YAML.
type setting struct{ key, value string }

// ymlConfig is everything the managed block depends on.
type ymlConfig struct {
	Version            spec.Version
	ClusterName        string
	TagKey             string
	InstanceID         string
	LocalIPv4          string
	Region             string
	SubnetCIDR         string
	VPCCIDRs           []string
	AvailabilityZone   string
	EC2Endpoint        string
	MinimumMasterNodes int
	HTTPPort           int
	TransportPort      int
	Roles              []string
	CORSAllowOrigin    string
	MemoryLock         bool
	InitialMasterNodes []string
}

func (c ymlConfig) settings() ([]setting, error) {
	v := c.Version
	s := []setting{
		{"cluster.name", yamlString(c.ClusterName)},
		{"node.name", yamlString(c.InstanceID)},
		{"network.host", yamlString(c.LocalIPv4)},
		{"http.port", strconv.Itoa(c.HTTPPort)},
	}
	if v.Major >= 7 {
		s = append(s, setting{"transport.port", strconv.Itoa(c.TransportPort)})
	} else {
		s = append(s, setting{"transport.tcp.port", strconv.Itoa(c.TransportPort)})
	}
	if len(c.Roles) > 0 {
		if v.Major > 7 || v.Major == 7 && v.Minor >= 9 {
			s = append(s, setting{"node.roles", yamlList(c.Roles)})
		} else {
			has := map[string]bool{}
			for _, r := range c.Roles {
				switch r {
				case "master", "data", "ingest":
					has[r] = true
				default:
					return nil, fmt.Errorf("node role %q cannot be set on Elasticsearch %s, which knows only the master, data and ingest booleans; remove it", r, v)
				}
			}
			for _, r := range []string{"master", "data", "ingest"} {
				s = append(s, setting{"node." + r, strconv.FormatBool(has[r])})
			}
		}
	}
	if v.Major >= 7 {
		s = append(s, setting{"discovery.seed_providers", "ec2"})
	} else {
		s = append(s, setting{"discovery.zen.hosts_provider", "ec2"})
	}
	s = append(s,
		setting{yamlKey("discovery.ec2.tag." + c.TagKey), yamlString(c.ClusterName)},
		setting{"discovery.ec2.any_group", "true"},
		setting{"discovery.ec2.host_type", "private_ip"},
		setting{"discovery.ec2.endpoint", yamlString(c.ec2EndpointURL())},
		// Written from IMDSv2, not cloud.node.auto_attributes: discovery-ec2
		// before 8.2 reads the zone with IMDSv1 (elastic/elasticsearch#84410),
		// which IMDSv2-only instances refuse, and awareness then leaves every
		// shard unassigned.
		setting{"node.attr.aws_availability_zone", yamlString(c.AvailabilityZone)},
		setting{"cluster.routing.allocation.awareness.attributes", "aws_availability_zone"},
	)
	if c.MinimumMasterNodes > 0 {
		if v.Major >= 7 {
			return nil, fmt.Errorf("discovery.zen.minimum_master_nodes applies to Elasticsearch 6.x only, not %s", v)
		}
		s = append(s, setting{"discovery.zen.minimum_master_nodes", strconv.Itoa(c.MinimumMasterNodes)})
	}
	if !regionName.MatchString(c.Region) {
		return nil, fmt.Errorf("region %q is not an AWS region name (such as eu-west-2)", c.Region)
	}
	// Reindex sources span the VPC: an EC2 subnet is one availability zone.
	cidrs := c.VPCCIDRs
	if len(cidrs) == 0 {
		cidrs = []string{c.SubnetCIDR}
	}
	var wl []string
	for _, cidr := range cidrs {
		w, err := ReindexWhitelist(cidr, c.HTTPPort)
		if err != nil {
			return nil, err
		}
		wl = append(wl, w...)
	}
	if len(wl) == 1 {
		s = append(s, setting{"reindex.remote.whitelist", yamlString(wl[0])})
	} else {
		s = append(s, setting{"reindex.remote.whitelist", yamlList(wl)})
	}
	if c.CORSAllowOrigin != "" {
		if err := spec.CheckCORSOrigin(c.CORSAllowOrigin); err != nil {
			return nil, fmt.Errorf("CORS origin: %w", err)
		}
		s = append(s, setting{"http.cors.enabled", "true"}, setting{"http.cors.allow-origin", yamlString(c.CORSAllowOrigin)})
	}
	if c.MemoryLock {
		s = append(s, setting{"bootstrap.memory_lock", "true"})
	}
	if len(c.InitialMasterNodes) > 0 {
		if v.Major < 7 {
			return nil, fmt.Errorf("initial_master_nodes applies to Elasticsearch 7 and later, not %s; remove it from userdata", v)
		}
		s = append(s, setting{"cluster.initial_master_nodes", yamlList(c.InitialMasterNodes)})
	}
	return s, nil
}

// ec2EndpointURL is the EC2 API discovery calls: an override (a VPC
// endpoint, or a test emulator), else the regional https:// URL.
// discovery-ec2 on the AWS SDK v2 (8.19 and later) needs a URL, and the
// older plugin accepts one.
func (c ymlConfig) ec2EndpointURL() string {
	if c.EC2Endpoint != "" {
		return c.EC2Endpoint
	}
	return "https://" + ec2Endpoint(c.Region)
}

// ec2Endpoint is the regional EC2 API host; China regions use .com.cn.
func ec2Endpoint(region string) string {
	if strings.HasPrefix(region, "cn-") {
		return "ec2." + region + ".amazonaws.com.cn"
	}
	return "ec2." + region + ".amazonaws.com"
}

// ReindexWhitelist returns host:port patterns matching exactly the addresses
// of an IPv4 CIDR. Elasticsearch's patterns only know `*`, so a prefix on an
// octet boundary is one pattern (10.0.1.0/24 -> 10.0.1.*:9200); any other
// prefix is listed as the patterns of the next octet boundary it spans
// (10.0.16.0/20 -> 10.0.16.* ... 10.0.31.*, 16 patterns; 10.0.1.0/28 -> 16
// single hosts). That is never more than 128 patterns and never wider than
// the subnet.
func ReindexWhitelist(cidr string, port int) ([]string, error) {
	_, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("subnet CIDR %q: %w", cidr, err)
	}
	ip4 := ipnet.IP.To4()
	if ip4 == nil {
		return nil, fmt.Errorf("subnet CIDR %q is not IPv4", cidr)
	}
	ones, _ := ipnet.Mask.Size()
	if ones == 0 {
		return []string{fmt.Sprintf("*:%d", port)}, nil
	}
	octets := (ones + 7) / 8 // octets fixed by each pattern
	count := 1 << (octets*8 - ones)
	base := new(big.Int).SetBytes(ip4).Uint64()
	step := uint64(1) << (32 - octets*8)
	out := make([]string, 0, count)
	for i := 0; i < count; i++ {
		a := base + uint64(i)*step
		b := []string{}
		for k := 0; k < octets; k++ {
			b = append(b, strconv.FormatUint((a>>(24-8*k))&0xff, 10))
		}
		host := strings.Join(b, ".")
		if octets < 4 {
			host += ".*"
		}
		out = append(out, fmt.Sprintf("%s:%d", host, port))
	}
	return out, nil
}

func yamlString(s string) string {
	b, _ := json.Marshal(s) // JSON strings are YAML double-quoted strings
	return string(b)
}

func yamlList(items []string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = yamlString(it)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)

func yamlKey(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return yamlString(k)
}

func renderBlock(settings []setting) []string {
	lines := []string{BeginMarker}
	for _, s := range settings {
		lines = append(lines, s.key+": "+s.value)
	}
	return append(lines, EndMarker)
}

// renderElasticsearchYML puts the managed block into an elasticsearch.yml:
// in place of the previous block, else appended. Active lines outside the
// block that set an owned key flat (`a.b.c: v` at column 0, with any
// continuation lines) are commented out with DisabledPrefix; an owned key
// set in nested form is an error, since commenting it out could leave an
// empty parent. Every other byte is kept.
func renderElasticsearchYML(old []byte, settings []setting) ([]byte, error) {
	text := string(old)
	lines := splitLines(text)
	begin, end := -1, -1
	for i, l := range lines {
		t := strings.TrimRight(l, "\r\n")
		switch {
		case strings.HasPrefix(t, beginPrefix):
			if begin >= 0 {
				return nil, fmt.Errorf("elasticsearch.yml has two %q lines (lines %d and %d); delete one managed block, boot rewrites it", beginPrefix, begin+1, i+1)
			}
			begin = i
		case strings.HasPrefix(t, endPrefix):
			if begin < 0 || end >= 0 {
				return nil, fmt.Errorf("elasticsearch.yml line %d: %q without a matching %q; delete the stray marker", i+1, endPrefix, beginPrefix)
			}
			end = i
		}
	}
	if begin >= 0 && end < 0 {
		return nil, fmt.Errorf("elasticsearch.yml line %d opens the esnode managed block but it is never closed with %q; delete the broken block, boot rewrites it", begin+1, EndMarker)
	}
	var before, after []string
	if begin >= 0 {
		before, after = lines[:begin], lines[end+1:]
	} else {
		before = lines
	}
	var err error
	owned := ownedWith(settings)
	if before, err = disableOwned(before, 0, owned); err != nil {
		return nil, err
	}
	offset := len(before)
	if begin >= 0 {
		offset = end + 1
	}
	if after, err = disableOwned(after, offset, owned); err != nil {
		return nil, err
	}
	nl := "\n"
	if strings.Contains(text, "\r\n") {
		nl = "\r\n"
	}
	var b strings.Builder
	for _, l := range before {
		b.WriteString(l)
	}
	if begin < 0 && b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
		b.WriteString(nl)
	}
	for _, l := range renderBlock(settings) {
		b.WriteString(l + nl)
	}
	for _, l := range after {
		b.WriteString(l)
	}
	out := []byte(b.String())
	if err := checkManagedInEffect(out, settings); err != nil {
		return nil, err
	}
	return out, nil
}

// checkManagedInEffect parses a rendered elasticsearch.yml as Elasticsearch
// reads it (one YAML document whose nested keys flatten to dotted ones; a
// key set twice, nested or flat, is an error) and requires every managed
// setting to hold the block's value. A file that fails is never written:
// boot stops and the last good file stays (such as a flow list of an owned
// key whose continuation lines the renderer could not tell apart, or an
// earlier document end that makes YAML ignore the block).
func checkManagedInEffect(rendered []byte, settings []setting) error {
	// A key set twice at the top level is an error for Elasticsearch too;
	// finding it here is linear, where the YAML parser's duplicate check
	// takes seconds on a few thousand lines.
	seen := map[string]int{}
	for i, l := range splitLines(string(rendered)) {
		if m := ymlKeyLine.FindStringSubmatch(strings.TrimRight(l, "\r\n")); m != nil && m[1] == "" {
			key := strings.Trim(m[2], `"'`)
			if first, dup := seen[key]; dup {
				return fmt.Errorf("elasticsearch.yml would set %s twice (lines %d and %d) after boot's edit; delete one (boot leaves the file as it was)", key, first, i+1)
			}
			seen[key] = i + 1
		}
	}
	got, err := flattenYML(rendered)
	if err != nil {
		msg := err.Error()
		if lines := strings.SplitN(msg, "\n", 4); len(lines) > 3 {
			msg = strings.Join(lines[:3], "\n") + "\n  ..." // yaml lists every duplicate pair
		}
		return fmt.Errorf("elasticsearch.yml would not parse after boot's edit (%s); fix the file (boot leaves it as it was)", msg)
	}
	want, err := flattenYML([]byte(strings.Join(renderBlock(settings), "\n") + "\n"))
	if err != nil {
		return fmt.Errorf("esnode's managed block does not parse: %w", err)
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			return fmt.Errorf("elasticsearch.yml would not hold esnode's %s after boot's edit (another part of the file hides the managed block, such as a document end or an indented mapping); fix the file (boot leaves it as it was)", k)
		}
		if !reflect.DeepEqual(g, v) {
			return fmt.Errorf("elasticsearch.yml would read %s as %v, not esnode's %v, after boot's edit; fix the file (boot leaves it as it was)", k, g, v)
		}
	}
	return nil
}

// flattenYML parses an elasticsearch.yml into dotted keys.
func flattenYML(b []byte) (map[string]any, error) {
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	out := map[string]any{}
	if doc == nil {
		return out, nil
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the document is a %T, not a mapping of settings", doc)
	}
	var walk func(prefix string, v any) error
	walk = func(prefix string, v any) error {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, x := range m {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				if err := walk(p, x); err != nil {
					return err
				}
			}
			return nil
		}
		if _, dup := out[prefix]; dup {
			return fmt.Errorf("%s is set twice (nested and flat)", prefix)
		}
		out[prefix] = v
		return nil
	}
	return out, walk("", top)
}

// splitLines splits after each newline, keeping it.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

var ymlKeyLine = regexp.MustCompile(`^( *)("[^"]*"|'[^']*'|[^\s#'"\-\[\{!&*?|>%@` + "`" + `][^#]*?|-[^\s#][^#]*?)\s*:(?:\s+(.*))?$`)

// disableOwned comments out flat owned keys in lines; first is the index
// of lines[0] in the file, for messages.
func disableOwned(lines []string, first int, isOwned func(string) bool) ([]string, error) {
	out := append([]string(nil), lines...)
	type frame struct {
		indent int
		path   string
	}
	var stack []frame
	skipIndent := -1 // inside a block scalar deeper than this indent
	for i := 0; i < len(out); i++ {
		raw := strings.TrimRight(out[i], "\r\n")
		trim := strings.TrimSpace(raw)
		indent := len(raw) - len(strings.TrimLeft(raw, " "))
		if skipIndent >= 0 {
			if trim == "" || indent > skipIndent {
				continue
			}
			skipIndent = -1
		}
		if trim == "" || strings.HasPrefix(trim, "#") || strings.HasPrefix(trim, "- ") || trim == "-" || trim == "---" {
			continue
		}
		m := ymlKeyLine.FindStringSubmatch(raw)
		if m == nil {
			continue
		}
		key := strings.Trim(m[2], `"'`)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		full := key
		if len(stack) > 0 {
			full = stack[len(stack)-1].path + "." + key
		}
		stack = append(stack, frame{indent, full})
		if v := strings.TrimSpace(m[3]); strings.HasPrefix(v, "|") || strings.HasPrefix(v, ">") {
			skipIndent = indent
		}
		if !isOwned(full) {
			continue
		}
		if indent > 0 || len(stack) > 1 {
			return nil, fmt.Errorf("elasticsearch.yml line %d sets %s in nested form; esnode boot owns that setting (see its managed block): delete the line, or write it flat so boot can disable it", first+i+1, full)
		}
		out[i] = DisabledPrefix + out[i]
		// A flow collection ([...] or {...}) open at the end of the line
		// goes on, at any indent, until it closes.
		depth := flowDepth(m[3])
		// Continuation lines of the value: indented, `- item` lines, or
		// the rest of an open flow collection.
		for j := i + 1; j < len(out); j++ {
			r := strings.TrimRight(out[j], "\r\n")
			t := strings.TrimSpace(r)
			if depth <= 0 && (t == "" || !(strings.HasPrefix(r, " ") || strings.HasPrefix(r, "\t") || strings.HasPrefix(r, "-"))) {
				break
			}
			depth += flowDepth(r)
			out[j] = DisabledPrefix + out[j]
			i = j
		}
	}
	return out, nil
}

// flowDepth is how many flow collections a line opens minus how many it
// closes, outside quotes and comments.
func flowDepth(line string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case (c == '"' || c == '\'') && (i == 0 || strings.IndexByte(" \t[{,:", line[i-1]) >= 0):
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return depth
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		}
	}
	return depth
}
