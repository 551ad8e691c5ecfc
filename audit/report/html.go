package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"iter"
	"regexp"
	"slices"
	"sort"
	"strings"
)

type htmlCell struct {
	Class, Text, Title, Href string
}

type htmlRow struct {
	Node     Node
	Anchor   string
	Cells    []htmlCell
	Severity string // most severe violation, for filtering
}

type htmlBar struct {
	Severity string
	Count    int
	Width    int
	Y        int
	TextX    int
}

type htmlDetail struct{ Key, Value string }

type htmlFinding struct {
	Finding
	Anchor   string
	NodeName string
	Details  []htmlDetail
	RemHTML  template.HTML
}

type htmlNode struct {
	Node
	Anchor   string
	Findings []htmlFinding
}

type htmlRuleGroup struct {
	Rule     Rule
	Anchor   string
	DescHTML template.HTML
	RemHTML  template.HTML
	Findings []htmlFinding
	Nodes    int
	Waived   int
	// NotEval is "node: reason" per node not evaluated, NotEvalCount
	// how many.
	NotEval      iter.Seq2[int, string]
	NotEvalCount int
}

type htmlView struct {
	R       *Result
	Verdict string
	Rules   []Rule
	Bars    []htmlBar
	ChartH  int
	Rows    iter.Seq[htmlRow]
	Nodes   iter.Seq[htmlNode]
	ByRule  []htmlRuleGroup
	Script  template.JS
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"ts": func(r *Result) string {
		if r.StartedAt.IsZero() {
			return ""
		}
		return r.StartedAt.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"lower": strings.ToLower,
}).Parse(htmlSource))

// WriteHTML writes a self-contained page (inline CSS, SVG and one small
// inline script, no external assets) for security reviews: summary,
// findings by severity, a node × rule matrix whose cells link to the
// findings, the findings grouped by rule across the fleet and by node, and
// filters (severity, status, node, search) that the script adds; without
// it every finding is shown. A print stylesheet keeps the matrix on A4.
func WriteHTML(w io.Writer, r *Result) error {
	v := htmlView{R: r, Verdict: "PASS", Rules: r.rulesWithFindings(), Script: template.JS(htmlScript)}
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
	// The findings by rule are gathered first (they are the findings the
	// result holds anyway); the node × rule matrix, the nodes' sections
	// and the not-evaluated lists, which grow with the fleet, are made
	// one node at a time as the template ranges over them.
	groups := map[string]*htmlRuleGroup{}
	for _, ru := range v.Rules {
		g := &htmlRuleGroup{Rule: ru, Anchor: "rule-" + strings.ToLower(ru.ID), DescHTML: Markdown(ru.Description), RemHTML: Markdown(ru.Remediation)}
		g.NotEval = notEvaluatedOn(r, ru.ID)
		groups[ru.ID] = g
	}
	for i, n := range r.Nodes {
		hn := htmlNodeOf(i, n)
		seen := map[string]bool{}
		for _, hf := range hn.Findings {
			if g := groups[hf.RuleID]; g != nil {
				g.Findings = append(g.Findings, hf)
				if hf.Status == StatusWaived {
					g.Waived++
				}
				if !seen[hf.RuleID] {
					seen[hf.RuleID] = true
					g.Nodes++
				}
			}
		}
		for _, ne := range n.NotEvaluated {
			if g := groups[ne.RuleID]; g != nil && !seen[ne.RuleID] {
				g.NotEvalCount++
			}
		}
	}
	for _, ru := range v.Rules {
		v.ByRule = append(v.ByRule, *groups[ru.ID])
	}
	v.Rows = func(yield func(htmlRow) bool) {
		for i, n := range r.Nodes {
			if !yield(htmlRowOf(i, n, v.Rules)) {
				return
			}
		}
	}
	v.Nodes = func(yield func(htmlNode) bool) {
		for i, n := range r.Nodes {
			if !yield(htmlNodeOf(i, n)) {
				return
			}
		}
	}
	// Straight to w (buffered by WriteFiles), not through a copy of the
	// whole page.
	if err := htmlTmpl.Execute(w, v); err != nil {
		return fmt.Errorf("render HTML report: %w", err)
	}
	return nil
}

