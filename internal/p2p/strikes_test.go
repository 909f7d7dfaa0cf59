package p2p

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/regiontest"
)

func TestStrikesAddUp(t *testing.T) {
	t.Parallel()
	s := newStrikes()
	p := peer.ID("p")
	if n := s.of(p); n != 0 {
		t.Fatalf("strikes of a new peer = %d", n)
	}
	s.add(p, strikeMalformed)
	if n := s.add(p, strikeForged); n != strikeMalformed+strikeForged {
		t.Fatalf("add returned %d, want %d", n, strikeMalformed+strikeForged)
	}
	if n := s.of(p); n != 5 {
		t.Fatalf("of = %d, want 5", n)
	}
	if g := s.given.Load(); g != 2 {
		t.Fatalf("given = %d, want 2", g)
	}
	// Strikes older than strikeMemory are forgotten.
	s.byPeer[p].last = time.Now().Add(-strikeMemory - time.Second)
	if n := s.of(p); n != 0 {
		t.Fatalf("of after strikeMemory = %d, want 0", n)
	}
	if n := s.add(p, 1); n != 1 {
		t.Fatalf("add after strikeMemory = %d, want 1", n)
	}
}

func TestStrikesBounded(t *testing.T) {
	t.Parallel()
	s := newStrikes()
	for i := range maxStruckPeers + 10 {
		s.add(peer.ID(fmt.Sprint(i)), 1)
	}
	if n := len(s.byPeer); n > maxStruckPeers {
		t.Fatalf("%d peers remembered, want at most %d", n, maxStruckPeers)
	}
	// The newest strike is always kept.
	last := peer.ID(fmt.Sprint(maxStruckPeers + 9))
	if s.of(last) != 1 {
		t.Fatal("the newest strike was dropped")
	}
}

// TestStruckPeerAskedWhenAlone: a peer with too many strikes is still
// asked when no other peer offers the release.
func TestStruckPeerAskedWhenAlone(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	path := filepath.Join(t.TempDir(), "release")
	in := regiontest.WriteBinary(t, path, 64<<10, 1, key, "2.0.0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seed := newTestNode(t, Config{})
	if err := seed.Serve(ctx, key.Public, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	client := newTestNode(t, Config{}, seed)
	for client.strikes.of(seed.ID()) < maxStrikes {
		client.strike(seed.ID(), strikeForged, errors.New("a test strike"))
	}
	r := onlyRelease(t, ctx, client.Source(key.Public, testTarget))
	if r.Info() != in {
		t.Errorf("found %v, want the seed's 2.0.0", r.Info())
	}
}
