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
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// movedCopy returns f's bytes with the region moved to half its offset:
// the same region, other bytes.
func movedCopy(t *testing.T, f *testFile) []byte {
	at := int64(f.info.Offset)
	to := at / 2
	var b []byte
	b = append(b, f.bytes[:to]...)
	b = append(b, f.bytes[at:at+region.Size]...)
	b = append(b, f.bytes[to:at]...)
	return append(b, f.bytes[at+region.Size:]...)
}

// head returns the first n bytes of b, or all of b when it is shorter
// (the tail piece may be).
func head(b []byte, n int) []byte { return b[:min(n, len(b))] }

// pieceLies are the ways a peer that offers the real file answers pieces
// requests; struck says whether the lie is provably bad data (a strike),
// or only a failure of the peer (skipped, no strike).
var pieceLies = []struct {
	name   string
	lie    pieceLie
	struck bool
}{
	{"garbage status", func(s network.Stream, _ *testFile, _, _ int64) { s.Write(junk(20)) }, true},
	{"garbage of the right length", func(s network.Stream, f *testFile, first, count int64) {
		wire.WritePiecesHeader(s)
		s.Write(junk(int64(len(f.pieces(first, count)))))
	}, true},
	{"a changed byte", func(s network.Stream, f *testFile, first, count int64) {
		b := bytes.Clone(f.pieces(first, count))
		b[len(b)-1] ^= 1
		wire.WritePiecesHeader(s)
		s.Write(b)
	}, true},
	{"1 MiB of garbage and close", func(s network.Stream, _ *testFile, _, _ int64) {
		wire.WritePiecesHeader(s)
		s.Write(junk(1 << 20))
	}, true},
	{"truncated (clean close)", func(s network.Stream, f *testFile, first, count int64) {
		wire.WritePiecesHeader(s)
		s.Write(head(f.pieces(first, count), 1000))
	}, true},
	{"reset", func(s network.Stream, f *testFile, first, count int64) {
		wire.WritePiecesHeader(s)
		s.Write(head(f.pieces(first, count), 1000))
		s.Reset()
	}, false},
	{"refused stream", func(s network.Stream, _ *testFile, _, _ int64) { s.Reset() }, false},
	{"busy", func(s network.Stream, _ *testFile, _, _ int64) { wire.WriteError(s, wire.StatusBusy, "busy") }, false},
	{"not found", func(s network.Stream, _ *testFile, _, _ int64) { wire.WriteError(s, wire.StatusNotFound, "gone") }, false},
	{"stall", func(s network.Stream, f *testFile, first, count int64) {
		wire.WritePiecesHeader(s)
		s.Write(head(f.pieces(first, count), 1000))
		time.Sleep(3 * time.Second)
	}, false},
	{"drip", func(s network.Stream, f *testFile, first, count int64) {
		wire.WritePiecesHeader(s)
		for _, c := range f.pieces(first, count)[:30] {
			if _, err := s.Write([]byte{c}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}, false},
}

// TestHostilePieces runs each lie in a peer that offers the real file next
// to an honest seed: the download ends with the real bytes, the liar gets
// a strike exactly when its lie is provably bad data, and the seed never
// gets one.
func TestHostilePieces(t *testing.T) {
	t.Parallel()
	key, path, _ := writeRelease(t, 12<<20)
	pub := key.Public
	f := loadTestFile(t, path)
	for _, tt := range pieceLies {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			testLiar(t, pub, path, f, tt.lie, nil, tt.struck)
		})
	}
	t.Run("moved_region_copy", func(t *testing.T) {
		t.Parallel()
		moved := movedCopy(t, f)
		testLiar(t, pub, path, f, func(s network.Stream, f *testFile, first, count int64) {
			off, _ := f.layout.Piece(first)
			end, n := f.layout.Piece(first + count - 1)
			wire.WritePiecesHeader(s)
			s.Write(moved[off : end+n])
		}, nil, true)
	})
	t.Run("forged_hashes", func(t *testing.T) {
		t.Parallel()
		forged := make([][sha256.Size]byte, len(f.leaves))
		testLiar(t, pub, path, f, nil, forged, true)
	})
}