// htmlNodeOf is node i's section: its findings with their anchors.
func htmlNodeOf(i int, n Node) htmlNode {
	hn := htmlNode{Node: n, Anchor: fmt.Sprintf("node-%d", i)}
	for j, f := range n.Findings {
		hf := htmlFinding{Finding: f, Anchor: fmt.Sprintf("f-%d-%d", i, j), NodeName: n.Name, RemHTML: Markdown(f.Remediation)}
		for _, k := range sortedKeys(f.Details) {
			hf.Details = append(hf.Details, htmlDetail{Key: k, Value: detailText(f.Details[k])})
		}
		hn.Findings = append(hn.Findings, hf)
	}
	return hn
}

// htmlRowOf is node i's row of the matrix: a cell per rule.
func htmlRowOf(i int, n Node, rules []Rule) htmlRow {
	anchor := fmt.Sprintf("node-%d", i)
	row := htmlRow{Node: n, Anchor: anchor}
	byRule := map[string][]Finding{}
	anchors := map[string]string{} // the first finding of each rule
	for j, f := range n.Findings {
		if _, ok := anchors[f.RuleID]; !ok {
			anchors[f.RuleID] = fmt.Sprintf("f-%d-%d", i, j)
		}
		byRule[f.RuleID] = append(byRule[f.RuleID], f)
		if f.Status != StatusWaived && (row.Severity == "" || SeverityRank(f.Severity) > SeverityRank(row.Severity)) {
			row.Severity = f.Severity
		}
	}
	notEval := map[string]NotEvaluated{}
	for _, ne := range n.NotEvaluated {
		notEval[ne.RuleID] = ne
	}
	for _, ru := range rules {
		c := htmlCell{Class: "pass", Text: "✓", Title: ru.ID + ": pass"}
		fs := byRule[ru.ID]
		switch {
		case n.Status == NodeError:
			c = htmlCell{Class: "err", Text: "!", Title: ru.ID + ": not checked (" + n.ErrorKind + ")", Href: "#" + anchor}
		case len(fs) > 0:
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
			c.Href = "#" + anchors[ru.ID]
		default:
			if ne, ok := notEval[ru.ID]; ok {
				c = htmlCell{Class: "noteval", Text: "?", Title: ru.ID + ": not evaluated: " + ne.Reason, Href: "#" + anchor}
			}
		}
		row.Cells = append(row.Cells, c)
	}
	return row
}

// notEvaluatedOn lists, node by node, "node: reason" for each node the
// rule could not be evaluated on and found nothing on.
func notEvaluatedOn(r *Result, ruleID string) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		k := 0
		for _, n := range r.Nodes {
			found := slices.ContainsFunc(n.Findings, func(f Finding) bool { return f.RuleID == ruleID })
			for _, ne := range n.NotEvaluated {
				if ne.RuleID != ruleID || found {
					continue
				}
				if !yield(k, n.Name+": "+ne.Reason) {
					return
				}
				k++
			}
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// detailText renders a details value: strings as they are, lists joined,
// anything else as compact JSON.
func detailText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, detailText(e))
		}
		return strings.Join(parts, ", ")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

var (
	mdCode = regexp.MustCompile("`([^`]+)`")
	mdBold = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	mdLink = regexp.MustCompile(`\[([^\]]+)\]\((https?://[^\s)]+)\)`)
)

// Markdown renders the small Markdown subset rule texts use (paragraphs,
// "- " lists, `code`, **bold**, [links](https://...)) as HTML; the text is
// escaped first, so a policy cannot inject markup.
func Markdown(src string) template.HTML {
	src = strings.TrimSpace(src)
	if src == "" {
		return ""
	}
	var b strings.Builder
	inline := func(s string) string {
		s = template.HTMLEscapeString(s)
		s = mdCode.ReplaceAllString(s, "<code>$1</code>")
		s = mdBold.ReplaceAllString(s, "<b>$1</b>")
		return mdLink.ReplaceAllString(s, `<a href="$2">$1</a>`)
	}
	for _, para := range strings.Split(src, "\n\n") {
		lines := strings.Split(strings.TrimSpace(para), "\n")
		if strings.HasPrefix(strings.TrimSpace(lines[0]), "- ") {
			b.WriteString("<ul>")
			for _, l := range lines {
				b.WriteString("<li>" + inline(strings.TrimPrefix(strings.TrimSpace(l), "- ")) + "</li>")
			}
			b.WriteString("</ul>")
			continue
		}
		b.WriteString("<p>" + inline(strings.Join(lines, " ")) + "</p>")
	}
	return template.HTML(b.String())
}

