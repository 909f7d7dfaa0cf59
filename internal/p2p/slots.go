package p2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// uploadSlots bounds the uploads that run at once, in total and per peer.
// A fetch that finds no free slot is answered "busy" at once, so that its
// peer moves on to another instead of queueing.
type uploadSlots struct {
	total, perPeer int

	mu     sync.Mutex
	inUse  int
	byPeer map[peer.ID]int
}

// newUploadSlots returns total slots, at most perPeer of them for one peer.
func newUploadSlots(total, perPeer int) *uploadSlots {
	return &uploadSlots{total: total, perPeer: perPeer, byPeer: map[peer.ID]int{}}
}

// acquire takes a slot for an upload to p and reports whether one was
// free; a true answer must be followed by release(p).
func (u *uploadSlots) acquire(p peer.ID) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.inUse >= u.total || u.byPeer[p] >= u.perPeer {
		return false
	}
	u.inUse++
	u.byPeer[p]++
	return true
}

// release gives back a slot that acquire took for p.
func (u *uploadSlots) release(p peer.ID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inUse--
	if u.byPeer[p]--; u.byPeer[p] <= 0 {
		delete(u.byPeer, p)
	}
}

// active returns the number of slots in use.
func (u *uploadSlots) active() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.inUse
}