// testLiar downloads f from a liar (asked first) and an honest seed.
func testLiar(t *testing.T, pub ed25519.PublicKey, path string, f *testFile, lie pieceLie, hashes [][sha256.Size]byte, struck bool) {
	ctx := testContext(t)
	seed := newTestNode(t, Config{})
	if err := seed.Serve(ctx, pub, testTarget, path, f.info); err != nil {
		t.Fatal(err)
	}
	liar := startTestPeer(t, pub, f, lie)
	if hashes != nil {
		liar.hashes = hashes
	}
	client := newTestNode(t, Config{IdleTimeout: time.Second}, liar.Node, seed)
	r := onlyRelease(t, ctx, client.Source(pub, testTarget))
	if len(r.Peers()) != 2 {
		t.Fatalf("offered by %v, want the liar and the seed", r.Peers())
	}
	// The liar is asked first.
	r.peers[0], r.peers[1] = r.peers[1], r.peers[0]
	if r.peers[0].ID != liar.ID() {
		r.peers[0], r.peers[1] = r.peers[1], r.peers[0]
	}
	got, err := fetchFile(ctx, r, pub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.bytes) {
		t.Fatal("downloaded bytes differ from the release")
	}
	if hashes == nil && liar.asked.Load() == 0 {
		t.Fatal("the liar was never asked for pieces")
	}
	if s := client.strikes.of(liar.ID()); (s > 0) != struck {
		t.Errorf("liar has %d strikes; want strikes %v", s, struck)
	}
	if s := client.strikes.of(seed.ID()); s != 0 {
		t.Errorf("the honest seed got %d strikes", s)
	}
}

func TestHostileInfo(t *testing.T) {
	t.Parallel()
	key, path, in := writeRelease(t, 4096)
	pub := key.Public
	f := loadTestFile(t, path)
	forged := in
	forged.Signature[3] ^= 1
	foreign := in
	foreign.Version = "9.0.0"
	foreign.Sign(regiontest.NewKey(t).Private)
	answer := func(in region.Info, size int64) []byte {
		b, _ := in.Marshal()
		var buf bytes.Buffer
		wire.WriteInfo(&buf, b, size, f.id)
		return buf.Bytes()
	}
	tests := []struct {
		name   string
		answer []byte
		struck bool
	}{
		{"garbage", junk(wire.InfoAnswerLen), true},
		{"truncated", answer(in, f.layout.Size)[:100], true},
		{"bad signature", answer(forged, f.layout.Size), true},
		{"other key", answer(foreign, f.layout.Size), true},
		{"shorter than the content", answer(in, f.layout.Size-1), true},
		{"tail too long", answer(in, f.layout.Size+region.MaxTail(f.layout.Size)+1), true},
		{"a tail after a file for linux", answer(in, f.layout.Size+region.MaxTail(f.layout.Size)), true},
		{"unknown status", []byte{7, 1, 2}, true},
		{"long message", append([]byte{1, 255}, junk(10)...), true},
		{"not found", []byte{2, 0}, false},
	}
	seed := newTestNode(t, Config{})
	if err := seed.Serve(context.Background(), pub, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			liar := newLiar(t, pub, tt.answer)
			client := newTestNode(t, Config{IdleTimeout: time.Second}, liar, seed)
			rels, err := client.Source(pub, testTarget).Releases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rels) != 1 || rels[0].Info() != in || len(rels[0].Peers()) != 1 || rels[0].Peers()[0] != seed.ID() {
				t.Fatalf("Releases = %v, want only the seed's 2.0.0", rels)
			}
			if s := client.strikes.of(liar.ID()); (s > 0) != tt.struck {
				t.Errorf("liar has %d strikes; want strikes %v", s, tt.struck)
			}
		})
	}
}

