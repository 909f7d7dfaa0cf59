package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

const testTarget = "linux/amd64"

// newTestNode starts a private, loopback, DHT-server node with QUIC (as
// rpseed's), listening on QUIC and TCP unless cfg.ListenAddrs says
// otherwise.
func newTestNode(t testing.TB, cfg Config, boot ...*Node) *Node {
	t.Helper()
	cfg.Private = true
	cfg.DHTServer = true
	cfg.QUIC = hostquic.New
	if len(cfg.ListenAddrs) == 0 {
		cfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Second
	}
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = 2 * time.Second
	}
	for _, b := range boot {
		cfg.Bootstrap = append(cfg.Bootstrap, b.Addrs()...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// testContext returns a context that ends with the test, or after a
// minute: every wait of a test is bounded.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// writeRelease writes a signed release 2.0.0 of size bytes for
// testTarget, by a new key, into a temporary directory.
func writeRelease(t testing.TB, size int64) (key regiontest.Key, path string, in region.Info) {
	t.Helper()
	key = regiontest.NewKey(t)
	path = filepath.Join(t.TempDir(), "release")
	return key, path, regiontest.WriteBinary(t, path, size, 1, key, "2.0.0")
}

// newTestSeed starts a node as newTestNode does and serves on it the
// release of pub at path.
func newTestSeed(t testing.TB, ctx context.Context, cfg Config, pub ed25519.PublicKey, path string, in region.Info, boot ...*Node) *Node {
	t.Helper()
	n := newTestNode(t, cfg, boot...)
	if err := n.Serve(ctx, pub, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	return n
}

func readAllFrom(t *testing.T, r *Release, off int64) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := r.Open(ctx, off)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServeFindFetch(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	dir := t.TempDir()
	path := filepath.Join(dir, "release-2.0.0")
	in := regiontest.WriteBinary(t, path, 3<<20, 1, key, "2.0.0")
	want, _ := os.ReadFile(path)
	sc, err := region.ScanFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}

	seed := newTestNode(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := seed.Serve(ctx, pub, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	// The seed keeps its descriptor: the path may be replaced.
	if err := os.Rename(filepath.Join(dir, "release-2.0.0"), filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}

	client := newTestNode(t, Config{}, seed)
	rels, err := client.Source(pub, testTarget).Releases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 1 || rels[0].Info() != in {
		t.Fatalf("Releases = %d releases, want the one served", len(rels))
	}
	r := rels[0]
	if r.FileID() != sc.FileID || r.Size() != int64(len(want)) {
		t.Fatalf("offered file %x of %d bytes, want %x of %d", r.FileID(), r.Size(), sc.FileID, len(want))
	}
	// From the start, from inside piece 0, from the middle of a piece
	// further on, from a piece boundary, and from the end.
	for _, off := range []int64{0, 1000, 1<<20 + 12345, 2 << 20, int64(len(want)) - 1, int64(len(want))} {
		if got := readAllFrom(t, r, off); !bytes.Equal(got, want[off:]) {
			t.Fatalf("fetch from offset %d: %d bytes that differ from the %d served", off, len(got), len(want)-int(off))
		}
	}
	if _, err := r.Open(ctx, int64(len(want))+1); err == nil {
		t.Fatal("Open past the end succeeded")
	}
	if s := seed.Stats(); s.HashesRequests != 1 {
		t.Errorf("%d hashes requests; the piece hashes are fetched once per Release", s.HashesRequests)
	}

	// Another target and another key find nothing.
	other := regiontest.NewKey(t).Public
	for _, s := range []*Source{client.Source(pub, "windows/amd64"), client.Source(other, testTarget)} {
		rels, err := s.Releases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rels) != 0 {
			t.Errorf("%v: found %d releases, want none", s, len(rels))
		}
	}
}

func TestSwarmFindsProvidersThroughDHT(t *testing.T) {
	t.Parallel()
	key, path, in := writeRelease(t, 64<<10)
	pub := key.Public
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	boot := newTestNode(t, Config{})
	holder := newTestNode(t, Config{}, boot)
	if err := holder.Serve(ctx, pub, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	client := newTestNode(t, Config{}, boot)
	// The holder is not a bootstrap peer of the client: it is found through
	// its announcement in the DHT. Announcing runs in the background.
	var rels []*Release
	for i := 0; i < 100 && len(rels) == 0; i++ {
		var err error
		if rels, err = client.Source(pub, testTarget).Releases(ctx); err != nil {
			t.Fatal(err)
		}
		if len(rels) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(rels) != 1 || rels[0].Peers()[0] != holder.ID() {
		t.Fatalf("found %d releases, want the holder's", len(rels))
	}
}

func TestServeRejectsWrongFile(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	other := regiontest.NewKey(t).Public
	path := filepath.Join(t.TempDir(), "release")
	in := regiontest.WriteBinary(t, path, 4096, 1, key, "2.0.0")
	n := newTestNode(t, Config{})
	ctx := context.Background()
	older := in
	older.Version = "1.0.0"
	tests := []struct {
		name string
		pub  ed25519.PublicKey
		in   region.Info
		want error
	}{
		{"other key", other, in, region.ErrBadSignature},
		{"other info", pub, older, nil},
	}
	for _, tt := range tests {
		err := n.Serve(ctx, tt.pub, testTarget, path, tt.in)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: Serve = %v, want an error (%v)", tt.name, err, tt.want)
		}
	}
	if n.Stats().Served != 0 {
		t.Errorf("serving %d releases after refusals", n.Stats().Served)
	}
}

func TestUploadSlots(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	// Far more than the stream window (muxerWindow) and socket buffers
	// hold, so that an upload nobody reads keeps its slot.
	path := filepath.Join(t.TempDir(), "release")
	in := regiontest.WriteBinary(t, path, 32<<20, 1, key, "2.0.0")
	seed := newTestNode(t, Config{UploadSlots: 1, UploadSlotsPerPeer: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := seed.Serve(ctx, pub, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	a := newTestNode(t, Config{}, seed)
	b := newTestNode(t, Config{}, seed)
	r := onlyRelease(t, ctx, a.Source(pub, testTarget))
	seedAI := a.bootstrap[0]
	first, err := askPieces(ctx, a, pub, seedAI, r.FileID(), 0, wire.MaxPiecesPerRequest)
	if err != nil {
		t.Fatal(err)
	}
	// The only slot is taken: a second request, from the same or another
	// peer, is told the seed is busy.
	for _, n := range []*Node{a, b} {
		if _, err := askPieces(ctx, n, pub, seedAI, r.FileID(), 8, 1); !errors.Is(err, wire.ErrBusy) {
			t.Errorf("second request: got %v, want ErrBusy", err)
		}
	}
	io.Copy(io.Discard, first)
	first.Close()
	waitFor(t, "the slot freed", func() bool { return seed.Stats().ActiveUploads == 0 })
	// The slot is kept for a's next request for slotGrace, then b gets it.
	if _, err := askPieces(ctx, b, pub, seedAI, r.FileID(), 8, 1); !errors.Is(err, wire.ErrBusy) {
		t.Errorf("request while the slot is kept for another: got %v, want ErrBusy", err)
	}
	time.Sleep(slotGrace)
	s, err := askPieces(ctx, b, pub, seedAI, r.FileID(), 8, 1)
	if err != nil {
		t.Fatalf("request after the slot was freed: %v", err)
	}
	s.Close()
	if got := seed.Stats().Busy; got != 3 {
		t.Errorf("busy answers = %d, want 3", got)
	}
}

// askPieces sends a pieces request to ai and reads the answer's status: it
// returns the stream, positioned at the pieces' bytes.
func askPieces(ctx context.Context, n *Node, pub ed25519.PublicKey, ai peer.AddrInfo, id [wire.IDLen]byte, first, count uint32) (network.Stream, error) {
	s, err := n.request(ctx, pub, ai, &wire.Request{Kind: wire.KindPieces, Target: testTarget, ID: id, First: first, Count: count})
	if err != nil {
		return nil, err
	}
	s.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := wire.ReadPiecesHeader(s); err != nil {
		s.Reset()
		return nil, err
	}
	return s, nil
}

func TestNewerReplacesOlder(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "release-1.0.0"), filepath.Join(dir, "release-2.0.0")
	in1 := regiontest.WriteBinary(t, p1, 4096, 1, key, "1.0.0")
	in2 := regiontest.WriteBinary(t, p2, 4096, 2, key, "2.0.0")
	seed := newTestNode(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, step := range []struct {
		path string
		in   region.Info
	}{{p1, in1}, {p2, in2}, {p1, in1}} {
		if err := seed.Serve(ctx, pub, testTarget, step.path, step.in); err != nil {
			t.Fatal(err)
		}
	}
	client := newTestNode(t, Config{}, seed)
	rels, err := client.Source(pub, testTarget).Releases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 1 || rels[0].Info().Version != "2.0.0" {
		t.Fatalf("got %d releases (%v), want only 2.0.0", len(rels), rels)
	}
	if seed.Stats().Served != 1 {
		t.Errorf("serving %d releases, want 1", seed.Stats().Served)
	}
}
