package spec

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FieldError is one invalid field: Field is its path as written in a
// template (`elastichq.port`), Problem says what is wrong and how to fix it.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Validate checks a defaulted spec (see SetDefaults) and returns every
// problem at once, joined; each is a *FieldError.
func (n *Node) Validate() error {
	v := validator{allowHTTP: n.AllowInsecureHTTP}
	es := n.Elasticsearch
	ver, err := ParseVersion(es.Version)
	switch {
	case es.Version == "":
		v.add("elasticsearch.version", "is required; set a full release such as 8.15.3")
	case err != nil:
		v.add("elasticsearch.version", err.Error())
	case !ver.Supported():
		v.addf("elasticsearch.version", "%s is not on a supported release line (%s); pick a release on one of them", es.Version, SupportedLines)
	}
	known := err == nil
	v.artifact("elasticsearch", es.URL, es.SHA512, n.MirrorURL, true)
	v.port("elasticsearch.http_port", es.HTTPPort)
	v.port("elasticsearch.transport_port", es.TransportPort)
	if es.HTTPPort != 0 && es.HTTPPort == es.TransportPort {
		v.addf("elasticsearch.transport_port", "%d is also the HTTP port; give the transport its own port (default 9300)", es.TransportPort)
	}

	j := n.Java
	if known && ver.Major >= 7 && (j.Package != "" || j.URL != "" || j.SHA512 != "") {
		v.addf("java", "Elasticsearch %s bundles its own JDK; remove the java block (it is used only for 6.x)", es.Version)
	}
	if j.Package != "" && j.URL != "" {
		v.add("java.url", "set either java.package or java.url, not both")
	}
	if j.URL != "" {
		v.artifact("java", j.URL, j.SHA512, n.MirrorURL, false)
	}
	if j.Package != "" && !debPackageName.MatchString(j.Package) {
		v.addf("java.package", "%q is not a Debian package name", j.Package)
	} else if known && ver.Major < 7 && j.Package != "" {
		v.java6(j.Package)
	}

	seen := map[string]bool{}
	for i, p := range n.Plugins {
		f := fmt.Sprintf("plugin[%d]", i)
		switch {
		case p.Name == "":
			v.add(f+".name", "is required; name the plugin, such as discovery-ec2")
			continue
		case !pluginName.MatchString(p.Name):
			v.addf(f+".name", "%q is not a plugin name (lower-case letters, digits and dashes)", p.Name)
			continue
		case seen[p.Name]:
			v.addf(f+".name", "%q is listed twice; remove one", p.Name)
		}
		seen[p.Name] = true
		if known && ver.Major >= 8 && p.Name == "repository-s3" {
			v.addf(f+".name", "repository-s3 is bundled with Elasticsearch %s; remove this plugin block", es.Version)
		}
		official := officialPlugins[p.Name]
		if !official && p.URL == "" {
			v.addf(f+".url", "%q is not an official Elastic plugin, so it has no default download; set url and sha512", p.Name)
		}
		v.artifact(f, p.URL, p.SHA512, n.MirrorURL, official)
	}

	hq := n.ElasticHQ
	if hq.Enabled {
		if !semverish.MatchString(hq.Version) {
			v.addf("elastichq.version", "%q is not a release version such as 3.5.12", hq.Version)
		}
		v.artifact("elastichq", hq.URL, hq.SHA512, n.MirrorURL, false)
		v.port("elastichq.port", hq.Port)
		for _, p := range []struct {
			port int
			what string
		}{{es.HTTPPort, "Elasticsearch's HTTP port"}, {es.TransportPort, "Elasticsearch's transport port"}, {22, "SSH"}} {
			if hq.Port == p.port {
				v.addf("elastichq.port", "%d is %s; pick a free port (default 5000)", hq.Port, p.what)
			}
		}
		if net.ParseIP(hq.BindAddress) == nil {
			v.addf("elastichq.bind_address", "%q is not an IP address; use 0.0.0.0 or the address to listen on", hq.BindAddress)
		}
		switch {
		case hq.User == "root":
			v.add("elastichq.user", "must not be root; ElasticHQ runs as a dedicated unprivileged user (default elastichq)")
		case !userName.MatchString(hq.User):
			v.addf("elastichq.user", "%q is not a valid user name (lower-case, starts with a letter)", hq.User)
		}
	}

	cw := n.CloudWatchAgent
	if cw.Enabled {
		v.artifact("cloudwatch_agent", cw.URL, cw.SHA512, n.MirrorURL, false)
		if !logGroup.MatchString(cw.LogGroup) {
			v.addf("cloudwatch_agent.log_group", "%q is not a CloudWatch Logs group name (1-512 of letters, digits, _-./#)", cw.LogGroup)
		}
	}

	fw := n.Firewall
	switch fw.Backend {
	case FirewallAuto, FirewallIPTables, FirewallNFTables:
	default:
		v.addf("firewall.backend", "%q is not one of auto, iptables, nftables", fw.Backend)
	}
	v.sources("firewall.http_sources", fw.HTTPSources)
	v.sources("firewall.transport_sources", fw.TransportSources)
	v.sources("firewall.ssh_sources", fw.SSHSources)
	if hq.Enabled {
		v.sources("firewall.hq_sources", fw.HQSources)
	} else if len(fw.HQSources) > 0 {
		v.add("firewall.hq_sources", "ElasticHQ is not enabled; remove hq_sources or set elastichq.enabled = true")
	}

	h := n.Heap
	if h.Percent < 1 || h.Percent > MaxHeapPercent {
		v.addf("heap.percent", "%d is outside 1-%d; Elasticsearch needs the rest of the memory for the file cache (default 50)", h.Percent, MaxHeapPercent)
	}
	if h.MinMB < 256 {
		v.addf("heap.min_mb", "%d MiB is too small to run Elasticsearch; use at least 256 (default 1024)", h.MinMB)
	}
	if h.MaxMB > DefaultHeapMaxMB {
		v.addf("heap.max_mb", "%d MiB is over %d MiB: near %d MiB the JVM stops using compressed object pointers (the exact limit depends on the JVM), and a larger heap then holds less; use at most %d", h.MaxMB, DefaultHeapMaxMB, CompressedOopsMB, DefaultHeapMaxMB)
	}
	if h.MinMB > h.MaxMB {
		v.addf("heap.min_mb", "%d MiB is above heap.max_mb (%d MiB); lower min_mb or raise max_mb", h.MinMB, h.MaxMB)
	}

	c := n.Cluster
	if c.Name != "" && !clusterName.MatchString(c.Name) {
		v.addf("cluster.name", "%q is not a usable cluster name (letters, digits, _ and -, at most 255)", c.Name)
	}
	switch {
	case !validTagKey(c.DiscoveryTagKey):
		v.addf("cluster.discovery_tag_key", "%q is not an EC2 tag key (1-128 characters, not starting with aws:)", c.DiscoveryTagKey)
	case !DiscoveryTagKeyPattern.MatchString(c.DiscoveryTagKey):
		v.addf("cluster.discovery_tag_key", "%q cannot be used by discovery-ec2: Elasticsearch setting keys allow only ASCII letters, digits, _ and - in discovery.ec2.tag.<key>, and refuse to start on others; use a key such as es_cluster", c.DiscoveryTagKey)
	}
	for i, r := range c.Roles {
		if !knownRoles[r] {
			v.addf(fmt.Sprintf("cluster.roles[%d]", i), "%q is not an Elasticsearch node role (master, data, data_content, data_hot, data_warm, data_cold, data_frozen, ingest, ml, remote_cluster_client, transform, voting_only)", r)
		}
	}
	if err := CheckRoles(c.Roles); err != nil {
		v.add("cluster.roles", err.Error())
	}
	if known && ver.Major < 7 && len(c.InitialMasterNodes) > 0 {
		v.add("cluster.initial_master_nodes", "applies to Elasticsearch 7 and later; 6.x uses discovery.zen.minimum_master_nodes, written from cluster.master_nodes")
	}
	if d := Duplicates(c.InitialMasterNodes); len(d) > 0 {
		v.addf("cluster.initial_master_nodes", "lists %s more than once; Elasticsearch refuses duplicate entries: list each node once", strings.Join(d, ", "))
	}
	switch {
	case c.MasterNodes < 0 || c.MasterNodes > MaxMasterNodes:
		v.addf("cluster.master_nodes", "%d is outside 1-%d; set the number of master-eligible nodes the cluster is launched with (3 is usual)", c.MasterNodes, MaxMasterNodes)
	case known && ver.Major < 7 && c.MasterNodes == 0:
		v.addf("cluster.master_nodes", "is required for Elasticsearch %s: without it discovery.zen.minimum_master_nodes stays -1 and every master-eligible node can elect itself (split brain); set the number of master-eligible nodes, such as 3 (written as minimum_master_nodes = 2)", es.Version)
	}
	if err := CheckCORSOrigin(c.CORSAllowOrigin); err != nil {
		v.add("cluster.cors_allow_origin", err.Error())
	}

	s := n.System
	if s.MaxMapCount < MinMaxMapCount {
		v.addf("system.max_map_count", "%d is below Elasticsearch's bootstrap check minimum %d", s.MaxMapCount, MinMaxMapCount)
	}
	if s.NoFile < MinNoFile {
		v.addf("system.nofile", "%d is below Elasticsearch's bootstrap check minimum %d", s.NoFile, MinNoFile)
	}
	if s.NProc < MinNProc {
		v.addf("system.nproc", "%d is below Elasticsearch's bootstrap check minimum %d", s.NProc, MinNProc)
	}

	v.lifecycle(n.Lifecycle)

	for _, fe := range CheckSecurity(n.Security, "security.") {
		v.errs = append(v.errs, fe)
	}

	if n.MirrorURL != "" {
		if err := checkURL(n.MirrorURL); err != nil {
			v.add("mirror_url", err.Error())
		}
	}
	return v.err()
}

