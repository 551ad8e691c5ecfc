package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/audit/internal/ghsarif"
)

// TestSARIFGitHubIngestion checks the log against GitHub code scanning's
// documented upload rules (audit/internal/ghsarif), not only the schema:
// every result located in the repository, encoded URIs, fingerprints.
func TestSARIFGitHubIngestion(t *testing.T) {
	got := render(t, "sarif", sample())
	if errs := ghsarif.Check(got); len(errs) > 0 {
		t.Fatalf("GitHub would reject the log:\n%s", strings.Join(errs, "\n"))
	}
	var log struct {
		Runs []struct {
			AutomationDetails struct{ ID string } `json:"automationDetails"`
			Tool              struct {
				Driver struct {
					InformationURI string `json:"informationUri"`
				} `json:"driver"`
			} `json:"tool"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(got, &log); err != nil {
		t.Fatal(err)
	}
	if id := log.Runs[0].AutomationDetails.ID; id != "aardvark-cluster/20261125T030000Z" {
		t.Errorf("automationDetails.id = %q, want <category>/<run>", id)
	}
	if u := log.Runs[0].Tool.Driver.InformationURI; u != ProjectURL {
		t.Errorf("informationUri = %q", u)
	}
}

// TestGitHubCheckerCatchesErrors proves each ingestion rule is live: the
// defects the issue found (no physical location, absolute file:// URIs,
// URIs joining two files, unencoded characters, no fingerprints) fail.
func TestGitHubCheckerCatchesErrors(t *testing.T) {
	good := render(t, "sarif", sample())
	uri := `"uri": "nodes/es-data-1%20%28i-0123456789abcdef0%29/etc/elasticsearch/jvm.options"`
	if errs := ghsarif.Check(removeFingerprints(t, good)); len(errs) == 0 {
		t.Error("no fingerprints: the GitHub checker accepted the log")
	}
	for name, edit := range map[string][2]string{
		"absolute file URI": {uri, `"uri": "file:///etc/elasticsearch/jvm.options"`},
		"joined files":      {uri, `"uri": "nodes/n/etc/a, nodes/n/etc/b"`},
		"not encoded":       {uri, `"uri": "nodes/es-data-1 (i-0123)/jvm.options"`},
		"climbs out":        {uri, `"uri": "nodes/../../etc/passwd"`},
		"no region":         {`"startLine": 4`, `"startLine": 0`},
		"unknown rule":      {`"ruleId": "ESA-HEAP-001"`, `"ruleId": "ESA-NOPE-001"`},
		"no location":       {`"physicalLocation": {`, `"physicalLocationX": {`},
		"severity range":    {`"security-severity": "9.5"`, `"security-severity": "11"`},
	} {
		bad := bytes.Replace(good, []byte(edit[0]), []byte(edit[1]), 1)
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: edit did not apply", name)
		}
		if errs := ghsarif.Check(bad); len(errs) == 0 {
			t.Errorf("%s: the GitHub checker accepted a broken log", name)
		}
	}
}

func removeFingerprints(t *testing.T, b []byte) []byte {
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, r := range v["runs"].([]any) {
		for _, res := range r.(map[string]any)["results"].([]any) {
			delete(res.(map[string]any), "partialFingerprints")
		}
	}
	out, _ := json.Marshal(v)
	return out
}

// TestSARIFFingerprintsStable: a restart changes the pid and sizes in the
// message, not the finding; the fingerprint must not move. A second
// listener under the same rule is a different finding.
func TestSARIFFingerprintsStable(t *testing.T) {
	mk := func(pid, size string, port int) Finding {
		return Finding{RuleID: "ES-HEAP-004", Severity: "low", Status: StatusViolation,
			Message: "running heap " + size + " differs (pid " + pid + ")",
			Details: map[string]any{"resource": "process:" + pid, "port": port}}
	}
	a, b := mk("1234", "4 GiB", 9200), mk("98765", "8 GiB", 9200)
	Identify("n1", &a)
	Identify("n1", &b)
	if a.ID != b.ID || a.Resource != "process:elasticsearch" {
		t.Errorf("restart moved the identity: %s (%s) vs %s (%s)", a.ID, a.Resource, b.ID, b.Resource)
	}
	l1 := Finding{RuleID: "ES-NET-001", Details: map[string]any{"resource": "tcp/8080"}}
	l2 := Finding{RuleID: "ES-NET-001", Details: map[string]any{"resource": "tcp/8081"}}
	Identify("n1", &l1)
	Identify("n1", &l2)
	if l1.ID == l2.ID {
		t.Error("two listeners under one rule share an identity")
	}
	other := l1
	Identify("n2", &other)
	other.ID = ""
	Identify("n2", &other)
	if other.ID == l1.ID {
		t.Error("the same finding on two nodes shares an identity")
	}
}

// TestArtifactURIs: the repository-style locations per resource kind, all
// percent-encoded.
func TestArtifactURIs(t *testing.T) {
	n := Node{Name: "es data/1?#", ConfigDir: "/etc/elasticsearch"}
	for res, want := range map[string]string{
		"elasticsearch.yml:network.host":    "nodes/es%20data%2F1%3F%23/etc/elasticsearch/elasticsearch.yml",
		"keystore:discovery.ec2.access_key": "nodes/es%20data%2F1%3F%23/etc/elasticsearch/elasticsearch.keystore",
		"sysctl:vm.max_map_count":           "nodes/es%20data%2F1%3F%23/proc/sys/vm/max_map_count",
		"tcp/9200":                          "nodes/es%20data%2F1%3F%23/ports/tcp/9200",
		"service:elastichq":                 "nodes/es%20data%2F1%3F%23/services/elastichq",
		"sg-0abc:tcp/9200":                  "nodes/es%20data%2F1%3F%23/security-groups/sg-0abc/tcp/9200",
		"/var/lib/my dir/x":                 "nodes/es%20data%2F1%3F%23/var/lib/my%20dir/x",
		"":                                  "nodes/es%20data%2F1%3F%23/facts.json",
	} {
		got, _ := ArtifactURI(n, Finding{Resource: res})
		if got != want {
			t.Errorf("%q: %s, want %s", res, got, want)
		}
	}
	got, line := ArtifactURI(n, Finding{Details: map[string]any{"resource": "/etc/elasticsearch/jvm.options:3, /etc/elasticsearch/jvm.options.d/heap.options:1"}})
	if got != "nodes/es%20data%2F1%3F%23/etc/elasticsearch/jvm.options" || line != 3 {
		t.Errorf("file list: %s line %d", got, line)
	}
}
