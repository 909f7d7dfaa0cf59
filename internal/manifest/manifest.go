// Package manifest is the manifest of a published release: for each
// target, a small JSON file named rustpatcher-<os>-<arch>.json (see Name)
// that carries the PatchInfo of the target's signed binary: its signed
// region in readable form, the name of the binary's file next to it, and
// what else goes with it (its piece hashes, statements). The manifest needs
// no signature of its own: its region fields are the signed region, so a
// reader checks Signature against its own copy of the target's public key,
// and everything else it names is checked against the signed region or
// carries its own signature. One manifest per target (rather than one for
// the release) lets the legs of a CI matrix publish in parallel without
// overwriting each other. GitHub releases (package ghrelease) and static
// mirrors (rpsign publish --out) hold the same files.
package manifest

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// PiecesSuffix ends the name of the file that holds a v1 binary's piece
// hashes, after the binary's own file name: 32 bytes (SHA-256) a piece of
// region.PieceSize, in order, nothing else. Their root (region.Root) is
// the signed hash, so a reader checks the file before it uses a single
// hash, and then each piece of the binary as it arrives.
const PiecesSuffix = ".pieces"

// Manifest names are Prefix + os + "-" + arch + Suffix.
const (
	Prefix = "rustpatcher-"
	Suffix = ".json"
)

// Name returns the name of the release asset that holds the
// PatchInfo of target t, such as rustpatcher-linux-amd64.json.
func Name(t target.Target) string {
	return Prefix + t.OS + "-" + t.Arch + Suffix
}

// TargetFromName returns the target of a manifest asset name, and
// false when name is not one.
func TargetFromName(name string) (target.Target, bool) {
	s, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return target.Target{}, false
	}
	s, ok = strings.CutSuffix(s, Suffix)
	if !ok {
		return target.Target{}, false
	}
	t, err := target.Parse(s)
	if err != nil || Name(t) != name {
		return target.Target{}, false
	}
	return t, true
}

// PatchInfo describes one signed binary of one target. It is both the
// manifest format of published releases and the per-file output of the
// rpsign GitHub Action. A zero Asset or File is omitted from JSON.
//
//	{
//	  "target": "linux/amd64",
//	  "asset": "hello_linux_amd64",
//	  "format": "v1",
//	  "version": "2.0.0",
//	  "hash": "<64 hex digits: the region's hash (v1: the root)>",
//	  "size": 2265088,
//	  "offset": 1433600,
//	  "signature": "<128 hex digits: the region's Ed25519 signature>",
//	  "public_key": "<52 z-base-32 characters>"
//	}
type PatchInfo struct {
	// Target is the binary's GOOS/GOARCH, such as "linux/amd64".
	Target string `json:"target"`
	// File is the binary's local path (action outputs only).
	File string `json:"file,omitempty"`
	// Asset is the name of the binary's release asset (manifests only).
	Asset string `json:"asset,omitempty"`
	// Format is the region's format, "v1" or "v0"; empty means v0 (as
	// manifests written before v1).
	Format string `json:"format,omitempty"`
	// Version is the signed version, without a leading "v".
	Version string `json:"version"`
	// Hash is the hex of the signed hash (see region.Info.Hash).
	Hash string `json:"hash"`
	// Size is the signed size (see region.Info.Size).
	Size uint64 `json:"size"`
	// Offset is the region's offset in the binary (v1).
	Offset uint64 `json:"offset,omitempty"`
	// Signature is the hex of the region's Ed25519 signature.
	Signature string `json:"signature"`
	// PublicKey is the z-base-32 public key that the binary was signed
	// for. Readers must verify with their own copy of the key, never with
	// this field: it is there for people and for cross-checks.
	PublicKey string `json:"public_key"`
	// FileSize is the length of the binary's file, its OS code signature
	// included (manifests written by Layout).
	FileSize int64 `json:"file_size,omitempty"`
	// FileID is the hex of the file's ID (see region.Scanned.FileID),
	// which names exactly its bytes (manifests written by Layout).
	FileID string `json:"file_id,omitempty"`
	// Pieces is the name of the asset that holds the piece hashes of a
	// v1 binary (see PiecesSuffix).
	Pieces string `json:"pieces,omitempty"`
	// Statements are the names of the statement assets that go with the
	// release, such as key rotations (files such as linux-amd64-1.rotation).
	Statements []string `json:"statements,omitempty"`
	// Packs are the assets that hold a v1 binary's pieces as packed
	// frames (docs/FORMAT.md, "Packed frames on a mirror"): compressed
	// alone, or as deltas from an older binary, so that a reader that
	// runs that binary fetches only what changed.
	Packs []Pack `json:"packs,omitempty"`
}

