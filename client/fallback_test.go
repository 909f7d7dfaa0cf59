package client

import (
	"testing"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// TestPeerWaitsDue: a fallback source's release is due once the node's
// draw within the wait is over and, when peers offer its version, once
// PeerGrace (or the wait, if shorter) has passed since their first offer.
func TestPeerWaitsDue(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	in := region.Info{Version: "2.0.0"}
	k := in.Version + "\x00" + string(in.Hash[:])
	tests := []struct {
		name      string
		wait      time.Duration
		drawAt    time.Time // zero: no draw made
		peerSince time.Time
		want      bool
	}{
		{"no wait", 0, time.Time{}, t0.Add(-time.Second), true},
		{"draw over, no peer offers it", 10 * time.Minute, t0.Add(-time.Second), time.Time{}, true},
		{"draw not over", 10 * time.Minute, t0.Add(time.Second), time.Time{}, false},
		{"draw over, a peer offered it 30 s ago", 10 * time.Minute, t0.Add(-time.Minute), t0.Add(-30 * time.Second), false},
		{"draw over, a peer offered it PeerGrace ago", 10 * time.Minute, t0.Add(-time.Minute), t0.Add(-PeerGrace), true},
		{"draw not over, a peer offered it long ago", 10 * time.Minute, t0.Add(time.Second), t0.Add(-time.Hour), false},
		{"short wait bounds the grace", 30 * time.Second, t0.Add(-time.Second), t0.Add(-31 * time.Second), true},
		{"short wait, a peer offered it 10 s ago", 30 * time.Second, t0.Add(-time.Second), t0.Add(-10 * time.Second), false},
	}
	// The draw is made when the release is first seen, grace or not: a
	// release first seen while peers offer it is not due after the grace
	// alone when its draw is later.
	t.Run("draw made during the grace", func(t *testing.T) {
		w := peerWaits{wait: 10 * time.Minute}
		w.due(in, t0, t0)
		at, ok := w.at[k]
		if !ok {
			t.Fatal("no draw made while peers offer the release")
		}
		after := t0.Add(PeerGrace)
		if got, want := w.due(in, t0, after), !after.Before(at); got != want {
			t.Errorf("due at the grace's end with the draw at %v: %v, want %v", at.Sub(t0), got, want)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := peerWaits{wait: tt.wait}
			if !tt.drawAt.IsZero() {
				w.at = map[string]time.Time{k: tt.drawAt}
			}
			if got := w.due(in, tt.peerSince, t0); got != tt.want {
				t.Errorf("due = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPeerOffersFirst: peerOffers keeps the first time the network
// offered a version.
func TestPeerOffersFirst(t *testing.T) {
	var o peerOffers
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	o.saw("2.0.0", t0)
	o.saw("2.0.0", t0.Add(time.Minute))
	if got := o["2.0.0"]; !got.Equal(t0) {
		t.Fatalf("after two offers: %v, want the first, %v", got, t0)
	}
	if got := o["3.0.0"]; !got.IsZero() {
		t.Fatalf("a version never offered: %v, want zero", got)
	}
}
