package p2p

import (
	"sync"
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

// uploadSlots bounds the uploads that run at once, in total and per peer.
// A request that finds no free slot is answered "busy" at once, so that its
// peer moves on to another instead of queueing.
type uploadSlots struct {
	total, perPeer int
	grace          time.Duration

	mu     sync.Mutex
	inUse  int
	byPeer map[peer.ID]int
	kept   map[peer.ID]time.Time // slots kept for a peer, until then
}

// newUploadSlots returns total slots, at most perPeer of them for one peer,
// each kept for its peer for grace after its upload ended.
func newUploadSlots(total, perPeer int, grace time.Duration) *uploadSlots {
	return &uploadSlots{total: total, perPeer: perPeer, grace: grace, byPeer: map[peer.ID]int{}, kept: map[peer.ID]time.Time{}}
}

// acquire takes a slot for an upload to p and reports whether one was
// free; a true answer must be followed by release(p).
func (u *uploadSlots) acquire(p peer.ID) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	for q, until := range u.kept {
		if !now.Before(until) {
			delete(u.kept, q)
		}
	}
	if _, ok := u.kept[p]; ok {
		delete(u.kept, p) // p's own slot
	} else if u.inUse+len(u.kept) >= u.total || u.byPeer[p] >= u.perPeer {
		return false
	}
	u.inUse++
	u.byPeer[p]++
	return true
}

// release gives back a slot that acquire took for p; it is kept for p for
// the grace period unless p has another upload running.
func (u *uploadSlots) release(p peer.ID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inUse--
	if u.byPeer[p]--; u.byPeer[p] <= 0 {
		delete(u.byPeer, p)
		if u.grace > 0 {
			u.kept[p] = time.Now().Add(u.grace)
		}
	}
}

// active returns the number of slots in use.
func (u *uploadSlots) active() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.inUse
}