// htmlScript adds the filter bar and applies filters; it reads an initial
// state from the URL query (?severity=high&status=violation&node=es-1&q=cors)
// so a filtered view can be linked.
const htmlScript = `(function(){
var bar=document.getElementById('filters');bar.hidden=false;
var f={severity:document.getElementById('f-severity'),status:document.getElementById('f-status'),node:document.getElementById('f-node'),q:document.getElementById('f-q')};
var qs=new URLSearchParams(location.search);
for(var k in f){if(qs.get(k)!==null){f[k].value=qs.get(k);}}
function apply(){
 var sev=f.severity.value,st=f.status.value,node=f.node.value.toLowerCase(),q=f.q.value.toLowerCase(),shown=0;
 document.querySelectorAll('.finding').forEach(function(el){
  var ok=(!sev||el.dataset.severity===sev)&&(!st||el.dataset.status===st)&&(!node||el.dataset.node.toLowerCase().indexOf(node)>=0)&&(!q||el.textContent.toLowerCase().indexOf(q)>=0);
  el.hidden=!ok;if(ok){shown++;}
 });
 document.querySelectorAll('.node-row').forEach(function(el){
  el.hidden=!!node&&el.dataset.node.toLowerCase().indexOf(node)<0||!!sev&&el.dataset.severity!==sev;
 });
 document.querySelectorAll('section.rule').forEach(function(el){
  el.hidden=el.querySelectorAll('.finding:not([hidden])').length===0&&!!(sev||st||node||q);
 });
 document.getElementById('f-count').textContent=shown+' findings shown';
 document.body.dataset.filtered=(sev||st||node||q)?'yes':'no';
}
for(var k2 in f){f[k2].addEventListener('input',apply);}
apply();
})();`

const htmlSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>esaudit report: {{.Verdict}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2329;background:#fff}
h1{font-size:24px}h2{font-size:19px;margin-top:28px;border-bottom:1px solid #d8dee4;padding-bottom:4px}h3{font-size:16px}
.muted{color:#57606a;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #d8dee4;border-radius:6px;padding:10px 14px;min-width:110px}
.card b{display:block;font-size:22px}
.verdict-PASS{color:#1a7f37}.verdict-FAIL{color:#cf222e}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.matrix td.c{text-align:center;min-width:28px;font-weight:bold;padding:0}
.matrix td.c a{display:block;padding:4px 6px;color:inherit;text-decoration:none}
.pass{color:#1a7f37}.waived{background:#eef1f4;color:#57606a}.err{background:#fff1c2;color:#7d4e00}
.noteval{background:#ddf4ff;color:#0969da}
.sev-critical{background:#8b0000;color:#fff}.sev-high{background:#cf222e;color:#fff}
.sev-medium{background:#fb8f44;color:#1d2329}.sev-low{background:#ddf4ff;color:#0a3069}
.badge{border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
.finding{border-left:4px solid #d8dee4;padding:4px 10px;margin:8px 0}
.finding.violation{border-color:#cf222e}.finding.waived{border-color:#8c959f}
.finding:target{background:#fff8c5}
dl.details{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:6px 0;font-size:13px}
dl.details dt{font-weight:600;color:#57606a}dl.details dd{margin:0;font-family:ui-monospace,monospace;overflow-wrap:anywhere}
code{background:#f6f8fa;padding:0 3px;border-radius:3px;font-size:90%}
.remediation>p:first-of-type{display:inline}.remediation p{margin:4px 0}
.vert{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}
#filters{position:sticky;top:0;background:#fff;border:1px solid #d8dee4;border-radius:6px;padding:8px;margin:12px 0;display:flex;gap:10px;flex-wrap:wrap;align-items:center;font-size:13px;z-index:1}
[hidden]{display:none!important}
@media print{
 @page{size:A4 portrait;margin:10mm}
 body{margin:0;font-size:10px}
 #filters,#severity-chart{display:none}
 h2{break-after:avoid}.finding,section.node h3{break-inside:avoid}
 .matrix{table-layout:fixed;width:100%;font-size:8px}
 .matrix th,.matrix td{padding:1px;overflow-wrap:anywhere}
 .matrix td.c a{padding:1px}
 .matrix th:first-child{width:22%}.matrix th:nth-child(2){width:6%}
 a{color:inherit;text-decoration:none}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
</style>
</head>
<body>
<h1>esaudit report: <span class="verdict-{{.Verdict}}" id="verdict">{{.Verdict}}</span></h1>
<div class="muted">{{.R.Tool.Name}} {{.R.Tool.Version}} · {{ts .R}} · policies: {{.R.Policies}}{{with .R.PoliciesDigest}} ({{.}}){{end}} · fail on: {{.R.FailOn}} and above · schema {{.R.SchemaVersion}}</div>

<div class="cards" id="summary">
<div class="card">nodes<b id="sum-nodes">{{.R.Summary.Nodes}}</b></div>
<div class="card">audited<b id="sum-ok">{{.R.Summary.NodesOK}}</b></div>
<div class="card">node errors<b id="sum-errors">{{.R.Summary.NodeErrors}}</b></div>
<div class="card">violations<b id="sum-violations">{{.R.Summary.Violations}}</b></div>
<div class="card">at or above {{.R.FailOn}}<b id="sum-failing">{{.R.Summary.FailingViolations}}</b></div>
<div class="card">waived<b id="sum-waived">{{.R.Summary.Waived}}</b></div>
<div class="card">not evaluated<b id="sum-noteval">{{.R.Summary.NotEvaluated}}</b></div>
</div>

{{range .R.Warnings}}<p class="err warning">Warning: {{.}}</p>
{{end}}{{if .R.UnusedWaivers}}<p class="muted" id="unused-waivers">Unused waivers (matched no finding): {{range $i, $w := .R.UnusedWaivers}}{{if $i}}; {{end}}{{$w.Rule}} for {{$w.Nodes}} (line {{$w.Line}}){{end}}</p>
{{end}}
<h2>Violations by severity</h2>
<svg id="severity-chart" role="img" aria-label="violations by severity" width="560" height="{{.ChartH}}" viewBox="0 0 560 {{.ChartH}}" xmlns="http://www.w3.org/2000/svg">
{{range .Bars}}<g class="bar" data-severity="{{.Severity}}" data-count="{{.Count}}">
<text x="0" y="{{.Y}}" dy="17" font-size="13" fill="#1d2329">{{.Severity}}</text>
<rect x="90" y="{{.Y}}" width="{{.Width}}" height="24" rx="3" class="sev-{{.Severity}}" fill="{{if eq .Severity "critical"}}#8b0000{{else if eq .Severity "high"}}#cf222e{{else if eq .Severity "medium"}}#fb8f44{{else}}#54aeff{{end}}"></rect>
<text x="{{.TextX}}" y="{{.Y}}" dy="17" font-size="13" fill="#1d2329">{{.Count}}</text>
</g>
{{end}}</svg>

{{with .R.Diff}}<h2>Since the previous run</h2>
<p id="diff">{{len .New}} new, {{len .Fixed}} fixed, {{len .Waived}} waived, {{len .Unwaived}} unwaived, {{len .StillFailing}} still failing, {{len .VanishedNodes}} vanished nodes (previous run {{.PreviousAt.UTC.Format "2006-01-02 15:04:05 UTC"}}).</p>
{{if or .New .Fixed .Waived .Unwaived .VanishedNodes}}<table><tr><th>change</th><th>node</th><th>rule</th><th>resource</th><th>severity</th></tr>
{{range .New}}<tr class="diff-new"><td>new</td><td>{{.Node}}</td><td>{{.RuleID}}</td><td>{{.Resource}}</td><td>{{.Severity}}</td></tr>
{{end}}{{range .Fixed}}<tr class="diff-fixed"><td>fixed</td><td>{{.Node}}</td><td>{{.RuleID}}</td><td>{{.Resource}}</td><td>{{.Severity}}</td></tr>
{{end}}{{range .Waived}}<tr class="diff-waived"><td>waived</td><td>{{.Node}}</td><td>{{.RuleID}}</td><td>{{.Resource}}</td><td>{{.Severity}}</td></tr>
{{end}}{{range .Unwaived}}<tr class="diff-unwaived"><td>unwaived</td><td>{{.Node}}</td><td>{{.RuleID}}</td><td>{{.Resource}}</td><td>{{.Severity}}</td></tr>
{{end}}{{range .VanishedNodes}}<tr class="diff-vanished"><td>vanished node</td><td>{{.}}</td><td></td><td></td><td></td></tr>
{{end}}</table>{{end}}
{{end}}

<form id="filters" hidden onsubmit="return false">
<label>severity <select id="f-severity"><option value="">any</option><option>critical</option><option>high</option><option>medium</option><option>low</option></select></label>
<label>status <select id="f-status"><option value="">any</option><option value="violation">violation</option><option value="waived">waived</option></select></label>
<label>node <input id="f-node" type="search" size="14"></label>
<label>search <input id="f-q" type="search" size="18"></label>
<span id="f-count" class="muted"></span>
</form>

<h2>Nodes × rules</h2>
<p class="muted">✓ pass · ✗ violation (colour = severity) · W waived · ? not evaluated (a fact is missing) · ! node not audited. Cells link to the findings.</p>
<table class="matrix" id="matrix">
<thead><tr><th>node</th><th>status</th>{{range .Rules}}<th title="{{.Title}}"><a href="#rule-{{lower .ID}}"><span class="vert">{{.ID}}</span></a></th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr class="node-row" data-node="{{.Node.Name}}" data-status="{{.Node.Status}}" data-severity="{{.Severity}}"><td><a href="#{{.Anchor}}">{{.Node.Name}}</a></td><td>{{.Node.Status}}</td>{{range .Cells}}<td class="c {{.Class}}" title="{{.Title}}">{{if .Href}}<a href="{{.Href}}">{{.Text}}</a>{{else}}{{.Text}}{{end}}</td>{{end}}</tr>
{{end}}</tbody>
</table>

<h2>Findings by rule</h2>
{{range .ByRule}}<section class="rule" id="{{.Anchor}}" data-rule="{{.Rule.ID}}">
<h3><span class="badge sev-{{.Rule.Severity}}">{{.Rule.Severity}}</span> {{.Rule.ID}} {{.Rule.Title}} <span class="muted">{{len .Findings}} findings on {{.Nodes}} nodes{{if .Waived}}, {{.Waived}} waived{{end}}{{if .NotEvalCount}}, not evaluated on {{.NotEvalCount}}{{end}}{{with .Rule.HelpURI}} · <a href="{{.}}">docs</a>{{end}}</span></h3>
{{.DescHTML}}
{{if .RemHTML}}<div class="remediation"><b>Remediation:</b> {{.RemHTML}}</div>{{end}}
{{if .Findings}}<ul>{{range .Findings}}<li class="finding {{.Status}}" data-rule="{{.RuleID}}" data-node="{{.NodeName}}" data-severity="{{.Severity}}" data-status="{{.Status}}"><a href="#{{.Anchor}}">{{.NodeName}}</a>{{with .Resource}} <code>{{.}}</code>{{end}}: {{.Message}}{{if eq .Status "waived"}} <i>(waived)</i>{{end}}</li>{{end}}</ul>{{end}}
{{if .NotEvalCount}}<p class="muted">Not evaluated: {{range $i, $e := .NotEval}}{{if $i}}; {{end}}{{$e}}{{end}}</p>{{end}}
</section>
{{end}}

<h2>Node details</h2>
{{range .Nodes}}<section class="node" id="{{.Anchor}}" data-node="{{.Name}}">
<h3>{{.Name}} <span class="muted">{{.Address}}{{if .InstanceID}} · {{.InstanceID}}{{end}} · {{.Transport}} · {{.Status}}</span></h3>
{{if eq .Status "error"}}<p class="err node-error"><b>Not audited ({{.ErrorKind}}):</b> {{.Error}}</p>{{end}}
{{if .FactErrors}}<p class="muted">Collectors that failed on the node: {{range $i, $e := .FactErrors}}{{if $i}}; {{end}}{{$e}}{{end}}</p>{{end}}
{{if .NotEvaluated}}<div class="noteval-list"><b>Not evaluated</b> (a fact the rule needs is missing):<ul>{{range .NotEvaluated}}<li class="noteval-item" data-rule="{{.RuleID}}"><b>{{.RuleID}}</b> {{.Title}}: {{.Reason}}</li>{{end}}</ul></div>{{end}}
{{if and (eq .Status "ok") (not .Findings)}}<p class="pass">No findings.</p>{{end}}
{{range .Findings}}<div class="finding {{.Status}}" id="{{.Anchor}}" data-rule="{{.RuleID}}" data-node="{{.NodeName}}" data-severity="{{.Severity}}" data-status="{{.Status}}">
<span class="badge sev-{{.Severity}}">{{.Severity}}</span> <b>{{.RuleID}}</b> {{.Title}}{{if eq .Status "waived"}} <i>(waived)</i>{{end}}
<div>{{.Message}}</div>
{{if .Note}}<div class="muted">{{.Note}}</div>{{end}}
{{with .Waiver}}<div class="muted">Waiver: {{.Justification}} (expires {{.Expires}})</div>{{end}}
{{if .RemHTML}}<div class="remediation"><b>Remediation:</b> {{.RemHTML}}</div>{{end}}
{{if .Details}}<dl class="details">{{range .Details}}<dt>{{.Key}}</dt><dd>{{.Value}}</dd>{{end}}</dl>{{end}}
</div>
{{end}}</section>
{{end}}
<script>{{.Script}}</script>
</body>
</html>
`
