package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

func junk(n int64) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// testFile is a release file as a test peer knows it.
type testFile struct {
	reg    [region.Size]byte
	info   region.Info
	layout wire.Layout
	id     [wire.IDLen]byte
	leaves [][sha256.Size]byte
	bytes  []byte
}

// loadTestFile reads and scans the release at path.
func loadTestFile(t testing.TB, path string) *testFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := region.Scan(context.Background(), bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	in, err := sc.Info()
	if err != nil {
		t.Fatal(err)
	}
	l, err := wire.NewLayout(in.ContentLen(), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return &testFile{reg: sc.Region, info: in, layout: l, id: sc.FileID, leaves: sc.Leaves, bytes: b}
}

// pieces returns the bytes of count pieces of f from first.
func (f *testFile) pieces(first, count int64) []byte {
	off, _ := f.layout.Piece(first)
	lastOff, lastN := f.layout.Piece(first + count - 1)
	return f.bytes[off : lastOff+lastN]
}

// pieceLie is how a test peer answers a pieces request for f.
type pieceLie func(s network.Stream, f *testFile, first, count int64)

// testPeer is a node that answers the owner's protocol by hand: info with
// its file, hashes with hashes (the real ones unless set) after
// hashesDelay, pieces with lie (the real pieces when nil), and packed
// requests with packed or, when it is nil, as a node of an older release,
// whose decoder does not know the kind: bad request. It counts the
// requests it answers.
type testPeer struct {
	*Node
	file        *testFile
	hashes      [][sha256.Size]byte
	hashesDelay time.Duration
	lie         pieceLie
	packed      pieceLie      // answers packed requests, when set
	ext         *wire.InfoExt // said after the info answer, when set
	asked       atomic.Int64  // pieces and answered packed requests
	hashesAsked atomic.Int64  // hashes requests
	refused     atomic.Int64  // packed requests
}

// startTestPeer starts a test peer for f; set hashes and lie before it is
// asked.
func startTestPeer(t *testing.T, pub ed25519.PublicKey, f *testFile, lie pieceLie) *testPeer {
	p := &testPeer{Node: newTestNode(t, Config{}), file: f, hashes: f.leaves, lie: lie}
	p.Host().SetStreamHandler(protocol.ID(wire.ProtocolID(pub)), p.handle)
	return p
}

func (p *testPeer) handle(s network.Stream) {
	defer s.Close()
	req, err := wire.ReadRequest(s)
	if err != nil {
		return
	}
	if req.Kind == wire.KindPacked && p.packed != nil {
		p.asked.Add(1)
		p.packed(s, p.file, int64(req.First), int64(req.Count))
		return
	}
	if req.Kind == wire.KindPacked {
		p.refused.Add(1)
		wire.WriteError(s, wire.StatusBadRequest, "malformed request")
		return
	}
	f := p.file
	switch req.Kind {
	case wire.KindInfo:
		if p.ext != nil {
			wire.WriteInfoExt(s, f.reg, f.layout.Size, f.id, *p.ext)
			return
		}
		wire.WriteInfo(s, f.reg, f.layout.Size, f.id)
	case wire.KindHashes:
		p.hashesAsked.Add(1)
		time.Sleep(p.hashesDelay)
		wire.WriteHashes(s, p.hashes)
	case wire.KindPieces:
		p.asked.Add(1)
		if p.lie != nil {
			p.lie(s, f, int64(req.First), int64(req.Count))
			return
		}
		wire.WritePiecesHeader(s)
		s.Write(f.pieces(int64(req.First), int64(req.Count)))
	default:
		// As a node of an older release, whose decoder does not know the
		// kind.
		wire.WriteError(s, wire.StatusBadRequest, "malformed request")
	}
}

// fetchFile downloads r like the update engine: it opens the file again at
// the offset reached after a read error, checks the whole file (signature,
// content, file ID) and calls Reject when it does not verify.
func fetchFile(ctx context.Context, r *Release, pub ed25519.PublicKey) ([]byte, error) {
	var buf bytes.Buffer
	var lastErr error
	for tries := 0; int64(buf.Len()) < r.Size() && tries < 4; tries++ {
		rc, err := r.Open(ctx, int64(buf.Len()))
		if err != nil {
			lastErr = err
			continue
		}
		_, lastErr = io.Copy(&buf, rc)
		rc.Close()
	}
	if int64(buf.Len()) != r.Size() {
		return nil, fmt.Errorf("got %d of %d bytes: %w", buf.Len(), r.Size(), lastErr)
	}
	sc, err := region.Scan(ctx, bytes.NewReader(buf.Bytes()))
	if err == nil {
		_, err = sc.Verify(pub)
	}
	if err == nil && sc.FileID != r.FileID() {
		err = fmt.Errorf("%w: got %x", ErrOtherFile, sc.FileID[:8])
	}
	if err != nil {
		r.Reject(err)
		return nil, err
	}
	return buf.Bytes(), nil
}

// onlyRelease returns the one release src finds, failing t otherwise.
func onlyRelease(t *testing.T, ctx context.Context, src *Source) *Release {
	t.Helper()
	rels, err := src.Releases(ctx)
	if err != nil || len(rels) != 1 {
		t.Fatalf("Releases = %v, %v; want one", rels, err)
	}
	return rels[0]
}

// releaseOf returns the release of version among those src finds, for a
// node whose network also serves other versions.
func releaseOf(t *testing.T, ctx context.Context, src *Source, version string) *Release {
	t.Helper()
	rels, err := src.Releases(ctx)
	for _, r := range rels {
		if r.Info().Version == version {
			return r
		}
	}
	t.Fatalf("Releases = %v, %v; want %s among them", rels, err, version)
	return nil
}

// waitFor polls cond every 10 ms for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newLiar starts a node that answers every request of pub's protocol with
// answer, whatever was asked.
func newLiar(t *testing.T, pub ed25519.PublicKey, answer []byte) *Node {
	t.Helper()
	liar := newTestNode(t, Config{})
	liar.Host().SetStreamHandler(protocol.ID(wire.ProtocolID(pub)), func(s network.Stream) {
		defer s.Close()
		wire.ReadRequest(s)
		s.Write(answer)
	})
	return liar
}
