package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/org/rustpatcher-go/internal/manifest"
	"github.com/org/rustpatcher-go/internal/pack"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Packed frames over HTTPS (docs/FORMAT.md, "Packed frames on a mirror"):
// a manifest may name packs of its binary, its pieces compressed alone or
// as deltas from older binaries (rpsign publish --compress, --delta-from).
// A download from the start takes the smallest of the delta from the
// binary the engine verified last (the running one, or the release it
// applied since), the compressed pieces and the binary; each piece
// decoded is checked against the signed root before a byte of it is
// handed on, as the binary's are. A pack that fails is not used again for that release: the
// engine resumes from the binary, with a Range request.

// httpPack is a pack a manifest names.
type httpPack struct {
	url  string
	base [sha256.Size]byte // zero: compressed alone
	size int64
}

// packsOf returns the packs of pi whose names and bases are well formed,
// their files in dir; the others are left out, as a peer's bad offer is.
func packsOf(pi manifest.PatchInfo, dir string) []httpPack {
	var out []httpPack
	for _, p := range pi.Packs {
		u, err := fileURL(dir, p.Asset)
		if err != nil || p.Size <= 0 {
			continue
		}
		hp := httpPack{url: u, size: p.Size}
		if p.Base != "" {
			b, err := hex.DecodeString(p.Base)
			if err != nil || len(b) != sha256.Size {
				continue
			}
			copy(hp.base[:], b)
		}
		out = append(out, hp)
	}
	return out
}

// deltaBase is a binary the engine verified, which deltas may be
// decoded from: held open, so that it may be replaced on disk.
type deltaBase struct {
	f       *os.File
	size    int64
	id      [sha256.Size]byte
	version string
}

// A baseTaker is a source that decodes deltas from the binaries the
// engine verified: it is given each, as a Seeder is.
type baseTaker interface {
	takeBase(ctx context.Context, path string, in region.Info) error
}

// takeBase keeps the v1 binary at path, verified with region in, as the
// base of deltas when it is newer than the one kept.
func (s *httpSource) takeBase(ctx context.Context, path string, in region.Info) error {
	if in.Format != region.V1 {
		return nil
	}
	s.mu.Lock()
	cur := s.deltaBase
	s.mu.Unlock()
	if cur != nil && region.CompareVersions(cur.version, in.Version) >= 0 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	sc, err := region.ScanOpen(ctx, f)
	if err == nil {
		var got region.Info
		if got, err = sc.Info(); err == nil && got != in {
			err = fmt.Errorf("%s holds version %s, not %s", path, got.Version, in.Version)
		}
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("a base for deltas: %w", err)
	}
	b := &deltaBase{f: f, size: sc.FileSize, id: sc.FileID, version: in.Version}
	s.mu.Lock()
	old := s.deltaBase
	if old != nil && region.CompareVersions(old.version, in.Version) >= 0 {
		old = b // another call kept a newer one meanwhile
	} else {
		s.deltaBase = b
	}
	s.mu.Unlock()
	if old != nil {
		old.f.Close()
	}
	return nil
}

// badPack remembers that the pack at u failed: it is not used again.
func (s *httpSource) badPack(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.badPacks) >= maxRemembered {
		clear(s.badPacks)
	}
	s.badPacks[u] = true
}

// openPacked returns the file of r decoded from its best pack, c checking
// its pieces, or nil when it has none to use.
func (r *httpRelease) openPacked(ctx context.Context, c *region.PieceChecker) io.ReadCloser {
	s := r.src
	if r.id == ([sha256.Size]byte{}) {
		return nil
	}
	l, err := wire.NewLayout(r.in.ContentLen(), r.size)
	if err != nil {
		return nil
	}
	// The smallest pack that can be used, if smaller than the binary.
	s.mu.Lock()
	base := s.deltaBase
	var pick *httpPack
	for i, p := range r.packs {
		usable := p.base == ([sha256.Size]byte{}) || base != nil && p.base == base.id
		if usable && !s.badPacks[p.url] && p.size <= pack.MaxCacheLen(l) && p.size < r.size && (pick == nil || p.size < pick.size) {
			pick = &r.packs[i]
		}
	}
	s.mu.Unlock()
	if pick == nil {
		return nil
	}
	var ra io.ReaderAt
	var raSize int64
	if pick.base != ([sha256.Size]byte{}) {
		ra, raSize = base.f, base.size
	}
	body, err := s.f.Open(ctx, pick.url, 0, pick.size, pick.size)
	if err != nil {
		if ctx.Err() == nil {
			s.badPack(pick.url)
		}
		return nil
	}
	fr, err := pack.NewFrameReader(body, r.id, pick.base, l)
	if err != nil {
		body.Close()
		if ctx.Err() == nil {
			s.badPack(pick.url)
		}
		return nil
	}
	dec, err := pack.NewDecoder()
	if err != nil {
		body.Close()
		return nil
	}
	return &packedReader{fr: fr, dec: dec, body: body, base: ra, baseSize: raSize, c: c, l: l,
		piece: make([]byte, l.MaxPieceLen()), url: pick.url, bad: s.badPack}
}

// packedReader hands on the bytes of a release's file decoded from the
// frames of a pack, each content piece checked against the signed root
// before a byte of it is handed on; the tail (an OS code signature) as it
// comes, which the engine checks. Memory: a few pieces.
type packedReader struct {
	fr       *pack.FrameReader
	dec      *pack.Decoder
	body     io.Closer
	base     io.ReaderAt // nil: compressed alone
	baseSize int64
	c        *region.PieceChecker
	l        wire.Layout
	i        int64
	piece    []byte
	out      []byte
	err      error
	url      string
	bad      func(url string)
}

func (p *packedReader) Read(b []byte) (int, error) {
	for len(p.out) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if p.i >= p.l.NumPieces() {
			p.err = io.EOF
			continue
		}
		_, n := p.l.Piece(p.i)
		out := p.piece[:n]
		fp, err := p.fr.Next(out)
		if err == nil && fp.Method != wire.PackRaw {
			err = p.dec.Unpack(fp, p.base, p.baseSize, out)
		}
		if err == nil && !p.l.IsTail(p.i) {
			err = p.c.Check(p.i, out)
		}
		if err != nil {
			p.bad(p.url)
			p.err = fmt.Errorf("%s: piece %d: %w", p.url, p.i, err)
			continue
		}
		p.out = out
		p.i++
	}
	k := copy(b, p.out)
	p.out = p.out[k:]
	return k, nil
}

func (p *packedReader) Close() error {
	p.dec.Close()
	return p.body.Close()
}
