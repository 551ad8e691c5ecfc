package report

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestStreamedReportsEdges: the streamed SARIF and JUnit writers (results
// and suites written one at a time) stay valid with nothing to stream:
// no nodes, and nodes without findings.
func TestStreamedReportsEdges(t *testing.T) {
	noFindings := sample()
	for i := range noFindings.Nodes {
		noFindings.Nodes[i].Findings = nil
	}
	for name, r := range map[string]*Result{"empty": {}, "no findings": noFindings} {
		got := render(t, "sarif", r)
		validateSARIF(t, got)
		var log struct {
			Runs []struct {
				Results    []any          `json:"results"`
				Properties map[string]any `json:"properties"`
			} `json:"runs"`
		}
		if err := json.Unmarshal(got, &log); err != nil {
			t.Fatalf("%s: SARIF: %v\n%s", name, err, got)
		}
		if len(log.Runs) != 1 || log.Runs[0].Results == nil || len(log.Runs[0].Results) != 0 || !bytes.Contains(got, []byte(`"results": [],`)) {
			t.Errorf("%s: SARIF results are not an empty array:\n%s", name, got)
		}
		junit := render(t, "junit", r)
		var doc struct {
			Suites []struct{} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(junit, &doc); err != nil || len(doc.Suites) != len(r.Nodes) {
			t.Errorf("%s: JUnit: %v, %d suites for %d nodes\n%s", name, err, len(doc.Suites), len(r.Nodes), junit)
		}
	}
}

// TestHTMLNotEvaluatedStreamed: the HTML report's per-rule "not
// evaluated" lists, made node by node as the page is written, name every
// node the rule could not be checked on, except nodes where it found
// something anyway.
func TestHTMLNotEvaluatedStreamed(t *testing.T) {
	r := sample()
	rule := r.Rules[0].ID
	found := map[string]bool{}
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			if f.RuleID == rule {
				found[n.Name] = true
			}
		}
	}
	var want []string
	for i := range r.Nodes {
		n := &r.Nodes[i]
		n.NotEvaluated = append(n.NotEvaluated, NotEvaluated{RuleID: rule, Missing: []string{"probes"}, Reason: "no probe of " + n.Name})
		if !found[n.Name] {
			want = append(want, n.Name+": no probe of "+n.Name)
		}
	}
	if len(want) == 0 || len(want) == len(r.Nodes) {
		t.Fatalf("sample: rule %s found on %d of %d nodes: the test needs some of each", rule, len(found), len(r.Nodes))
	}
	page := string(render(t, "html", r))
	if !strings.Contains(page, fmt.Sprintf("not evaluated on %d", len(want))) || !strings.Contains(page, "Not evaluated: "+strings.Join(want, "; ")+"</p>") {
		t.Errorf("HTML report does not list %q as not evaluated on %s", want, rule)
	}
}

