package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

const gib = uint64(1) << 30

func defaultHeap() spec.Heap {
	return spec.Heap{Percent: spec.DefaultHeapPercent, MinMB: spec.DefaultHeapMinMB, MaxMB: spec.DefaultHeapMaxMB}
}

func TestHeapMB(t *testing.T) {
	tests := []struct {
		name      string
		mem       uint64
		h         spec.Heap
		pct, mb   int
		want      int
		wantInErr string
	}{
		{"1 GiB raised to min", 1 * gib, defaultHeap(), 0, 0, 1024, ""},
		{"4 GiB half", 4 * gib, defaultHeap(), 0, 0, 2048, ""},
		{"8 GiB half", 8 * gib, defaultHeap(), 0, 0, 4096, ""},
		{"128 GiB capped", 128 * gib, defaultHeap(), 0, 0, 31744, ""},
		{"percent override", 8 * gib, defaultHeap(), 60, 0, 4915, ""},
		{"percent override still capped", 128 * gib, defaultHeap(), 75, 0, 31744, ""},
		{"spec percent", 16 * gib, spec.Heap{Percent: 25, MinMB: 1024, MaxMB: 31744}, 0, 0, 4096, ""},
		{"spec max", 16 * gib, spec.Heap{Percent: 50, MinMB: 1024, MaxMB: 6000}, 0, 0, 6000, ""},
		{"mb override", 8 * gib, defaultHeap(), 0, 3000, 3000, ""},
		{"mb override too big", 4 * gib, defaultHeap(), 0, 4096, 0, "over 75%"},
		// heap_mb keeps heap_percent's 75 % cap: 7000 of 8192 MiB is 85 %.
		{"mb override over the percent cap", 8 * gib, defaultHeap(), 0, 7000, 0, "use at most heap_mb 6144"},
		{"mb override at the cap", 8 * gib, defaultHeap(), 0, 6144, 6144, ""},
		{"unset max still below oops", 256 * gib, spec.Heap{Percent: 50, MinMB: 1024}, 0, 0, 31744, ""},
		{"no memory", 0, defaultHeap(), 0, 0, 0, "cannot size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := HeapMB(tt.mem, tt.h, tt.pct, tt.mb)
			if tt.wantInErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantInErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.MB != tt.want {
				t.Errorf("heap %d MiB (%s), want %d", p.MB, p.Rule, tt.want)
			}
		})
	}
}

func TestRenderHeapFile(t *testing.T) {
	got := string(RenderHeapFile(HeapPlan{MB: 4096, Rule: "r"}))
	if !strings.Contains(got, "\n-Xms4096m\n-Xmx4096m\n") {
		t.Errorf("heap file:\n%s", got)
	}
}

func TestReadMemTotal(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(p, []byte("MemFree:  10 kB\nMemTotal:       8388608 kB\n"), 0o644)
	n, err := ReadMemTotal(p)
	if err != nil || n != 8*gib {
		t.Errorf("ReadMemTotal = %d, %v; want %d", n, err, 8*gib)
	}
	os.WriteFile(p, []byte("MemFree: 1 kB\n"), 0o644)
	if _, err := ReadMemTotal(p); err == nil {
		t.Error("no MemTotal: want an error")
	}
}

func TestRenderJVMOptions6(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed-jvm.options")
	if err != nil {
		t.Fatal(err)
	}
	out, err := RenderJVMOptions6(seed, HeapPlan{MB: 2048, Rule: "50% of 4096 MiB"})
	if err != nil {
		t.Fatal(err)
	}
	var xms, xmx []string
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "-Xms"):
			xms = append(xms, l)
		case strings.HasPrefix(l, "-Xmx"):
			xmx = append(xmx, l)
		}
	}
	if len(xms) != 1 || len(xmx) != 1 || xms[0] != "-Xms2048m" || xmx[0] != "-Xmx2048m" {
		t.Errorf("active heap lines: Xms %v Xmx %v\n%s", xms, xmx, out)
	}
	if strings.Count(string(out), DisabledPrefix+"-Xms2g\n") != 2 {
		t.Errorf("the seed's double -Xms not disabled:\n%s", out)
	}
	if !strings.Contains(string(out), "\n## -Xms4g\n") || !strings.Contains(string(out), "\n8:-XX:+PrintGCDetails\n") {
		t.Error("comments or other options changed")
	}
	again, err := RenderJVMOptions6(out, HeapPlan{MB: 2048, Rule: "50% of 4096 MiB"})
	if err != nil || string(again) != string(out) {
		t.Errorf("second pass changed jvm.options (%v):\n%s", err, UnifiedDiff("/jvm.options", out, again))
	}
	bigger, _ := RenderJVMOptions6(out, HeapPlan{MB: 4096, Rule: "x"})
	if strings.Count(string(bigger), HeapBeginMarker) != 1 || !strings.Contains(string(bigger), "\n-Xmx4096m\n") {
		t.Errorf("re-render:\n%s", bigger)
	}
	if _, err := RenderJVMOptions6([]byte(HeapBeginMarker+"\n-Xms1m\n"), HeapPlan{MB: 1}); err == nil {
		t.Error("unclosed heap block accepted")
	}
}
