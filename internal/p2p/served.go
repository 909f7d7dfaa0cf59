package p2p

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"sync"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// served is one release file the node uploads. The open file is kept, so
// the path may be renamed over; it is closed when the release is no longer
// served and its last upload ended.
type served struct {
	pub    ed25519.PublicKey
	target string
	info   region.Info
	reg    [region.Size]byte
	id     [wire.IDLen]byte
	f      *os.File
	total  uint64 // info.ContentLen()

	mu   sync.Mutex
	refs int // 1 while served, +1 per running upload
}

// newServed returns the release in f, whose region reg holds in, served
// once (one reference).
func newServed(pub ed25519.PublicKey, target string, in region.Info, reg [region.Size]byte, f *os.File) *served {
	return &served{pub: pub, target: target, info: in, reg: reg, id: wire.ReleaseID(reg), f: f, total: uint64(in.ContentLen()), refs: 1}
}

// acquire takes a reference for an upload.
func (s *served) acquire() { s.mu.Lock(); s.refs++; s.mu.Unlock() }

// release gives back a reference and closes the file with the last one.
func (s *served) release() {
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	s.mu.Unlock()
	if last {
		s.f.Close()
	}
}

// newerOrSame reports whether s, which may be nil, is the release id or
// newer than version.
func (s *served) newerOrSame(id [wire.IDLen]byte, version string) bool {
	return s != nil && (s.id == id || region.CompareVersions(s.info.Version, version) > 0)
}

// openVerified opens path, checks through the open descriptor that it is a
// release signed by pub whose region is exactly in, and returns the file.
// The check reads the whole file once, and stops when ctx is done.
func openVerified(ctx context.Context, path string, pub ed25519.PublicKey, in region.Info) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if want := in.ContentLen(); st.Size() != want {
		f.Close()
		return nil, fmt.Errorf("%s: %w: file has %d bytes, signed for %d", path, region.ErrSizeMismatch, st.Size(), want)
	}
	sc, err := region.Scan(ctx, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	got, err := sc.Verify(pub)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if got != in {
		f.Close()
		return nil, fmt.Errorf("%s: holds version %s, not the release %s it was given for", path, got.Version, in.Version)
	}
	return f, nil
}