// MatchesEverything reports whether a CORS allow-origin value is refused by
// CheckCORSOrigin (any origin, an open or uncheckable pattern).
func MatchesEverything(origin string) bool { return CheckCORSOrigin(origin) != nil }

// DiscoveryTagKeyPattern is what Elasticsearch accepts in a setting key's
// tag part (Setting.AffixKey / Settings key pattern [-\w]+, ASCII).
var DiscoveryTagKeyPattern = regexp.MustCompile(`^[-A-Za-z0-9_]+$`)

// CheckRoles refuses role lists Elasticsearch refuses at start:
// voting_only without master (VotingOnlyNodePlugin).
func CheckRoles(roles []string) error {
	has := map[string]bool{}
	for _, r := range roles {
		has[r] = true
	}
	if has["voting_only"] && !has["master"] {
		return fmt.Errorf("voting_only needs the master role too: Elasticsearch refuses to start a voting-only node that is not master-eligible; add master or remove voting_only")
	}
	if d := Duplicates(roles); len(d) > 0 {
		return fmt.Errorf("lists %s more than once; list each role once", strings.Join(d, ", "))
	}
	return nil
}

// Duplicates returns the items listed more than once, in first order.
func Duplicates(items []string) []string {
	seen := map[string]int{}
	var out []string
	for _, it := range items {
		seen[it]++
		if seen[it] == 2 {
			out = append(out, it)
		}
	}
	return out
}

