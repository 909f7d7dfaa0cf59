package p2p

import "sync"

// maxRefusedOffers bounds the offers a node remembers as refused; past it
// the memory starts afresh.
const maxRefusedOffers = 1024

// refusedOffers remembers the offers (region, file length and file ID)
// that the update engine refused because the length cannot be that of
// the release (ErrSize): whoever offers one again gets a strike, and it
// is never downloaded again.
type refusedOffers struct {
	mu sync.Mutex
	m  map[offerKey]bool
}

func newRefusedOffers() *refusedOffers { return &refusedOffers{m: map[offerKey]bool{}} }

// add remembers k.
func (r *refusedOffers) add(k offerKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.m) >= maxRefusedOffers {
		clear(r.m)
	}
	r.m[k] = true
}

// has reports whether k was refused.
func (r *refusedOffers) has(k offerKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[k]
}
