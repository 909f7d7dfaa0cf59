package ghrelease

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/org/rustpatcher-go/internal/manifest"
	"github.com/org/rustpatcher-go/internal/pack"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Packs asks Layout for the packed frames of each v1 binary as assets (the
// cache files of package pack, docs/FORMAT.md "Packed frames on a
// mirror"): its pieces compressed alone, and as deltas from older binaries
// of its target, so that an app that reads the release over HTTPS and runs
// one of those binaries fetches only what changed. The manifest names them
// (PatchInfo.Packs); an app checks every piece it decodes against the
// signed root, as it checks the binary's.
type Packs struct {
	// Dir is the directory the frames are written to; the assets name
	// files in it. It must exist.
	Dir string
	// Compress asks for each binary's pieces compressed alone, as
	// <asset>.zst.
	Compress bool
	// Bases are older signed binaries: each binary gets the deltas from
	// those of its target, as <asset>.<first 16 hex digits of the base's
	// file ID>.delta. A base whose target no binary has is refused, as is
	// one that is not older than the binary.
	Bases []string
}

// packSuffixes end the names of pack assets.
const (
	zstSuffix   = ".zst"
	deltaSuffix = ".delta"
)

// openedBase is a base binary of Packs.Bases, open.
type openedBase struct {
	path string
	f    *os.File
	in   region.Info
	base *pack.Base
	used bool
}

// openBases opens and indexes the bases of p; the caller closes them.
func openBases(ctx context.Context, p *Packs) ([]*openedBase, error) {
	var out []*openedBase
	for _, path := range p.Bases {
		f, err := os.Open(path)
		if err != nil {
			closeBases(out)
			return nil, fmt.Errorf("delta base: %w", err)
		}
		b, in, err := pack.OpenBase(ctx, f)
		if err != nil {
			f.Close()
			closeBases(out)
			return nil, fmt.Errorf("delta base %s: %w", path, err)
		}
		out = append(out, &openedBase{path: path, f: f, in: in, base: b})
	}
	return out, nil
}

func closeBases(bs []*openedBase) {
	for _, b := range bs {
		b.f.Close()
	}
}

// makePacks writes the packs p asks for of the v1 binary f, whose scan is
// s and asset name asset, into p.Dir, and returns them as assets and as
// the manifest names them.
func makePacks(ctx context.Context, p *Packs, bases []*openedBase, f Signed, s *region.Scanned, asset string) ([]Asset, []manifest.Pack, error) {
	l, err := wire.NewLayout(f.Info.ContentLen(), s.FileSize)
	if err != nil {
		return nil, nil, fmt.Errorf("packing %s: %w", f.Path, err)
	}
	bin, err := os.Open(f.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("packing: %w", err)
	}
	defer bin.Close()
	t := pack.Target{File: bin, ID: s.FileID, Layout: l}
	var assets []Asset
	var refs []manifest.Pack
	add := func(base *pack.Base, name string) error {
		path, err := pack.Make(ctx, p.Dir, t, base)
		if err != nil {
			return fmt.Errorf("packing %s: %w", f.Path, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		ref := manifest.Pack{Asset: name, Size: fi.Size()}
		if base != nil {
			ref.Base = hex.EncodeToString(base.ID[:])
		}
		assets = append(assets, Asset{Name: name, Path: path, MediaType: "application/octet-stream"})
		refs = append(refs, ref)
		return nil
	}
	if p.Compress {
		if err := add(nil, asset+zstSuffix); err != nil {
			return nil, nil, err
		}
	}
	for _, b := range bases {
		if b.in.Format != region.V1 || b.in.Target != f.Target.String() {
			continue
		}
		b.used = true
		if region.CompareVersions(b.in.Version, f.Info.Version) >= 0 {
			return nil, nil, fmt.Errorf("delta base %s is version %s, not older than %s (%s)", b.path, b.in.Version, f.Path, f.Info.Version)
		}
		if b.base.ID == s.FileID {
			continue
		}
		name := asset + "." + hex.EncodeToString(b.base.ID[:8]) + deltaSuffix
		if err := add(b.base, name); err != nil {
			return nil, nil, err
		}
	}
	return assets, refs, nil
}