func TestRequestFloodAndBadAuth(t *testing.T) {
	t.Parallel()
	key, path, in := writeRelease(t, 4096)
	pub := key.Public
	ctx := testContext(t)
	seed := newTestSeed(t, ctx, Config{}, pub, path, in)
	flooder := newTestNode(t, Config{}, seed)
	proto := protocol.ID(wire.ProtocolID(pub))
	stale := &wire.Request{Kind: wire.KindInfo, Target: testTarget, Auth: wire.Auth(pub, time.Now().Add(-time.Hour))}
	staleB, _ := stale.Marshal()
	refused := 0
	done := make(chan bool, 200)
	for i := 0; i < 200; i++ {
		go func() {
			s, err := flooder.Host().NewStream(ctx, seed.ID(), proto)
			if err != nil {
				done <- false
				return
			}
			defer s.Reset()
			s.SetDeadline(time.Now().Add(5 * time.Second))
			if i%2 == 0 {
				s.Write(junk(50))
			} else {
				s.Write(staleB)
			}
			s.CloseWrite()
			_, err = wire.ReadInfo(s)
			done <- errors.Is(err, wire.ErrRefused)
		}()
	}
	for i := 0; i < 200; i++ {
		if <-done {
			refused++
		}
	}
	if refused == 0 {
		t.Error("no flood request was answered with a refusal")
	}
	// The seed still answers honest peers.
	client := newTestNode(t, Config{}, seed)
	r := onlyRelease(t, ctx, client.Source(pub, testTarget))
	if got, err := fetchFile(ctx, r, pub); err != nil || int64(len(got)) != in.ContentLen() {
		t.Fatalf("after the flood: %d bytes, %v", len(got), err)
	}
	if seed.Stats().BadRequests == 0 {
		t.Error("no bad request counted")
	}
}

// TestTrailingBytesResetStream sends a valid pieces request followed by
// more bytes, which no peer may send: the seed ends the stream instead of
// letting them wait in its receive window while it uploads, counts a bad
// request, and goes on serving honest peers; over TCP (yamux, whose
// windows are this node's muxerWindow) and QUIC.
func TestTrailingBytesResetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real hosts on loopback; runs without -short")
	}
	t.Parallel()
	key, path, in := writeRelease(t, 32<<20)
	pub := key.Public
	for _, addr := range []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"} {
		t.Run(strings.Split(addr, "/")[3], func(t *testing.T) {
			testTrailingBytes(t, pub, path, in, addr)
		})
	}
}

