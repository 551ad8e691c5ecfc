package boot

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
)

// applyUnified applies a diff made by UnifiedDiff to old, checking every
// context and removed line, so the hunk headers and bodies are verified.
func applyUnified(t *testing.T, old string, diff string) string {
	t.Helper()
	a := splitLines(old)
	lines := strings.Split(strings.TrimSuffix(diff, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "--- ") || !strings.HasPrefix(lines[1], "+++ ") {
		t.Fatalf("bad diff header:\n%s", diff)
	}
	var out []string
	pos := 0
	for i := 2; i < len(lines); {
		var as, al, bs, bl int
		h := lines[i]
		if _, err := fmt.Sscanf(h, "@@ -%s +%s @@", new(string), new(string)); err != nil {
			t.Fatalf("bad hunk header %q", h)
		}
		parts := strings.Fields(h)
		parse := func(s string) (int, int) {
			s = s[1:]
			n := 1
			if i := strings.IndexByte(s, ','); i >= 0 {
				n, _ = strconv.Atoi(s[i+1:])
				s = s[:i]
			}
			st, _ := strconv.Atoi(s)
			return st, n
		}
		as, al = parse(parts[1])
		bs, bl = parse(parts[2])
		_ = bs
		start := as - 1
		if al == 0 {
			start = as
		}
		out = append(out, a[pos:start]...)
		pos = start
		i++
		var gotA, gotB int
		for i < len(lines) && !strings.HasPrefix(lines[i], "@@") {
			l := lines[i]
			i++
			noNL := i < len(lines) && lines[i] == `\ No newline at end of file`
			if noNL {
				i++
			}
			text := l[1:]
			if !noNL {
				text += "\n"
			}
			switch l[0] {
			case ' ', '-':
				if pos >= len(a) || a[pos] != text {
					t.Fatalf("hunk %q: line %d is %q, diff says %q", h, pos+1, a[pos], text)
				}
				pos++
				gotA++
				if l[0] == ' ' {
					out = append(out, text)
					gotB++
				}
			case '+':
				out = append(out, text)
				gotB++
			}
		}
		if gotA != al || gotB != bl {
			t.Fatalf("hunk %q counts: got -%d +%d", h, gotA, gotB)
		}
	}
	out = append(out, a[pos:]...)
	return strings.Join(out, "")
}

func TestUnifiedDiffRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 300; iter++ {
		var a []string
		for i := 0; i < rng.Intn(40); i++ {
			a = append(a, fmt.Sprintf("line %d\n", rng.Intn(15)))
		}
		b := append([]string(nil), a...)
		for e := 0; e < rng.Intn(6); e++ {
			switch k := rng.Intn(3); {
			case k == 0 && len(b) > 0:
				i := rng.Intn(len(b))
				b = append(b[:i], b[i+1:]...)
			case k == 1:
				i := rng.Intn(len(b) + 1)
				b = append(b[:i], append([]string{fmt.Sprintf("new %d\n", e)}, b[i:]...)...)
			case len(b) > 0:
				b[rng.Intn(len(b))] = "changed\n"
			}
		}
		old, nw := strings.Join(a, ""), strings.Join(b, "")
		if rng.Intn(4) == 0 && len(nw) > 0 {
			nw = strings.TrimSuffix(nw, "\n")
		}
		d := UnifiedDiff("/f", []byte(old), []byte(nw))
		if old == nw {
			if d != "" {
				t.Fatalf("equal texts gave a diff:\n%s", d)
			}
			continue
		}
		if got := applyUnified(t, old, d); got != nw {
			t.Fatalf("iteration %d: applying the diff gave\n%q\nwant\n%q\ndiff:\n%s", iter, got, nw, d)
		}
	}
}

func TestUnifiedDiffNewFile(t *testing.T) {
	d := UnifiedDiff("/etc/x", nil, []byte("a\nb\n"))
	want := "--- /dev/null\n+++ b/etc/x\n@@ -0,0 +1,2 @@\n+a\n+b\n"
	if d != want {
		t.Errorf("new-file diff:\n%s", d)
	}
}
