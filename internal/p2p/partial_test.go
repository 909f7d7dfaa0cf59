package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// partialCount returns the number of pieces of the file id n serves while
// it downloads it, or -1 when it serves none.
func partialCount(n *Node, id [wire.IDLen]byte) int {
	n.server.mu.Lock()
	sv := n.server.partials[id]
	n.server.mu.Unlock()
	if sv == nil {
		return -1
	}
	_, c, _, _ := sv.haveState()
	return c
}

// askHaveOf sends a have request for the file id to ai and reads the
// answer for a file of layout l.
func askHaveOf(ctx context.Context, n *Node, pub []byte, ai peer.AddrInfo, id [wire.IDLen]byte, l wire.Layout, known uint32) (wire.Bitfield, error) {
	s, err := n.request(ctx, pub, ai, &wire.Request{Kind: wire.KindHave, Target: testTarget, ID: id, Known: known})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(30 * time.Second))
	return wire.ReadHave(s, l)
}

// heldWindow is a release of a seed and node A downloading it with
// PiecesEarly, its reader held at piece 0, so that A holds the pieces of
// its window, 0 to fetchWindow-1, and no more; B is a node connected to
// both.
type heldWindow struct {
	ctx        context.Context
	pub        ed25519.PublicKey
	path       string
	in         region.Info
	seed, a, b *Node
	rc         io.ReadCloser // A's reader, at piece 0
	id         [wire.IDLen]byte
	l          wire.Layout
	aInfo      peer.AddrInfo
}

// startHeldWindow starts a heldWindow for a release of size bytes, once
// A's window is full.
func startHeldWindow(t *testing.T, size int64) *heldWindow {
	t.Helper()
	key, path, in := writeRelease(t, size)
	w := &heldWindow{ctx: testContext(t), pub: key.Public, path: path, in: in}
	w.seed = newTestSeed(t, w.ctx, Config{}, w.pub, path, in)
	w.a = newTestNode(t, Config{PiecesEarly: true}, w.seed)
	w.b = newTestNode(t, Config{PiecesEarly: true}, w.seed, w.a)
	ra := onlyRelease(t, w.ctx, w.a.Source(w.pub, testTarget))
	w.id, w.l = ra.FileID(), ra.offer.Layout
	rc, err := ra.Open(w.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	w.rc = rc
	// (Waiting for the count to stay put for a while instead failed
	// under -race, where a piece can take longer than the while.)
	waitFor(t, "A's window is full", func() bool { return partialCount(w.a, w.id) == fetchWindow })
	w.aInfo = peer.AddrInfo{ID: w.a.ID(), Addrs: w.a.Host().Addrs()}
	return w
}

// TestPiecesEarly: a node serves the pieces it checked while its own
// download runs (here held at its window of 16 pieces by a reader that
// reads nothing), says which with have answers, holds a have request
// until it has more pieces, refuses pieces it does not hold without
// taking a slot, and another node downloads those pieces from it alone
// once the seed is gone.
func TestPiecesEarly(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real hosts on loopback; runs without -short")
	}
	t.Parallel()
	w := startHeldWindow(t, 24<<20)
	ctx, pub, path, seed, a, b, id, l, aInfo := w.ctx, w.pub, w.path, w.seed, w.a, w.b, w.id, w.l, w.aInfo
	rb := onlyRelease(t, ctx, b.Source(pub, testTarget))
	held := partialCount(a, id)

	bf, err := askHaveOf(ctx, b, pub, aInfo, id, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	if bf.Count() != held {
		t.Fatalf("have answer: %d pieces, A holds %d", bf.Count(), held)
	}
	for i := range l.NumPieces() {
		if bf.Has(i) && i >= fetchWindow {
			t.Fatalf("A says it holds piece %d, beyond its window", i)
		}
	}
	if !bf.Has(1) {
		t.Fatal("A does not serve piece 1, which it checked")
	}

	// A has no more pieces: a have request that knows them all waits,
	// and is answered with what A holds.
	start := time.Now()
	bf, err = askHaveOf(ctx, b, pub, aInfo, id, l, uint32(held))
	if waited := time.Since(start); err != nil || bf.Count() != held || waited < time.Second {
		t.Fatalf("long poll: %d pieces after %v, %v; want %d after about 2 s", bf.Count(), waited, err, held)
	}

	// A piece A does not hold: not found, no upload slot taken.
	missing := uint32(l.NumPieces() - 1)
	if _, err := askPieces(ctx, b, pub, aInfo, id, missing, 1); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("a piece A does not hold: %v, want not found", err)
	}
	if s := a.Stats(); s.Busy != 0 || s.ActiveUploads != 0 {
		t.Fatalf("A's stats after refusing a piece it does not hold: %+v", s)
	}

	// With the seed gone, B takes the pieces A holds from A, which it
	// finds through the DHT and asks which pieces it holds.
	seed.Close()
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := f[region.PieceSize : 9*region.PieceSize] // pieces 1 to 8
	rcb, err := rb.Open(ctx, region.PieceSize)
	if err != nil {
		t.Fatal(err)
	}
	defer rcb.Close()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(rcb, got); err != nil {
		t.Fatalf("reading pieces 1 to 8 from A: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the pieces from A differ from the release's")
	}
	if s := a.Stats(); s.BytesUploaded < uint64(len(want)) || s.HaveRequests < 2 || s.WatchRequests < 1 {
		t.Fatalf("A uploaded %d bytes and answered %d have and %d watch requests, want at least %d, 2 and 1", s.BytesUploaded, s.HaveRequests, s.WatchRequests, len(want))
	}
	if s := b.Stats(); s.Strikes != 0 {
		t.Fatalf("B struck %d times", s.Strikes)
	}
}

