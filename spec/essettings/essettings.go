// Package essettings is the table of node settings each supported
// Elasticsearch major registers, kept as data (data/es-<line>.json, each
// citing the Elastic source classes and docs pages it was read from).
//
// Elasticsearch refuses to start when elasticsearch.yml holds a key it does
// not register (AbstractScopedSettings.validate), so a typo, a setting of
// another major (discovery.zen.* on 8.x, cluster.initial_master_nodes on
// 6.x) or a keystore-only setting in the file stops the node at its next
// start. The stand-in Elasticsearch refuses the same keys from Table.JSON,
// and esaudit flags them.
package essettings

import (
	"embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

//go:embed data/*.json
var data embed.FS

// Prefix is a group or affix setting family, such as node.attr.: every key
// under it is registered.
type Prefix struct {
	Prefix string `json:"prefix"`
	Source string `json:"source"`
}

// Table is the settings one Elasticsearch major registers.
type Table struct {
	Major int    `json:"major"`
	Line  string `json:"line"`
	// Version is the release the table was asked for ("" for the file alone).
	Version  string   `json:"version,omitempty"`
	Note     string   `json:"note"`
	Sources  []string `json:"sources"`
	Keys     []string `json:"keys"`
	Prefixes []Prefix `json:"prefixes"`
	// Secure settings are registered but live in the keystore only.
	Secure []string `json:"secure"`
	// Removed explains keys (or prefixes ending in ".") that another major
	// registers and this one refuses, for a message that says what to use.
	Removed map[string]string `json:"removed"`

	keys, secure map[string]bool
}

// fileFor maps a major to its data file; 9.x registers the same node
// settings as 8.x (its breaking changes remove none of the keys listed).
var fileFor = map[int]string{6: "es-6.8.json", 7: "es-7.17.json", 8: "es-8.json", 9: "es-8.json"}

// For returns the table of the release's major.
func For(v spec.Version) (*Table, error) {
	if !v.Supported() {
		return nil, fmt.Errorf("no settings table for Elasticsearch %s: supported lines are %s", v, spec.SupportedLines)
	}
	b, err := data.ReadFile("data/" + fileFor[v.Major])
	if err != nil {
		return nil, fmt.Errorf("settings table for Elasticsearch %s: %w", v, err)
	}
	t, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("settings table %s: %w", fileFor[v.Major], err)
	}
	t.Major, t.Version = v.Major, v.String()
	if v.Major == 9 {
		t.Line = "9.x"
	}
	return t, nil
}

func parse(b []byte) (*Table, error) {
	t := &Table{}
	if err := json.Unmarshal(b, t); err != nil {
		return nil, err
	}
	t.keys = make(map[string]bool, len(t.Keys))
	for _, k := range t.Keys {
		t.keys[k] = true
	}
	t.secure = make(map[string]bool, len(t.Secure))
	for _, k := range t.Secure {
		t.secure[k] = true
	}
	return t, nil
}

// Registered reports whether Elasticsearch registers the key, in
// elasticsearch.yml or (for secure settings) in the keystore.
func (t *Table) Registered(key string) bool {
	if t.keys[key] || t.secure[key] {
		return true
	}
	for _, p := range t.Prefixes {
		if strings.HasPrefix(key, p.Prefix) && ValidAffixName(key[len(p.Prefix):]) {
			return true
		}
	}
	return false
}

// IsSecure reports whether the key is a secure setting, which Elasticsearch
// reads from the keystore only.
func (t *Table) IsSecure(key string) bool { return t.secure[key] }

// CheckFile returns the error Elasticsearch stops with when the key is in
// elasticsearch.yml, or nil; the wording is Elastic's (AbstractScopedSettings
// and SecureSetting), followed by what to do.
func (t *Table) CheckFile(key string) error {
	if t.secure[key] {
		return fmt.Errorf("setting [%s] is a secure setting and must be stored inside the Elasticsearch keystore, but was found inside elasticsearch.yml", key)
	}
	if t.Registered(key) {
		return nil
	}
	msg := fmt.Sprintf("unknown setting [%s] please check that any required plugins are installed, or check the breaking changes documentation for removed settings", key)
	if why := t.removedHint(key); why != "" {
		msg += " (Elasticsearch " + t.Line + ": " + why + ")"
	}
	return fmt.Errorf("%s", msg)
}

func (t *Table) removedHint(key string) string {
	if why, ok := t.Removed[key]; ok {
		return why
	}
	best := ""
	for k := range t.Removed {
		if strings.HasSuffix(k, ".") && strings.HasPrefix(key, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return ""
	}
	return t.Removed[best]
}

// Unknown returns the keys of an elasticsearch.yml that Elasticsearch would
// refuse (unregistered or keystore-only), sorted.
func (t *Table) Unknown(keys []string) []string {
	var out []string
	for _, k := range keys {
		if t.CheckFile(k) != nil {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// JSON is the table as the stand-in Elasticsearch reads it: the data file
// with major, line and version filled in.
func (t *Table) JSON() ([]byte, error) {
	c := *t
	c.Keys = make([]string, 0, len(t.keys))
	for k := range t.keys {
		c.Keys = append(c.Keys, k)
	}
	sort.Strings(c.Keys)
	return json.MarshalIndent(&c, "", " ")
}

// affixNamePattern is what Setting.AffixKey accepts after a prefix: ASCII
// [-\w]+ segments joined by dots (so discovery.ec2.tag.es:cluster is refused).
var affixNamePattern = regexp.MustCompile(`^(?:[-\w]+\.)*[-\w]+$`)

// ValidAffixName reports whether name can follow a prefix setting such as
// discovery.ec2.tag. (Setting.AffixKey accepts ASCII [-\w]+ segments).
func ValidAffixName(name string) bool { return affixNamePattern.MatchString(name) }
