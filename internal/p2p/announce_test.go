package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeDHT records announcements and fails while fail is set. A lookup of
// a key returns held[key] made-up providers, and self first when selfIn.
type fakeDHT struct {
	mu       sync.Mutex
	got      []cid.Cid
	fail     bool
	held     map[cid.Cid]int
	selfIn   bool
	lookedUp []cid.Cid
}

// fakeSelf is the ID of the node in tests with fakeDHT.
const fakeSelf = peer.ID("self")

func (d *fakeDHT) FindProvidersAsync(ctx context.Context, key cid.Cid, count int) <-chan peer.AddrInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookedUp = append(d.lookedUp, key)
	var ps []peer.AddrInfo
	if d.selfIn {
		ps = append(ps, peer.AddrInfo{ID: fakeSelf})
	}
	for i := range d.held[key] {
		ps = append(ps, peer.AddrInfo{ID: peer.ID(fmt.Sprintf("%s/%d", key, i))})
	}
	ps = ps[:min(len(ps), count)]
	out := make(chan peer.AddrInfo, len(ps))
	for _, ai := range ps {
		out <- ai
	}
	close(out)
	return out
}

func (d *fakeDHT) Provide(ctx context.Context, key cid.Cid, broadcast bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return errors.New("routing table empty")
	}
	d.got = append(d.got, key)
	return nil
}

func (d *fakeDHT) count(key cid.Cid) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.got {
		if c == key {
			n++
		}
	}
	return n
}

func TestAnnouncerDueAndBackoff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := &fakeDHT{fail: true}
	a := newAnnouncer(d, fakeSelf, time.Hour, time.Second, providerLookupN, slog.New(slog.DiscardHandler))
	k1 := derivedCID("test\x00", []byte("1"))
	k2 := derivedCID("test\x00", []byte("2"))
	a.add(k1, "k1")
	a.add(k2, "k2")

	// Both are due at once; both fail and are retried after 2 s.
	if wait := a.announceDue(ctx); wait != 0 {
		t.Fatalf("announceDue after adding = %v, want 0 (recompute)", wait)
	}
	if f := a.failed.Load(); f != 2 {
		t.Fatalf("%d failures, want 2", f)
	}
	if wait := a.announceDue(ctx); wait <= time.Second || wait > 2*time.Second {
		t.Fatalf("wait after one failure = %v, want about 2s", wait)
	}
	// A key that failed, added again, is tried again at once.
	a.add(k1, "k1 again")
	a.announceDue(ctx)
	if f := a.failed.Load(); f != 3 {
		t.Fatalf("%d failures after adding k1 again, want 3", f)
	}
	for range 10 {
		a.keys[k1].fail++
	}
	if at := a.keys[k1].due(a.interval).Sub(a.keys[k1].last); at != 32*time.Second {
		t.Fatalf("backoff after many failures = %v, want 32s", at)
	}

	// Once the DHT works, a removed key is no longer announced and the
	// next is due after the interval.
	d.mu.Lock()
	d.fail = false
	d.mu.Unlock()
	a.remove(k1)
	a.keys[k2].last = time.Time{}
	a.announceDue(ctx)
	if d.count(k1) != 0 || d.count(k2) != 1 {
		t.Fatalf("announced k1 %d and k2 %d times, want 0 and 1", d.count(k1), d.count(k2))
	}
	if wait := a.announceDue(ctx); wait < 59*time.Minute {
		t.Fatalf("wait after success = %v, want the interval", wait)
	}
	// Adding a key announced already keeps its schedule (a file announced
	// as its download started and then served whole): no new Provide.
	a.add(k2, "k2 whole")
	if wait := a.announceDue(ctx); wait < 59*time.Minute || d.count(k2) != 1 {
		t.Fatalf("k2 added again: announced %d times, next in %v; want 1 and the interval", d.count(k2), wait)
	}
	if name := a.keys[k2].name; name != "k2 whole" {
		t.Errorf("k2 added again is named %q in logs", name)
	}
	// Removed and added, it is a new key, announced at once.
	a.remove(k2)
	a.add(k2, "k2")
	a.announceDue(ctx)
	if d.count(k2) != 2 || a.provided.Load() != 2 {
		t.Fatalf("k2 announced %d times (%d in all), want 2", d.count(k2), a.provided.Load())
	}
}

func TestAnnouncerRunStops(t *testing.T) {
	t.Parallel()
	d := &fakeDHT{}
	a := newAnnouncer(d, fakeSelf, time.Hour, time.Second, providerLookupN, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.run(ctx); close(done) }()
	k := derivedCID("test\x00", []byte("run"))
	a.add(k, "k")
	deadline := time.Now().Add(5 * time.Second)
	for d.count(k) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if d.count(k) == 0 {
		t.Fatal("run did not announce an added key within 5s")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return within 5s of its context ending")
	}
}

// TestAnnouncerOutcomes checks the times and the error that Stats reports.
func TestAnnouncerOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := &fakeDHT{fail: true}
	a := newAnnouncer(d, fakeSelf, time.Hour, time.Second, providerLookupN, slog.New(slog.DiscardHandler))
	if ok, failed, err := a.outcomes(); !ok.IsZero() || !failed.IsZero() || err != nil {
		t.Fatalf("outcomes before any announcement: %v, %v, %v", ok, failed, err)
	}
	k := derivedCID("test\x00", []byte("1"))
	a.add(k, "k")
	a.announceDue(ctx)
	ok, failed, err := a.outcomes()
	if !ok.IsZero() || failed.IsZero() || err == nil || err.Error() != "routing table empty" {
		t.Fatalf("outcomes after a failure: %v, %v, %v", ok, failed, err)
	}
	d.mu.Lock()
	d.fail = false
	d.mu.Unlock()
	a.keys[k].last = time.Time{}
	a.announceDue(ctx)
	if ok2, failed2, _ := a.outcomes(); ok2.Before(failed) || failed2 != failed {
		t.Fatalf("outcomes after a success: ok %v, failed %v (was %v)", ok2, failed2, failed)
	}
}
