// Package history stores each esaudit --history run as a timestamped JSON
// result in a directory and compares a run with the previous one of the
// same category (cluster) by finding identity (node + rule + resource):
// new, fixed, waived, unwaived, still failing, vanished and new nodes.
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

// Latest returns the most recent stored run in dir of the same category
// (cluster) as cur, and its file, or nil when there is none (a missing
// directory is not an error: the first run).
func Latest(dir, category string) (*report.Result, string, error) {
	names, err := runFiles(dir)
	if err != nil {
		return nil, "", err
	}
	for i := len(names) - 1; i >= 0; i-- {
		p := filepath.Join(dir, names[i])
		r, err := Load(p)
		if err != nil {
			// A damaged or foreign file must not stop the audit: skip to the one before.
			continue
		}
		if category != "" && r.Category != "" && r.Category != category {
			continue
		}
		return r, p, nil
	}
	return nil, "", nil
}

// Load reads a stored run or a report.json written by esaudit.
func Load(file string) (*report.Result, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read report %s: %w", file, err)
	}
	var r report.Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("report %s is not an esaudit JSON report: %w", file, err)
	}
	if r.SchemaVersion != report.SchemaVersion {
		return nil, fmt.Errorf("report %s has schema %q, want %s: write it with esaudit --format json", file, r.SchemaVersion, report.SchemaVersion)
	}
	// Older documents carry no finding ids: derive them the same way.
	r.Summarize()
	return &r, nil
}

func runFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history directory %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, prefix) && strings.HasSuffix(n, suffix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Prune keeps the newest keep runs in dir and removes the older ones
// (keep <= 0 keeps everything). It returns the files removed.
func Prune(dir string, keep int) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	names, err := runFiles(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for i := 0; i < len(names)-keep; i++ {
		p := filepath.Join(dir, names[i])
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("history retention: %w", err)
		}
		removed = append(removed, p)
	}
	return removed, nil
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

type state struct {
	node   string
	entry  report.DiffEntry
	waived bool
}

// findings indexes a run's findings by identity, on audited nodes, and
// returns the run's node names with whether each was audited.
func findings(r *report.Result) (map[string]state, map[string]bool) {
	out := map[string]state{}
	nodes := map[string]bool{}
	for _, n := range r.Nodes {
		nodes[n.Name] = n.Status != report.NodeError
		if n.Status == report.NodeError {
			continue
		}
		for _, f := range n.Findings {
			report.Identify(n.Name, &f)
			out[f.ID] = state{node: n.Name, waived: f.Status == report.StatusWaived,
				entry: report.DiffEntry{ID: f.ID, Node: n.Name, RuleID: f.RuleID, Resource: f.Resource, Severity: f.Severity, Message: f.Message}}
		}
	}
	return out, nodes
}

// Compare diffs cur against prev by finding identity (node + rule +
// resource): new and fixed violations, findings that became waived or
// unwaived, violations still failing, and nodes that vanished or appeared.
// Only nodes audited in both runs count towards "fixed": a node that
// could not be reached, or is gone, has not been fixed. Entries are sorted
// by node, rule, resource.
func Compare(prev, cur *report.Result, prevFile string) *report.Diff {
	d := &report.Diff{PreviousFile: prevFile, PreviousAt: prev.StartedAt, New: []report.DiffEntry{}, Fixed: []report.DiffEntry{},
		Waived: []report.DiffEntry{}, Unwaived: []report.DiffEntry{}, StillFailing: []report.DiffEntry{}, VanishedNodes: []string{}, NewNodes: []string{}}
	pf, pn := findings(prev)
	cf, cn := findings(cur)
	for id, c := range cf {
		p, ok := pf[id]
		switch {
		case !ok && !c.waived:
			d.New = append(d.New, c.entry)
		case !ok:
		case p.waived && !c.waived:
			d.Unwaived = append(d.Unwaived, c.entry)
		case !p.waived && c.waived:
			d.Waived = append(d.Waived, c.entry)
		case !c.waived:
			d.StillFailing = append(d.StillFailing, c.entry)
		}
	}
	for id, p := range pf {
		if _, ok := cf[id]; ok {
			continue
		}
		if cn[p.node] {
			d.Fixed = append(d.Fixed, p.entry)
		}
	}
	for n := range pn {
		if _, ok := cn[n]; !ok {
			d.VanishedNodes = append(d.VanishedNodes, n)
		}
	}
	for n := range cn {
		if _, ok := pn[n]; !ok {
			d.NewNodes = append(d.NewNodes, n)
		}
	}
	sort.Strings(d.VanishedNodes)
	sort.Strings(d.NewNodes)
	for _, l := range [][]report.DiffEntry{d.New, d.Fixed, d.Waived, d.Unwaived, d.StillFailing} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Node != l[j].Node {
				return l[i].Node < l[j].Node
			}
			if l[i].RuleID != l[j].RuleID {
				return l[i].RuleID < l[j].RuleID
			}
			return l[i].Resource < l[j].Resource
		})
	}
	return d
}
