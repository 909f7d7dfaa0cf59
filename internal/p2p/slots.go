package p2p

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// slotGrace is how long the slot of an upload that ended is kept for the
// same peer: a downloader asks for a file a few pieces at a time, and its
// next request, which comes within a round trip, finds its slot free. So a
// node uploads to a few peers at full speed until they have the whole
// release (and serve it in turn) rather than spread its bandwidth over
// every peer that asks, which would make new sources later.
const slotGrace = 500 * time.Millisecond

// earlySlotGrace replaces slotGrace on a node that serves pieces early
// (Config.PiecesEarly). Its downloaders serve every piece as soon as they
// hold it, so concentrating an uplink on a few of them makes no source
// sooner, and with rarest first a downloader's next run often comes from
// another peer: a slot kept 500 ms for a peer that does not come back
// refuses every other. 50 ms still covers a round trip on a LAN and most
// of the way across a continent; a peer slower to come back finds the
// slot taken and asks another. In the swarm simulator, 1,000 nodes
// serving early are all done in 7.2 s rather than 8.1 s
// (docs/BENCHMARKS.md).
const earlySlotGrace = 50 * time.Millisecond

// slotGraceFor returns how long cfg's node keeps a slot for the peer whose
// upload ended: cfg.slotGrace when set (negative: not at all), else
// earlySlotGrace with Config.PiecesEarly and slotGrace without.
func slotGraceFor(cfg Config) time.Duration {
	switch {
	case cfg.slotGrace != 0:
		return max(cfg.slotGrace, 0)
	case cfg.PiecesEarly:
		return earlySlotGrace
	}
	return slotGrace
}

// Taking slots back from slow downloaders.
const (
	// rateGrace is how long an upload runs before its rate is judged: the
	// first write of a piece waits for the downloader's window to open.
	rateGrace = 2 * time.Second
	// takenBackFor is how long a peer whose upload was taken back cannot
	// take the slot of another: it gets a slot only when one is free, so
	// that slow downloaders do not take slots from each other in turn
	// while a new peer waits.
	takenBackFor = 10 * time.Second
)

// uploadSlots bounds the uploads that run at once, in total and per peer.
// A request that finds no free slot is answered "busy" at once, so that its
// peer moves on to another instead of queueing, unless an upload that has
// run for rateGrace moves less than minRate bytes a second: then the
// slowest such upload is taken back (its stream reset) and its slot given to
// the new request. A peer whose upload was taken back takes no slot from
// others for takenBackFor.
type uploadSlots struct {
	total, perPeer int
	grace          time.Duration
	minRate        float64 // bytes a second; 0: never take a slot back

	mu        sync.Mutex
	running   map[*upload]struct{}
	byPeer    map[peer.ID]int
	kept      map[peer.ID]time.Time // slots kept for a peer, until then
	takenBack map[peer.ID]time.Time // peers that lost a slot, until then

	revoked  atomic.Uint64 // uploads taken back, for Stats
	keptBusy atomic.Uint64 // busy answers given while a slot was kept idle for another peer
}

// minUploadRate returns the rate below which cfg's uploads may be taken
// back: MinUploadRate, DefaultMinUploadRate for zero, capped at half an
// upload's share of UploadRate (with the cap, every upload could be that
// slow); 0 (never) for a negative MinUploadRate.
func minUploadRate(cfg Config) float64 {
	r := float64(cfg.MinUploadRate)
	switch {
	case cfg.MinUploadRate < 0:
		return 0
	case cfg.MinUploadRate == 0:
		r = DefaultMinUploadRate
	}
	if cfg.UploadRate > 0 && cfg.UploadSlots > 0 {
		r = min(r, float64(cfg.UploadRate)/float64(2*cfg.UploadSlots))
	}
	return r
}

// An upload holds one slot, from acquire to release.
type upload struct {
	p      peer.ID
	start  time.Time
	sent   atomic.Int64 // bytes written so far
	revoke func()       // ends the upload: resets its stream
	lost   bool         // taken back; guarded by uploadSlots.mu
}

