package essettings

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

func table(t *testing.T, version string) *Table {
	t.Helper()
	v, err := spec.ParseVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := For(v)
	if err != nil {
		t.Fatalf("For(%s): %v", version, err)
	}
	return tb
}

// What esnode boot writes must be registered on the major it writes it for.
func TestProductKeysRegistered(t *testing.T) {
	common := []string{"cluster.name", "node.name", "network.host", "http.port", "path.data", "path.logs",
		"discovery.ec2.tag.es_cluster", "discovery.ec2.any_group", "discovery.ec2.host_type", "discovery.ec2.endpoint",
		"cloud.node.auto_attributes", "cluster.routing.allocation.awareness.attributes", "reindex.remote.whitelist",
		"http.cors.enabled", "http.cors.allow-origin", "bootstrap.memory_lock", "node.attr.aws_availability_zone",
		"xpack.security.enabled", "xpack.security.transport.ssl.enabled", "xpack.security.http.ssl.enabled"}
	for version, extra := range map[string][]string{
		"6.8.23":  {"transport.tcp.port", "discovery.zen.hosts_provider", "discovery.zen.minimum_master_nodes", "node.master", "node.data", "node.ingest", "node.ml"},
		"7.17.25": {"transport.port", "discovery.seed_providers", "cluster.initial_master_nodes", "node.roles", "node.master"},
		"8.15.3":  {"transport.port", "discovery.seed_providers", "discovery.seed_hosts", "cluster.initial_master_nodes", "node.roles", "xpack.security.enrollment.enabled", "xpack.security.transport.ssl.keystore.path"},
		"9.1.0":   {"transport.port", "discovery.seed_providers", "cluster.initial_master_nodes", "node.roles"},
	} {
		tb := table(t, version)
		for _, k := range append(extra, common...) {
			if !tb.Registered(k) || tb.CheckFile(k) != nil {
				t.Errorf("%s: %s not registered (%v)", version, k, tb.CheckFile(k))
			}
		}
	}
}

func TestVersionInappropriateKeys(t *testing.T) {
	for _, c := range []struct{ version, key, hint string }{
		{"8.15.3", "discovery.zen.minimum_master_nodes", "Zen discovery is gone"},
		{"8.15.3", "discovery.zen.hosts_provider", "discovery.seed_providers"},
		{"8.15.3", "node.master", "use node.roles"},
		{"8.15.3", "transport.tcp.port", "use transport.port"},
		{"9.1.0", "discovery.zen.ping.unicast.hosts", "Zen discovery is gone"},
		{"6.8.23", "cluster.initial_master_nodes", "minimum_master_nodes"},
		{"6.8.23", "discovery.seed_providers", "discovery.zen.hosts_provider"},
		{"6.8.23", "node.roles", "added in 7.9"},
		{"7.17.25", "http.enabled", "removed in 7.0"},
		{"7.17.25", "xpack.security.transport.ssl.keystore.password", ""},
	} {
		tb := table(t, c.version)
		err := tb.CheckFile(c.key)
		if tb.Registered(c.key) || err == nil {
			t.Errorf("%s: %s accepted", c.version, c.key)
			continue
		}
		want := "unknown setting [" + c.key + "] please check that any required plugins are installed"
		if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), c.hint) {
			t.Errorf("%s: %s: error %q, want prefix %q and %q", c.version, c.key, err, want, c.hint)
		}
	}
}

func TestUnknownAndAffixKeys(t *testing.T) {
	tb := table(t, "7.17.25")
	for _, k := range []string{"cluster.nmae", "node.attr.", "discovery.ec2.tag.", "discovery.ec2.tag.es:cluster",
		"discovery.ec2.tag.team/es", "discovery.ec2.tagx", "path.conf", "nodes.attr.zone", ""} {
		if tb.Registered(k) {
			t.Errorf("%q registered", k)
		}
	}
	for _, k := range []string{"node.attr.rack_id", "node.attr.aws_availability_zone", "discovery.ec2.tag.es-cluster",
		"discovery.ec2.tag.team.es", "logger.org.elasticsearch.discovery", "thread_pool.write.queue_size",
		"cluster.remote.other.seeds", "cluster.routing.allocation.awareness.force.zone.values",
		"xpack.security.authc.realms.native.native1.order", "path.repo"} {
		if !tb.Registered(k) {
			t.Errorf("%q not registered", k)
		}
	}
	if got := tb.Unknown([]string{"cluster.name", "cluster.nmae", "discovery.ec2.access_key"}); strings.Join(got, ",") != "cluster.nmae,discovery.ec2.access_key" {
		t.Errorf("Unknown = %v", got)
	}
}

func TestSecureSettingsBelongInKeystore(t *testing.T) {
	tb := table(t, "8.15.3")
	for _, k := range []string{"discovery.ec2.access_key", "discovery.ec2.secret_key", "xpack.security.http.ssl.keystore.secure_password",
		"autoconfiguration.password_hash", "xpack.security.transport.ssl.truststore.secure_password"} {
		if !tb.Registered(k) || !tb.IsSecure(k) {
			t.Errorf("%s: registered %v secure %v", k, tb.Registered(k), tb.IsSecure(k))
		}
		err := tb.CheckFile(k)
		if err == nil || !strings.Contains(err.Error(), "must be stored inside the Elasticsearch keystore") {
			t.Errorf("%s in elasticsearch.yml: %v", k, err)
		}
	}
	if table(t, "7.17.25").IsSecure("autoconfiguration.password_hash") {
		t.Error("7.x has no security auto-configuration")
	}
}

func TestForUnsupported(t *testing.T) {
	for _, v := range []spec.Version{{Major: 5, Minor: 6}, {Major: 7, Minor: 10}, {Major: 10}} {
		if _, err := For(v); err == nil || !strings.Contains(err.Error(), spec.SupportedLines) {
			t.Errorf("For(%s) = %v", v, err)
		}
	}
}

// JSON is what the stand-in reads: its major, line, keys and prefixes.
func TestJSON(t *testing.T) {
	tb := table(t, "9.1.0")
	b, err := tb.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Major    int
		Line     string
		Version  string
		Keys     []string
		Prefixes []Prefix
		Secure   []string
		Sources  []string
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Major != 9 || got.Line != "9.x" || got.Version != "9.1.0" || len(got.Keys) < 200 || len(got.Secure) == 0 || len(got.Sources) < 3 {
		t.Errorf("JSON: major %d line %s version %s, %d keys, %d secure, %d sources", got.Major, got.Line, got.Version, len(got.Keys), len(got.Secure), len(got.Sources))
	}
	for _, p := range got.Prefixes {
		if !strings.HasSuffix(p.Prefix, ".") || p.Source == "" {
			t.Errorf("prefix %+v: must end in a dot and cite a source", p)
		}
	}
}

// Every data file parses, cites sources and lists each key once.
func TestDataFiles(t *testing.T) {
	ents, err := data.ReadDir("data")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, _ := data.ReadFile("data/" + e.Name())
		tb, err := parse(b)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if len(tb.Sources) < 3 || tb.Major == 0 {
			t.Errorf("%s: major %d, %d sources", e.Name(), tb.Major, len(tb.Sources))
		}
		if len(tb.keys) != len(tb.Keys) {
			t.Errorf("%s: duplicate keys", e.Name())
		}
		for _, k := range tb.Keys {
			if tb.secure[k] {
				t.Errorf("%s: %s is both a file key and secure", e.Name(), k)
			}
		}
	}
}
