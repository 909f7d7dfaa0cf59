package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

func junk(n uint64) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// lie is how a hostile peer answers a fetch of a release of total bytes from
// offset: it never has the real bytes.
type lie func(s network.Stream, reg [region.Size]byte, total, offset uint64)

var fetchLies = []struct {
	name string
	lie  lie
	// delivers is true when the lie passes the length checks and only the
	// hash can tell (the engine's job).
	delivers bool
}{
	{"garbage status", func(s network.Stream, _ [region.Size]byte, _, _ uint64) { s.Write(junk(20)) }, false},
	{"longer than signed", func(s network.Stream, _ [region.Size]byte, total, off uint64) {
		wire.WriteFetchHeader(s, total-off+1)
		s.Write(junk(total - off + 1))
	}, false},
	{"shorter than signed", func(s network.Stream, _ [region.Size]byte, total, off uint64) {
		wire.WriteFetchHeader(s, (total-off)/2)
		s.Write(junk((total - off) / 2))
	}, false},
	{"absurd length", func(s network.Stream, _ [region.Size]byte, _, _ uint64) {
		wire.WriteFetchHeader(s, 1<<63)
	}, false},
	{"more bytes than signed", func(s network.Stream, reg [region.Size]byte, total, off uint64) {
		wire.WriteFetchHeader(s, total-off)
		s.Write(junk(total - off + 1<<20))
	}, true},
	{"wrong hash", func(s network.Stream, reg [region.Size]byte, total, off uint64) {
		wire.WriteFetchHeader(s, total-off)
		s.Write(reg[:])
		s.Write(junk(total - off - region.Size))
	}, true},
	{"stall mid-transfer", func(s network.Stream, _ [region.Size]byte, total, off uint64) {
		wire.WriteFetchHeader(s, total-off)
		s.Write(junk((total - off) / 3))
		time.Sleep(5 * time.Second)
	}, false},
	{"drip a byte at a time", func(s network.Stream, _ [region.Size]byte, total, off uint64) {
		wire.WriteFetchHeader(s, total-off)
		for i := 0; i < 40; i++ {
			if _, err := s.Write(junk(1)); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}, false},
	{"close early", func(s network.Stream, _ [region.Size]byte, total, off uint64) {
		wire.WriteFetchHeader(s, total-off)
		s.Write(junk((total - off) / 3))
	}, false},
}

// startLiar starts a node that offers reg (a real region) and answers
// fetches with l.
func startLiar(t *testing.T, pub ed25519.PublicKey, reg [region.Size]byte, total uint64, l lie) *Node {
	n := newTestNode(t, Config{})
	n.Host().SetStreamHandler(protocol.ID(wire.ProtocolID(pub)), func(s network.Stream) {
		defer s.Close()
		req, err := wire.ReadRequest(s)
		if err != nil {
			return
		}
		if req.Kind == wire.KindInfo {
			wire.WriteInfo(s, reg)
			return
		}
		l(s, reg, total, req.Offset)
	})
	return n
}

// download reads a release the way the update engine does: it reopens at the
// offset reached after a read error, and starts over with the releases of a
// new poll when the bytes do not verify. It returns the verified bytes.
func download(t *testing.T, src *Source, pub ed25519.PublicKey) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for attempt := 0; attempt < 4; attempt++ {
		rels, err := src.Releases(ctx)
		if err != nil || len(rels) != 1 {
			t.Fatalf("Releases = %d, %v", len(rels), err)
		}
		r := rels[0]
		total := r.Info().ContentLen()
		var buf bytes.Buffer
		for tries := 0; buf.Len() < int(total) && tries < 10; tries++ {
			rc, err := r.Open(ctx, int64(buf.Len()))
			if err != nil {
				t.Fatalf("Open at %d: %v", buf.Len(), err)
			}
			io.Copy(&buf, rc)
			rc.Close()
		}
		sc, err := region.Scan(context.Background(), bytes.NewReader(buf.Bytes()))
		if err == nil {
			if _, err = sc.Verify(pub); err == nil {
				return buf.Bytes()
			}
		}
		t.Logf("attempt %d via %v did not verify: %v", attempt, r, err)
	}
	t.Fatal("no verified download in 4 attempts")
	return nil
}

func TestHostileFetch(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	path := filepath.Join(t.TempDir(), "release")
	in := regiontest.WriteBinary(t, path, 256<<10, 1, key, "2.0.0")
	want, _ := os.ReadFile(path)
	reg, _ := in.Marshal()
	total := uint64(in.ContentLen())
	id := wire.ReleaseID(reg)
	for _, tt := range fetchLies {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			seed := newTestNode(t, Config{})
			if err := seed.Serve(ctx, pub, testTarget, path, in); err != nil {
				t.Fatal(err)
			}
			liar := startLiar(t, pub, reg, total, tt.lie)
			client := newTestNode(t, Config{IdleTimeout: time.Second}, liar, seed)

			// Straight from the liar: refused, broken, or (when only the
			// hash can tell) exactly the signed length and never more.
			liarAI := client.bootstrap[0]
			rc, err := client.fetch(ctx, pub, testTarget, id, total, 0, liarAI)
			if err == nil {
				got, rerr := io.ReadAll(rc)
				rc.Close()
				switch {
				case tt.delivers && rerr == nil:
					if uint64(len(got)) != total || bytes.Equal(got, want) {
						t.Fatalf("liar delivered %d bytes (want %d of wrong bytes)", len(got), total)
					}
				case rerr == nil:
					t.Fatalf("read %d bytes from the liar without an error", len(got))
				}
			}
			if tt.delivers {
				client.suspectDelivered(id)
			}
			if client.strikes.of(liar.ID()) == 0 {
				t.Errorf("liar got no strike")
			}
			// With the liar and an honest seed both offering the release,
			// the download ends with the real bytes.
			if got := download(t, client.Source(pub, testTarget), pub); !bytes.Equal(got, want) {
				t.Fatal("downloaded bytes differ from the release")
			}
		})
	}
}

