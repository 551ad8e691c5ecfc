// Package ghsarif checks a SARIF log against what GitHub code scanning
// accepts on upload, beyond the SARIF 2.1.0 schema. The rules are written
// down from GitHub's documentation page "SARIF support for code scanning"
// (docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning),
// sections "Supported SARIF output file properties" (required properties of
// sarifLog, run, reportingDescriptor, result, location, physicalLocation,
// region) and "Validating your SARIF file" / "Upload limits" (limits per
// file), and from the GitHub rules (GH1001-GH1007) of Microsoft's SARIF
// validator (microsoft/sarif-sdk, Sarif.Multitool.Library/Rules). Test
// infrastructure only.
package ghsarif

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Limits from "Upload limits" of the GitHub page.
const (
	MaxRuns               = 20
	MaxResultsPerRun      = 25000
	MaxRulesPerRun        = 25000
	MaxLocationsPerResult = 1000
	MaxTagsPerRule        = 20
)

type log struct {
	Schema  *string `json:"$schema"`
	Version string  `json:"version"`
	Runs    []run   `json:"runs"`
}

type run struct {
	Tool struct {
		Driver *struct {
			Name           string `json:"name"`
			InformationURI string `json:"informationUri"`
			Rules          []rule `json:"rules"`
		} `json:"driver"`
	} `json:"tool"`
	Results           *[]result `json:"results"`
	AutomationDetails *struct {
		ID string `json:"id"`
	} `json:"automationDetails"`
}

type rule struct {
	ID         string         `json:"id"`
	HelpURI    string         `json:"helpUri"`
	Properties map[string]any `json:"properties"`
}

