// Package eval checks facts documents against the Rego policies: it loads
// the policies once (embedded, or a --policies directory), reads each rule's
// METADATA into a catalogue, prepares one query over the rules' deny and
// violation sets (OPA's prepare once, evaluate many), and
// evaluates it per node.
package eval

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

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
	// Sources, when set, replace FS and Dir: several policy sets merged
	// into one (esaudit: the built-ins plus each --policies DIR). Rule ids
	// must stay unique across them.
	Sources []Source
	// keepMetadataCalls leaves rego.metadata.rule().custom.id to OPA
	// (the equivalence tests compare both ways).
	keepMetadataCalls bool
	// Rules and Packages keep only matching rules (globs on the id and the
	// package, e.g. ES-NET-* or esbake.rules.network); SkipRules and
	// SkipPackages drop matching ones. A pattern that matches no rule is
	// an error, so a typo never silently runs nothing.
	Rules, SkipRules, Packages, SkipPackages []string
}

// Source is one set of policy files.
type Source struct {
	// Name shows where a file came from in messages ("policies" for the
	// built-ins, the directory otherwise).
	Name string
	FS   fs.FS
}

// BuiltinSource is the embedded policy set.
func BuiltinSource() Source { return Source{Name: "policies", FS: policies.FS} }

// DirSource is a policy directory, checked to exist.
func DirSource(dir string) (Source, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return Source{}, fmt.Errorf("policy directory: %w", err)
	}
	if !fi.IsDir() {
		return Source{}, fmt.Errorf("policy directory %s is not a directory: pass the directory that holds the .rego files", dir)
	}
	return Source{Name: dir, FS: os.DirFS(dir)}, nil
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
	// Requires are the facts the rule needs (METADATA custom.requires):
	// fact names as in facts.errors ("elasticsearch.yml", "firewall"),
	// "node.security_groups", "probes", "probes.es_api" or
	// "probes.snapshot_policies". Without one the rule is not evaluated.
	Requires []string `json:"requires,omitempty"`
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
	stage  string
	rules  []Rule
	byID   map[string]Rule
	checks []check // the finding sets the query reads, one binding each
	query  rego.PreparedEvalQuery
	digest string
	// regoFirewall leaves input.derived out, so the policies judge the
	// firewall rules themselves (the equivalence tests compare both).
	regoFirewall bool
}

// Digest is "sha256:<hex>" over every policy file loaded (name and
// content, tests excluded), so a report records which rules judged it.
func (e *Engine) Digest() string { return e.digest }

// New loads, validates and compiles the policies, and prepares the query.
// Errors name the file and line at fault.
func New(ctx context.Context, opts Options) (*Engine, error) {
	stage := opts.Stage
	if stage == "" {
		stage = StageAudit
	}
	if stage != StageAudit && stage != StageBake && stage != StageAll {
		return nil, fmt.Errorf("stage %q is not %s, %s or %s", stage, StageAudit, StageBake, StageAll)
	}
	srcs, where, err := opts.sources()
	if err != nil {
		return nil, err
	}
	var mods []*ast.Module
	digest := sha256.New()
	for _, src := range srcs {
		ms, err := loadModules(src, false, digest)
		if err != nil {
			return nil, err
		}
		mods = append(mods, ms...)
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("no .rego policies in %s", where)
	}
	defs, err := readCatalogue(mods)
	if err != nil {
		return nil, err
	}

	e := &Engine{stage: stage, byID: map[string]Rule{}, digest: "sha256:" + hex.EncodeToString(digest.Sum(nil))}
	checks := map[string]check{}
	if err := checkPatterns(defs, opts); err != nil {
		return nil, err
	}
	for _, d := range defs {
		if stage != StageAll && !slices.Contains(d.Stages, stage) || !opts.selects(d.Rule) {
			drop(d.module, d.rule)
			continue
		}
		e.rules = append(e.rules, d.Rule)
		e.byID[d.ID] = d.Rule
		if !opts.keepMetadataCalls {
			inlineRuleID(d.rule, d.ID)
		}
		name := string(d.rule.Head.Ref()[0].Value.(ast.Var))
		ref := d.module.Package.Path.Copy().Append(ast.StringTerm(name))
		if _, ok := checks[ref.String()]; !ok {
			checks[ref.String()] = check{pkg: pkgString(d.module), name: name, ref: ref}
		}
	}
	sort.Slice(e.rules, func(i, j int) bool { return e.rules[i].ID < e.rules[j].ID })
	for _, c := range checks {
		e.checks = append(e.checks, c)
	}
	sort.Slice(e.checks, func(i, j int) bool { return e.checks[i].ref.String() < e.checks[j].ref.String() })
	// Query only the finding sets, not every document under Query: helper
	// values in rule packages are then evaluated only when a rule needs them.
	query := "true"
	if len(e.checks) > 0 {
		var exprs []string
		for i, c := range e.checks {
			exprs = append(exprs, fmt.Sprintf("%s = %s", checkVar(i), c.ref))
		}
		query = strings.Join(exprs, "; ")
	}

	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool {
		return slices.Contains(forbiddenBuiltins, b.Name)
	})
	ropts := []func(*rego.Rego){
		rego.Query(query),
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
		r.Requires = slices.Clone(r.Requires)
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
	buf := encodeBuffers.Get().(*bytes.Buffer)
	defer encodeBuffers.Put(buf)
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(in); err != nil {
		return nil, fmt.Errorf("encode policy input: %w", err)
	}
	// The parsed value keeps none of buf's bytes.
	v, err := parseInput(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("convert policy input: %w", err)
	}
	return e.evaluate(ctx, v)
}

