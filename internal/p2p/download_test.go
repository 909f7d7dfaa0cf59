package p2p

import (
	"bytes"
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

// TestMultiPeerFetch downloads a release that three seeds serve: the
// pieces come from all of them, each piece from one, save those asked
// again because the first peer was slow or its ask failed (a loaded
// machine, as under -race, makes some).
func TestMultiPeerFetch(t *testing.T) {
	t.Parallel()
	key, path, in := writeRelease(t, 24<<20)
	pub := key.Public
	want, _ := os.ReadFile(path)
	ctx := testContext(t)
	var seeds []*Node
	for range 3 {
		seeds = append(seeds, newTestSeed(t, ctx, Config{}, pub, path, in))
	}
	client := newTestNode(t, Config{}, seeds...)
	r := onlyRelease(t, ctx, client.Source(pub, testTarget))
	if len(r.Peers()) != 3 {
		t.Fatalf("offered by %d peers, want 3", len(r.Peers()))
	}
	if got := readAllFrom(t, r, 0); !bytes.Equal(got, want) {
		t.Fatal("downloaded bytes differ from the release")
	}
	var total uint64
	for i, s := range seeds {
		up := s.Stats().BytesUploaded
		t.Logf("seed %d uploaded %d MiB", i, up>>20)
		if up == 0 {
			t.Errorf("seed %d sent no piece", i)
		}
		total += up
	}
	// Random bytes do not compress: each piece goes as a raw packed
	// frame, one byte more.
	onWire := uint64(len(want)) + uint64(r.offer.Layout.NumPieces())
	twice := client.Stats().PiecesAskedTwice
	most := onWire + twice*uint64(r.offer.Layout.MaxPieceLen()+1)
	if total < onWire || total > most {
		t.Errorf("seeds uploaded %d bytes in all for a file of %d, want %d (%d with %d pieces asked twice at most)", total, len(want), onWire, most, twice)
	}
	if got := client.Stats().BytesDownloaded; got < onWire || got > most {
		t.Errorf("client downloaded %d bytes, want %d (%d with %d pieces asked twice at most)", got, onWire, most, twice)
	}
	if twice > 0 {
		t.Logf("%d pieces asked again", twice)
	}
	if n := uint64(r.offer.Layout.NumPieces()); twice > n/2 {
		t.Errorf("%d asks of pieces asked before, for %d pieces: the scheduler asks again far more than a slow peer explains", twice, n)
	}
}

// TestDownloadMemoryBound reads a 64 MiB release slowly from three fast
// seeds: the download never holds more than its window of pieces.
func TestDownloadMemoryBound(t *testing.T) {
	t.Parallel()
	key, path, in := writeRelease(t, 64<<20)
	pub := key.Public
	ctx := testContext(t)
	var seeds []*Node
	for range 3 {
		seeds = append(seeds, newTestSeed(t, ctx, Config{}, pub, path, in))
	}
	client := newTestNode(t, Config{}, seeds...)
	r := onlyRelease(t, ctx, client.Source(pub, testTarget))
	rc, err := r.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	d := rc.(*download)
	if want := int64(fetchWindow+1) << 20; d.bound() != want {
		t.Fatalf("bound = %d, want %d (the window and a stolen piece, no tail)", d.bound(), want)
	}
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := rc.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n%(4<<20) == 0 {
			time.Sleep(20 * time.Millisecond) // a slow reader: the peers wait for the window
		}
		d.mu.Lock()
		held, received := d.held, int64(len(d.data))
		d.mu.Unlock()
		if held > d.bound() || received > fetchWindow {
			t.Fatalf("holding %d bytes in %d pieces, bound %d bytes", held, received, d.bound())
		}
	}
	if n != in.ContentLen() {
		t.Fatalf("read %d bytes, want %d", n, in.ContentLen())
	}
	d.mu.Lock()
	maxHeld := d.maxHeld
	d.mu.Unlock()
	t.Logf("held at most %d MiB for a file of %d MiB", maxHeld>>20, n>>20)
	if maxHeld > d.bound() || maxHeld < 4<<20 {
		t.Errorf("held at most %d bytes; want between 4 MiB and the bound %d", maxHeld, d.bound())
	}
}

