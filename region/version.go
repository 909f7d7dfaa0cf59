package region

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/semver"
)

// ErrBadVersion means a version string is not an acceptable semantic version.
var ErrBadVersion = errors.New("not a semantic version")

// ParseVersion checks that v is a semantic version MAJOR.MINOR.PATCH with an
// optional leading "v", pre-release and build metadata, that fits in the
// region's 16 bytes, and returns it in canonical form without the "v". A plain
// x.y.z stays as it is, so it remains readable by rustpatcher.
func ParseVersion(v string) (string, error) {
	s := strings.TrimPrefix(v, "v")
	if s == "" {
		return "", fmt.Errorf("%w: empty version", ErrBadVersion)
	}
	core := s
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core = core[:i]
	}
	if strings.Count(core, ".") != 2 || !semver.IsValid("v"+s) {
		return "", fmt.Errorf("%w: %q (want MAJOR.MINOR.PATCH, e.g. 1.2.3 or v1.2.3-rc.1)", ErrBadVersion, v)
	}
	if len(s) > VersionLen {
		return "", fmt.Errorf("%w: %q is %d bytes, at most %d fit in the region", ErrBadVersion, v, len(s), VersionLen)
	}
	return s, nil
}

// CompareVersions compares two versions accepted by ParseVersion by semantic
// versioning rules (pre-releases sort before their release, build metadata is
// ignored). It returns -1, 0 or +1. Invalid versions sort before valid ones.
func CompareVersions(a, b string) int {
	return semver.Compare("v"+strings.TrimPrefix(a, "v"), "v"+strings.TrimPrefix(b, "v"))
}

// IsPrerelease reports whether v has a pre-release part, such as 2.0.0-rc.1.
func IsPrerelease(v string) bool {
	return semver.Prerelease("v"+strings.TrimPrefix(v, "v")) != ""
}
