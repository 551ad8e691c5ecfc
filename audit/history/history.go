// Package history stores each esaudit run as a timestamped JSON result in a
// directory and compares a run with the previous one: which violations are
// new, fixed or still failing, keyed by node name and rule id.
package history

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/audit/report"
)

const (
	prefix = "esaudit-"
	suffix = ".json"
	// stamp sorts lexicographically in time order.
	stamp = "20060102T150405.000Z"
)

// Latest returns the most recent stored run in dir and its file, or nil
// when there is none (a missing directory is not an error: the first run).
func Latest(dir string) (*report.Result, string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read history directory %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, prefix) && strings.HasSuffix(n, suffix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for i := len(names) - 1; i >= 0; i-- {
		p := filepath.Join(dir, names[i])
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, "", fmt.Errorf("read previous run %s: %w", p, err)
		}
		var r report.Result
		if err := json.Unmarshal(data, &r); err != nil || r.SchemaVersion != report.SchemaVersion {
			// A damaged or foreign file must not stop the audit: skip to the one before.
			continue
		}
		return &r, p, nil
	}
	return nil, "", nil
}

// Save stores r in dir as esaudit-<started_at>.json and returns the path.
func Save(dir string, r *report.Result) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("create history directory %s: %w", dir, err)
	}
	t := r.StartedAt
	if t.IsZero() {
		t = time.Now()
	}
	p := filepath.Join(dir, prefix+t.UTC().Format(stamp)+suffix)
	tmp, err := os.CreateTemp(dir, ".esaudit-*.tmp")
	if err != nil {
		return "", fmt.Errorf("store run in %s: %w", dir, err)
	}
	err = report.WriteJSON(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("store run in %s: %w", p, err)
	}
	return p, nil
}

type key struct{ node, rule string }

// violations lists node+rule pairs with at least one unwaived finding, on
// nodes that were audited.
func violations(r *report.Result) (map[key]string, map[string]bool) {
	out := map[key]string{}
	audited := map[string]bool{}
	for _, n := range r.Nodes {
		if n.Status == report.NodeError {
			continue
		}
		audited[n.Name] = true
		for _, f := range n.Findings {
			if f.Status == report.StatusWaived {
				continue
			}
			k := key{n.Name, f.RuleID}
			if old, ok := out[k]; !ok || report.SeverityRank(f.Severity) > report.SeverityRank(old) {
				out[k] = f.Severity
			}
		}
	}
	return out, audited
}

// Compare diffs cur against prev. Only nodes audited in both runs count
// towards "fixed": a node that could not be reached this time has not been
// fixed. Entries are sorted by node, then rule.
func Compare(prev, cur *report.Result, prevFile string) *report.Diff {
	d := &report.Diff{PreviousFile: prevFile, PreviousAt: prev.StartedAt, New: []report.DiffEntry{}, Fixed: []report.DiffEntry{}, StillFailing: []report.DiffEntry{}}
	pv, _ := violations(prev)
	cv, audited := violations(cur)
	for k, sev := range cv {
		e := report.DiffEntry{Node: k.node, RuleID: k.rule, Severity: sev}
		if _, ok := pv[k]; ok {
			d.StillFailing = append(d.StillFailing, e)
		} else {
			d.New = append(d.New, e)
		}
	}
	for k, sev := range pv {
		if _, ok := cv[k]; !ok && audited[k.node] {
			d.Fixed = append(d.Fixed, report.DiffEntry{Node: k.node, RuleID: k.rule, Severity: sev})
		}
	}
	for _, l := range [][]report.DiffEntry{d.New, d.Fixed, d.StillFailing} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Node != l[j].Node {
				return l[i].Node < l[j].Node
			}
			return l[i].RuleID < l[j].RuleID
		})
	}
	return d
}
