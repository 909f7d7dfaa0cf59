package p2p

import (
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestAdmissionFair fills the streams with a greedy peer's waiting streams
// and checks that a new peer takes the place of the greedy peer's oldest
// waiting stream, that streams that sent their request keep their place,
// that peers with as few streams as the newcomer keep theirs, and that
// everything is given back.
func TestAdmissionFair(t *testing.T) {
	t.Parallel()
	a := newAdmission(4, 100)
	greedy, x, y := peer.ID("greedy"), peer.ID("x"), peer.ID("y")
	resets := map[*admitted]int{}
	var held []*admitted
	in := func(p peer.ID) *admitted {
		var s *admitted
		s, _ = a.admit(p, netip.Prefix{}, func() { resets[s]++ })
		return s
	}
	for range 4 {
		s := in(greedy)
		if s == nil {
			t.Fatal("refused below the limit")
		}
		held = append(held, s)
	}
	a.requested(held[3]) // one has sent its request
	sx := in(x)
	if sx == nil || resets[held[0]] != 1 || !a.wasEvicted(held[0]) {
		t.Fatalf("a new peer was not let in in place of the greedy peer's oldest waiting stream (resets %v)", resets)
	}
	if a.requested(held[0]) {
		t.Fatal("an evicted stream was told it keeps its place")
	}
	sy := in(y)
	if sy == nil || resets[held[1]] != 1 {
		t.Fatal("a second new peer was not let in")
	}
	// greedy holds 2 (one requested), x and y 1 each: x may not evict
	// greedy (2 < 1+2), nor y.
	if s, why := a.admit(x, netip.Prefix{}, func() {}); s != nil || why == "" {
		t.Fatal("a peer with one stream evicted one of a peer with two")
	}
	for _, s := range []*admitted{held[0], held[1], held[2], held[3], sx, sy} {
		a.done(s)
	}
	if n := a.held(); n != 0 || len(a.byPeer) != 0 {
		t.Fatalf("after all ended: %d held, %d peers", n, len(a.byPeer))
	}
	if a.evicted.Load() != 2 || a.refused.Load() != 1 {
		t.Errorf("evicted %d, refused %d; want 2 and 1", a.evicted.Load(), a.refused.Load())
	}
}

// TestAdmissionPerIP checks the bound on streams from one address.
func TestAdmissionPerIP(t *testing.T) {
	t.Parallel()
	a := newAdmission(100, 2)
	ip := netip.MustParsePrefix("192.0.2.7/32")
	other := netip.MustParsePrefix("198.51.100.1/32")
	s1, _ := a.admit("a", ip, func() {})
	s2, _ := a.admit("b", ip, func() {})
	if s1 == nil || s2 == nil {
		t.Fatal("refused below the limit")
	}
	if s, _ := a.admit("c", ip, func() {}); s != nil {
		t.Fatal("a third stream from one address let in")
	}
	if s, _ := a.admit("c", other, func() {}); s == nil {
		t.Fatal("a stream from another address refused")
	}
	a.done(s1)
	if s, _ := a.admit("c", ip, func() {}); s == nil {
		t.Fatal("refused after a stream from the address ended")
	}
}
