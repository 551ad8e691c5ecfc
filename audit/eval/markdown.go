package eval

import (
	"fmt"
	"strings"
)

// CatalogueMarkdown renders the rule catalogue as Markdown: a summary table,
// then one section per rule (anchor: the lower-cased id). docs/policies.md
// is this output, so it always matches the rules' METADATA.
func CatalogueMarkdown(rules []Rule) string {
	var b strings.Builder
	b.WriteString("# Policy catalogue\n\n")
	b.WriteString("<!-- Generated from the rules' METADATA (`esaudit policies --format markdown`); do not edit. -->\n\n")
	fmt.Fprintf(&b, "%d rules. Severities, lowest first: %s. Bake rules also run in the builder's bake-time gate, on a fresh instance before boot configuration.\n\n", len(rules), strings.Join(Severities, ", "))
	b.WriteString("| ID | Title | Severity | Stages |\n")
	b.WriteString("|----|-------|----------|--------|\n")
	for _, r := range rules {
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %s | %s |\n", cell(r.ID), strings.ToLower(r.ID), cell(r.Title), cell(r.Severity), cell(strings.Join(r.Stages, ", ")))
	}
	for _, r := range rules {
		fmt.Fprintf(&b, "\n## %s\n\n", r.ID)
		fmt.Fprintf(&b, "**%s**\n\n", oneLine(r.Title))
		fmt.Fprintf(&b, "Severity: %s · Stages: %s · Package: `%s`", r.Severity, strings.Join(r.Stages, ", "), r.Package)
		if len(r.Requires) > 0 {
			fmt.Fprintf(&b, " · Needs: `%s` (not evaluated without it)", strings.Join(r.Requires, "`, `"))
		}
		b.WriteString("\n\n")
		if d := strings.TrimSpace(r.Description); d != "" {
			b.WriteString(d + "\n\n")
		}
		if rem := strings.TrimSpace(r.Remediation); rem != "" {
			b.WriteString("Remediation: " + rem + "\n")
		}
	}
	return b.String()
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(oneLine(s), "|", `\|`)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
