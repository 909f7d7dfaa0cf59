package p2p

import (
	"testing"

	"github.com/org/rustpatcher-go/internal/wire"
)

func TestFetchBook(t *testing.T) {
	t.Parallel()
	b := newFetchBook()
	var x, y [wire.IDLen]byte
	y[0] = 1
	for want := range 3 {
		if got := b.nextTurn(x); got != want {
			t.Fatalf("turn %d of x = %d", want, got)
		}
	}
	if got := b.nextTurn(y); got != 0 {
		t.Fatalf("first turn of y = %d, want 0", got)
	}
	// The book is bounded: past maxBookedFiles it starts afresh.
	for i := range maxBookedFiles {
		var z [wire.IDLen]byte
		z[1], z[2] = byte(i), byte(i>>8)
		b.nextTurn(z)
	}
	if len(b.turns) > maxBookedFiles {
		t.Fatalf("%d files booked, limit %d", len(b.turns), maxBookedFiles)
	}
}
