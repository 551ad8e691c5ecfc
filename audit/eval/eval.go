// Package eval checks facts documents against the Rego policies: it loads
// the policies once (embedded, or a --policies directory), reads each rule's
// METADATA into a catalogue, prepares one query over data.esbake.rules, and
// evaluates it per node.
package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/esbake/packer-plugin-elasticsearch/policies"
)

// Stages a rule can run in. Bake rules also run in the builder's bake-time
// gate, on a fresh instance before any boot configuration is applied.
const (
	StageAudit = "audit"
	StageBake  = "bake"
	// StageAll keeps every rule whatever its stages (for catalogues and
	// docs).
	StageAll = "all"
)

// Query is the document every rule package lives under.
const Query = "data.esbake.rules"

// queryRef is Query as a reference, for the packages under it.
var queryRef = ast.MustParseRef(Query)

// checkNames are the rule names whose values are findings.
var checkNames = []string{"deny", "violation"}

// builtins a policy may not call: a policy is a pure function of its input,
// so evaluations are reproducible and never reach the network.
var forbiddenBuiltins = []string{"http.send", "net.lookup_ip_addr"}

var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Options configure New.
type Options struct {
	// FS holds the policies (*.rego at any depth; *_test.rego files are
	// skipped). Default: the embedded policies.
	FS fs.FS
	// Dir is a policy directory (esaudit --policies DIR); it overrides FS.
	Dir string
	// Stage selects the rules to run: StageAudit (default), StageBake, or
	// StageAll.
	Stage string
}

// Rule is one rule of the catalogue, read from its METADATA.
type Rule struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description,omitempty"`
	Severity    string   `json:"severity"`
	Remediation string   `json:"remediation,omitempty"`
	Stages      []string `json:"stages"`
	// Package is the Rego package, such as esbake.rules.network.
	Package string `json:"package"`
}

// Finding is one violation of a rule on a node.
type Finding struct {
	RuleID      string `json:"rule_id"`
	Title       string `json:"title"`
	Severity    string `json:"severity"`
	Message     string `json:"message"`
	Remediation string `json:"remediation,omitempty"`
	// Details are the finding's other fields; by convention "resource"
	// names what the finding is about (a port, a path, a setting).
	Details map[string]any `json:"details,omitempty"`
}

// Engine evaluates one prepared query; it is safe for concurrent use.
type Engine struct {
	stage    string
	rules    []Rule
	byID     map[string]Rule
	packages [][]string // paths under Query of packages with check rules
	query    rego.PreparedEvalQuery
}

// New loads, validates and compiles the policies, and prepares the query.
// Errors name the file and line at fault.
func New(ctx context.Context, opts Options) (*Engine, error) {
	fsys, where := opts.FS, "embedded policies"
	display := func(p string) string { return path.Join("policies", p) }
	switch {
	case opts.Dir != "":
		fi, err := os.Stat(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("policy directory: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("policy directory %s is not a directory: pass the directory that holds the .rego files", opts.Dir)
		}
		fsys, where = os.DirFS(opts.Dir), opts.Dir
		display = func(p string) string { return filepath.Join(opts.Dir, filepath.FromSlash(p)) }
	case fsys == nil:
		fsys = policies.FS
	default:
		where = "policy files"
		display = func(p string) string { return p }
	}
	stage := opts.Stage
	if stage == "" {
		stage = StageAudit
	}
	if stage != StageAudit && stage != StageBake && stage != StageAll {
		return nil, fmt.Errorf("stage %q is not %s, %s or %s", stage, StageAudit, StageBake, StageAll)
	}

	mods, err := loadModules(fsys, display)
	if err != nil {
		return nil, err
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("no .rego policies in %s", where)
	}
	defs, err := readCatalogue(mods)
	if err != nil {
		return nil, err
	}

	e := &Engine{stage: stage, byID: map[string]Rule{}}
	pkgs := map[string][]string{}
	for _, d := range defs {
		if stage != StageAll && !slices.Contains(d.Stages, stage) {
			drop(d.module, d.rule)
			continue
		}
		e.rules = append(e.rules, d.Rule)
		e.byID[d.ID] = d.Rule
		rel := d.module.Package.Path[len(queryRef):]
		key := rel.String()
		if _, ok := pkgs[key]; !ok {
			var p []string
			for _, t := range rel {
				s, _ := t.Value.(ast.String)
				p = append(p, string(s))
			}
			pkgs[key] = p
		}
	}
	sort.Slice(e.rules, func(i, j int) bool { return e.rules[i].ID < e.rules[j].ID })
	keys := make([]string, 0, len(pkgs))
	for k := range pkgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.packages = append(e.packages, pkgs[k])
	}

	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool {
		return slices.Contains(forbiddenBuiltins, b.Name)
	})
	ropts := []func(*rego.Rego){
		rego.Query(Query),
		rego.Capabilities(caps),
		rego.SetRegoVersion(ast.RegoV1),
	}
	for _, m := range mods {
		ropts = append(ropts, rego.ParsedModule(m))
	}
	pq, err := rego.New(ropts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", where, err)
	}
	e.query = pq
	return e, nil
}

