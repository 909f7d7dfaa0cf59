package p2p

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestUploadSlotsBound(t *testing.T) {
	t.Parallel()
	u := newUploadSlots(3, 2, 0)
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

// TestUploadSlotsKept checks that the slot of an upload that ended is kept
// for its peer for the grace period, then is anyone's.
func TestUploadSlotsKept(t *testing.T) {
	t.Parallel()
	const grace = 100 * time.Millisecond
	u := newUploadSlots(1, 1, grace)
	a, b := peer.ID("a"), peer.ID("b")
	if !u.acquire(a) {
		t.Fatal("no slot for a")
	}
	u.release(a)
	if u.acquire(b) {
		t.Fatal("b took the slot kept for a")
	}
	if !u.acquire(a) {
		t.Fatal("a did not get its kept slot back")
	}
	u.release(a)
	time.Sleep(2 * grace)
	if !u.acquire(b) {
		t.Fatal("b got no slot after the grace period")
	}
	if u.acquire(a) {
		t.Fatal("a took a slot while b holds the only one")
	}
	u.release(b)
}