type result struct {
	RuleID    string `json:"ruleId"`
	RuleIndex *int   `json:"ruleIndex"`
	Message   struct {
		Text string `json:"text"`
	} `json:"message"`
	Locations []struct {
		PhysicalLocation *struct {
			ArtifactLocation *struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
			Region *struct {
				StartLine int `json:"startLine"`
			} `json:"region"`
		} `json:"physicalLocation"`
	} `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
}

// Check returns every violation of GitHub's ingestion rules in data; an
// empty list means code scanning accepts the file.
func Check(data []byte) []string {
	var l log
	if err := json.Unmarshal(data, &l); err != nil {
		return []string{"not a SARIF JSON document: " + err.Error()}
	}
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if l.Version != "2.1.0" {
		bad("version is %q: code scanning accepts SARIF 2.1.0 only", l.Version)
	}
	if l.Schema == nil || *l.Schema == "" {
		bad("$schema is missing")
	}
	if len(l.Runs) == 0 || len(l.Runs) > MaxRuns {
		bad("%d runs: a file holds 1 to %d", len(l.Runs), MaxRuns)
	}
	for ri, r := range l.Runs {
		at := fmt.Sprintf("runs[%d]", ri)
		if r.Tool.Driver == nil || strings.TrimSpace(r.Tool.Driver.Name) == "" {
			bad("%s.tool.driver.name is required", at)
			continue
		}
		d := r.Tool.Driver
		if d.InformationURI != "" && !absolute(d.InformationURI) {
			bad("%s.tool.driver.informationUri %q is not an absolute URI", at, d.InformationURI)
		}
		if len(d.Rules) > MaxRulesPerRun {
			bad("%s: %d rules, at most %d", at, len(d.Rules), MaxRulesPerRun)
		}
		ids := map[string]int{}
		for i, ru := range d.Rules {
			rat := fmt.Sprintf("%s.tool.driver.rules[%d]", at, i)
			if ru.ID == "" {
				bad("%s.id is required", rat)
			}
			if _, dup := ids[ru.ID]; dup {
				bad("%s.id %q is not unique", rat, ru.ID)
			}
			ids[ru.ID] = i
			if ru.HelpURI != "" && !absolute(ru.HelpURI) {
				bad("%s.helpUri %q is not an absolute URI", rat, ru.HelpURI)
			}
			if tags, ok := ru.Properties["tags"].([]any); ok && len(tags) > MaxTagsPerRule {
				bad("%s: %d tags, at most %d", rat, len(tags), MaxTagsPerRule)
			}
			if v, ok := ru.Properties["security-severity"]; ok {
				s, isStr := v.(string)
				f, err := strconv.ParseFloat(s, 64)
				if !isStr || err != nil || f < 0 || f > 10 {
					bad("%s.properties.security-severity %v: a string holding a number from 0.0 to 10.0", rat, v)
				}
			}
		}
		if r.Results == nil {
			bad("%s.results is required (an empty list when nothing was found)", at)
			continue
		}
		if len(*r.Results) > MaxResultsPerRun {
			bad("%s: %d results, at most %d", at, len(*r.Results), MaxResultsPerRun)
		}
		if r.AutomationDetails != nil && strings.TrimSpace(r.AutomationDetails.ID) == "" {
			bad("%s.automationDetails.id is empty", at)
		}
		for i, res := range *r.Results {
			rat := fmt.Sprintf("%s.results[%d]", at, i)
			if res.RuleID == "" {
				bad("%s.ruleId is required", rat)
			} else if _, ok := ids[res.RuleID]; !ok {
				bad("%s.ruleId %q names no rule of the driver", rat, res.RuleID)
			}
			if res.RuleIndex != nil && (*res.RuleIndex < 0 || *res.RuleIndex >= len(d.Rules) || d.Rules[*res.RuleIndex].ID != res.RuleID) {
				bad("%s.ruleIndex %d does not point at rule %q", rat, *res.RuleIndex, res.RuleID)
			}
			if strings.TrimSpace(res.Message.Text) == "" {
				bad("%s.message.text is required", rat)
			}
			if len(res.Locations) == 0 || len(res.Locations) > MaxLocationsPerResult {
				bad("%s: %d locations: at least one is required (GitHub rejects the file otherwise), at most %d", rat, len(res.Locations), MaxLocationsPerResult)
			}
			for li, loc := range res.Locations {
				lat := fmt.Sprintf("%s.locations[%d]", rat, li)
				pl := loc.PhysicalLocation
				if pl == nil || pl.ArtifactLocation == nil || pl.ArtifactLocation.URI == "" {
					bad("%s.physicalLocation.artifactLocation.uri is required", lat)
					continue
				}
				if msg := repoURI(pl.ArtifactLocation.URI); msg != "" {
					bad("%s.physicalLocation.artifactLocation.uri %q: %s", lat, pl.ArtifactLocation.URI, msg)
				}
				if pl.Region == nil || pl.Region.StartLine < 1 {
					bad("%s.physicalLocation.region.startLine is required (>= 1)", lat)
				}
			}
			if len(res.PartialFingerprints) == 0 {
				bad("%s.partialFingerprints: without them alerts cannot be tracked across uploads (the upload action can only compute them from repository files)", rat)
			}
			for k, v := range res.PartialFingerprints {
				if v == "" {
					bad("%s.partialFingerprints[%q] is empty", rat, k)
				}
			}
		}
	}
	return errs
}

// repoURI explains why u is not a relative, percent-encoded path in the
// repository ("" when it is). RFC 3986 path characters only: unreserved,
// sub-delims, ":", "@", "/" and %XX escapes.
func repoURI(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "not a URI: " + err.Error()
	}
	if p.Scheme != "" || p.Host != "" || strings.HasPrefix(u, "/") {
		return "not relative to the repository root"
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case c == '%':
			if i+2 >= len(u) || !ishex(u[i+1]) || !ishex(u[i+2]) {
				return "a % that starts no %XX escape"
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		default:
			return fmt.Sprintf("character %q must be percent-encoded", c)
		}
	}
	for _, seg := range strings.Split(p.Path, "/") {
		if seg == ".." {
			return "climbs out of the repository"
		}
	}
	return ""
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func absolute(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Scheme != "" && p.Host != ""
}