// Stage is the stage the engine's rules were selected for.
func (e *Engine) Stage() string { return e.stage }

// Catalogue lists the engine's rules, sorted by id.
func (e *Engine) Catalogue() []Rule {
	out := make([]Rule, len(e.rules))
	for i, r := range e.rules {
		r.Stages = slices.Clone(r.Stages)
		out[i] = r
	}
	return out
}

// Rule returns the catalogue entry of a rule id.
func (e *Engine) Rule(id string) (Rule, bool) {
	r, ok := e.byID[id]
	return r, ok
}

// Evaluate checks one node. Findings are sorted by severity (most severe
// first), then rule id and message.
func (e *Engine) Evaluate(ctx context.Context, in Input) ([]Finding, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode policy input: %w", err)
	}
	v, err := ast.ValueFromReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("convert policy input: %w", err)
	}
	return e.evaluate(ctx, v)
}

// EvaluateJSON checks a raw input document (the same shape as Input), as
// `opa eval -i` would; for tools and benchmarks that hold JSON already.
func (e *Engine) EvaluateJSON(ctx context.Context, input []byte) ([]Finding, error) {
	v, err := ast.ValueFromReader(bytes.NewReader(input))
	if err != nil {
		return nil, fmt.Errorf("policy input is not JSON: %w", err)
	}
	return e.evaluate(ctx, v)
}

func (e *Engine) evaluate(ctx context.Context, input ast.Value) ([]Finding, error) {
	rs, err := e.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, fmt.Errorf("evaluate policies: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	root := rs[0].Expressions[0].Value
	var out []Finding
	for _, pkg := range e.packages {
		doc, ok := lookup(root, pkg)
		if !ok {
			continue
		}
		pkgName := strings.Join(append([]string{"esbake", "rules"}, pkg...), ".")
		for _, name := range checkNames {
			raw, ok := doc[name]
			if !ok {
				continue
			}
			items, ok := raw.([]any)
			if !ok {
				return nil, fmt.Errorf("package %s: %s is %s, not a set of findings: write `%s contains finding if { ... }`", pkgName, name, kind(raw), name)
			}
			for _, it := range items {
				f, err := e.finding(pkgName, it)
				if err != nil {
					return nil, err
				}
				out = append(out, f)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := SeverityRank(a.Severity), SeverityRank(b.Severity); ra != rb {
			return ra > rb
		}
		if a.RuleID != b.RuleID {
			return a.RuleID < b.RuleID
		}
		return a.Message < b.Message
	})
	return out, nil
}

func lookup(v any, p []string) (map[string]any, bool) {
	for _, k := range p {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		v = m[k]
	}
	m, ok := v.(map[string]any)
	return m, ok
}

func (e *Engine) finding(pkg string, item any) (Finding, error) {
	obj, ok := item.(map[string]any)
	if !ok {
		return Finding{}, fmt.Errorf("package %s: a finding is %s (%v), not an object with id and msg", pkg, kind(item), item)
	}
	id, _ := obj["id"].(string)
	r, ok := e.byID[id]
	if !ok {
		return Finding{}, fmt.Errorf("package %s: finding %v has id %q, which no rule's METADATA declares: set \"id\": rego.metadata.rule().custom.id", pkg, obj, id)
	}
	msg, _ := obj["msg"].(string)
	if msg == "" {
		msg = r.Title
	}
	var details map[string]any
	for k, v := range obj {
		if k == "id" || k == "msg" {
			continue
		}
		if details == nil {
			details = map[string]any{}
		}
		details[k] = plain(v)
	}
	return Finding{RuleID: r.ID, Title: r.Title, Severity: r.Severity, Message: msg, Remediation: r.Remediation, Details: details}, nil
}

// plain turns OPA's json.Number values into int64 or float64, so details
// compare and print as ordinary Go values.
func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case []any:
		out := make([]any, len(x))
		for i, y := range x {
			out[i] = plain(y)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, y := range x {
			out[k] = plain(y)
		}
		return out
	}
	return v
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "a set or array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// ---- loading and metadata ----

func loadModules(fsys fs.FS, display func(string) string) ([]*ast.Module, error) {
	var mods []*ast.Module
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read policies at %s: %w", display(p), err)
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("read policy %s: %w", display(p), err)
		}
		m, err := ast.ParseModuleWithOpts(display(p), string(src), ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
		if err != nil {
			return fmt.Errorf("policy %s does not parse (policies are Rego v1; `opa fmt --v0-v1` converts older ones): %w", display(p), err)
		}
		mods = append(mods, m)
		return nil
	})
	return mods, err
}

type ruleDef struct {
	Rule
	module *ast.Module
	rule   *ast.Rule
}

