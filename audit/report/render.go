package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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
		// Buffered: the encoders and the table make many small writes.
		bw := bufio.NewWriterSize(tmp, 256<<10)
		err = Write(bw, f, r)
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
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

// WriteJSON writes the versioned result document, field by field and the
// nodes one at a time, so a fleet's report is never held whole as JSON. The
// bytes are those of a json.Encoder with two-space indent.
func WriteJSON(w io.Writer, r *Result) error {
	if r.SchemaVersion == "" {
		r.SchemaVersion = SchemaVersion
	}
	if err := writeJSONObject(w, reflect.ValueOf(r).Elem()); err != nil {
		return fmt.Errorf("encode JSON report: %w", err)
	}
	return nil
}

// writeJSONObject writes a struct as encoding/json would (tags, omitempty),
// indented at the top level, with its Nodes streamed.
func writeJSONObject(w io.Writer, v reflect.Value) error {
	t := v.Type()
	sep := "{\n  "
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fv := v.Field(i)
		if slices.Contains(strings.Split(opts, ","), "omitempty") && emptyJSON(fv) {
			continue
		}
		key, err := json.Marshal(name)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s%s: ", sep, key); err != nil {
			return err
		}
		sep = ",\n  "
		if f.Name == "Nodes" && fv.Kind() == reflect.Slice && fv.Len() > 0 {
			err = writeJSONArray(w, fv)
		} else {
			err = writeIndented(w, fv.Interface(), "  ")
		}
		if err != nil {
			return err
		}
	}
	if sep == "{\n  " {
		_, err := io.WriteString(w, "{}\n")
		return err
	}
	_, err := io.WriteString(w, "\n}\n")
	return err
}

func writeJSONArray(w io.Writer, v reflect.Value) error {
	sep := "[\n    "
	for i := range v.Len() {
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		sep = ",\n    "
		if err := writeIndented(w, v.Index(i).Interface(), "    "); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "\n  ]")
	return err
}

func writeIndented(w io.Writer, v any, prefix string) error {
	b, err := json.MarshalIndent(v, prefix, "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// emptyJSON is encoding/json's omitempty test.
func emptyJSON(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// SummaryLine is the one-line verdict esaudit prints on stderr in every
// mode, and the table's first line.
func SummaryLine(r *Result) string {
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
	return fmt.Sprintf("esaudit: %d nodes (%d ok, %d errors), %d violations%s, %d waived, %d not evaluated; fail-on %s: %s",
		s.Nodes, s.NodesOK, s.NodeErrors, s.Violations, sevText, s.Waived, s.NotEvaluated, Sanitize(r.FailOn), verdict)
}

// WriteTable writes the terminal report. Every string that comes from a
// node (names, tags, errors, messages) goes through Sanitize.
func WriteTable(w io.Writer, r *Result) error {
	if _, ok := w.(*bufio.Writer); !ok {
		// One write per cell otherwise: hundreds of thousands for a fleet.
		bw := bufio.NewWriterSize(w, 64<<10)
		err := writeTable(bw, r)
		if ferr := bw.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("write table report: %w", ferr)
		}
		return err
	}
	return writeTable(w, r)
}

func writeTable(w io.Writer, r *Result) error {
	fmt.Fprintf(w, "%s\n\n", SummaryLine(r))

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tCRITICAL\tHIGH\tMEDIUM\tLOW\tWAIVED\tNOT EVALUATED\tNOTE")
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", oneLine(n.Name, 80), Sanitize(n.Status),
			counts["critical"], counts["high"], counts["medium"], counts["low"], waived, len(n.NotEvaluated), Sanitize(note))
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
				fmt.Fprintln(tw, "NODE\tSEVERITY\tRULE\tSTATUS\tRESOURCE\tMESSAGE")
				any = true
			}
			msg := oneLine(f.Message, 120)
			if f.Note != "" {
				msg += " [" + oneLine(f.Note, 80) + "]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(n.Name, 80), oneLine(f.Severity, 20), oneLine(f.RuleID, 40), oneLine(f.Status, 20), oneLine(f.Resource, 60), msg)
		}
		for _, ne := range n.NotEvaluated {
			if !any {
				fmt.Fprintln(w)
				fmt.Fprintln(tw, "NODE\tSEVERITY\tRULE\tSTATUS\tRESOURCE\tMESSAGE")
				any = true
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(n.Name, 80), oneLine(ne.Severity, 20), oneLine(ne.RuleID, 40), "not evaluated", "-", oneLine(ne.Reason, 160))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table report: %w", err)
	}

	for _, uw := range r.UnusedWaivers {
		fmt.Fprintf(w, "\nunused waiver: rule %s, nodes %s (line %d) matched no finding\n", oneLine(uw.Rule, 60), oneLine(uw.Nodes, 80), uw.Line)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "\nwarning: %s\n", oneLine(warn, 300))
	}
	if d := r.Diff; d != nil {
		WriteDiff(w, d)
	}
	return nil
}

// WriteDiff writes a history comparison as text.
func WriteDiff(w io.Writer, d *Diff) {
	fmt.Fprintf(w, "\nSince the previous run (%s): %d new, %d fixed, %d waived, %d unwaived, %d still failing, %d vanished nodes, %d new nodes\n",
		d.PreviousAt.UTC().Format("2006-01-02 15:04:05Z"), len(d.New), len(d.Fixed), len(d.Waived), len(d.Unwaived), len(d.StillFailing), len(d.VanishedNodes), len(d.NewNodes))
	for _, l := range []struct {
		mark string
		es   []DiffEntry
	}{{"+ new      ", d.New}, {"- fixed    ", d.Fixed}, {"~ waived   ", d.Waived}, {"! unwaived ", d.Unwaived}} {
		for _, e := range l.es {
			res := ""
			if e.Resource != "" {
				res = " " + oneLine(e.Resource, 60)
			}
			fmt.Fprintf(w, "  %s %s %s%s (%s)\n", l.mark, oneLine(e.Node, 80), oneLine(e.RuleID, 40), res, oneLine(e.Severity, 20))
		}
	}
	for _, n := range d.VanishedNodes {
		fmt.Fprintf(w, "  ? vanished  %s (not in this run: terminated, renamed or not discovered)\n", oneLine(n, 80))
	}
	for _, n := range d.NewNodes {
		fmt.Fprintf(w, "  * new node  %s\n", oneLine(n, 80))
	}
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(Sanitize(s)), " ")
	if r := []rune(s); len(r) > max {
		s = string(r[:max-3]) + "..."
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
		// A list of files ("a, b"): the first is the location.
		v, _, _ = strings.Cut(v, ", ")
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
