package p2p

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// take takes a slot for p, whose upload cannot be revoked, or returns nil.
func take(u *uploadSlots, p peer.ID) *upload { return u.acquire(p, func() {}) }

func TestUploadSlotsBound(t *testing.T) {
	t.Parallel()
	u := newUploadSlots(3, 2, 0, 0)
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	var ups []*upload
	for _, step := range []struct {
		p    peer.ID
		want bool
	}{
		{a, true}, {a, true}, {a, false}, // per peer
		{b, true}, {c, false}, // in total
	} {
		up := take(u, step.p)
		if got := up != nil; got != step.want {
			t.Fatalf("acquire(%s) = %v, want %v (active %d)", step.p, got, step.want, u.active())
		}
		if up != nil {
			ups = append(ups, up)
		}
	}
	if n := u.active(); n != 3 {
		t.Fatalf("active = %d, want 3", n)
	}
	u.release(ups[0])
	upc := take(u, c)
	if upc == nil {
		t.Fatal("no slot for c after a released one")
	}
	for _, up := range append(ups[1:], upc) {
		u.release(up)
	}
	if n, m := u.active(), len(u.byPeer); n != 0 || m != 0 {
		t.Fatalf("after releasing all: active %d, %d peers remembered", n, m)
	}
}

// TestUploadSlotsKept checks that the slot of an upload that ended is kept
// for its peer for the grace period, then is anyone's.
func TestUploadSlotsKept(t *testing.T) {
	t.Parallel()
	const grace = 100 * time.Millisecond
	u := newUploadSlots(1, 1, grace, 0)
	a, b := peer.ID("a"), peer.ID("b")
	up := take(u, a)
	if up == nil {
		t.Fatal("no slot for a")
	}
	u.release(up)
	if take(u, b) != nil {
		t.Fatal("b took the slot kept for a")
	}
	if up = take(u, a); up == nil {
		t.Fatal("a did not get its kept slot back")
	}
	u.release(up)
	time.Sleep(2 * grace)
	upb := take(u, b)
	if upb == nil {
		t.Fatal("b got no slot after the grace period")
	}
	if take(u, a) != nil {
		t.Fatal("a took a slot while b holds the only one")
	}
	u.release(upb)
}

// TestSlotGraceFor checks how long a node keeps a slot for the peer whose
// upload ended: 500 ms by default, 50 ms on a node that serves pieces
// early, and what a test sets (negative: none).
func TestSlotGraceFor(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg  Config
		want time.Duration
	}{
		{Config{}, slotGrace},
		{Config{PiecesEarly: true}, earlySlotGrace},
		{Config{slotGrace: time.Second}, time.Second},
		{Config{PiecesEarly: true, slotGrace: time.Second}, time.Second},
		{Config{PiecesEarly: true, slotGrace: -1}, 0},
	} {
		if got := slotGraceFor(tt.cfg); got != tt.want {
			t.Errorf("PiecesEarly %v, slotGrace %v: grace %v, want %v", tt.cfg.PiecesEarly, tt.cfg.slotGrace, got, tt.want)
		}
	}
	if slotGrace != 500*time.Millisecond || earlySlotGrace != 50*time.Millisecond {
		t.Errorf("grace %v, %v early: docs/PROTOCOL.md says 500 ms and 50 ms", slotGrace, earlySlotGrace)
	}
}

// TestUploadSlotsTakenBack checks that a peer that finds no free slot
// takes the slot of the slowest upload that has run for rateGrace below
// the minimum rate, never that of a fast one or a young one, that the
// slow peer then takes no slot from others, and that the slot it lost is
// not given back twice.
func TestUploadSlotsTakenBack(t *testing.T) {
	t.Parallel()
	const minRate = 1000
	u := newUploadSlots(2, 1, 0, minRate)
	slow, fast, newcomer, other := peer.ID("slow"), peer.ID("fast"), peer.ID("new"), peer.ID("other")
	revoked := map[peer.ID]int{}
	acq := func(p peer.ID) *upload { return u.acquire(p, func() { revoked[p]++ }) }
	ups, upf := acq(slow), acq(fast)
	if ups == nil || upf == nil {
		t.Fatal("no slots for the first two peers")
	}
	if acq(newcomer) != nil {
		t.Fatal("a slot was taken back from uploads younger than rateGrace")
	}
	// Both have run for rateGrace: the slow one moved 100 bytes a second,
	// the fast one 10 times the minimum.
	past := time.Now().Add(-rateGrace - time.Second)
	ups.start, upf.start = past, past
	ups.wrote(300)
	upf.wrote(30 * minRate)
	upn := acq(newcomer)
	if upn == nil {
		t.Fatal("the newcomer got no slot while a slow upload held one")
	}
	if revoked[slow] != 1 || revoked[fast] != 0 || !u.wasTakenBack(ups) {
		t.Fatalf("revoked %v; want only the slow upload", revoked)
	}
	u.release(ups) // its handler ends: the slot is the newcomer's now
	if n := u.active(); n != 2 {
		t.Fatalf("active = %d after the slow upload ended, want 2", n)
	}
	// The slow peer cannot take a slot from others for takenBackFor, even
	// from an upload as slow as it was.
	upn.start = past
	if acq(slow) != nil {
		t.Fatal("the peer whose slot was taken back took another's")
	}
	// Another peer can.
	if acq(other) == nil || revoked[newcomer] != 1 {
		t.Fatalf("a new peer took no slot from a slow upload (revoked %v)", revoked)
	}
	// With no minimum rate, slots are never taken back.
	u0 := newUploadSlots(1, 1, 0, 0)
	up := take(u0, slow)
	up.start = past
	if take(u0, newcomer) != nil {
		t.Fatal("a slot was taken back with no minimum rate")
	}
}

func TestMinUploadRate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg  Config
		want float64
	}{
		{Config{}, DefaultMinUploadRate},
		{Config{MinUploadRate: 1 << 20}, 1 << 20},
		{Config{MinUploadRate: -1}, 0},
		{Config{UploadRate: 1 << 20, UploadSlots: 16}, 1 << 15},
		{Config{UploadRate: 100 << 20, UploadSlots: 16}, DefaultMinUploadRate},
	} {
		if got := minUploadRate(tt.cfg); got != tt.want {
			t.Errorf("minUploadRate(%+v) = %v, want %v", tt.cfg, got, tt.want)
		}
	}
}