// wrote counts n bytes written to the downloader.
func (up *upload) wrote(n int) { up.sent.Add(int64(n)) }

// rate returns the upload's bytes a second since it started.
func (up *upload) rate(now time.Time) float64 {
	return float64(up.sent.Load()) / max(now.Sub(up.start).Seconds(), 1e-3)
}

// newUploadSlots returns total slots, at most perPeer of them for one peer,
// each kept for its peer for grace after its upload ended; uploads slower
// than minRate bytes a second may be taken back (never when minRate is 0).
func newUploadSlots(total, perPeer int, grace time.Duration, minRate float64) *uploadSlots {
	return &uploadSlots{
		total: total, perPeer: perPeer, grace: grace, minRate: minRate,
		running: map[*upload]struct{}{}, byPeer: map[peer.ID]int{},
		kept: map[peer.ID]time.Time{}, takenBack: map[peer.ID]time.Time{},
	}
}

// acquire takes a slot for an upload to p, whose stream revoke resets,
// and returns it, or nil when none is free. A non-nil upload must be given
// back with release.
func (u *uploadSlots) acquire(p peer.ID, revoke func()) *upload {
	u.mu.Lock()
	now := time.Now()
	for q, until := range u.kept {
		if !now.Before(until) {
			delete(u.kept, q)
		}
	}
	for q, until := range u.takenBack {
		if !now.Before(until) {
			delete(u.takenBack, q)
		}
	}
	var victim *upload
	switch _, ok := u.kept[p]; {
	case ok:
		delete(u.kept, p) // p's own slot
	case u.byPeer[p] >= u.perPeer:
		u.mu.Unlock()
		return nil
	case len(u.running)+len(u.kept) < u.total:
	default:
		if _, lost := u.takenBack[p]; !lost {
			victim = u.slowestLocked(now)
		}
		if victim == nil {
			if len(u.kept) > 0 {
				u.keptBusy.Add(1)
			}
			u.mu.Unlock()
			return nil
		}
		victim.lost = true
		u.dropLocked(victim)
		u.takenBack[victim.p] = now.Add(takenBackFor)
		u.revoked.Add(1)
	}
	up := &upload{p: p, start: now, revoke: revoke}
	u.running[up] = struct{}{}
	u.byPeer[p]++
	u.mu.Unlock()
	if victim != nil {
		victim.revoke()
	}
	return up
}

// slowestLocked returns the slowest upload that has run for rateGrace and
// moves less than minRate, or nil. u.mu is held.
func (u *uploadSlots) slowestLocked(now time.Time) *upload {
	if u.minRate <= 0 {
		return nil
	}
	var slowest *upload
	for up := range u.running {
		if now.Sub(up.start) < rateGrace {
			continue
		}
		if r := up.rate(now); r < u.minRate && (slowest == nil || r < slowest.rate(now)) {
			slowest = up
		}
	}
	return slowest
}

// dropLocked removes up from the running uploads. u.mu is held.
func (u *uploadSlots) dropLocked(up *upload) {
	delete(u.running, up)
	if u.byPeer[up.p]--; u.byPeer[up.p] <= 0 {
		delete(u.byPeer, up.p)
	}
}

// release gives back the slot of up, unless it was taken back; it is kept
// for up's peer for the grace period unless the peer has another upload
// running.
func (u *uploadSlots) release(up *upload) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if up.lost {
		return // its slot went to another peer
	}
	u.dropLocked(up)
	if u.byPeer[up.p] == 0 && u.grace > 0 {
		u.kept[up.p] = time.Now().Add(u.grace)
	}
}

// wasTakenBack reports whether up was taken back.
func (u *uploadSlots) wasTakenBack(up *upload) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return up.lost
}

// active returns the number of slots in use.
func (u *uploadSlots) active() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.running)
}
