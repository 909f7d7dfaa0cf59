package p2p

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestUploadSlotsBound(t *testing.T) {
	t.Parallel()
	u := newUploadSlots(3, 2)
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	for _, step := range []struct {
		p    peer.ID
		want bool
	}{
		{a, true}, {a, true}, {a, false}, // per peer
		{b, true}, {c, false}, // in total
	} {
		if got := u.acquire(step.p); got != step.want {
			t.Fatalf("acquire(%s) = %v, want %v (active %d)", step.p, got, step.want, u.active())
		}
	}
	if n := u.active(); n != 3 {
		t.Fatalf("active = %d, want 3", n)
	}
	u.release(a)
	if !u.acquire(c) {
		t.Fatal("no slot for c after a released one")
	}
	u.release(a)
	u.release(b)
	u.release(c)
	if n, m := u.active(), len(u.byPeer); n != 0 || m != 0 {
		t.Fatalf("after releasing all: active %d, %d peers remembered", n, m)
	}
}
