package p2p

import (
	"sync"

	"github.com/org/rustpatcher-go/internal/wire"
)

// maxBookedFiles bounds the files a fetchBook remembers.
const maxBookedFiles = 1024

// A fetchBook keeps, per file, whose turn it is to be asked first: each
// download starts with another peer, so that downloaders spread over the
// peers that serve a file.
type fetchBook struct {
	mu    sync.Mutex
	turns map[[wire.IDLen]byte]int
}

func newFetchBook() *fetchBook {
	return &fetchBook{turns: map[[wire.IDLen]byte]int{}}
}

// nextTurn returns the turn of this download of file id: 0, then 1, 2...
func (b *fetchBook) nextTurn(id [wire.IDLen]byte) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.turns[id]
	if !ok && len(b.turns) >= maxBookedFiles {
		clear(b.turns)
	}
	b.turns[id] = t + 1
	return t
}
