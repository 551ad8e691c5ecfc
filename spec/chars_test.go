package spec

import (
	"regexp"
	"strings"
	"testing"
)

// The bounded patterns match exactly what the bounded repetitions they
// replace matched.
func TestBoundedCharsMatchTheRepetitions(t *testing.T) {
	cases := []struct {
		p    CharsPattern
		orig string
	}{
		{lifecycleHookName, `^[A-Za-z0-9\-_/]{1,255}$`},
		{smRefName, `^[A-Za-z0-9/_+=.@\-{}]{1,512}$`},
		{sha512Hex, `^[0-9a-fA-F]{128}$`},
		{logGroup, `^[A-Za-z0-9_\-./#]{1,512}$`},
		{clusterName, `^[A-Za-z0-9_-]{1,255}$`},
		{tagKeyChars, `^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$`},
	}
	var inputs []string
	for _, unit := range []string{"a", "F", "0", "-", "_", "/", "#", "{", "é", "名", " ", "\u00a0", "\n", "\xff", "aws:x", "a b"} {
		for _, n := range []int{0, 1, 2, 127, 128, 129, 254, 255, 256, 511, 512, 513} {
			inputs = append(inputs, strings.Repeat(unit, n), strings.Repeat(unit, n)+"\n", "x"+strings.Repeat(unit, n))
		}
	}
	inputs = append(inputs, "abc$", "^abc", "ab\ncd", "my-cluster_1", "/es/{cluster}/key", strings.Repeat("ab", 64))
	for _, c := range cases {
		re := regexp.MustCompile(c.orig)
		for _, in := range inputs {
			if got, want := c.p.MatchString(in), re.MatchString(in); got != want {
				t.Errorf("%s on %q (%d bytes): %v, the repetition says %v", c.orig, in[:min(len(in), 20)], len(in), got, want)
			}
		}
	}
}