// java6 checks a Java package for Elasticsearch 6.8, which runs on Java 8
// or 11: its SecurityManager use fails on Java 18 and later (JEP 411).
func (v *validator) java6(pkg string) {
	if pkg == "default-jre-headless" || pkg == "default-jre" || pkg == "default-jdk-headless" || pkg == "default-jdk" {
		v.addf("java.package", "%q is the distribution's default Java (17 on Debian 12, 21 on Debian 13 and Ubuntu 24.04), not one Elasticsearch 6.8 supports; name Java 11 or 8, such as openjdk-11-jre-headless, or a JDK .deb in java.url", pkg)
		return
	}
	m := javaMajor.FindStringSubmatch(pkg)
	if m == nil {
		return
	}
	if major, _ := strconv.Atoi(m[1]); major >= 18 {
		v.addf("java.package", "%q is Java %d; Elasticsearch 6.8 cannot run on Java 18 or later (its SecurityManager use fails); use Java 11 or 8, such as openjdk-11-jre-headless", pkg, major)
	}
}

var javaMajor = regexp.MustCompile(`^(?:openjdk-|temurin-|java-|msopenjdk-|zulu|adoptopenjdk-)(\d+)`)

type validator struct {
	errs      []error
	allowHTTP bool // the spec's allow_insecure_http
}

// InsecureChecksum reports whether a sha512 value reads its checksum file
// over plain http://.
func InsecureChecksum(sum string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(sum)), "file:http://")
}

func (v *validator) add(field, problem string) {
	v.errs = append(v.errs, &FieldError{Field: field, Problem: problem})
}

func (v *validator) addf(field, format string, args ...any) {
	v.add(field, fmt.Sprintf(format, args...))
}

func (v *validator) err() error { return errors.Join(v.errs...) }

func (v *validator) port(field string, p int) {
	if p < 1 || p > 65535 {
		v.addf(field, "%d is not a TCP port (1-65535)", p)
	}
}