// readCatalogue finds every check rule (deny or violation) and reads its
// METADATA; a check rule without an id, title or known severity, a
// duplicate id or an unknown stage is an error naming file and line.
func readCatalogue(mods []*ast.Module) ([]ruleDef, error) {
	var defs []ruleDef
	var errs []error
	seen := map[string]string{}
	for _, m := range mods {
		for _, r := range m.Rules {
			name, ok := r.Head.Ref()[0].Value.(ast.Var)
			if !ok || !slices.Contains(checkNames, string(name)) {
				continue
			}
			loc := location(r.Location)
			if !m.Package.Path.HasPrefix(queryRef) || len(m.Package.Path) <= len(queryRef) {
				errs = append(errs, fmt.Errorf("%s: rule %s is in package %s, which is not under %s, so it would never run: rename the package", loc, name, pkgString(m), Query))
				continue
			}
			a := ruleAnnotation(r)
			if a == nil {
				errs = append(errs, fmt.Errorf("%s: rule %s in package %s has no # METADATA block: give it title and custom id, severity, remediation, stage", loc, name, pkgString(m)))
				continue
			}
			d := ruleDef{module: m, rule: r, Rule: Rule{
				Title:       strings.TrimSpace(a.Title),
				Description: strings.TrimSpace(a.Description),
				Package:     pkgString(m),
			}}
			var problems []string
			d.ID, _ = a.Custom["id"].(string)
			d.Severity, _ = a.Custom["severity"].(string)
			d.Remediation, _ = a.Custom["remediation"].(string)
			d.Remediation = strings.TrimSpace(d.Remediation)
			switch {
			case d.ID == "":
				problems = append(problems, "custom.id is missing")
			case !idRe.MatchString(d.ID):
				problems = append(problems, fmt.Sprintf("custom.id %q is not a word such as ES-NET-001", d.ID))
			}
			if d.Title == "" {
				problems = append(problems, "title is missing")
			}
			if !ValidSeverity(d.Severity) {
				problems = append(problems, fmt.Sprintf("custom.severity %q is not one of %s", d.Severity, strings.Join(Severities, ", ")))
			}
			stages, err := readStages(a.Custom)
			if err != nil {
				problems = append(problems, err.Error())
			}
			d.Stages = stages
			if len(problems) > 0 {
				errs = append(errs, fmt.Errorf("%s: METADATA of rule %s (%s): %s", loc, name, pkgString(m), strings.Join(problems, "; ")))
				continue
			}
			if prev, ok := seen[d.ID]; ok {
				errs = append(errs, fmt.Errorf("%s: rule id %s is already used at %s: ids must be unique", loc, d.ID, prev))
				continue
			}
			seen[d.ID] = loc
			defs = append(defs, d)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("policy metadata: %w", errors.Join(errs...))
	}
	return defs, nil
}

// ruleAnnotation is the rule-scoped METADATA block closest above r.
func ruleAnnotation(r *ast.Rule) *ast.Annotations {
	var best *ast.Annotations
	for _, a := range r.Annotations {
		if a.Scope != "rule" || a.Location == nil || a.Location.Row >= r.Location.Row {
			continue
		}
		if best == nil || a.Location.Row > best.Location.Row {
			best = a
		}
	}
	return best
}

func readStages(custom map[string]any) ([]string, error) {
	raw, ok := custom["stage"]
	if !ok {
		raw, ok = custom["stages"]
	}
	if !ok {
		return []string{StageAudit}, nil
	}
	var list []any
	switch x := raw.(type) {
	case string:
		list = []any{x}
	case []any:
		list = x
	default:
		return nil, fmt.Errorf("custom.stage is %v, not a list of %s and %s", raw, StageBake, StageAudit)
	}
	var out []string
	for _, s := range list {
		str, _ := s.(string)
		if str != StageBake && str != StageAudit {
			return nil, fmt.Errorf("custom.stage %v is not %s or %s", s, StageBake, StageAudit)
		}
		if !slices.Contains(out, str) {
			out = append(out, str)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("custom.stage is empty: list bake, audit or both")
	}
	// Catalogue order: bake before audit, as they happen.
	sort.Slice(out, func(i, j int) bool { return out[i] == StageBake && out[j] != StageBake })
	return out, nil
}

// drop removes a rule, its METADATA and the comments that hold it from its
// module, for stage filtering: the rule is then neither compiled nor
// evaluated. (The compiler re-reads annotations from comments when a
// module has none left, so the comments must go too.)
func drop(m *ast.Module, r *ast.Rule) {
	m.Rules = slices.DeleteFunc(m.Rules, func(x *ast.Rule) bool { return x == r })
	own := ruleAnnotation(r)
	if own == nil {
		return
	}
	same := func(l *ast.Location) bool { return l != nil && l.File == own.Location.File }
	m.Annotations = slices.DeleteFunc(m.Annotations, func(a *ast.Annotations) bool {
		return a.Scope == "rule" && same(a.Location) && a.Location.Row == own.Location.Row
	})
	m.Comments = slices.DeleteFunc(m.Comments, func(c *ast.Comment) bool {
		return same(c.Location) && c.Location.Row >= own.Location.Row && c.Location.Row < r.Location.Row
	})
}

func pkgString(m *ast.Module) string {
	return strings.TrimPrefix(m.Package.Path.String(), "data.")
}

func location(l *ast.Location) string {
	if l == nil {
		return "?"
	}
	return fmt.Sprintf("%s:%d", l.File, l.Row)
}