// watchOf sends a watch request for the file id to ai and returns its
// stream, to read the answer from.
func watchOf(t *testing.T, ctx context.Context, n *Node, pub []byte, ai peer.AddrInfo, id [wire.IDLen]byte, known uint32) network.Stream {
	t.Helper()
	s, err := n.request(ctx, pub, ai, &wire.Request{Kind: wire.KindWatch, Target: testTarget, ID: id, Known: known})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	s.SetReadDeadline(time.Now().Add(30 * time.Second))
	return s
}

// TestWatch: a node that serves a file in part answers a watch with the
// pieces it holds at once, then with each new piece, says the same again
// after MaxHaveWait without a change, and ends the answer with the whole
// file once it serves it whole. Past maxWatches, a watch gets its first
// bitfield alone.
func TestWatch(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real hosts on loopback; runs without -short")
	}
	t.Parallel()
	w := startHeldWindow(t, 20<<20)
	ctx, pub, path, in, a, b, id, l, aInfo, rc := w.ctx, w.pub, w.path, w.in, w.a, w.b, w.id, w.l, w.aInfo, w.rc

	st := watchOf(t, ctx, b, pub, aInfo, id, 0)
	bf, err := wire.ReadHave(st, l)
	if err != nil || bf.Count() != fetchWindow {
		t.Fatalf("first bitfield: %d pieces, %v; want %d", bf.Count(), err, fetchWindow)
	}
	// Nothing new: the same again after about MaxHaveWait.
	start := time.Now()
	bf, err = wire.ReadWatchUpdate(st, l, bf)
	if waited := time.Since(start); err != nil || bf.Count() != fetchWindow || waited < wire.MaxHaveWait/2 {
		t.Fatalf("without a change: %d pieces after %v, %v; want %d after about %v", bf.Count(), waited, err, fetchWindow, wire.MaxHaveWait)
	}
	// The reader takes piece 0: A fetches piece 16, and says so.
	if _, err := io.ReadFull(rc, make([]byte, region.PieceSize)); err != nil {
		t.Fatal(err)
	}
	// (A heartbeat may come first on a loaded machine.)
	for deadline := time.Now().Add(10 * time.Second); !bf.Has(fetchWindow); {
		if bf, err = wire.ReadWatchUpdate(st, l, bf); err != nil || time.Now().After(deadline) {
			t.Fatalf("after a new piece: %d pieces (piece %d: %v), %v", bf.Count(), fetchWindow, bf.Has(fetchWindow), err)
		}
	}

	// Past maxWatches: the first bitfield alone.
	for i := range maxWatches {
		if !a.server.startWatch(peer.ID(fmt.Sprint("filler ", i))) {
			break
		}
	}
	full := watchOf(t, ctx, b, pub, aInfo, id, 0)
	if bf, err := wire.ReadHave(full, l); err != nil || bf.Count() < fetchWindow {
		t.Fatalf("a watch past the bound: %d pieces, %v", bf.Count(), err)
	}
	if _, err := wire.ReadWatchUpdate(full, l, bf); !errors.Is(err, io.EOF) {
		t.Fatalf("a watch past the bound goes on: %v, want its end", err)
	}

	// A reads the rest and serves the file whole: the first watch gets
	// the whole file, and ends.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	if err := a.Serve(ctx, pub, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	for bf.Count() < int(l.NumPieces()) {
		if bf, err = wire.ReadWatchUpdate(st, l, bf); err != nil {
			t.Fatalf("waiting for the whole file: %v", err)
		}
	}
	if _, err := wire.ReadWatchUpdate(st, l, bf); !errors.Is(err, io.EOF) {
		t.Fatalf("after the whole file: %v, want the answer's end", err)
	}
	if s := a.Stats(); s.WatchRequests != 2 || s.HaveUpdates < 4 {
		t.Fatalf("A answered %d watches with %d bitfields, want 2 and at least 4", s.WatchRequests, s.HaveUpdates)
	}
}