// artifact checks a download: the url's form, and that a checksum exists
// where no official .sha512 file stands beside it.
func (v *validator) artifact(field, rawURL, sum, mirror string, officialSums bool) {
	if rawURL != "" {
		if err := checkURL(rawURL); err != nil {
			v.add(field+".url", err.Error())
		}
	}
	if sum != "" {
		if err := CheckChecksum(sum); err != nil {
			v.add(field+".sha512", err.Error())
		} else if InsecureChecksum(sum) && !v.allowHTTP {
			v.add(field+".sha512", "reads its checksum over plain http://, so whoever can change the traffic can swap the package and its checksum together; use file:https://, put the SHA-512 itself here, or set allow_insecure_http = true")
		}
		return
	}
	switch {
	case mirror != "":
		v.add(field+".sha512", "is required with mirror_url, which publishes no trusted checksums; set the artifact's SHA-512 (sha512sum FILE) or file:<url of a checksum file>")
	case rawURL != "":
		v.add(field+".sha512", "is required with a custom url; set the artifact's SHA-512 (sha512sum FILE) or file:<url of a checksum file>")
	case !officialSums:
		v.add(field+".sha512", "is required: no official checksum is published for it; set its SHA-512 (curl -sL URL | sha512sum) or file:<url of a checksum file>")
	}
}

func (v *validator) sources(field string, srcs []string) {
	if len(srcs) == 0 {
		v.add(field, "is empty; list CIDRs or the words subnet / vpc")
	}
	for i, s := range srcs {
		if s == SourceSubnet || s == SourceVPC {
			continue
		}
		if _, _, err := net.ParseCIDR(s); err != nil {
			v.addf(fmt.Sprintf("%s[%d]", field, i), "%q is not a CIDR such as 10.0.0.0/16, nor subnet or vpc", s)
		}
	}
}

// CheckChecksum accepts 128 hex digits or file:<url>.
func CheckChecksum(sum string) error {
	if rest, ok := strings.CutPrefix(sum, "file:"); ok {
		if err := checkURL(rest); err != nil {
			return fmt.Errorf("checksum file: %w", err)
		}
		return nil
	}
	if !sha512Hex.MatchString(sum) {
		return fmt.Errorf("%q is not a SHA-512 (128 hex digits) nor file:<url>", abbreviate(sum))
	}
	return nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
	case "file":
		if u.Path == "" {
			return fmt.Errorf("%q has no path", raw)
		}
	default:
		return fmt.Errorf("%q must be an https://, http:// or file:// URL", raw)
	}
	return nil
}

func abbreviate(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}

var (
	sha512Hex      = boundedChars(`[0-9a-fA-F]`, 128, 128)
	semverish      = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	pluginName     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	debPackageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	userName       = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	logGroup       = boundedChars(`[A-Za-z0-9_\-./#]`, 1, 512)
	clusterName    = boundedChars(`[A-Za-z0-9_-]`, 1, 255)
	tagKeyChars    = boundedChars(`[\p{L}\p{Z}\p{N}_.:/=+\-@]`, 1, 128)
)

// validTagKey follows EC2's tag key rules; the aws: prefix is reserved.
func validTagKey(k string) bool {
	return tagKeyChars.MatchString(k) && !strings.HasPrefix(strings.ToLower(k), "aws:")
}

var knownRoles = map[string]bool{
	"master": true, "data": true, "data_content": true, "data_hot": true, "data_warm": true,
	"data_cold": true, "data_frozen": true, "ingest": true, "ml": true,
	"remote_cluster_client": true, "transform": true, "voting_only": true,
}

// officialPlugins are the plugins Elastic publishes under
// artifacts.elastic.co/downloads/elasticsearch-plugins.
var officialPlugins = map[string]bool{
	"analysis-icu": true, "analysis-kuromoji": true, "analysis-nori": true, "analysis-phonetic": true,
	"analysis-smartcn": true, "analysis-stempel": true, "analysis-ukrainian": true,
	"discovery-azure-classic": true, "discovery-ec2": true, "discovery-gce": true,
	"ingest-attachment": true, "mapper-annotated-text": true, "mapper-murmur3": true, "mapper-size": true,
	"repository-azure": true, "repository-gcs": true, "repository-hdfs": true, "repository-s3": true,
	"store-smb": true,
}

// durationError names the field whose value is not a duration.
type durationError struct{ field, problem string }

func (e *durationError) Error() string { return e.field + ": " + e.problem }

// ClusterNamePattern matches a usable cluster name: letters, digits, _
// and -, at most 255.
var ClusterNamePattern = clusterName

// CharsPattern matches strings of one character class within length
// bounds (in characters).
type CharsPattern struct {
	chars    *regexp.Regexp
	min, max int
}

// boundedChars is the pattern ^class{min,max}$, its length checked apart:
// a bounded repetition compiles to max copies of the class, milliseconds
// at every start of esnode, which validates the spec at every boot.
func boundedChars(class string, min, max int) CharsPattern {
	return CharsPattern{chars: regexp.MustCompile(`^` + class + `*$`), min: min, max: max}
}

// MatchString reports whether s is min to max characters of the class.
func (p CharsPattern) MatchString(s string) bool {
	n := utf8.RuneCountInString(s)
	return n >= p.min && n <= p.max && p.chars.MatchString(s)
}
