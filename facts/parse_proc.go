package facts

import (
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// TCPSocket is one row of /proc/net/tcp or /proc/net/tcp6.
type TCPSocket struct {
	Address string
	Port    int
	State   int
	UID     int
	Inode   uint64
}

// tcpListen is the kernel's TCP_LISTEN state as printed in /proc/net/tcp.
const tcpListen = 0x0A

// ParseProcNetTCP parses /proc/net/tcp (v6 false) or /proc/net/tcp6 (v6
// true). Addresses are printed as 32-bit words in host byte order; this
// reads them as little-endian, which amd64 and arm64 are. Rows that do not
// parse are returned as problems, the rest still count.
func ParseProcNetTCP(data string, v6 bool) ([]TCPSocket, []string) {
	var out []TCPSocket
	var problems []string
	for i, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || (i == 0 && f[0] == "sl") {
			continue
		}
		if len(f) < 10 {
			problems = append(problems, fmt.Sprintf("line %d: %d fields, want at least 10", i+1, len(f)))
			continue
		}
		s, err := parseTCPRow(f, v6)
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %v", i+1, err))
			continue
		}
		out = append(out, s)
	}
	return out, problems
}

func parseTCPRow(f []string, v6 bool) (TCPSocket, error) {
	hexAddr, hexPort, ok := strings.Cut(f[1], ":")
	if !ok {
		return TCPSocket{}, fmt.Errorf("local address %q has no port", f[1])
	}
	addr, err := decodeProcAddr(hexAddr, v6)
	if err != nil {
		return TCPSocket{}, err
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return TCPSocket{}, fmt.Errorf("port %q: %w", hexPort, err)
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return TCPSocket{}, fmt.Errorf("state %q: %w", f[3], err)
	}
	uid, err := strconv.ParseUint(f[7], 10, 32)
	if err != nil {
		return TCPSocket{}, fmt.Errorf("uid %q: %w", f[7], err)
	}
	inode, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return TCPSocket{}, fmt.Errorf("inode %q: %w", f[9], err)
	}
	return TCPSocket{Address: addr.String(), Port: int(port), State: int(st), UID: int(uid), Inode: inode}, nil
}

func decodeProcAddr(h string, v6 bool) (netip.Addr, error) {
	want := 8
	if v6 {
		want = 32
	}
	if len(h) != want {
		return netip.Addr{}, fmt.Errorf("address %q has %d hex digits, want %d", h, len(h), want)
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %w", h, err)
	}
	// Each 32-bit word is little-endian: reverse its bytes.
	for w := 0; w < len(raw); w += 4 {
		raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	if v6 {
		return netip.AddrFrom16([16]byte(raw)), nil
	}
	return netip.AddrFrom4([4]byte(raw)), nil
}

// limitNames maps /proc/<pid>/limits rows to setrlimit's short names.
var limitNames = map[string]string{
	"Max cpu time":          "cpu",
	"Max file size":         "fsize",
	"Max data size":         "data",
	"Max stack size":        "stack",
	"Max core file size":    "core",
	"Max resident set":      "rss",
	"Max processes":         "nproc",
	"Max open files":        "nofile",
	"Max locked memory":     "memlock",
	"Max address space":     "as",
	"Max file locks":        "locks",
	"Max pending signals":   "sigpending",
	"Max msgqueue size":     "msgqueue",
	"Max nice priority":     "nice",
	"Max realtime priority": "rtprio",
	"Max realtime timeout":  "rttime",
}

// ParseLimits parses /proc/<pid>/limits into rlimit short names (nofile,
// nproc, memlock, ...). "unlimited" is -1.
func ParseLimits(data string) (map[string]Limit, []string) {
	out := map[string]Limit{}
	var problems []string
	for i, line := range strings.Split(data, "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "Limit ") {
			continue
		}
		var name string
		for long, short := range limitNames {
			if strings.HasPrefix(line, long+" ") {
				name = short
				line = line[len(long):]
				break
			}
		}
		if name == "" {
			problems = append(problems, fmt.Sprintf("line %d: unknown limit %q", i+1, truncate(strings.TrimSpace(line), 60)))
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			problems = append(problems, fmt.Sprintf("line %d: %s has no soft and hard value", i+1, name))
			continue
		}
		soft, err1 := parseLimitValue(f[0])
		hard, err2 := parseLimitValue(f[1])
		if err1 != nil || err2 != nil {
			problems = append(problems, fmt.Sprintf("line %d: %s: values %q %q are not numbers", i+1, name, f[0], f[1]))
			continue
		}
		l := Limit{Soft: soft, Hard: hard}
		if len(f) > 2 {
			l.Units = f[2]
		}
		out[name] = l
	}
	return out, problems
}

func parseLimitValue(s string) (int64, error) {
	if s == "unlimited" || s == "infinity" {
		return -1, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64 {
		return -1, nil // RLIM_INFINITY printed as a number
	}
	return int64(n), nil
}

// ParseCmdline splits /proc/<pid>/cmdline (NUL-separated arguments).
func ParseCmdline(data []byte) []string {
	s := strings.TrimRight(string(data), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// CmdlineHeap returns the heap a JVM command line sets (the JVM takes the
// last -Xms/-Xmx); 0 when unset or unparsable.
func CmdlineHeap(args []string) (xms, xmx int64) {
	for _, a := range args {
		kind, b, ok, err := HeapOption(a)
		if !ok || err != nil {
			continue
		}
		if kind == "xms" {
			xms = b
		} else {
			xmx = b
		}
	}
	return xms, xmx
}

// ParseStatus reads Name and the effective Uid from /proc/<pid>/status.
func ParseStatus(data string) (name string, uid int, err error) {
	uid = -1
	for _, line := range strings.Split(data, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "Name":
			name = strings.TrimSpace(v)
		case "Uid":
			f := strings.Fields(v)
			if len(f) < 2 {
				return name, -1, fmt.Errorf("Uid line %q has no effective uid", line)
			}
			n, perr := strconv.Atoi(f[1])
			if perr != nil || n < 0 {
				return name, -1, fmt.Errorf("Uid line %q: effective uid is not a number", line)
			}
			uid = n
		}
	}
	if uid < 0 {
		return name, -1, fmt.Errorf("no Uid line")
	}
	return name, uid, nil
}

// ParseMeminfo returns MemTotal in bytes from /proc/meminfo.
func ParseMeminfo(data string) (int64, error) {
	for _, line := range strings.Split(data, "\n") {
		if !strings.HasPrefix(line, "MemTotal:") {
			continue
		}
		f := strings.Fields(line[len("MemTotal:"):])
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/1024 {
			return 0, fmt.Errorf("MemTotal %q is not a number of kB", f[0])
		}
		if len(f) > 1 && f[1] != "kB" {
			return 0, fmt.Errorf("MemTotal unit %q, want kB", f[1])
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("no MemTotal line")
}
