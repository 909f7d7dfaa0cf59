package ghrelease

import (
	"strings"

	"github.com/org/rustpatcher-go/internal/target"
)

// Manifest asset names are ManifestPrefix + os + "-" + arch + ManifestSuffix.
const (
	ManifestPrefix = "rustpatcher-"
	ManifestSuffix = ".json"
)

// ManifestName returns the name of the release asset that holds the
// PatchInfo of target t, such as rustpatcher-linux-amd64.json.
func ManifestName(t target.Target) string {
	return ManifestPrefix + t.OS + "-" + t.Arch + ManifestSuffix
}

// TargetFromManifestName returns the target of a manifest asset name, and
// false when name is not one.
func TargetFromManifestName(name string) (target.Target, bool) {
	s, ok := strings.CutPrefix(name, ManifestPrefix)
	if !ok {
		return target.Target{}, false
	}
	s, ok = strings.CutSuffix(s, ManifestSuffix)
	if !ok {
		return target.Target{}, false
	}
	t, err := target.Parse(s)
	if err != nil || ManifestName(t) != name {
		return target.Target{}, false
	}
	return t, true
}