func TestHostileInfo(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	path := filepath.Join(t.TempDir(), "release")
	in := regiontest.WriteBinary(t, path, 4096, 1, key, "2.0.0")
	forged := in
	forged.Signature[3] ^= 1
	foreign := in
	foreign.Version = "9.0.0"
	foreign.Sign(regiontest.NewKey(t).Private)
	reg := func(in region.Info) []byte { b, _ := in.Marshal(); return append([]byte{0}, b[:]...) }
	tests := []struct {
		name   string
		answer []byte
	}{
		{"garbage", junk(177)},
		{"truncated", reg(in)[:100]},
		{"bad signature", reg(forged)},
		{"other key", reg(foreign)},
		{"unknown status", []byte{7, 1, 2}},
		{"long message", append([]byte{1, 255}, junk(10)...)},
	}
	seed := newTestNode(t, Config{})
	if err := seed.Serve(context.Background(), pub, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			liar := newTestNode(t, Config{})
			liar.Host().SetStreamHandler(protocol.ID(wire.ProtocolID(pub)), func(s network.Stream) {
				defer s.Close()
				wire.ReadRequest(s)
				s.Write(tt.answer)
			})
			client := newTestNode(t, Config{IdleTimeout: time.Second}, liar, seed)
			rels, err := client.Source(pub, testTarget).Releases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rels) != 1 || rels[0].Info() != in || len(rels[0].Peers()) != 1 || rels[0].Peers()[0] != seed.ID() {
				t.Fatalf("Releases = %v, want only the seed's 2.0.0", rels)
			}
		})
	}
}

func TestRequestFloodAndBadAuth(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	path := filepath.Join(t.TempDir(), "release")
	in := regiontest.WriteBinary(t, path, 4096, 1, key, "2.0.0")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seed := newTestNode(t, Config{})
	if err := seed.Serve(ctx, pub, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
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
			_, _, err = wire.ReadInfo(s)
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
	rels, err := client.Source(pub, testTarget).Releases(ctx)
	if err != nil || len(rels) != 1 {
		t.Fatalf("after the flood: Releases = %d, %v", len(rels), err)
	}
	if seed.Stats().BadRequests == 0 {
		t.Error("no bad request counted")
	}
}

// TestTrailingBytesResetStream sends a valid fetch request followed by
// more bytes, which no peer may send: the seed ends the stream instead of
// letting them wait in its receive window while it uploads, counts a bad
// request, and goes on serving honest peers; over TCP (yamux, whose
// windows are this node's muxerWindow) and QUIC.
func TestTrailingBytesResetStream(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	path := filepath.Join(t.TempDir(), "release")
	in := regiontest.WriteBinary(t, path, 32<<20, 1, key, "2.0.0")
	for _, addr := range []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"} {
		t.Run(strings.Split(addr, "/")[3], func(t *testing.T) {
			testTrailingBytes(t, pub, path, in, addr)
		})
	}
}

func testTrailingBytes(t *testing.T, pub ed25519.PublicKey, path string, in region.Info, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{ListenAddrs: []string{addr}}
	seed := newTestNode(t, cfg)
	if err := seed.Serve(ctx, pub, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	client := newTestNode(t, cfg, seed)
	rels, err := client.Source(pub, testTarget).Releases(ctx)
	if err != nil || len(rels) != 1 {
		t.Fatalf("Releases = %d, %v", len(rels), err)
	}
	req := &wire.Request{Kind: wire.KindFetch, Target: testTarget, Auth: wire.Auth(pub, time.Now()), ID: rels[0].ID()}
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
	// upload, far larger than the stream's window, cannot finish first.
	deadline := time.Now().Add(10 * time.Second)
	for seed.Stats().BadRequests == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if seed.Stats().BadRequests == 0 {
		t.Fatal("trailing bytes not counted as a bad request")
	}
	n, err := io.Copy(io.Discard, s)
	total := in.ContentLen()
	if err == nil || n >= total {
		t.Fatalf("read %d of %d bytes, %v; want the stream reset", n, total, err)
	}
	if got := download(t, client.Source(pub, testTarget), pub); int64(len(got)) != total {
		t.Errorf("honest download after the reset: %d bytes, want %d", len(got), total)
	}
}
