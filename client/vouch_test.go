package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/org/rustpatcher-go/internal/checked"
	"github.com/org/rustpatcher-go/region"
)

// claimingSource is a Source from outside the module whose release says,
// with the method the network's releases have, that it checked every
// piece, and serves bytes that do not match the signed hash.
type claimingSource struct{ rel *claimingRelease }

func (s claimingSource) Releases(context.Context) ([]Release, error) { return []Release{s.rel}, nil }
func (s claimingSource) String() string                              { return "claiming" }

type claimingRelease struct {
	in   region.Info
	data []byte
}

func (r *claimingRelease) Info() region.Info                     { return r.in }
func (r *claimingRelease) FileID() [sha256.Size]byte             { return [sha256.Size]byte{} }
func (r *claimingRelease) Size() int64                           { return int64(len(r.data)) }
func (r *claimingRelease) PiecesChecked(checked.PieceCheck) bool { return true }
func (r *claimingRelease) Open(_ context.Context, off int64) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(r.data[off:])), nil
}

// releaseBytes makes the rig's release name of version, signed with the
// rig's key, and returns its scan, region and bytes.
func (r *rig) releaseBytes(name, version string) (*region.Scanned, region.Info, []byte) {
	r.t.Helper()
	path := r.release(name, 2, r.key, version)
	s, err := region.ScanFile(context.Background(), path)
	if err != nil {
		r.t.Fatal(err)
	}
	in, err := s.Info()
	if err != nil {
		r.t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		r.t.Fatal(err)
	}
	return s, in, data
}

// TestUnvouchedDownloadRehashed checks that the engine skips hashing a
// download only when one of the module's own sources vouches for its
// pieces: a release from any other source is hashed whole, whatever
// methods it has, and its bad bytes refused; the same bytes vouched for
// pass, which shows the flag is what decides.
func TestUnvouchedDownloadRehashed(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	s, in, data := r.releaseBytes("p", "2.0.0")
	// Change a content byte away from the headers and the region.
	at := int64(len(data)) / 2
	if at >= s.Offset-64 && at < s.Offset+4096 {
		at = s.Offset + 8192
	}
	data[at] ^= 0xff
	src := claimingSource{&claimingRelease{in: in, data: data}}

	p := newPipeline(r.config(), r.key.Public, r.exe, newControl())
	offers, err := offersOf(context.Background(), src)
	if err != nil || len(offers) != 1 {
		t.Fatalf("offersOf = %v, %v", offers, err)
	}
	if offers[0].piecesVerified {
		t.Fatal("a source outside the module vouched for its pieces")
	}
	c := candidate{src: src, rel: offers[0].Release, in: in, piecesVerified: offers[0].piecesVerified}
	if _, _, err := p.fetch(context.Background(), c, io.Discard); !errors.Is(err, region.ErrHashMismatch) {
		t.Errorf("fetching changed bytes from a source that does not vouch: %v, want %v", err, region.ErrHashMismatch)
	}
	c.piecesVerified = true
	if _, _, err := p.fetch(context.Background(), c, io.Discard); err != nil {
		t.Errorf("fetching the same bytes vouched for: %v, want no hashing and no error", err)
	}

	// The whole engine refuses the release and keeps its executable.
	cfg := r.config()
	cfg.Sources = []Source{src}
	r.spawn(cfg)
	e, _ := r.waitEvent(0, EventFailed, func(e Event) bool { return e.Release.Version == "2.0.0" })
	if !errors.Is(e.Err, region.ErrHashMismatch) {
		t.Errorf("failed event: %v, want %v", e.Err, region.ErrHashMismatch)
	}
	r.exeUnchanged()
}
