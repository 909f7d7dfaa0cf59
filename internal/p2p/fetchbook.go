package p2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/wire"
)

// A fetchBook keeps, per release, whose turn it is to be asked first (each
// Open starts with another peer) and which peers delivered the whole
// release (they get strikes if it is asked for from the start again,
// which means its bytes did not verify).
type fetchBook struct {
	mu        sync.Mutex
	turns     map[[wire.IDLen]byte]int
	delivered map[[wire.IDLen]byte]map[peer.ID]bool
}

func newFetchBook() *fetchBook {
	return &fetchBook{turns: map[[wire.IDLen]byte]int{}, delivered: map[[wire.IDLen]byte]map[peer.ID]bool{}}
}

// nextTurn returns the turn of this fetch of release id: 0, then 1, 2...
func (b *fetchBook) nextTurn(id [wire.IDLen]byte) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.turns[id]
	b.turns[id] = t + 1
	return t
}

// markDelivered records that p delivered the whole of release id.
func (b *fetchBook) markDelivered(id [wire.IDLen]byte, p peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.delivered[id]
	if m == nil {
		m = map[peer.ID]bool{}
		b.delivered[id] = m
	}
	m[p] = true
}

// takeDelivered returns the peers that delivered the whole of release id
// and forgets them.
func (b *fetchBook) takeDelivered(id [wire.IDLen]byte) []peer.ID {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []peer.ID
	for p := range b.delivered[id] {
		out = append(out, p)
	}
	delete(b.delivered, id)
	return out
}
