package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
)

type htmlCell struct {
	Class, Text, Title string
}

type htmlRow struct {
	Node   Node
	Anchor string
	Cells  []htmlCell
}

type htmlBar struct {
	Severity string
	Count    int
	Width    int
	Y        int
	TextX    int
}

type htmlFinding struct {
	Finding
	DetailsJSON string
}

type htmlNode struct {
	Node
	Anchor   string
	Findings []htmlFinding
}

type htmlView struct {
	R       *Result
	Verdict string
	Rules   []Rule
	Bars    []htmlBar
	ChartH  int
	Rows    []htmlRow
	Nodes   []htmlNode
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"ts": func(r *Result) string {
		if r.StartedAt.IsZero() {
			return ""
		}
		return r.StartedAt.UTC().Format("2006-01-02 15:04:05 UTC")
	},
}).Parse(htmlSource))

// WriteHTML writes a self-contained page (inline CSS and SVG, no scripts, no
// external assets) for security reviews: summary, findings by severity, a
// node × rule matrix, the rule catalogue and per-node details.
func WriteHTML(w io.Writer, r *Result) error {
	v := htmlView{R: r, Verdict: "PASS", Rules: r.rulesWithFindings()}
	if !r.Summary.Compliant {
		v.Verdict = "FAIL"
	}
	max := 1
	for _, s := range Severities {
		if c := r.Summary.BySeverity[s]; c > max {
			max = c
		}
	}
	for i := len(Severities) - 1; i >= 0; i-- {
		s := Severities[i]
		c := r.Summary.BySeverity[s]
		y := 10 + len(v.Bars)*34
		width := c * 400 / max
		v.Bars = append(v.Bars, htmlBar{Severity: s, Count: c, Width: width, Y: y, TextX: 90 + width + 8})
	}
	v.ChartH = 20 + len(v.Bars)*34
	for i, n := range r.Nodes {
		anchor := fmt.Sprintf("node-%d", i)
		row := htmlRow{Node: n, Anchor: anchor}
		byRule := map[string][]Finding{}
		for _, f := range n.Findings {
			byRule[f.RuleID] = append(byRule[f.RuleID], f)
		}
		for _, ru := range v.Rules {
			c := htmlCell{Class: "pass", Text: "✓", Title: ru.ID + ": pass"}
			if n.Status == NodeError {
				c = htmlCell{Class: "err", Text: "!", Title: ru.ID + ": not checked (" + n.ErrorKind + ")"}
			} else if fs := byRule[ru.ID]; len(fs) > 0 {
				viol := 0
				for _, f := range fs {
					if f.Status != StatusWaived {
						viol++
					}
				}
				if viol > 0 {
					c = htmlCell{Class: "sev-" + fs[0].Severity, Text: "✗", Title: fmt.Sprintf("%s: %d violation(s), %s", ru.ID, viol, fs[0].Severity)}
				} else {
					c = htmlCell{Class: "waived", Text: "W", Title: ru.ID + ": waived"}
				}
			}
			row.Cells = append(row.Cells, c)
		}
		v.Rows = append(v.Rows, row)
		hn := htmlNode{Node: n, Anchor: anchor}
		for _, f := range n.Findings {
			hf := htmlFinding{Finding: f}
			if len(f.Details) > 0 {
				b, err := json.MarshalIndent(f.Details, "", "  ")
				if err == nil {
					hf.DetailsJSON = string(b)
				}
			}
			hn.Findings = append(hn.Findings, hf)
		}
		v.Nodes = append(v.Nodes, hn)
	}
	var b strings.Builder
	if err := htmlTmpl.Execute(&b, v); err != nil {
		return fmt.Errorf("render HTML report: %w", err)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	return nil
}

const htmlSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>esaudit report: {{.Verdict}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2329;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dee4;padding-bottom:4px}
.muted{color:#57606a;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #d8dee4;border-radius:6px;padding:10px 16px;min-width:110px}
.card b{display:block;font-size:22px}
.verdict-PASS{color:#1a7f37}.verdict-FAIL{color:#cf222e}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.matrix td.c{text-align:center;min-width:28px;font-weight:bold}
.pass{color:#1a7f37}.waived{background:#eef1f4;color:#57606a}.err{background:#fff1c2;color:#7d4e00}
.sev-critical{background:#8b0000;color:#fff}.sev-high{background:#cf222e;color:#fff}
.sev-medium{background:#fb8f44;color:#1d2329}.sev-low{background:#ddf4ff;color:#0a3069}
.badge{border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
.finding{border-left:4px solid #d8dee4;padding:4px 10px;margin:8px 0}
.finding.violation{border-color:#cf222e}.finding.waived{border-color:#8c959f}
pre{background:#f6f8fa;padding:6px;overflow-x:auto;font-size:12px}
.vert{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}
</style>
</head>
<body>
<h1>esaudit report: <span class="verdict-{{.Verdict}}" id="verdict">{{.Verdict}}</span></h1>
<div class="muted">{{.R.Tool.Name}} {{.R.Tool.Version}} · {{ts .R}} · policies: {{.R.Policies}} · fail on: {{.R.FailOn}} and above · schema {{.R.SchemaVersion}}</div>

<div class="cards" id="summary">
<div class="card">nodes<b id="sum-nodes">{{.R.Summary.Nodes}}</b></div>
<div class="card">audited<b id="sum-ok">{{.R.Summary.NodesOK}}</b></div>
<div class="card">node errors<b id="sum-errors">{{.R.Summary.NodeErrors}}</b></div>
<div class="card">violations<b id="sum-violations">{{.R.Summary.Violations}}</b></div>
<div class="card">at or above {{.R.FailOn}}<b id="sum-failing">{{.R.Summary.FailingViolations}}</b></div>
<div class="card">waived<b id="sum-waived">{{.R.Summary.Waived}}</b></div>
</div>

<h2>Violations by severity</h2>
<svg id="severity-chart" role="img" aria-label="violations by severity" width="560" height="{{.ChartH}}" viewBox="0 0 560 {{.ChartH}}" xmlns="http://www.w3.org/2000/svg">
{{range .Bars}}<g class="bar" data-severity="{{.Severity}}" data-count="{{.Count}}">
<text x="0" y="{{.Y}}" dy="17" font-size="13" fill="#1d2329">{{.Severity}}</text>
<rect x="90" y="{{.Y}}" width="{{.Width}}" height="24" rx="3" class="sev-{{.Severity}}" fill="{{if eq .Severity "critical"}}#8b0000{{else if eq .Severity "high"}}#cf222e{{else if eq .Severity "medium"}}#fb8f44{{else}}#54aeff{{end}}"></rect>
<text x="{{.TextX}}" y="{{.Y}}" dy="17" font-size="13" fill="#1d2329">{{.Count}}</text>
</g>
{{end}}</svg>

{{with .R.Diff}}<h2>Since the previous run</h2>
<p id="diff">{{len .New}} new, {{len .Fixed}} fixed, {{len .StillFailing}} still failing (previous run {{.PreviousAt.UTC.Format "2006-01-02 15:04:05 UTC"}}).</p>
{{if or .New .Fixed}}<table><tr><th>change</th><th>node</th><th>rule</th><th>severity</th></tr>
{{range .New}}<tr class="diff-new"><td>new</td><td>{{.Node}}</td><td>{{.RuleID}}</td><td>{{.Severity}}</td></tr>
{{end}}{{range .Fixed}}<tr class="diff-fixed"><td>fixed</td><td>{{.Node}}</td><td>{{.RuleID}}</td><td>{{.Severity}}</td></tr>
{{end}}</table>{{end}}
{{end}}

<h2>Nodes × rules</h2>
<p class="muted">✓ pass · ✗ violation (colour = severity) · W waived · ! node not audited</p>
<table class="matrix" id="matrix">
<thead><tr><th>node</th><th>status</th>{{range .Rules}}<th title="{{.Title}}"><span class="vert">{{.ID}}</span></th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr class="node-row" data-node="{{.Node.Name}}" data-status="{{.Node.Status}}"><td><a href="#{{.Anchor}}">{{.Node.Name}}</a></td><td>{{.Node.Status}}</td>{{range .Cells}}<td class="c {{.Class}}" title="{{.Title}}">{{.Text}}</td>{{end}}</tr>
{{end}}</tbody>
</table>

<h2>Rules</h2>
<table id="rules">
<tr><th>id</th><th>severity</th><th>title</th><th>remediation</th></tr>
{{range .Rules}}<tr class="rule-row" data-rule="{{.ID}}"><td>{{.ID}}</td><td><span class="badge sev-{{.Severity}}">{{.Severity}}</span></td><td>{{.Title}}</td><td>{{.Remediation}}</td></tr>
{{end}}</table>

<h2>Node details</h2>
{{range .Nodes}}<section class="node" id="{{.Anchor}}" data-node="{{.Name}}">
<h3>{{.Name}} <span class="muted">{{.Address}}{{if .InstanceID}} · {{.InstanceID}}{{end}} · {{.Transport}} · {{.Status}}</span></h3>
{{if eq .Status "error"}}<p class="err node-error"><b>Not audited ({{.ErrorKind}}):</b> {{.Error}}</p>{{end}}
{{if .FactErrors}}<p class="muted">Collectors that failed on the node: {{range $i, $e := .FactErrors}}{{if $i}}; {{end}}{{$e}}{{end}}</p>{{end}}
{{if and (eq .Status "ok") (not .Findings)}}<p class="pass">No findings.</p>{{end}}
{{range .Findings}}<div class="finding {{.Status}}" data-rule="{{.RuleID}}">
<span class="badge sev-{{.Severity}}">{{.Severity}}</span> <b>{{.RuleID}}</b> {{.Title}}{{if eq .Status "waived"}} <i>(waived)</i>{{end}}
<div>{{.Message}}</div>
{{if .Note}}<div class="muted">{{.Note}}</div>{{end}}
{{with .Waiver}}<div class="muted">Waiver: {{.Justification}} (expires {{.Expires}})</div>{{end}}
{{if .Remediation}}<div><b>Remediation:</b> {{.Remediation}}</div>{{end}}
{{if .DetailsJSON}}<pre>{{.DetailsJSON}}</pre>{{end}}
</div>
{{end}}</section>
{{end}}
</body>
</html>
`
