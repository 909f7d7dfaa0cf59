package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// failingNetwork stands for the network in TestPeerGraceFailingPeers: its
// peers offer every release of a directory, and every download of one
// fails, as from peers that are unreachable or reset the stream.
type failingNetwork struct {
	Source // the directory
	opens  atomic.Int32
}

func (n *failingNetwork) Releases(ctx context.Context) ([]Release, error) {
	rels, err := n.Source.Releases(ctx)
	for i, r := range rels {
		rels[i] = failingRelease{r, n}
	}
	return rels, err
}

func (n *failingNetwork) String() string { return "network (test)" }
func (n *failingNetwork) hasPeers() bool { return true }
func (n *failingNetwork) Close() error   { return nil }

type failingRelease struct {
	Release
	n *failingNetwork
}

func (r failingRelease) Open(context.Context, int64) (io.ReadCloser, error) {
	r.n.opens.Add(1)
	return nil, errors.New("peer reset the stream")
}

// graceMirror stands for an HTTPS mirror with the network on: it offers
// the releases of a directory and gives way to peers as httpSource does,
// with its peerWaits.
type graceMirror struct {
	Source // the directory
	mu     sync.Mutex
	waits  peerWaits
}

func (m *graceMirror) String() string { return "mirror (test)" }

func (m *graceMirror) preferPeers(wait time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.waits.wait = wait
}

func (m *graceMirror) fallback() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waits.wait > 0
}

func (m *graceMirror) due(in region.Info, peerSince time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waits.due(in, peerSince, time.Now())
}

// TestPeerGraceFailingPeers runs the engine with the network on and a
// fallback source, both offering 2.0.0, the network's downloads all
// failing: the engine tries the peers, and takes the release from the
// fallback source once PeerGrace has passed since the network first
// offered it, not before, though its draw within PeerWait (as long as
// PeerGrace, so that the draw always ends first) is over. Without the
// network's offer, the draw alone decides, within PeerWait.
func TestPeerGraceFailingPeers(t *testing.T) {
	if !(NetworkConfig{}).enabled() {
		t.Skip("built without the network (rustpatcher_nop2p)")
	}
	t.Parallel()
	const wait, interval = PeerGrace, 10 * time.Second
	for _, peersOffer := range []bool{true, false} {
		t.Run(fmt.Sprintf("peers offer it: %v", peersOffer), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t)
				p := r.release("p", 2, r.key, "2.0.0")
				netDir := t.TempDir()
				if peersOffer {
					b, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(netDir, "p"), b, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				net := &failingNetwork{Source: DirSource(netDir)}
				mirror := &graceMirror{Source: DirSource(r.rels)}
				cfg := r.config()
				cfg.Sources = []Source{mirror}
				cfg.Network = NetworkConfig{}
				cfg.network = func(context.Context) (Source, io.Closer, error) { return net, net, nil }
				cfg.PeerWait, cfg.Interval = wait, interval
				start := time.Now()
				r.spawn(cfg)
				var applied *Event
				for applied == nil && time.Since(start) < 2*wait {
					time.Sleep(interval)
					synctest.Wait()
					r.mu.Lock()
					for _, e := range r.events {
						if e.Kind == EventApplied {
							applied = &e
						}
					}
					r.mu.Unlock()
				}
				if applied == nil {
					t.Fatalf("not applied within %v; events: %v", 2*wait, r.eventList())
				}
				took := time.Since(start)
				if applied.Source != p { // the mirror's copy, named by its path
					t.Fatalf("applied from %q, want the fallback source's %q", applied.Source, p)
				}
				if took > wait+2*interval {
					t.Errorf("applied after %v, want within PeerWait and PeerGrace (%v) and a poll", took, wait)
				}
				if peersOffer {
					if took < PeerGrace {
						t.Errorf("applied %v after the peers first offered it, want PeerGrace (%v) at least", took, PeerGrace)
					}
					if net.opens.Load() == 0 {
						t.Error("the engine never tried the peers")
					}
				}
				t.Logf("applied from the fallback after %v; %d downloads from peers tried", took, net.opens.Load())
			})
		})
	}
}