// TestHaveOlderPeer: nodes of this release and nodes from before have
// requests (noHave: they refuse the kind, serve only whole files and ask
// every provider as if it held all) interoperate both ways, without a
// strike.
func TestHaveOlderPeer(t *testing.T) {
	t.Parallel()
	t.Run("older provider", func(t *testing.T) {
		t.Parallel()
		key, path, in := writeRelease(t, 6<<20)
		pub := key.Public
		ctx := testContext(t)
		seed := newTestSeed(t, ctx, Config{}, pub, path, in)
		old := newTestSeed(t, ctx, Config{noHave: true}, pub, path, in, seed)
		c := newTestNode(t, Config{PiecesEarly: true}, seed, old)
		r := onlyRelease(t, ctx, c.Source(pub, testTarget))
		// The older node is to be found as a provider, not an offer: the
		// download asks it which pieces it holds.
		r.peers = []peer.AddrInfo{{ID: seed.ID(), Addrs: seed.Host().Addrs()}}
		delete(r.exts, old.ID())
		seed.Close()
		got, err := fetchFile(ctx, r, pub)
		if err != nil {
			t.Fatal(err)
		}
		if f, _ := os.ReadFile(path); !bytes.Equal(got, f) {
			t.Fatal("the file differs")
		}
		if s := old.Stats(); s.BadRequests == 0 || s.HaveRequests != 0 {
			t.Errorf("the older node refused %d requests and answered %d have requests; want it to refuse have", s.BadRequests, s.HaveRequests)
		}
		if s := c.Stats(); s.Strikes != 0 {
			t.Errorf("%d strikes", s.Strikes)
		}
	})
	t.Run("older downloader", func(t *testing.T) {
		t.Parallel()
		key, path, in := writeRelease(t, 24<<20)
		pub := key.Public
		ctx := testContext(t)
		seed := newTestSeed(t, ctx, Config{}, pub, path, in)
		a := newTestNode(t, Config{PiecesEarly: true}, seed)
		ra := onlyRelease(t, ctx, a.Source(pub, testTarget))
		rc, err := ra.Open(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		waitFor(t, "A holds pieces", func() bool { return partialCount(a, ra.FileID()) >= 8 })
		old := newTestNode(t, Config{noHave: true}, seed, a)
		r := onlyRelease(t, ctx, old.Source(pub, testTarget))
		if r.offered(a.ID()) {
			t.Fatal("A offered a file it holds in part")
		}
		got, err := fetchFile(ctx, r, pub)
		if err != nil {
			t.Fatal(err)
		}
		if f, _ := os.ReadFile(path); !bytes.Equal(got, f) {
			t.Fatal("the file differs")
		}
		if s := old.Stats(); s.Strikes != 0 {
			t.Errorf("the older node struck %d times", s.Strikes)
		}
		t.Logf("A answered %d pieces requests of the older node's, %d bytes", a.Stats().FetchRequests, a.Stats().BytesUploaded)
	})
	t.Run("provider before watches", func(t *testing.T) {
		// A node of the release before watches (noWatch), serving a
		// file in part, refuses the watch and answers have requests.
		t.Parallel()
		key, path, in := writeRelease(t, 12<<20)
		pub := key.Public
		ctx := testContext(t)
		seed := newTestSeed(t, ctx, Config{}, pub, path, in)
		old := newTestNode(t, Config{PiecesEarly: true, noWatch: true}, seed)
		ro := onlyRelease(t, ctx, old.Source(pub, testTarget))
		rc, err := ro.Open(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the older node holds every piece", func() bool { return partialCount(old, ro.FileID()) == int(ro.offer.Layout.NumPieces()) })
		c := newTestNode(t, Config{PiecesEarly: true}, seed, old)
		r := onlyRelease(t, ctx, c.Source(pub, testTarget))
		// The older node is to be found as a provider, not an offer.
		r.peers = []peer.AddrInfo{{ID: seed.ID(), Addrs: seed.Host().Addrs()}}
		seed.Close()
		got, err := fetchFile(ctx, r, pub)
		if err != nil {
			t.Fatal(err)
		}
		if f, _ := os.ReadFile(path); !bytes.Equal(got, f) {
			t.Fatal("the file differs")
		}
		if s := old.Stats(); s.BadRequests == 0 || s.HaveRequests == 0 || s.WatchRequests != 0 {
			t.Errorf("the older node refused %d requests and answered %d have and %d watch requests; want it to refuse watches and answer have (%+v)", s.BadRequests, s.HaveRequests, s.WatchRequests, s)
		}
		if s := c.Stats(); s.Strikes != 0 {
			t.Errorf("%d strikes", s.Strikes)
		}
	})
}

// TestPartialBeforeFirstPiece: a node that serves pieces early serves a
// file in part, and announces it under the file's release key, as soon as
// its download has the piece hashes, before any piece came (here its only
// peer answers hashes and never sends a piece): peers find it and learn of
// its pieces by have requests. Without PiecesEarly it does neither.
func TestPartialBeforeFirstPiece(t *testing.T) {
	t.Parallel()
	key, path, _ := writeRelease(t, 6<<20)
	pub := key.Public
	ctx := testContext(t)
	f := loadTestFile(t, path)
	stall := startTestPeer(t, pub, f, func(s network.Stream, f *testFile, first, count int64) {
		<-ctx.Done() // holds the request: no piece ever comes
	})
	for _, early := range []bool{true, false} {
		n := newTestNode(t, Config{PiecesEarly: early}, stall.Node)
		r := onlyRelease(t, ctx, n.Source(pub, testTarget))
		rc, err := r.Open(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the piece hashes asked", func() bool { return stall.hashesAsked.Load() > 0 && r.pieceLeaves() != nil })
		release := ReleaseCID(pub, testTarget, f.id)
		if early {
			waitFor(t, "the file served in part", func() bool { return partialCount(n, f.id) == 0 })
			n.ann.mu.Lock()
			_, announced := n.ann.keys[release]
			n.ann.mu.Unlock()
			if !announced {
				t.Error("the file served in part is not announced")
			}
		} else {
			time.Sleep(200 * time.Millisecond)
			if c := partialCount(n, f.id); c != -1 {
				t.Errorf("without PiecesEarly: the file is served in part (%d pieces)", c)
			}
		}
		rc.Close()
		stall.hashesAsked.Store(0)
	}
}

// speakerPeer is a node connected to the downloader that speaks the
// owner's protocol without being a provider of the file: it answers have
// and watch requests with have (nil: refuses them as an older node; empty:
// not found), a watch with that one bitfield alone (or, with dropping,
// followed by one that drops piece 0: malformed), pieces requests with
// garbage (with dropping, not found: no strike), packed ones as an older
// node, and counts the have and watch
// requests and the others.
type speakerPeer struct {
	*Node
	have                  wire.Bitfield
	dropping              bool
	haves, watches, other atomic.Int64
}

func startSpeaker(t *testing.T, pub ed25519.PublicKey, have wire.Bitfield) *speakerPeer {
	p := &speakerPeer{Node: newTestNode(t, Config{}), have: have}
	p.Host().SetStreamHandler(protocol.ID(wire.ProtocolID(pub)), func(s network.Stream) {
		defer s.Close()
		req, err := wire.ReadRequest(s)
		if err != nil {
			return
		}
		switch req.Kind {
		case wire.KindHave:
			p.haves.Add(1)
		case wire.KindWatch:
			p.watches.Add(1)
		}
		isHave := req.Kind == wire.KindHave || req.Kind == wire.KindWatch
		switch {
		case isHave && p.have == nil:
			wire.WriteError(s, wire.StatusBadRequest, "malformed request")
		case isHave && p.have.Count() == 0:
			wire.WriteError(s, wire.StatusNotFound, "file not served here")
		case isHave:
			wire.WriteHave(s, p.have)
			if req.Kind == wire.KindWatch && p.dropping {
				less := append(wire.Bitfield(nil), p.have...)
				less[0] &^= 1
				wire.WriteWatchUpdate(s, less)
			}
		case req.Kind == wire.KindInfo:
			wire.WriteError(s, wire.StatusNotFound, "no release")
		case req.Kind == wire.KindPacked:
			wire.WriteError(s, wire.StatusBadRequest, "malformed request")
		case p.dropping:
			p.other.Add(1)
			wire.WriteError(s, wire.StatusNotFound, "pieces not held yet")
		default:
			p.other.Add(1)
			wire.WritePiecesHeader(s)
			s.Write(junk(int64(req.Count) * region.PieceSize))
		}
	})
	return p
}

// TestConnectedSpeakers: a download with PiecesEarly asks the connected
// peers that speak the owner's protocol, but not providers of the file,
// which pieces they hold, once, and nothing more of one that refuses (an
// older node) or holds none; one that names pieces and sends bad data is
// asked once, struck, and not asked again by a later download of the
// release; one with maxStrikes is not asked at all.
func TestConnectedSpeakers(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real hosts on loopback; runs without -short")
	}
	t.Parallel()
	key, path, in := writeRelease(t, 8<<20)
	pub := key.Public
	ctx := testContext(t)
	f := loadTestFile(t, path)
	all := wire.NewBitfield(f.layout)
	for i := range f.layout.NumPieces() {
		all.Set(i)
	}
	older := startSpeaker(t, pub, nil)
	other := startSpeaker(t, pub, wire.NewBitfield(f.layout))
	liar := startSpeaker(t, pub, all)
	struck := startSpeaker(t, pub, all)
	// The seed's upload is slow enough for the download to meet the
	// speakers: it takes about 4 s.
	seed := newTestSeed(t, ctx, Config{UploadRate: 2 << 20}, pub, path, in)
	c := newTestNode(t, Config{PiecesEarly: true}, seed, older.Node, other.Node, liar.Node, struck.Node)
	c.strike(struck.ID(), maxStrikes, errors.New("struck out by the test"))
	r := onlyRelease(t, ctx, c.Source(pub, testTarget))
	done := make(chan error, 1)
	go func() {
		_, err := fetchFile(ctx, r, pub)
		done <- err
	}()
	waitFor(t, "the lying speaker asked for pieces", func() bool { return liar.other.Load() > 0 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := liar.other.Load(); n != 1 {
		t.Errorf("the speaker that sent bad data was asked %d times, want once", n)
	}
	if c.strikes.of(liar.ID()) == 0 {
		t.Error("the speaker that sent bad data got no strike")
	}
	for _, p := range []struct {
		name string
		p    *speakerPeer
	}{{"older", older}, {"holding nothing", other}} {
		if h, w, o := p.p.haves.Load(), p.p.watches.Load(), p.p.other.Load(); h > 1 || w > 1 || o != 0 {
			t.Errorf("the speaker %s was asked %d have, %d watch and %d other requests; want at most one have and one watch", p.name, h, w, o)
		}
	}
	if h, w, o := struck.haves.Load(), struck.watches.Load(), struck.other.Load(); h != 0 || w != 0 || o != 0 {
		t.Errorf("the struck-out speaker was asked %d have, %d watch and %d other requests", h, w, o)
	}

	// A second download of the release: the speaker that sent bad data is
	// left out.
	haves := liar.haves.Load() + liar.watches.Load()
	if _, err := fetchFile(ctx, r, pub); err != nil {
		t.Fatal(err)
	}
	if h, o := liar.haves.Load()+liar.watches.Load()-haves, liar.other.Load(); h != 0 || o != 1 {
		t.Errorf("the second download asked the speaker that sent bad data %d have or watch requests, %d pieces requests in all; want none more", h, o)
	}
}

// TestWatchDropsPieces: a peer whose watch answer takes back a piece it
// named is malformed: it gets a strike (its only one: it answers pieces
// requests not found), is not asked again for the file, and the download
// completes from the seed.
func TestWatchDropsPieces(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real hosts on loopback; runs without -short")
	}
	t.Parallel()
	key, path, in := writeRelease(t, 8<<20)
	pub := key.Public
	ctx := testContext(t)
	f := loadTestFile(t, path)
	// It names every piece but the last, so the download watches on.
	most := wire.NewBitfield(f.layout)
	for i := range f.layout.NumPieces() - 1 {
		most.Set(i)
	}
	dropper := startSpeaker(t, pub, most)
	dropper.dropping = true
	seed := newTestSeed(t, ctx, Config{UploadRate: 4 << 20}, pub, path, in)
	c := newTestNode(t, Config{PiecesEarly: true}, seed, dropper.Node)
	r := onlyRelease(t, ctx, c.Source(pub, testTarget))
	got, err := fetchFile(ctx, r, pub)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := os.ReadFile(path); !bytes.Equal(got, f) {
		t.Fatal("the file differs")
	}
	if dropper.watches.Load() == 0 {
		t.Fatal("the download never watched the peer")
	}
	if c.strikes.of(dropper.ID()) == 0 {
		t.Error("the peer whose watch dropped a piece got no strike")
	}
	r.mu.Lock()
	bad := r.bad[dropper.ID()]
	r.mu.Unlock()
	if !bad {
		t.Error("the peer whose watch dropped a piece may be asked again for the file")
	}
}

// TestSpeakersAndBadOffer: connected speakers that hold nothing of the
// file do not keep a download alive: when every peer that offers it sends
// bad data, it fails at once for that reason, as without PiecesEarly, and
// the caller can take another offer, rather than after its idle rounds.
func TestSpeakersAndBadOffer(t *testing.T) {
	t.Parallel()
	key, path, _ := writeRelease(t, 6<<20)
	pub := key.Public
	ctx := testContext(t)
	f := loadTestFile(t, path)
	liar := startTestPeer(t, pub, f, nil)
	liar.hashes = make([][sha256.Size]byte, len(f.leaves))
	older := startSpeaker(t, pub, nil)
	other := startSpeaker(t, pub, wire.NewBitfield(f.layout))
	c := newTestNode(t, Config{PiecesEarly: true}, liar.Node, older.Node, other.Node)
	r := onlyRelease(t, ctx, c.Source(pub, testTarget))
	rc, err := r.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, ErrNoPeers) || !strings.Contains(err.Error(), "sent bad data") {
		t.Fatalf("download: %v; want ErrNoPeers, every peer that offers it sent bad data", err)
	}
	if o := older.other.Load() + other.other.Load(); o != 0 {
		t.Errorf("the speakers were asked %d requests other than have", o)
	}
}

// servesOnly checks that every piece node n serves of the file id in part
// is want's.
func servesOnly(t *testing.T, n *Node, id [wire.IDLen]byte, want []byte) {
	t.Helper()
	n.server.mu.Lock()
	sv := n.server.partials[id]
	if sv != nil {
		sv.acquire()
	}
	n.server.mu.Unlock()
	if sv == nil {
		return
	}
	defer sv.release()
	bf, _, _, _ := sv.haveState()
	for i := range sv.layout.NumPieces() {
		if !bf.Has(i) {
			continue
		}
		off, l := sv.layout.Piece(i)
		b := make([]byte, l)
		if _, err := sv.f.ReadAt(b, off); err != nil || !bytes.Equal(b, want[off:off+l]) {
			t.Fatalf("piece %d served in part is not the release's (%v)", i, err)
		}
	}
}

// seededRelease writes a release of size bytes and starts a seed that
// serves it: its owner key, region and bytes, and the seed.
func seededRelease(t *testing.T, ctx context.Context, size int64) (ed25519.PublicKey, region.Info, []byte, *Node) {
	t.Helper()
	key, path, in := writeRelease(t, size)
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return key.Public, in, want, newTestSeed(t, ctx, Config{}, key.Public, path, in)
}

// TestServeDownloaded: a node that wrote a file from its own download
// (serving it in part meanwhile) serves it whole with ServeDownloaded, and
// a peer gets the release from it alone; a file of another length, or one
// the node did not download itself, is scanned as Serve does, and refused
// when it does not verify.
func TestServeDownloaded(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real hosts on loopback; runs without -short")
	}
	t.Parallel()
	ctx := testContext(t)
	pub, in, want, seed := seededRelease(t, ctx, 6<<20)
	a := newTestNode(t, Config{PiecesEarly: true}, seed)
	r := onlyRelease(t, ctx, a.Source(pub, testTarget))
	got, err := fetchFile(ctx, r, pub)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("download: %v, equal %v", err, bytes.Equal(got, want))
	}
	id := r.FileID()
	if partialCount(a, id) <= 0 {
		t.Fatal("the node serves nothing of the file in part")
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Another length: scanned, and refused.
	short := write("short", want[:len(want)-1])
	if err := a.Source(pub, testTarget).SeedDownloaded(ctx, short, in, id); err == nil {
		t.Fatal("a file of another length was served")
	}
	// A node that did not download the file: scanned, and a damaged copy
	// refused.
	damaged := append([]byte(nil), want...)
	damaged[len(damaged)/2] ^= 1
	b := newTestNode(t, Config{PiecesEarly: true}, seed)
	if err := b.Source(pub, testTarget).SeedDownloaded(ctx, write("damaged", damaged), in, id); err == nil {
		t.Fatal("a node that did not download the file served a damaged copy")
	}
	if s := b.Stats(); s.Served != 0 {
		t.Fatalf("the node serves %d releases", s.Served)
	}

	// The downloaded file: served whole, the part it served ends, and a
	// peer takes the release from it with the seed gone.
	if err := a.Source(pub, testTarget).SeedDownloaded(ctx, write("copy", got), in, id); err != nil {
		t.Fatal(err)
	}
	if partialCount(a, id) != -1 || a.Stats().Served != 1 {
		t.Fatalf("after SeedDownloaded: %d pieces served in part, %d releases served whole", partialCount(a, id), a.Stats().Served)
	}
	seed.Close()
	c := newTestNode(t, Config{PiecesEarly: true}, a)
	rc := onlyRelease(t, ctx, c.Source(pub, testTarget))
	if !rc.offered(a.ID()) {
		t.Fatal("the node does not offer the file it serves whole")
	}
	if got, err := fetchFile(ctx, rc, pub); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("download from the node: %v, equal %v", err, bytes.Equal(got, want))
	}
	if s := c.Stats(); s.Strikes != 0 {
		t.Fatalf("%d strikes", s.Strikes)
	}
}

