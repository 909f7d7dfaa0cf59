package ghrelease

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/region"
)

// A statementKind is a kind of signed statement that a release carries
// next to its binaries, such as key rotations: files whose names end in
// suffix, each checked by check before it is published.
type statementKind struct {
	suffix string
	max    int64 // bytes
	check  func(b []byte) error
}

// statementKinds lists the statements a release may carry, by suffix. A
// new kind is one line here.
func statementKinds() []statementKind {
	return []statementKind{
		{rotation.FileSuffix, rotation.MaxSize, verified(rotation.Parse)},
		{rollout.FileSuffix, rollout.MaxSize, verified(rollout.Parse)},
	}
}

// verified returns a check that parses a statement and verifies its
// signature.
func verified[S interface{ Verify() error }](parse func([]byte) (S, error)) func([]byte) error {
	return func(b []byte) error {
		s, err := parse(b)
		if err != nil {
			return err
		}
		return s.Verify()
	}
}

// IsStatement reports whether name is the name of a statement file a
// release carries (such as linux-amd64-1.rotation), by its suffix.
func IsStatement(name string) bool {
	_, ok := statementKindOf(name)
	return ok
}

func statementKindOf(name string) (statementKind, bool) {
	for _, k := range statementKinds() {
		if strings.HasSuffix(name, k.suffix) && len(name) > len(k.suffix) {
			return k, true
		}
	}
	return statementKind{}, false
}

// An Asset is one file of a release as rustpatcher-go lays it out, on
// GitHub or in a static mirror (see Layout).
type Asset struct {
	// Name is the asset's name in the release, a plain file name.
	Name string
	// Path is the local file that holds it, or empty when Data does.
	Path string
	// Data is the asset's content when it is generated (manifests, piece
	// hashes).
	Data []byte
	// MediaType is its Content-Type.
	MediaType string
}

