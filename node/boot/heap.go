package boot

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// HeapFile is the jvm.options.d file boot owns on Elasticsearch 7 and later.
const HeapFile = "/etc/elasticsearch/jvm.options.d/esnode-heap.options"

// JVMOptions is the main JVM options file; boot edits it only on 6.x, which
// has no jvm.options.d.
const JVMOptions = "/etc/elasticsearch/jvm.options"

// Markers of the managed heap block in jvm.options (6.x only).
const (
	HeapBeginMarker = "## BEGIN esnode boot heap (managed; edits are replaced at boot)"
	HeapEndMarker   = "## END esnode boot heap"
)

// HeapPlan is the computed heap and how it was chosen.
type HeapPlan struct {
	MB        int    `json:"mb"`
	MemTotalM int    `json:"mem_total_mb"`
	Rule      string `json:"rule"`
}

// HeapMB sizes the heap: an explicit MiB override as given (it must fit in
// memory), else percent of MemTotal clamped to [min_mb, max_mb]. A
// userdata percent replaces the spec's.
func HeapMB(memTotalBytes uint64, h spec.Heap, overridePercent, overrideMB int) (HeapPlan, error) {
	memMB := int(memTotalBytes / (1024 * 1024))
	if memMB <= 0 {
		return HeapPlan{}, fmt.Errorf("MemTotal is %d bytes; cannot size the heap", memTotalBytes)
	}
	if overrideMB > 0 {
		// The same cap as heap_percent: the rest is the file cache.
		if overrideMB*100 > memMB*spec.MaxHeapPercent {
			return HeapPlan{}, fmt.Errorf("heap_mb %d is over %d%% of the instance's %d MiB of memory; Elasticsearch needs the rest for the file cache: use at most heap_mb %d, heap_percent, or a larger instance", overrideMB, spec.MaxHeapPercent, memMB, memMB*spec.MaxHeapPercent/100)
		}
		return HeapPlan{MB: overrideMB, MemTotalM: memMB, Rule: "userdata heap_mb"}, nil
	}
	pct, rule := h.Percent, "spec heap.percent"
	if overridePercent > 0 {
		pct, rule = overridePercent, "userdata heap_percent"
	}
	if pct <= 0 {
		pct = spec.DefaultHeapPercent
	}
	mb := memMB * pct / 100
	rule = fmt.Sprintf("%d%% of %d MiB (%s)", pct, memMB, rule)
	if h.MinMB > 0 && mb < h.MinMB {
		mb, rule = h.MinMB, rule+", raised to heap.min_mb"
	}
	if h.MaxMB > 0 && mb > h.MaxMB {
		mb, rule = h.MaxMB, rule+", capped at heap.max_mb"
	}
	if mb >= spec.CompressedOopsMB {
		mb, rule = spec.DefaultHeapMaxMB, rule+", capped below the compressed-oops threshold"
	}
	return HeapPlan{MB: mb, MemTotalM: memMB, Rule: rule}, nil
}

// ReadMemTotal reads MemTotal, in bytes, from a /proc/meminfo file.
func ReadMemTotal(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read memory size: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: MemTotal %q is not a number", path, f[1])
			}
			unit := uint64(1024) // the kernel always writes kB
			if len(f) >= 3 && f[2] != "kB" {
				return 0, fmt.Errorf("%s: MemTotal unit %q is not kB", path, f[2])
			}
			return n * unit, nil
		}
	}
	return 0, fmt.Errorf("%s has no MemTotal line", path)
}

func memInfoPath(root string) string { return filepath.Join(root, "proc", "meminfo") }

// RenderHeapFile is the whole jvm.options.d file for a heap size.
func RenderHeapFile(p HeapPlan) []byte {
	return []byte(fmt.Sprintf("# Managed by esnode boot: rewritten on every boot from the instance's memory.\n"+
		"# %s\n-Xms%dm\n-Xmx%dm\n", p.Rule, p.MB, p.MB))
}

var heapLine = regexp.MustCompile(`^\s*(\d+(-\d*)?:)?-Xm[sx]\S*\s*$`)

// RenderJVMOptions6 manages the heap inside jvm.options for 6.x: a
// delimited block, and every other active -Xms/-Xmx line commented out with
// DisabledPrefix (this also repairs the seed script's double -Xms).
func RenderJVMOptions6(old []byte, p HeapPlan) ([]byte, error) {
	lines := splitLines(string(old))
	var keep []string
	blockAt := -1
	in := false
	for i, l := range lines {
		t := strings.TrimRight(l, "\r\n")
		switch {
		case strings.HasPrefix(t, "## BEGIN esnode boot heap"):
			if in || blockAt >= 0 {
				return nil, fmt.Errorf("jvm.options line %d: a second esnode heap block; delete one", i+1)
			}
			in, blockAt = true, len(keep)
			continue
		case strings.HasPrefix(t, "## END esnode boot heap"):
			if !in {
				return nil, fmt.Errorf("jvm.options line %d: %q without a matching begin marker; delete it", i+1, HeapEndMarker)
			}
			in = false
			continue
		}
		if in {
			continue
		}
		if heapLine.MatchString(t) {
			l = DisabledPrefix + l
		}
		keep = append(keep, l)
	}
	if in {
		return nil, fmt.Errorf("jvm.options: the esnode heap block is never closed with %q; delete the broken block, boot rewrites it", HeapEndMarker)
	}
	block := []string{HeapBeginMarker + "\n", fmt.Sprintf("# %s\n", p.Rule), fmt.Sprintf("-Xms%dm\n", p.MB), fmt.Sprintf("-Xmx%dm\n", p.MB), HeapEndMarker + "\n"}
	if blockAt < 0 {
		if n := len(keep); n > 0 && !strings.HasSuffix(keep[n-1], "\n") {
			keep[n-1] += "\n"
		}
		blockAt = len(keep)
	}
	out := append(append(append([]string{}, keep[:blockAt]...), block...), keep[blockAt:]...)
	return []byte(strings.Join(out, "")), nil
}
