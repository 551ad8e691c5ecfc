package spec

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is an Elasticsearch release number.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Line is the release line, such as "7.17".
func (v Version) Line() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// ParseVersion parses a full release version such as "8.15.3".
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("%q is not a full release version; use one such as 8.15.3", s)
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 || p == "" || (len(p) > 1 && p[0] == '0') {
			return Version{}, fmt.Errorf("%q is not a full release version; use one such as 8.15.3", s)
		}
		n[i] = x
	}
	return Version{n[0], n[1], n[2]}, nil
}

// SupportedLines is what Validate accepts, for messages and docs.
const SupportedLines = "6.8, 7.17, 8.x, 9.x"

// Supported reports whether the release is on a line this project bakes.
func (v Version) Supported() bool {
	switch v.Major {
	case 6:
		return v.Minor == 8
	case 7:
		return v.Minor == 17
	case 8, 9:
		return true
	}
	return false
}