// A Pack names an asset that holds the pieces of a binary as packed
// frames. Like the binary, it is trusted only once each piece decoded from
// it matches the signed root.
type Pack struct {
	// Asset is the asset's name.
	Asset string `json:"asset"`
	// Base is the hex of the file ID of the binary whose bytes the frames
	// are deltas from; empty for frames compressed alone.
	Base string `json:"base,omitempty"`
	// Size is the asset's length.
	Size int64 `json:"size"`
}

// New returns the PatchInfo of a binary of target t whose region is
// in, signed for pub.
func New(t target.Target, in region.Info, pub ed25519.PublicKey) PatchInfo {
	return PatchInfo{
		Target:    t.String(),
		Format:    in.Format.String(),
		Version:   in.Version,
		Hash:      hex.EncodeToString(in.Hash[:]),
		Size:      in.Size,
		Offset:    in.Offset,
		Signature: hex.EncodeToString(in.Signature[:]),
		PublicKey: region.EncodePublicKey(pub),
	}
}

// Info decodes the signed region fields of p. It does not check the
// signature: see Verify.
func (p PatchInfo) Info() (region.Info, error) {
	var in region.Info
	v, err := region.ParseVersion(p.Version)
	if err != nil {
		return in, fmt.Errorf("patch info: %w", err)
	}
	in.Version = v
	switch p.Format {
	case "", "v0":
		in.Format = region.V0
	case "v1":
		in.Format, in.Target, in.Offset = region.V1, p.Target, p.Offset
	default:
		return in, fmt.Errorf("patch info: unknown format %q", p.Format)
	}
	if err := decodeHex(in.Hash[:], p.Hash); err != nil {
		return in, fmt.Errorf("patch info: hash: %w", err)
	}
	if err := decodeHex(in.Signature[:], p.Signature); err != nil {
		return in, fmt.Errorf("patch info: signature: %w", err)
	}
	in.Size = p.Size
	return in, nil
}

// Verify decodes p and checks its signature with pub, the reader's own key
// for p's target.
func (p PatchInfo) Verify(pub ed25519.PublicKey) (region.Info, error) {
	in, err := p.Info()
	if err != nil {
		return in, err
	}
	if err := in.VerifySignature(pub); err != nil {
		return in, fmt.Errorf("patch info for %s %s: %w", p.Target, p.Version, err)
	}
	return in, nil
}

func decodeHex(dst []byte, s string) error {
	if hex.DecodedLen(len(s)) != len(dst) {
		return fmt.Errorf("%d hex digits, want %d", len(s), hex.EncodedLen(len(dst)))
	}
	_, err := hex.Decode(dst, []byte(s))
	return err
}

// MaxSize bounds how much of a manifest is read.
const MaxSize = 64 << 10

// Read decodes one PatchInfo from r, reading at most 64 KiB.
func Read(r io.Reader) (PatchInfo, error) {
	var p PatchInfo
	d := json.NewDecoder(io.LimitReader(r, MaxSize))
	if err := d.Decode(&p); err != nil {
		return p, fmt.Errorf("decoding patch info: %w", err)
	}
	return p, nil
}
