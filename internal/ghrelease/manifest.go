package ghrelease

import (
	"github.com/org/rustpatcher-go/internal/manifest"
	"github.com/org/rustpatcher-go/internal/target"
)

// Manifest asset names are ManifestPrefix + os + "-" + arch + ManifestSuffix.
const (
	ManifestPrefix = manifest.Prefix
	ManifestSuffix = manifest.Suffix
)

// PiecesSuffix ends the name of the asset that holds a v1 binary's piece
// hashes (see manifest.PiecesSuffix).
const PiecesSuffix = manifest.PiecesSuffix

// ManifestName returns the name of the release asset that holds the
// PatchInfo of target t, such as rustpatcher-linux-amd64.json.
func ManifestName(t target.Target) string { return manifest.Name(t) }

// TargetFromManifestName returns the target of a manifest asset name, and
// false when name is not one.
func TargetFromManifestName(name string) (target.Target, bool) { return manifest.TargetFromName(name) }