// TestOldProtocolPeer puts a node that speaks only protocol v0 among the
// bootstrap peers of a v1 node: the new node never asks it anything it
// would have to answer, gives it no strike, and still gets the release
// from a v1 seed; a v0 request to the v1 seed is refused by protocol
// negotiation, before any handler sees it.
func TestOldProtocolPeer(t *testing.T) {
	t.Parallel()
	key, path, in := writeRelease(t, 3<<20)
	pub := key.Public
	want, _ := os.ReadFile(path)
	ctx := testContext(t)
	reg, _ := in.Marshal()

	// The stand-in of an old node: it answers /rustpatcher/<owner>/v0
	// info requests with a v0 answer (status and region) and offers its
	// bytes to fetches, as protocol v0 did.
	v0 := protocol.ID("/rustpatcher/" + region.EncodePublicKey(pub) + "/v0")
	old := newTestNode(t, Config{})
	var oldAsked atomic.Int64
	old.Host().SetStreamHandler(v0, func(s network.Stream) {
		defer s.Close()
		oldAsked.Add(1)
		io.CopyN(io.Discard, s, 140)
		s.Write(append([]byte{0}, reg[:]...))
	})
	seed := newTestSeed(t, ctx, Config{}, pub, path, in)
	client := newTestNode(t, Config{}, old, seed)
	r := onlyRelease(t, ctx, client.Source(pub, testTarget))
	if p := r.Peers(); len(p) != 1 || p[0] != seed.ID() {
		t.Fatalf("offered by %v, want only the v1 seed", p)
	}
	got, err := fetchFile(ctx, r, pub)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	if s := client.strikes.of(old.ID()); s != 0 {
		t.Errorf("the old node got %d strikes", s)
	}
	if n := oldAsked.Load(); n != 0 {
		t.Errorf("the old node was sent %d v0 requests", n)
	}

	// An old node asks the new one in its protocol: negotiation fails.
	before := seed.Stats()
	if s, err := old.Host().NewStream(ctx, seed.ID(), v0); err == nil {
		// Negotiation may be lazy: the stream fails at its first read.
		s.Write(bytes.Repeat([]byte{'R'}, 140))
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Read(make([]byte, 1)); err == nil {
			t.Fatal("a v0 stream to a v1 node was answered")
		}
		s.Reset()
	}
	after := seed.Stats()
	if after.BadRequests != before.BadRequests || after.InfoRequests != before.InfoRequests {
		t.Errorf("a v0 request reached the v1 handler: %+v then %+v", before, after)
	}
	if wire.ProtocolID(pub) == string(v0) {
		t.Fatal("the v1 protocol ID is the v0 one")
	}
}

// TestNameAfterFailedDownload checks that a release whose download failed
// without a piece delivered is named apart from a fresh offer of the same
// file: the update engine remembers refusals by name, and must try the
// file again at its next poll.
func TestNameAfterFailedDownload(t *testing.T) {
	t.Parallel()
	key, path, _ := writeRelease(t, 2<<20)
	pub := key.Public
	f := loadTestFile(t, path)
	ctx := testContext(t)
	liar := startTestPeer(t, pub, f, func(s network.Stream, _ *testFile, _, _ int64) {
		wire.WritePiecesHeader(s)
		s.Write(junk(1 << 20))
	})
	client := newTestNode(t, Config{}, liar.Node)
	src := client.Source(pub, testTarget)
	r := onlyRelease(t, ctx, src)
	fresh := r.String()
	if _, err := fetchFile(ctx, r, pub); err == nil {
		t.Fatal("a download from a liar alone succeeded")
	}
	if r.String() == fresh {
		t.Fatalf("name %q unchanged by a failed download", fresh)
	}
	if again := onlyRelease(t, ctx, src); again.String() != fresh {
		t.Fatalf("a new offer of the file is named %q, want %q", again.String(), fresh)
	}
}

// TestSlowPeerIsOvertaken downloads from an honest seed and a peer that
// sends the right bytes just fast enough not to be dropped: the pieces it
// holds are asked of the seed too, so the download does not wait for it,
// and nobody is struck.
func TestSlowPeerIsOvertaken(t *testing.T) {
	t.Parallel()
	key, path, _ := writeRelease(t, 12<<20)
	pub := key.Public
	f := loadTestFile(t, path)
	ctx := testContext(t)
	slow := startTestPeer(t, pub, f, func(s network.Stream, f *testFile, first, count int64) {
		wire.WritePiecesHeader(s)
		b := f.pieces(first, count)
		for len(b) > 0 {
			k := min(len(b), minProgress)
			if _, err := s.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
			time.Sleep(700 * time.Millisecond) // 64 KiB per 0.7 s: never dropped
		}
	})
	seed := newTestNode(t, Config{})
	if err := seed.Serve(ctx, pub, testTarget, path, f.info); err != nil {
		t.Fatal(err)
	}
	client := newTestNode(t, Config{IdleTimeout: time.Second}, slow.Node, seed)
	r := onlyRelease(t, ctx, client.Source(pub, testTarget))
	start := time.Now()
	got, err := fetchFile(ctx, r, pub)
	if err != nil || !bytes.Equal(got, f.bytes) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	took := time.Since(start)
	t.Logf("downloaded in %v; the slow peer was asked %d times", took.Round(time.Millisecond), slow.asked.Load())
	if slow.asked.Load() == 0 {
		t.Fatal("the slow peer was never asked")
	}
	// The slow peer needs 45 s for one run of 4 pieces; the margin below
	// that is for a loaded machine under -race.
	if took > 30*time.Second {
		t.Errorf("download took %v: the slow peer held it up", took)
	}
	if client.strikes.of(slow.ID())+client.strikes.of(seed.ID()) != 0 {
		t.Error("a peer that sent only right bytes got a strike")
	}
}
