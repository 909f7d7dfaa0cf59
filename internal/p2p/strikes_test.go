package p2p

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
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
