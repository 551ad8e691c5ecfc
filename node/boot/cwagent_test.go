package boot

import (
	"strings"
	"testing"
)

// TestCWAgentLogNamesPerMajor: 8.x writes its deprecation and slow logs as
// .json only, so collecting the .log names would ship nothing.
func TestCWAgentLogNamesPerMajor(t *testing.T) {
	for major, want := range map[int][]string{
		7: {"/var/log/elasticsearch/logs-prod_deprecation.log", "/var/log/elasticsearch/logs-prod_index_search_slowlog.log", "/var/log/elasticsearch/logs-prod_index_indexing_slowlog.log"},
		8: {"/var/log/elasticsearch/logs-prod_deprecation.json", "/var/log/elasticsearch/logs-prod_index_search_slowlog.json", "/var/log/elasticsearch/logs-prod_index_indexing_slowlog.json"},
	} {
		b, err := RenderCWAgentConfig("logs-prod", "i-01", "elasticsearch", major)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), `"file_path": "`+w+`"`) {
				t.Errorf("%d.x config lacks %s:\n%s", major, w, b)
			}
		}
		if !strings.Contains(string(b), `"file_path": "/var/log/elasticsearch/logs-prod.log"`) {
			t.Errorf("%d.x: main log missing", major)
		}
	}
}
