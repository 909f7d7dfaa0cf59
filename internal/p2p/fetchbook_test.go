package p2p

import (
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

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
	b.markDelivered(x, "p")
	b.markDelivered(x, "q")
	b.markDelivered(x, "p")
	b.markDelivered(y, "r")
	got := b.takeDelivered(x)
	slices.Sort(got)
	if !slices.Equal(got, []peer.ID{"p", "q"}) {
		t.Fatalf("takeDelivered(x) = %v, want [p q]", got)
	}
	if got := b.takeDelivered(x); len(got) != 0 {
		t.Fatalf("takeDelivered(x) again = %v, want none", got)
	}
	if got := b.takeDelivered(y); !slices.Equal(got, []peer.ID{"r"}) {
		t.Fatalf("takeDelivered(y) = %v, want [r]", got)
	}
}
