// Package ghrelease publishes signed releases to GitHub and follows a
// repository's releases for a seed node, with go-github.
//
// A release published by rustpatcher-go holds, for each target, the signed
// binary and a small JSON manifest named rustpatcher-<os>-<arch>.json (see
// ManifestName) that carries the binary's PatchInfo: its signed
// region in readable form and the name of the binary's asset. The manifest
// needs no signature of its own: its fields are the signed region, so a
// reader checks Signature against its own copy of the target's public key,
// and after downloading checks the binary against Hash and Size. One
// manifest per target (rather than one for the release) lets the legs of a
// CI matrix publish in parallel without overwriting each other.
package ghrelease

import (
	"crypto/ed25519"
	"io"

	"github.com/org/rustpatcher-go/internal/manifest"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// PatchInfo is a release's manifest for one target (see manifest.PatchInfo).
type PatchInfo = manifest.PatchInfo

// NewPatchInfo returns the PatchInfo of a binary of target t whose region is
// in, signed for pub.
func NewPatchInfo(t target.Target, in region.Info, pub ed25519.PublicKey) PatchInfo {
	return manifest.New(t, in, pub)
}

// maxManifestSize bounds how much of a manifest asset is read.
const maxManifestSize = manifest.MaxSize

// ReadPatchInfo decodes one PatchInfo from r, reading at most 64 KiB.
func ReadPatchInfo(r io.Reader) (PatchInfo, error) { return manifest.Read(r) }
