package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// Write renders r in one format.
func Write(w io.Writer, format string, r *Result) error {
	switch format {
	case "table":
		return WriteTable(w, r)
	case "json":
		return WriteJSON(w, r)
	case "sarif":
		return WriteSARIF(w, r)
	case "junit":
		return WriteJUnit(w, r)
	case "html":
		return WriteHTML(w, r)
	}
	_, err := FileName(format)
	return err
}

// WriteFiles writes each format to its own file under dir and returns the
// paths written.
func WriteFiles(dir string, formats []string, r *Result) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create report directory %s: %w", dir, err)
	}
	var paths []string
	for _, f := range formats {
		name, err := FileName(f)
		if err != nil {
			return paths, err
		}
		p := filepath.Join(dir, name)
		tmp, err := os.CreateTemp(dir, "."+name+".*")
		if err != nil {
			return paths, fmt.Errorf("write %s report: %w", f, err)
		}
		err = Write(tmp, f, r)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), 0o644)
		}
		if err == nil {
			err = os.Rename(tmp.Name(), p)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return paths, fmt.Errorf("write %s report to %s: %w", f, p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// ParseFormats splits "table,json" (and repeated flags) into known formats,
// without duplicates, in the order given.
func ParseFormats(values []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			f = strings.ToLower(strings.TrimSpace(f))
			if f == "" || seen[f] {
				continue
			}
			if _, err := FileName(f); err != nil {
				return nil, err
			}
			seen[f] = true
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		out = []string{"table"}
	}
	return out, nil
}

// WriteJSON writes the versioned result document.
func WriteJSON(w io.Writer, r *Result) error {
	if r.SchemaVersion == "" {
		r.SchemaVersion = SchemaVersion
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode JSON report: %w", err)
	}
	return nil
}

// WriteTable writes the terminal report.
func WriteTable(w io.Writer, r *Result) error {
	s := r.Summary
	verdict := "PASS"
	if !s.Compliant {
		verdict = "FAIL"
	}
	var sev []string
	for i := len(Severities) - 1; i >= 0; i-- {
		if n := s.BySeverity[Severities[i]]; n > 0 {
			sev = append(sev, fmt.Sprintf("%d %s", n, Severities[i]))
		}
	}
	sevText := ""
	if len(sev) > 0 {
		sevText = " (" + strings.Join(sev, ", ") + ")"
	}
	fmt.Fprintf(w, "esaudit: %d nodes (%d ok, %d errors), %d violations%s, %d waived; fail-on %s: %s\n\n",
		s.Nodes, s.NodesOK, s.NodeErrors, s.Violations, sevText, s.Waived, r.FailOn, verdict)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tCRITICAL\tHIGH\tMEDIUM\tLOW\tWAIVED\tNOTE")
	for _, n := range r.Nodes {
		counts := map[string]int{}
		waived := 0
		for _, f := range n.Findings {
			if f.Status == StatusWaived {
				waived++
			} else {
				counts[f.Severity]++
			}
		}
		note := ""
		if n.Status == NodeError {
			note = n.ErrorKind + ": " + oneLine(n.Error, 100)
		} else if len(n.FactErrors) > 0 {
			note = fmt.Sprintf("%d fact errors", len(n.FactErrors))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", n.Name, n.Status,
			counts["critical"], counts["high"], counts["medium"], counts["low"], waived, note)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table report: %w", err)
	}

	var any bool
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			if !any {
				fmt.Fprintln(w)
				fmt.Fprintln(tw, "NODE\tSEVERITY\tRULE\tSTATUS\tMESSAGE")
				any = true
			}
			msg := oneLine(f.Message, 120)
			if f.Note != "" {
				msg += " [" + oneLine(f.Note, 80) + "]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, f.Severity, f.RuleID, f.Status, msg)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table report: %w", err)
	}

	if d := r.Diff; d != nil {
		fmt.Fprintf(w, "\nSince the previous run (%s): %d new, %d fixed, %d still failing\n",
			d.PreviousAt.UTC().Format("2006-01-02 15:04:05Z"), len(d.New), len(d.Fixed), len(d.StillFailing))
		for _, e := range d.New {
			fmt.Fprintf(w, "  + %s %s (%s)\n", e.Node, e.RuleID, e.Severity)
		}
		for _, e := range d.Fixed {
			fmt.Fprintf(w, "  - %s %s (%s)\n", e.Node, e.RuleID, e.Severity)
		}
	}
	return nil
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	return s
}

// findingFile returns the file a finding points at, from the details keys
// policies use ("resource" by convention, or "file", "path", "source") when
// it is an absolute path, split from a ":line" suffix.
func findingFile(f Finding) (path string, line int) {
	for _, k := range []string{"file", "path", "resource", "source"} {
		v, ok := f.Details[k].(string)
		if !ok || !strings.HasPrefix(v, "/") {
			continue
		}
		if i := strings.LastIndexByte(v, ':'); i > 0 {
			var n int
			if _, err := fmt.Sscanf(v[i+1:], "%d", &n); err == nil && n > 0 && fmt.Sprint(n) == v[i+1:] {
				return v[:i], n
			}
		}
		return v, 0
	}
	return "", 0
}

// sortedTagKeys lists tag keys in order.
func sortedTagKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