func testTrailingBytes(t *testing.T, pub ed25519.PublicKey, path string, in region.Info, addr string) {
	ctx := testContext(t)
	cfg := Config{ListenAddrs: []string{addr}, QUIC: hostquic.New}
	seed := newTestSeed(t, ctx, cfg, pub, path, in)
	client := newTestNode(t, cfg, seed)
	r := onlyRelease(t, ctx, client.Source(pub, testTarget))
	req := &wire.Request{Kind: wire.KindPieces, Target: testTarget, Auth: wire.Auth(pub, time.Now()), ID: r.FileID(), Count: wire.MaxPiecesPerRequest}
	reqB, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.Host().NewStream(ctx, seed.ID(), protocol.ID(wire.ProtocolID(pub)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := s.Write(append(reqB, junk(256<<10)...)); err != nil {
		// The seed may reset the stream while the bytes are still going.
		t.Logf("write: %v", err)
	}
	// Nothing is read until the seed has seen the trailing bytes: the
	// answer (8 MiB, as large as the stream's window) cannot finish first.
	waitFor(t, "trailing bytes counted as a bad request", func() bool { return seed.Stats().BadRequests > 0 })
	n, err := io.Copy(io.Discard, s)
	if want := int64(wire.MaxPiecesPerRequest) << 20; err == nil || n >= want {
		t.Fatalf("read %d of %d bytes, %v; want the stream reset", n, want, err)
	}
	if got, err := fetchFile(ctx, r, pub); err != nil || int64(len(got)) != in.ContentLen() {
		t.Errorf("honest download after the reset: %d bytes, %v", len(got), err)
	}
}

// signedTailTarget is a target whose executables may carry a code
// signature after their content (PE), for the tests of tails: an offer
// of a file with a tail for testTarget (ELF) is refused as impossible
// (TestImpossibleTail).
const signedTailTarget = "windows/amd64"

// TestImpossibleTail: a peer offers the genuine region of a release with
// a tail its file type cannot have. For an ELF target the offer itself
// says so (TestHostileInfo); for a PE or Mach-O target, the update engine
// finds it in piece 0 and rejects the release with ErrSize: the peers
// that offered that length get strikes, and the offer is never returned
// by Releases again, while the honest seed's offer is.
func TestImpossibleTail(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	path := filepath.Join(t.TempDir(), "release")
	in := regiontest.WriteBinaryFor(t, path, 3<<20, 1, key, "2.0.0", signedTailTarget)
	real := loadTestFile(t, path)
	padded := *real
	padded.bytes = append(bytes.Clone(real.bytes), make([]byte, region.MaxTail(real.layout.Content))...)
	padded.layout.Size = int64(len(padded.bytes))
	padded.id[0] ^= 1 // another file, as its tail makes it
	ctx := testContext(t)
	liar := startTestPeer(t, pub, &padded, nil)
	seed := newTestSeed(t, ctx, Config{}, pub, path, in)
	client := newTestNode(t, Config{}, liar.Node, seed)
	src := client.Source(pub, testTarget)
	offers := func() (lie, honest *Release) {
		t.Helper()
		rels, err := src.Releases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rels {
			switch r.Size() {
			case padded.layout.Size:
				lie = r
			case real.layout.Size:
				honest = r
			}
		}
		if honest == nil {
			t.Fatalf("Releases = %v: the seed's offer is missing", rels)
		}
		return lie, honest
	}
	lie, _ := offers()
	if lie == nil {
		t.Fatal("the padded offer is missing before any refusal")
	}
	lie.Reject(fmt.Errorf("%w: the headers show a PE file without a certificate table", ErrSize))
	first := client.strikes.of(liar.ID())
	if first == 0 {
		t.Fatal("the peer that offered an impossible length got no strike")
	}
	if client.strikes.of(seed.ID()) != 0 {
		t.Fatal("the honest seed got a strike")
	}
	if lie, _ := offers(); lie != nil {
		t.Error("the refused offer is returned again")
	}
	if client.strikes.of(liar.ID()) <= first {
		t.Error("offering the refused length again cost the peer nothing")
	}
}

// TestBlameOtherFile serves one release file with two different tails (the
// part the signature does not cover) under one file ID: the download takes
// piece 0 and the tail from one peer, and when the engine finds the file is
// not the one offered (ErrOtherFile), Reject strikes the peer that
// delivered them, and no other.
func TestBlameOtherFile(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	path := filepath.Join(t.TempDir(), "release")
	regiontest.WriteBinaryFor(t, path, 10<<20, 1, key, "2.0.0", signedTailTarget)
	real := loadTestFile(t, path)
	// Both peers claim the file with a 4 KiB tail; the pieces of the
	// content are the real ones, which the root covers.
	withTail := func(tail []byte) *testFile {
		f := *real
		f.bytes = append(bytes.Clone(real.bytes), tail...)
		f.layout.Size = int64(len(f.bytes))
		return &f
	}
	a, b := withTail(bytes.Repeat([]byte{1}, 4096)), withTail(bytes.Repeat([]byte{2}, 4096))
	b.id = a.id
	ctx := testContext(t)
	pa, pb := startTestPeer(t, pub, a, nil), startTestPeer(t, pub, b, nil)
	client := newTestNode(t, Config{}, pa.Node, pb.Node)
	r := onlyRelease(t, ctx, client.Source(pub, testTarget))
	if len(r.Peers()) != 2 {
		t.Fatalf("offered by %v, want both peers", r.Peers())
	}
	rc, err := r.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || int64(len(got)) != a.layout.Size {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if pa.asked.Load() == 0 || pb.asked.Load() == 0 {
		t.Errorf("pieces requests: %d and %d; want both peers asked", pa.asked.Load(), pb.asked.Load())
	}
	first := r.firstPieceFrom()
	tail := got[len(got)-1]
	if (first == pa.ID()) != (tail == 1) {
		t.Fatalf("piece 0 from %s, tail of %d: not from the same peer", first, tail)
	}
	r.Reject(errors.New("self-test failed")) // says nothing about the peers
	if client.strikes.of(pa.ID())+client.strikes.of(pb.ID()) != 0 {
		t.Fatal("a rejection other than ErrOtherFile struck a peer")
	}
	r.Reject(ErrOtherFile)
	other := pa.ID()
	if first == pa.ID() {
		other = pb.ID()
	}
	if client.strikes.of(first) == 0 || client.strikes.of(other) != 0 {
		t.Errorf("strikes: %d for the peer of piece 0 and the tail, %d for the other; want only the first struck",
			client.strikes.of(first), client.strikes.of(other))
	}
}

// TestV0Release fetches a v0 release over protocol v1: no piece hashes,
// pieces from one peer at a time, unchecked; a rejection strikes the peer
// that delivered them.
func TestV0Release(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	path := filepath.Join(t.TempDir(), "release")
	regiontest.WriteBinary(t, path, 3<<20, 1, key, "")
	in, err := region.Sign(context.Background(), path, key.Private, region.SignOptions{Version: "2.0.0", Format: region.V0})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(path)
	ctx := testContext(t)
	seed := newTestSeed(t, ctx, Config{}, pub, path, in)
	client := newTestNode(t, Config{}, seed)
	r := onlyRelease(t, ctx, client.Source(pub, testTarget))
	if r.Info().Format != region.V0 {
		t.Fatalf("format %v", r.Info().Format)
	}
	got, err := fetchFile(ctx, r, pub)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("v0 download: %d bytes, %v", len(got), err)
	}
	if seed.Stats().HashesRequests != 0 {
		t.Errorf("%d hashes requests for a v0 release", seed.Stats().HashesRequests)
	}
	r.Reject(errors.New("hash mismatch"))
	if client.strikes.of(seed.ID()) == 0 {
		t.Error("the peer that delivered a refused v0 file got no strike")
	}
}

// TestTailAfterResume: a download resumed past piece 0, by a release that
// has no peer of piece 0 to give the tail to, still fetches the tail; a
// download from the start gets piece 0 and the tail from one peer
// (TestBlameOtherFile).
func TestTailAfterResume(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	path := filepath.Join(t.TempDir(), "release")
	regiontest.WriteBinaryFor(t, path, 3<<20, 1, key, "2.0.0", signedTailTarget)
	f := *loadTestFile(t, path)
	f.bytes = append(bytes.Clone(f.bytes), bytes.Repeat([]byte{7}, 4096)...)
	f.layout.Size = int64(len(f.bytes))
	ctx := testContext(t)
	pa, pb := startTestPeer(t, key.Public, &f, nil), startTestPeer(t, key.Public, &f, nil)
	client := newTestNode(t, Config{}, pa.Node, pb.Node)
	r := onlyRelease(t, ctx, client.Source(key.Public, testTarget))
	off := int64(2<<20 + 5)
	if got := readAllFrom(t, r, off); !bytes.Equal(got, f.bytes[off:]) {
		t.Fatalf("resumed download: %d bytes, want the file's last %d", len(got), len(f.bytes)-int(off))
	}
}