// Layout returns the assets of a release of the signed binaries files and
// the statement files statements (see IsStatement), in the order in which
// to put them in place, so that a reader that sees a manifest finds
// everything it names:
//
//   - each binary, under its asset name;
//   - for a v1 binary, its piece hashes, as <asset>.pieces (see
//     PiecesSuffix);
//   - for a v1 binary, the packs that packs asks for (see Packs), unless
//     packs is nil;
//   - each statement, under its file name;
//   - last, for each target, its manifest rustpatcher-<os>-<arch>.json
//     (see PatchInfo), which names the binary, its piece hashes, its
//     file's length and ID, and every statement.
//
// Each binary is read once to compute its piece hashes and file ID; it
// must still hold the region in its Signed. Each statement must be well
// formed and signed. Two assets of one name are refused.
func Layout(ctx context.Context, files []Signed, statements []string, packs *Packs) ([]Asset, error) {
	names := make(map[string]string)
	claim := func(name, path string) error {
		if prev, ok := names[name]; ok {
			return fmt.Errorf("publishing %s and %s: both would be the release asset %q", prev, path, name)
		}
		names[name] = path
		return nil
	}
	var bins, pieces, packed, stmts, manifests []Asset
	var stmtNames []string
	for _, p := range statements {
		name := filepath.Base(p)
		k, ok := statementKindOf(name)
		if !ok {
			return nil, fmt.Errorf("%s is not a statement file: its name must end in one of %s", p, statementSuffixes())
		}
		if err := checkStatement(p, k); err != nil {
			return nil, err
		}
		if err := claim(name, p); err != nil {
			return nil, err
		}
		stmts = append(stmts, Asset{Name: name, Path: p, MediaType: "text/plain"})
		stmtNames = append(stmtNames, name)
	}
	for _, f := range files {
		n := []string{f.assetName(), ManifestName(f.Target)}
		if f.Info.Format == region.V1 {
			n = append(n, f.assetName()+PiecesSuffix)
		}
		for _, name := range n {
			if err := claim(name, f.Path); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range files {
		if f.Info.Format == region.V1 && f.Info.Target != f.Target.String() {
			return nil, fmt.Errorf("publishing %s as %s: it is signed for %s", f.Path, f.Target, f.Info.Target)
		}
	}
	var bases []*openedBase
	if packs != nil {
		var err error
		if bases, err = openBases(ctx, packs); err != nil {
			return nil, err
		}
		defer closeBases(bases)
	}
	for _, f := range files {
		s, err := region.ScanFile(ctx, f.Path)
		if err != nil {
			return nil, fmt.Errorf("publishing: %w", err)
		}
		if in, err := s.Info(); err != nil || in != f.Info {
			return nil, fmt.Errorf("publishing %s: the file changed since it was verified; verify and publish it again", f.Path)
		}
		pi := NewPatchInfo(f.Target, f.Info, f.PublicKey)
		pi.Asset = f.assetName()
		pi.FileSize = s.FileSize
		pi.FileID = hex.EncodeToString(s.FileID[:])
		pi.Statements = stmtNames
		bins = append(bins, Asset{Name: pi.Asset, Path: f.Path, MediaType: "application/octet-stream"})
		if f.Info.Format == region.V1 {
			pi.Pieces = pi.Asset + PiecesSuffix
			b := make([]byte, 0, len(s.Leaves)*sha256.Size)
			for _, l := range s.Leaves {
				b = append(b, l[:]...)
			}
			pieces = append(pieces, Asset{Name: pi.Pieces, Data: b, MediaType: "application/octet-stream"})
			if packs != nil {
				as, refs, err := makePacks(ctx, packs, bases, f, s, pi.Asset)
				if err != nil {
					return nil, err
				}
				for _, a := range as {
					if err := claim(a.Name, f.Path); err != nil {
						return nil, err
					}
				}
				packed = append(packed, as...)
				pi.Packs = refs
			}
		}
		mb, err := json.MarshalIndent(pi, "", "  ")
		if err != nil {
			return nil, err
		}
		manifests = append(manifests, Asset{Name: ManifestName(f.Target), Data: append(mb, '\n'), MediaType: "application/json"})
	}
	for _, b := range bases {
		if !b.used {
			return nil, fmt.Errorf("delta base %s is a %s binary, and no v1 binary of %s is published", b.path, b.in.Target, b.in.Target)
		}
	}
	out := append(bins, pieces...)
	out = append(out, packed...)
	out = append(out, stmts...)
	return append(out, manifests...), nil
}

func statementSuffixes() string {
	var s []string
	for _, k := range statementKinds() {
		s = append(s, k.suffix)
	}
	return strings.Join(s, ", ")
}

// checkStatement reads the statement file at path, at most k.max bytes,
// and checks it.
func checkStatement(path string, k statementKind) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, k.max+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > k.max {
		return fmt.Errorf("not publishing %s: longer than the %d bytes a %s statement may have", path, k.max, k.suffix)
	}
	if err := k.check(b); err != nil {
		return fmt.Errorf("not publishing %s: %w", path, err)
	}
	return nil
}

// WriteDir puts the assets in the directory dir, which must exist, in
// their order, as a static mirror of the release: each is written to a
// temporary file in dir and renamed over its name, so that a reader of
// the mirror never sees a partial file, and an asset of the same name is
// replaced (as Publish replaces it on GitHub). A binary is copied,
// streaming.
func WriteDir(dir string, assets []Asset) error {
	for _, a := range assets {
		if err := writeAsset(dir, a); err != nil {
			return err
		}
	}
	return nil
}

func writeAsset(dir string, a Asset) (err error) {
	tmp, err := os.CreateTemp(dir, "."+a.Name+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", a.Name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if a.Path == "" {
		_, err = tmp.Write(a.Data)
	} else {
		err = copyFile(tmp, a.Path)
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, a.Name))
	}
	if err != nil {
		return fmt.Errorf("writing %s in %s: %w", a.Name, dir, err)
	}
	return nil
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