func TestSARIFGolden(t *testing.T) {
	got := render(t, "sarif", sample())
	golden(t, "sarif", got)
	validateSARIF(t, got)

	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID         string `json:"id"`
						Help       struct{ Text, Markdown string }
						Properties map[string]any `json:"properties"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				Level     string `json:"level"`
				Locations []struct {
					PhysicalLocation *struct {
						ArtifactLocation struct{ URI string }     `json:"artifactLocation"`
						Region           *struct{ StartLine int } `json:"region"`
					} `json:"physicalLocation"`
					LogicalLocations []struct{ Name, Kind string } `json:"logicalLocations"`
				} `json:"locations"`
				Suppressions []struct{ Kind, Status string } `json:"suppressions"`
			} `json:"results"`
			Invocations []struct {
				ExecutionSuccessful bool `json:"executionSuccessful"`
				Notifications       []struct {
					Level string `json:"level"`
				} `json:"toolExecutionNotifications"`
			} `json:"invocations"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(got, &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	sev := map[string]string{}
	for _, r := range run.Tool.Driver.Rules {
		s, _ := r.Properties["security-severity"].(string)
		sev[r.ID] = s
		if r.Help.Text == "" || !strings.Contains(r.Help.Markdown, "**Remediation:**") {
			t.Errorf("rule %s lacks help text/markdown", r.ID)
		}
		if tags, _ := r.Properties["tags"].([]any); len(tags) == 0 {
			t.Errorf("rule %s has no tags", r.ID)
		}
	}
	if sev["ESA-NET-001"] != "9.5" || sev["ESA-HEAP-001"] != "8.0" || sev["ESA-CORS-001"] != "5.5" || sev["ESA-SYS-001"] != "3.0" {
		t.Errorf("security-severity = %v", sev)
	}
	if len(run.Results) != 3 {
		t.Fatalf("want 3 results (waived included, suppressed), got %d", len(run.Results))
	}
	heap := run.Results[0]
	if heap.RuleID != "ESA-HEAP-001" || heap.Level != "error" {
		t.Errorf("first result = %+v", heap)
	}
	pl := heap.Locations[0].PhysicalLocation
	if pl == nil || pl.ArtifactLocation.URI != "nodes/es-data-1%20%28i-0123456789abcdef0%29/etc/elasticsearch/jvm.options" || pl.Region == nil || pl.Region.StartLine != 4 {
		t.Errorf("heap finding must point at jvm.options line 4: %+v", pl)
	}
	if ll := heap.Locations[0].LogicalLocations; len(ll) != 1 || ll[0].Name != "es-data-1 (i-0123456789abcdef0)" {
		t.Errorf("logical location = %+v", ll)
	}
	if s := run.Results[1].Suppressions; len(s) != 1 || s[0].Status != "accepted" {
		t.Errorf("waived finding must carry an accepted suppression: %+v", s)
	}
	if pl := run.Results[2].Locations[0].PhysicalLocation; pl == nil || pl.ArtifactLocation.URI != "nodes/es-data-1%20%28i-0123456789abcdef0%29/facts.json" || pl.Region == nil || pl.Region.StartLine != 1 {
		t.Errorf("a finding without a file points at the node's facts document, line 1: %+v", pl)
	}
	inv := run.Invocations[0]
	if inv.ExecutionSuccessful || len(inv.Notifications) != 1 || inv.Notifications[0].Level != "error" {
		t.Errorf("node error must be an error notification: %+v", inv)
	}
}

func TestHTMLGolden(t *testing.T) {
	got := render(t, "html", sample())
	golden(t, "html", got)
	for _, bad := range []string{"<script src", "src=\"http", "<link", "@import", "url(", "<iframe"} {
		s := string(got)
		// The SVG namespace is an identifier, not a fetched asset.
		s = strings.ReplaceAll(s, `xmlns="http://www.w3.org/2000/svg"`, "")
		if strings.Contains(s, bad) {
			t.Errorf("HTML report must be self-contained, found %q", bad)
		}
	}
	if c := strings.Count(string(got), `class="node-row"`); c != 3 {
		t.Errorf("matrix has %d node rows, want 3", c)
	}
	if c := strings.Count(string(got), "<script>"); c != 1 {
		t.Errorf("%d inline scripts, want 1", c)
	}
	for _, want := range []string{
		`<td class="c sev-high" title="ESA-HEAP-001: 1 violation(s), high"><a href="#f-0-0">✗</a></td>`, // cells link to findings
		`<dl class="details"><dt>file</dt><dd>/etc/elasticsearch/jvm.options:4</dd>`,                    // details as a definition list
		`<section class="rule" id="rule-esa-heap-001"`,                                                  // grouped by rule
		`<code>`, // remediation markdown
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("HTML lacks %s", want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	got := string(Markdown("Set `network.host` to **one** address.\n\n- see [docs](https://example.com/x)\n- <script>alert(1)</script>"))
	want := `<p>Set <code>network.host</code> to <b>one</b> address.</p><ul><li>see <a href="https://example.com/x">docs</a></li><li>&lt;script&gt;alert(1)&lt;/script&gt;</li></ul>`
	if got != want {
		t.Errorf("Markdown:\n got %s\nwant %s", got, want)
	}
}

// TestHTMLInChromium renders the report in headless Chromium: a screenshot
// is taken and the DOM has the matrix rows, the chart bars and the details.
func TestHTMLInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed: apt-get install -y chromium (listed in .ci/run)")
		}
		t.Skip("chromium not installed (apt-get install -y chromium)")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, render(t, "html", sample()), 0o644); err != nil {
		t.Fatal(err)
	}
	base := func(profile string) []string {
		return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage", "--user-data-dir=" + profile}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	shots := os.Getenv("ESAUDIT_SCREENSHOT_DIR") // keep the screenshots to look at them
	if shots == "" {
		shots = dir
	}
	// Desktop and A4 width (210 mm at 96 dpi = 794 px).
	for i, size := range [][2]int{{1280, 2000}, {794, 1123}} {
		shot := filepath.Join(shots, fmt.Sprintf("report-%d.png", size[0]))
		cmd := exec.CommandContext(ctx, bin, append(base(filepath.Join(dir, fmt.Sprint("s", i))), "--screenshot="+shot, fmt.Sprintf("--window-size=%d,%d", size[0], size[1]), "file://"+page)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("chromium --screenshot: %v\n%s", err, out)
		}
		f, err := os.Open(shot)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("screenshot is not a PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != size[0] || b.Dy() != size[1] {
			t.Errorf("screenshot is %v, want %dx%d", b, size[0], size[1])
		}
		// A blank page would be one colour: count distinct pixels on a grid.
		colours := map[uint32]bool{}
		for y := 0; y < size[1]; y += 7 {
			for x := 0; x < size[0]; x += 7 {
				r, g, b, _ := img.At(x, y).RGBA()
				colours[r>>8<<16|g>>8<<8|b>>8] = true
			}
		}
		if len(colours) < 8 {
			t.Errorf("%d px screenshot looks blank (%d colours)", size[0], len(colours))
		}
	}

	dump := func(profile, url string, extra ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append(append(base(filepath.Join(dir, profile)), extra...), "--dump-dom", url)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
		}
		return stdout.String()
	}
	dom := dump("p2", "file://"+page)
	rows := regexp.MustCompile(`<tr class="node-row" data-node="([^"]+)" data-status="(\w+)"`).FindAllStringSubmatch(dom, -1)
	if len(rows) != 3 || rows[0][1] != "es-data-1 (i-0123456789abcdef0)" || rows[2][2] != "error" {
		t.Errorf("matrix rows in the DOM = %v", rows)
	}
	bars := regexp.MustCompile(`data-severity="(\w+)" data-count="(\d+)"`).FindAllStringSubmatch(dom, -1)
	if len(bars) != 4 || bars[1][1] != "high" || bars[1][2] != "1" {
		t.Errorf("chart bars = %v", bars)
	}
	for _, want := range []string{`id="verdict">FAIL<`, `data-rule="ESA-HEAP-001"`, "Remediation:", "Not audited (unreachable)", `<form id="filters" onsubmit="return false">`, "6 findings shown"} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
	// A filter exercised through the DOM: severity=high (from the URL, as
	// the script reads it) hides every finding but the heap one.
	findingRe := regexp.MustCompile(`<(?:div|li) class="finding (\w+)"[^>]*data-severity="(\w+)"[^>]*?( hidden="")?>`)
	filtered := dump("p3", "file://"+page+"?severity=high")
	var shown, hidden int
	for _, m := range findingRe.FindAllStringSubmatch(filtered, -1) {
		if m[3] != "" {
			hidden++
		} else {
			shown++
			if m[2] != "high" {
				t.Errorf("a %s finding is shown with severity=high", m[2])
			}
		}
	}
	if shown != 2 || hidden != 4 || !strings.Contains(filtered, `data-filtered="yes"`) || !strings.Contains(filtered, "2 findings shown") {
		t.Errorf("severity=high filter: %d shown, %d hidden", shown, hidden)
	}
	// Without JavaScript the page is as rendered: the filter bar carries
	// the hidden attribute and no finding does. (Chromium's --dump-dom
	// needs scripts, so this is checked on the document itself.)
	raw := string(render(t, "html", sample()))
	if !strings.Contains(raw, `<form id="filters" hidden`) {
		t.Error("without JavaScript the filter bar must be hidden")
	}
	for _, m := range findingRe.FindAllStringSubmatch(raw, -1) {
		if m[3] != "" {
			t.Error("a finding is hidden without JavaScript")
		}
	}
}