// TestOpenFile downloads a release with OpenFile: the download writes the
// file into the caller's file, which holds every byte the reader returned,
// and the node serves the pieces from that file, without a spool of its
// own, even after the caller renamed it: a peer takes the release from the
// node alone. A file the download cannot write fails the reader with
// ErrWrite.
func TestOpenFile(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real hosts on loopback; runs without -short")
	}
	t.Parallel()
	ctx := testContext(t)
	pub, _, want, seed := seededRelease(t, ctx, 6<<20)
	spool := t.TempDir()
	a := newTestNode(t, Config{PiecesEarly: true, spoolDir: spool}, seed)
	r := onlyRelease(t, ctx, a.Source(pub, testTarget))
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, ".staging"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.OpenFile(ctx, f, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reader: %v, equal %v", err, bytes.Equal(got, want))
	}
	if written, err := os.ReadFile(f.Name()); err != nil || !bytes.Equal(written, want) {
		t.Fatalf("the caller's file: %v, equal %v (%d of %d bytes)", err, bytes.Equal(written, want), len(written), len(want))
	}
	if off, err := f.Seek(0, io.SeekCurrent); err != nil || off != 0 {
		t.Fatalf("the caller's file offset moved to %d (%v)", off, err)
	}
	id := r.FileID()
	l := r.offer.Layout
	if c := partialCount(a, id); c != int(l.NumPieces()) {
		t.Fatalf("the node serves %d of %d pieces in part", c, l.NumPieces())
	}
	if runtime.GOOS != "windows" {
		if ents, _ := os.ReadDir(spool); len(ents) != 0 {
			t.Fatalf("the node made a spool of its own: %v", ents)
		}
	}

	// Opened again past the start, as the engine resumes: only the bytes
	// from that offset are written; those below it are the caller's.
	resumed, err := os.Create(filepath.Join(dir, "resumed"))
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	from := int64(len(want))/2 + 123
	mine := bytes.Repeat([]byte{0xaa}, int(from))
	if _, err := resumed.Write(mine); err != nil {
		t.Fatal(err)
	}
	rc4, err := r.OpenFile(ctx, resumed, from)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(rc4)
	rc4.Close()
	if err != nil || !bytes.Equal(got, want[from:]) {
		t.Fatalf("reader from %d: %v, equal %v", from, err, bytes.Equal(got, want[from:]))
	}
	if written, _ := os.ReadFile(resumed.Name()); !bytes.Equal(written, append(mine, want[from:]...)) {
		t.Fatalf("the file opened from %d: the bytes below it changed, or those above are not the release's", from)
	}
	// The same on a node that serves nothing of the file yet: it serves
	// only the release's bytes, not the caller's below the offset.
	fresh := newTestNode(t, Config{PiecesEarly: true, spoolDir: t.TempDir()}, seed)
	if _, err := resumed.WriteAt(mine, 0); err != nil {
		t.Fatal(err)
	}
	rf := onlyRelease(t, ctx, fresh.Source(pub, testTarget))
	rc5, err := rf.OpenFile(ctx, resumed, from)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rc5); err != nil || !bytes.Equal(got, want[from:]) {
		t.Fatalf("reader from %d on a fresh node: %v, equal %v", from, err, bytes.Equal(got, want[from:]))
	}
	rc5.Close()
	servesOnly(t, fresh, rf.FileID(), want)

	// A file the download cannot write.
	b := newTestNode(t, Config{PiecesEarly: true, spoolDir: t.TempDir()}, seed)
	ro := filepath.Join(dir, "read-only")
	if err := os.WriteFile(ro, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := os.Open(ro)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	rb := onlyRelease(t, ctx, b.Source(pub, testTarget))
	rc3, err := rb.OpenFile(ctx, g, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc3.Close()
	if _, err := io.ReadAll(rc3); !errors.Is(err, ErrWrite) {
		t.Fatalf("reader of a file it cannot write: %v, want %v", err, ErrWrite)
	}

	// The caller renames its file (as the engine renames it over the
	// executable) and closes it: the node goes on serving it.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, "app")); err != nil {
		t.Fatal(err)
	}
	// A peer learns of the release from the seed, which then leaves:
	// the node is all there is to download from.
	c := newTestNode(t, Config{PiecesEarly: true}, seed, a)
	rc2 := onlyRelease(t, ctx, c.Source(pub, testTarget))
	seed.Close()
	if got, err := fetchFile(ctx, rc2, pub); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("download from the node serving the caller's file: %v, equal %v", err, bytes.Equal(got, want))
	}
	// Only a's: the seed, closed while the peer may be asking it, can
	// end an answer before its status, which counts as malformed.
	if k := c.strikes.of(a.ID()); k != 0 {
		t.Fatalf("%d strikes for the node serving the caller's file", k)
	}

}
