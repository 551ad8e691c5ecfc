package spec

import (
	"regexp"
	"strings"
	"testing"
)

func TestCheckCORSOrigin(t *testing.T) {
	for value, refusal := range map[string]string{
		// Accepted: literal lists and patterns spelled to one's own domains.
		"":                        "",
		"https://app.example.com": "",
		"https://app.example.com, https://admin.example.com": "",
		`/https?:\/\/app\.example\.com/`:                     "",
		`/https:\/\/(app|admin)\.example\.com(:[0-9]+)?/`:    "",
		`/https:\/\/.*\.example\.com/`:                       "",
		`/https:\/\/[a-z0-9-]+\.apps\.example\.co\.uk/`:      "",
		`/(?i)https:\/\/app\.example\.com/`:                  "",
		`/http:\/\/10\.0\.[0-9]{1,3}\.[0-9]{1,3}:5000/`:      "",
		`/https:\/\/app\.example\.com:.*/`:                   "",
		// Everything, as before.
		"*":               "every web origin",
		" * ":             "every web origin",
		"/.*/":            "admits",
		"/^.*$/":          "admits",
		`/https?:\/\/.*/`: "admits",
		// Java syntax Go cannot compile or reads differently: fail closed.
		"/.*+/":                   "possessive",
		`/https:\/\/a\.com|.++/`:  "possessive",
		"/(/":                     "does not compile",
		`/[a-z&&[^x]]+/`:          "character class",
		`/(?=x)https:\/\/a\.com/`: "group or flag",
		`/\Qhttps://a.com\E/`:     "escape",
		`/https:\/\/a\.com\Z/`:    "escape",
		`/(?U)https:\/\/a\.com/`:  "group or flag",
		`/https:\/\/a{\.com/`:     "repetition",
		// Most origins but none of the three old probes: still open.
		`/.*[^d3x]/`:                          "admits",
		`/https:\/\/[a-z]+\.com/`:             "admits",
		`/https:\/\/.*example\.com/`:          "admits",
		`/https:\/\/app\.example\.com.*/`:     "admits",
		`/https:\/\/[a-z-]{3,12}\.(com|net)/`: "admits",
		`/https?:\/\/[^\/]+\.io/`:             "admits",
		`/null|https:\/\/a\.example\.com/`:    "admits",
		"https://a.example.com,null":          `"null"`,
		"https://a.example.com, *":            "literal origin",
	} {
		err := CheckCORSOrigin(value)
		switch {
		case refusal == "" && err != nil:
			t.Errorf("CheckCORSOrigin(%q) = %v, want accepted", value, err)
		case refusal != "" && (err == nil || !strings.Contains(err.Error(), refusal)):
			t.Errorf("CheckCORSOrigin(%q) = %v, want an error with %q", value, err, refusal)
		}
	}
}

// attackerProbes are origins of domains nobody here owns, beyond the ones
// the guard itself tries.
var attackerProbes = []string{
	"https://attacker.test", "http://evil.com", "https://evil.com:8443", "null",
	"https://app.example.com.attacker.test", "https://evilexample.com", "http://1.2.3.4",
	"https://a.attacker.test", "http://z.io", "https://zz.com",
}

// FuzzCORSGuard: whatever the guard accepts compiles in Go, keeps to the
// syntax Java reads the same way, and matches no attacker origin.
func FuzzCORSGuard(f *testing.F) {
	for _, s := range []string{"*", "/.*/", "/.*+/", `/https:\/\/app\.example\.com/`, `/.*[^d3x]/`, `/https:\/\/.*\.example\.com/`, `/(?i)https?:\/\/(a|b)\.example\.com(:[0-9]+)?/`, "https://a.example.com,null", `/[a-z&&[^x]]/`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		if CheckCORSOrigin(value) != nil {
			return
		}
		v := strings.TrimSpace(value)
		if len(v) <= 2 || !strings.HasPrefix(v, "/") || !strings.HasSuffix(v, "/") {
			for _, o := range strings.Split(value, ",") {
				if o := strings.TrimSpace(o); o == "null" || o == "*" || strings.TrimSpace(value) == "*" {
					t.Fatalf("accepted %q, which holds %q", value, o)
				}
			}
			return
		}
		pat := v[1 : len(v)-1]
		if err := javaCompatible(pat); err != nil {
			t.Fatalf("accepted %q outside the shared syntax: %v", value, err)
		}
		re, err := regexp.Compile("^(?:" + pat + ")$")
		if err != nil {
			t.Fatalf("accepted %q, which Go cannot compile: %v", value, err)
		}
		for _, o := range attackerProbes {
			if re.MatchString(o) {
				t.Fatalf("accepted %q, which admits %q", value, o)
			}
		}
	})
}
