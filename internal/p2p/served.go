package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/org/rustpatcher-go/internal/pack"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// served is one release file the node uploads. The open file is kept, so
// the path may be renamed over; it is closed when the release is no longer
// served and its last upload ended. What a peer may ask about it is kept in
// memory from the one scan that verified it: its file ID, its length and,
// for a v1 release, its piece hashes (32 bytes per MiB).
type served struct {
	pub    ed25519.PublicKey
	target string
	info   region.Info
	reg    [region.Size]byte
	id     [wire.IDLen]byte // the file ID
	layout wire.Layout
	leaves [][sha256.Size]byte // nil for a v0 release
	f      *os.File
	// part is set while the node downloads the file and serves the
	// pieces it checked so far: f is then its spool (see partial.go).
	part *partial

	// raw has a bit set for each piece an upload found not worth
	// compressing: later uploads send it as it is without trying again.
	raw []atomic.Uint64

	mu    sync.Mutex
	refs  int                              // 1 while served, +1 per running upload
	packs map[[wire.IDLen]byte]*pack.Cache // made frames, by base file ID (zero: compressed alone); see packed.go
}

// newServed returns the release in f, whose region reg holds in and whose
// scan is sc, served once (one reference).
func newServed(pub ed25519.PublicKey, target string, in region.Info, reg [region.Size]byte, f *os.File, sc *region.Scanned, l wire.Layout) *served {
	s := &served{pub: pub, target: target, info: in, reg: reg, id: sc.FileID, layout: l, f: f, refs: 1}
	s.raw = make([]atomic.Uint64, (l.NumPieces()+63)/64)
	if in.Format == region.V1 {
		s.leaves = sc.Leaves
	}
	return s
}

// rawKnown reports whether an upload found piece i not worth compressing.
func (s *served) rawKnown(i int64) bool { return s.raw[i/64].Load()&(1<<(i%64)) != 0 }

// setRaw records that piece i is not worth compressing.
func (s *served) setRaw(i int64) { s.raw[i/64].Or(1 << (i % 64)) }

// acquire takes a reference for an upload.
func (s *served) acquire() { s.mu.Lock(); s.refs++; s.mu.Unlock() }

// release gives back a reference and closes the file with the last one.
func (s *served) release() {
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	packs := s.packs
	if last {
		s.packs = nil
	}
	s.mu.Unlock()
	if last {
		s.f.Close()
		if s.part != nil && s.part.path != "" {
			os.Remove(s.part.path)
		}
		for _, c := range packs {
			c.Close()
		}
	}
}

// newerOrSame reports whether s, which may be nil, is the file id or a
// release newer than version.
func (s *served) newerOrSame(id [wire.IDLen]byte, version string) bool {
	return s != nil && (s.id == id || region.CompareVersions(s.info.Version, version) > 0)
}

// openVerified opens path, checks through the open descriptor that it is a
// release signed by pub whose region is exactly in, and returns the file,
// its scan and its layout. The check reads the whole file once, and stops
// when ctx is done.
func openVerified(ctx context.Context, path string, pub ed25519.PublicKey, in region.Info) (*os.File, *region.Scanned, wire.Layout, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, wire.Layout{}, err
	}
	sc, l, err := verifyOpen(ctx, f, pub, in)
	if err != nil {
		f.Close()
		return nil, nil, wire.Layout{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, sc, l, nil
}

// verifyOpen scans the open file f and checks it as openVerified says.
func verifyOpen(ctx context.Context, f *os.File, pub ed25519.PublicKey, in region.Info) (*region.Scanned, wire.Layout, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, wire.Layout{}, err
	}
	sc, err := region.ScanOpen(ctx, f)
	if err != nil {
		return nil, wire.Layout{}, err
	}
	if sc.FileSize != st.Size() {
		return nil, wire.Layout{}, fmt.Errorf("the file changed size while it was read (%d bytes, then %d)", st.Size(), sc.FileSize)
	}
	got, err := sc.Verify(pub)
	if err != nil {
		return nil, wire.Layout{}, err
	}
	if got != in {
		return nil, wire.Layout{}, fmt.Errorf("holds version %s, not the release %s it was given for", got.Version, in.Version)
	}
	l, err := wire.NewLayout(in.ContentLen(), sc.FileSize)
	if err != nil {
		return nil, wire.Layout{}, err
	}
	return sc, l, nil
}
