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
	total  uint64 // info.Size + region.Size

	mu   sync.Mutex
	refs int // 1 while served, +1 per running upload
}

func (s *served) acquire() { s.mu.Lock(); s.refs++; s.mu.Unlock() }

func (s *served) release() {
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	s.mu.Unlock()
	if last {
		s.f.Close()
	}
}

// openVerified opens path, checks through the open descriptor that it is a
// release signed by pub whose region is exactly in, and returns the file.
// The check reads the whole file once.
func openVerified(path string, pub ed25519.PublicKey, in region.Info) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if want := int64(in.Size) + region.Size; st.Size() != want {
		f.Close()
		return nil, fmt.Errorf("%s: %w: file has %d bytes, signed for %d", path, region.ErrSizeMismatch, st.Size(), want)
	}
	sc, err := region.Scan(context.Background(), f)
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
