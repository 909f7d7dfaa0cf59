package p2p

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
)

// Timing of announcements.
const (
	// provideTimeout bounds one announcement.
	provideTimeout = time.Minute
	// maxProvideBackoffShift bounds the wait before an announcement that
	// failed is tried again: 2 s after the first failure, doubling up to
	// 32 s (never longer than the reprovide interval).
	maxProvideBackoffShift = 5
	// minProvideWait is the least time between two rounds of the loop.
	minProvideWait = 50 * time.Millisecond
)

// provider announces keys in the DHT; *dht.IpfsDHT is one.
type provider interface {
	Provide(ctx context.Context, key cid.Cid, broadcast bool) error
}

// An announcer keeps keys announced in the DHT: a key added is announced
// at once and again every interval; an announcement that fails (the routing
// table may still be empty) is retried with backoff.
type announcer struct {
	dht      provider
	interval time.Duration
	log      *slog.Logger
	wake     chan struct{} // a key was added

	mu   sync.Mutex
	keys map[cid.Cid]*announcement

	provided, failed atomic.Uint64 // for Stats

	outcomeMu sync.Mutex // guards the outcomes, for Stats
	okAt      time.Time  // of the last announcement that succeeded
	errAt     time.Time  // of the last one that failed
	lastErr   error      // and its error
}

// outcomes returns when an announcement last succeeded and last failed, and
// that failure's error.
func (a *announcer) outcomes() (ok, failed time.Time, err error) {
	a.outcomeMu.Lock()
	defer a.outcomeMu.Unlock()
	return a.okAt, a.errAt, a.lastErr
}

// announcement is the state of one key.
type announcement struct {
	name string    // for logs
	last time.Time // of the last attempt; zero: due now
	fail int       // consecutive failures
}

// due returns when a is next due.
func (a *announcement) due(interval time.Duration) time.Time {
	if a.fail > 0 {
		return a.last.Add(min(time.Second<<min(a.fail, maxProvideBackoffShift), interval))
	}
	return a.last.Add(interval)
}

func newAnnouncer(p provider, interval time.Duration, log *slog.Logger) *announcer {
	return &announcer{dht: p, interval: interval, log: log, wake: make(chan struct{}, 1), keys: map[cid.Cid]*announcement{}}
}

// add announces key, named name in logs, at once and then every interval;
// a key added again is announced again at once.
func (a *announcer) add(key cid.Cid, name string) {
	a.mu.Lock()
	a.keys[key] = &announcement{name: name}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// remove stops announcing key.
func (a *announcer) remove(key cid.Cid) {
	a.mu.Lock()
	delete(a.keys, key)
	a.mu.Unlock()
}

// run announces the keys as they fall due until ctx is done.
func (a *announcer) run(ctx context.Context) {
	for {
		t := time.NewTimer(a.announceDue(ctx))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// announceDue announces the keys that are due, in parallel, and returns
// how long to wait before the next one is.
func (a *announcer) announceDue(ctx context.Context) time.Duration {
	now := time.Now()
	due := map[cid.Cid]string{}
	next := a.interval
	a.mu.Lock()
	for c, st := range a.keys {
		at := st.due(a.interval)
		if !at.After(now) {
			due[c] = st.name
		} else if d := at.Sub(now); d < next {
			next = d
		}
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for c, name := range due {
		wg.Go(func() { a.announce(ctx, c, name) })
	}
	wg.Wait()
	if len(due) > 0 {
		return 0 // recompute: failures need a retry time
	}
	return max(next, minProvideWait)
}

// announce announces key once and records the outcome.
func (a *announcer) announce(ctx context.Context, key cid.Cid, name string) {
	pctx, cancel := context.WithTimeout(ctx, provideTimeout)
	err := a.dht.Provide(pctx, key, true)
	cancel()
	a.mu.Lock()
	if st := a.keys[key]; st != nil {
		st.last = time.Now()
		if err != nil {
			st.fail++
		} else {
			st.fail = 0
		}
	}
	a.mu.Unlock()
	a.outcomeMu.Lock()
	if err != nil {
		a.errAt, a.lastErr = time.Now(), err
	} else {
		a.okAt = time.Now()
	}
	a.outcomeMu.Unlock()
	if err != nil {
		a.failed.Add(1)
		a.log.Debug("announcing failed; will retry", "key", name, "err", err)
		return
	}
	a.provided.Add(1)
	a.log.Debug("announced", "key", name, "cid", key)
}