// encodeBuffers hold the JSON of an input between encoding and parsing.
var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// EvaluateJSON checks a raw input document (the same shape as Input), as
// `opa eval -i` would; for tools and benchmarks that hold JSON already.
func (e *Engine) EvaluateJSON(ctx context.Context, input []byte) ([]Finding, error) {
	v, err := parseInput(input)
	if err != nil {
		return nil, fmt.Errorf("policy input is not JSON: %w", err)
	}
	return e.evaluate(ctx, v)
}

func (e *Engine) evaluate(ctx context.Context, input ast.Value) ([]Finding, error) {
	if !e.regoFirewall {
		input = withDerived(input)
	}
	// OPA would start a goroutine per evaluation to watch ctx; a callback
	// registered on ctx cancels the same way without one.
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()
	rs, err := e.query.Eval(ctx, rego.EvalParsedInput(input), rego.EvalExternalCancel(cancel))
	if err != nil {
		return nil, fmt.Errorf("evaluate policies: %w", err)
	}
	if len(rs) == 0 || len(e.checks) == 0 {
		return nil, nil
	}
	var out []Finding
	for i, c := range e.checks {
		raw, ok := rs[0].Bindings[checkVar(i)]
		if !ok {
			continue
		}
		items, ok := raw.([]any)
		if !ok {
			return nil, fmt.Errorf("package %s: %s is %s, not a set of findings: write `%s contains finding if { ... }`", c.pkg, c.name, kind(raw), c.name)
		}
		for _, it := range items {
			f, err := e.finding(c.pkg, it)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
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

// check is one finding set: rule name name (deny or violation) in package
// pkg, read through ref.
type check struct {
	pkg, name string
	ref       ast.Ref
}

func checkVar(i int) string { return fmt.Sprintf("check%d", i) }

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

// loadModules parses a source's .rego files (tests only when tests is
// set), hashing name and content of the policy files into digest.
func loadModules(src Source, tests bool, digest hash.Hash) ([]*ast.Module, error) {
	display := func(p string) string {
		if src.Name == "" {
			return p
		}
		if src.Name == "policies" {
			return path.Join("policies", p)
		}
		return filepath.Join(src.Name, filepath.FromSlash(p))
	}
	var mods []*ast.Module
	err := fs.WalkDir(src.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read policies at %s: %w", display(p), err)
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		isTest := strings.HasSuffix(p, "_test.rego")
		if !strings.HasSuffix(p, ".rego") || isTest && !tests {
			return nil
		}
		b, err := fs.ReadFile(src.FS, p)
		if err != nil {
			return fmt.Errorf("read policy %s: %w", display(p), err)
		}
		if digest != nil && !isTest {
			fmt.Fprintf(digest, "%s\x00%d\x00", display(p), len(b))
			digest.Write(b)
		}
		m, err := ast.ParseModuleWithOpts(display(p), string(b), ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
		if err != nil {
			return fmt.Errorf("policy %s does not parse (policies are Rego v1; `opa fmt --v0-v1` converts older ones): %w", display(p), err)
		}
		mods = append(mods, m)
		return nil
	})
	return mods, err
}

// sources resolves Sources, Dir and FS into the policy sets to load, and
// a description for messages.
func (o Options) sources() ([]Source, string, error) {
	switch {
	case len(o.Sources) > 0:
		var names []string
		for _, s := range o.Sources {
			names = append(names, s.Name)
		}
		return o.Sources, strings.Join(names, " + "), nil
	case o.Dir != "":
		s, err := DirSource(o.Dir)
		if err != nil {
			return nil, "", err
		}
		return []Source{s}, o.Dir, nil
	case o.FS == nil:
		return []Source{BuiltinSource()}, "embedded policies", nil
	}
	return []Source{{FS: o.FS}}, "policy files", nil
}

// selects applies the rule and package include/exclude globs.
func (o Options) selects(r Rule) bool {
	if len(o.Rules) > 0 && !matchAny(o.Rules, r.ID) {
		return false
	}
	if len(o.Packages) > 0 && !matchAny(o.Packages, r.Package) {
		return false
	}
	return !matchAny(o.SkipRules, r.ID) && !matchAny(o.SkipPackages, r.Package)
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok || p == s {
			return true
		}
	}
	return false
}

// checkPatterns refuses include/exclude patterns that match no rule.
func checkPatterns(defs []ruleDef, o Options) error {
	var errs []string
	for _, set := range []struct {
		flag     string
		patterns []string
		pkg      bool
	}{{"--rule", o.Rules, false}, {"--skip-rule", o.SkipRules, false}, {"--package", o.Packages, true}, {"--skip-package", o.SkipPackages, true}} {
		for _, p := range set.patterns {
			if _, err := path.Match(p, ""); err != nil {
				errs = append(errs, fmt.Sprintf("%s %q is not a valid glob: %v", set.flag, p, err))
				continue
			}
			found := false
			for _, d := range defs {
				v := d.ID
				if set.pkg {
					v = d.Package
				}
				if matchAny([]string{p}, v) {
					found = true
					break
				}
			}
			if !found {
				what := "rule id"
				if set.pkg {
					what = "package"
				}
				errs = append(errs, fmt.Sprintf("%s %q matches no %s of the loaded policies (see `esaudit policies`)", set.flag, p, what))
			}
		}
	}
	if len(errs) > 0 {
		return &SelectionError{Msg: strings.Join(errs, "; ")}
	}
	return nil
}

// SelectionError is a rule or package pattern that selects nothing: a
// usage mistake, not a broken policy.
type SelectionError struct{ Msg string }

func (e *SelectionError) Error() string { return e.Msg }

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
			reqs, err := readRequires(a.Custom)
			if err != nil {
				problems = append(problems, err.Error())
			}
			d.Requires = reqs
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

// inlineRuleID replaces rego.metadata.rule().custom.id in a check rule
// with its id, read from the same METADATA block. OPA evaluates a rule's
// metadata call first in its body, building the whole annotation object on
// every evaluation, findings or not (~35 per document, ~6 % of an
// evaluation); the policies keep the call, so opa and conftest read the id
// as before.
func inlineRuleID(r *ast.Rule, id string) {
	ast.NewGenericVisitor(func(x any) bool {
		t, ok := x.(*ast.Term)
		if !ok {
			return false
		}
		if isMetadataRuleID(t.Value) {
			t.Value = ast.String(id)
			return true
		}
		return false
	}).Walk(r)
}

// isMetadataRuleID: v is the reference rego.metadata.rule().custom.id.
func isMetadataRuleID(v ast.Value) bool {
	ref, ok := v.(ast.Ref)
	if !ok || len(ref) != 3 || !ref[1].Equal(ast.StringTerm("custom")) || !ref[2].Equal(ast.StringTerm("id")) {
		return false
	}
	call, ok := ref[0].Value.(ast.Call)
	return ok && len(call) == 1 && call[0].Value.Compare(ast.RegoMetadataRule.Ref()) == 0
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

func readRequires(custom map[string]any) ([]string, error) {
	raw, ok := custom["requires"]
	if !ok {
		return nil, nil
	}
	var list []any
	switch x := raw.(type) {
	case string:
		list = []any{x}
	case []any:
		list = x
	default:
		return nil, fmt.Errorf("custom.requires is %v, not a list of fact names", raw)
	}
	var out []string
	for _, v := range list {
		s, ok := v.(string)
		if !ok || strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("custom.requires entry %v is not a fact name such as elasticsearch.yml or node.security_groups", v)
		}
		out = append(out, strings.TrimSpace(s))
	}
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

var builtinIDs = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	mods, err := loadModules(BuiltinSource(), false, nil)
	if err != nil {
		return out
	}
	defs, err := readCatalogue(mods)
	if err != nil {
		return out
	}
	for _, d := range defs {
		out[d.ID] = true
	}
	return out
})

// IsBuiltin reports whether id is a rule of the embedded policies.
func IsBuiltin(id string) bool { return builtinIDs()[id] }
