package report

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

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
	if pl == nil || pl.ArtifactLocation.URI != "file:///etc/elasticsearch/jvm.options" || pl.Region == nil || pl.Region.StartLine != 4 {
		t.Errorf("heap finding must point at jvm.options line 4: %+v", pl)
	}
	if ll := heap.Locations[0].LogicalLocations; len(ll) != 1 || ll[0].Name != "es-data-1 (i-0123456789abcdef0)" {
		t.Errorf("logical location = %+v", ll)
	}
	if s := run.Results[1].Suppressions; len(s) != 1 || s[0].Status != "accepted" {
		t.Errorf("waived finding must carry an accepted suppression: %+v", s)
	}
	if run.Results[2].Locations[0].PhysicalLocation != nil {
		t.Errorf("a finding without a file must have no physical location")
	}
	inv := run.Invocations[0]
	if inv.ExecutionSuccessful || len(inv.Notifications) != 1 || inv.Notifications[0].Level != "error" {
		t.Errorf("node error must be an error notification: %+v", inv)
	}
}

func TestHTMLGolden(t *testing.T) {
	got := render(t, "html", sample())
	golden(t, "html", got)
	for _, bad := range []string{"<script", "http://", "https://", "<link", "@import", "url("} {
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
	shot := filepath.Join(dir, "report.png")
	base := func(profile string) []string {
		return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage", "--user-data-dir=" + profile}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(base(filepath.Join(dir, "p1")), "--screenshot="+shot, "--window-size=1280,2000", "file://"+page)...)
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
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2000 {
		t.Errorf("screenshot is %v, want 1280x2000", b)
	}
	// A blank page would be one colour: count distinct pixels on a grid.
	colours := map[uint32]bool{}
	for y := 0; y < 2000; y += 7 {
		for x := 0; x < 1280; x += 7 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|b>>8] = true
		}
	}
	if len(colours) < 8 {
		t.Errorf("screenshot looks blank (%d colours)", len(colours))
	}

	cmd = exec.CommandContext(ctx, bin, append(base(filepath.Join(dir, "p2")), "--dump-dom", "file://"+page)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	dom := stdout.String()
	rows := regexp.MustCompile(`<tr class="node-row" data-node="([^"]+)" data-status="(\w+)"`).FindAllStringSubmatch(dom, -1)
	if len(rows) != 3 || rows[0][1] != "es-data-1 (i-0123456789abcdef0)" || rows[2][2] != "error" {
		t.Errorf("matrix rows in the DOM = %v", rows)
	}
	bars := regexp.MustCompile(`data-severity="(\w+)" data-count="(\d+)"`).FindAllStringSubmatch(dom, -1)
	if len(bars) != 4 || bars[1][1] != "high" || bars[1][2] != "1" {
		t.Errorf("chart bars = %v", bars)
	}
	for _, want := range []string{`id="verdict">FAIL<`, `data-rule="ESA-HEAP-001"`, "Remediation:", "Not audited (unreachable)"} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
}
