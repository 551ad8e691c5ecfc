package eval

// Severities are the known severities, lowest first.
var Severities = []string{"low", "medium", "high", "critical"}

// SeverityRank is the position of s in Severities, or -1 when unknown.
func SeverityRank(s string) int {
	for i, v := range Severities {
		if v == s {
			return i
		}
	}
	return -1
}

// ValidSeverity reports whether s is a known severity.
func ValidSeverity(s string) bool { return SeverityRank(s) >= 0 }

// SeverityAtLeast reports whether s is min or more severe. Unknown values
// (either one) never satisfy it, so a typo cannot silently pass a gate:
// validate --fail-on with ValidSeverity first.
func SeverityAtLeast(s, min string) bool {
	r, m := SeverityRank(s), SeverityRank(min)
	return r >= 0 && m >= 0 && r >= m
}
