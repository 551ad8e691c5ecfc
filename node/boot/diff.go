package boot

import (
	"fmt"
	"strings"
)

// UnifiedDiff renders a unified diff (3 lines of context) between two
// texts, or "" when they are equal. It uses a plain LCS table, fine for
// configuration files; beyond a few thousand lines it shows a whole-file
// replacement instead.
func UnifiedDiff(path string, old, new []byte) string {
	if string(old) == string(new) {
		return ""
	}
	a, b := diffLines(string(old)), diffLines(string(new))
	var b2 strings.Builder
	from, to := "a"+path, "b"+path
	if old == nil {
		from = "/dev/null"
	}
	fmt.Fprintf(&b2, "--- %s\n+++ %s\n", from, to)
	ops := diffOps(a, b)
	const ctx = 3
	// Group ops into hunks around changes.
	i := 0
	for i < len(ops) {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-ctx, 0)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*ctx {
				end = min(end+ctx, len(ops))
				break
			}
			end = run
		}
		h := ops[start:end]
		aStart, bStart := h[0].ai, h[0].bi
		aLen, bLen := 0, 0
		for _, o := range h {
			if o.kind != '+' {
				aLen++
			}
			if o.kind != '-' {
				bLen++
			}
		}
		fmt.Fprintf(&b2, "@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen))
		for _, o := range h {
			line := o.text
			b2.WriteByte(o.kind)
			b2.WriteString(strings.TrimSuffix(line, "\n"))
			b2.WriteByte('\n')
			if !strings.HasSuffix(line, "\n") {
				b2.WriteString("\\ No newline at end of file\n")
			}
		}
		i = end
	}
	return b2.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func diffLines(s string) []string { return splitLines(s) }

type diffOp struct {
	kind   byte // ' ', '-', '+'
	text   string
	ai, bi int // position in a and b before this op
}

func diffOps(a, b []string) []diffOp {
	// Trim the common prefix and suffix: typical edits are local.
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		p++
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	var ops []diffOp
	for k := 0; k < p; k++ {
		ops = append(ops, diffOp{' ', a[k], k, k})
	}
	am, bm := a[p:len(a)-s], b[p:len(b)-s]
	n, m := len(am), len(bm)
	if n*m > 4_000_000 {
		for k, l := range am {
			ops = append(ops, diffOp{'-', l, p + k, p})
		}
		for k, l := range bm {
			ops = append(ops, diffOp{'+', l, p + n, p + k})
		}
	} else {
		// lcs[i][j] = LCS length of am[i:] and bm[j:].
		lcs := make([][]int32, n+1)
		for i := range lcs {
			lcs[i] = make([]int32, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if am[i] == bm[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && am[i] == bm[j]:
				ops = append(ops, diffOp{' ', am[i], p + i, p + j})
				i++
				j++
			case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
				ops = append(ops, diffOp{'-', am[i], p + i, p + j})
				i++
			default:
				ops = append(ops, diffOp{'+', bm[j], p + i, p + j})
				j++
			}
		}
	}
	for k := 0; k < s; k++ {
		ai, bi := len(a)-s+k, len(b)-s+k
		ops = append(ops, diffOp{' ', a[ai], ai, bi})
	}
	return ops
}
