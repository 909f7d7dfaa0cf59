package p2p

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/org/rustpatcher-go/internal/backoff"
)

// Timing of announcements.
const (
	// provideTimeout bounds one announcement.
	provideTimeout = time.Minute
	// minProvideWait is the least time between two rounds of the loop.
	minProvideWait = 50 * time.Millisecond
	// fullNoteTTL is how long a lookup that found a key full spares the
	// announcer a lookup of its own: records live for 48 hours in the
	// DHT, so a full key stays full for longer than this.
	fullNoteTTL = 10 * time.Minute
)

// errNoRoutes is the error of an announcement made while the DHT's routing
// table is empty.
var errNoRoutes = errors.New("the DHT's routing table is empty")

// provider announces keys in the DHT and looks them up; *dht.IpfsDHT is
// one.
type provider interface {
	Provide(ctx context.Context, key cid.Cid, broadcast bool) error
	lookupDHT
}

// An announcer keeps keys announced in the DHT: a key added is announced
// at once and again every interval; an announcement that fails (the routing
// table may still be empty) is retried with backoff.
//
// Each key added is a channel or release key with shard keys (shards.go):
// before its first announcement the announcer places it, under the key
// itself while a lookup of it returns fewer than full providers besides
// this node, else under one of its shard keys at random, and keeps that
// place for as long as the key is announced. While the node is quiet (it
// cannot be dialed: see setQuiet) it announces nothing.
type announcer struct {
	dht      provider
	self     peer.ID // left out when counting a key's providers
	interval time.Duration
	lookup   time.Duration // bounds the lookup that places a key
	full     int           // providers that make a key full
	// routes reports whether the DHT's routing table holds a peer: a
	// key is placed, and announced, only then (nil: always).
	routes func() bool
	log    *slog.Logger
	wake   chan struct{} // a key was added, or the node is no longer quiet

	mu     sync.Mutex
	keys   map[cid.Cid]*announcement
	quiet  bool
	fullAt map[cid.Cid]time.Time // when a lookup last found a key full

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
	// placed is the key announced, the key itself or one of its shard
	// keys; undefined until an announcement succeeded.
	placed cid.Cid
}

// due returns when a is next due: an announcement that failed is tried
// again 2 s after the first failure, the wait doubling up to 32 s (never
// longer than the reprovide interval).
func (a *announcement) due(interval time.Duration) time.Time {
	if a.fail > 0 {
		return a.last.Add(min(backoff.Policy{Base: 2 * time.Second, Max: 32 * time.Second}.Delay(a.fail, nil), interval))
	}
	return a.last.Add(interval)
}

// newAnnouncer returns an announcer that announces keys through p every
// interval. self is the node's ID, lookup bounds the lookup that places a
// key and full is the number of providers that makes a key full
// (providerLookupN).
func newAnnouncer(p provider, self peer.ID, interval, lookup time.Duration, full int, log *slog.Logger) *announcer {
	return &announcer{dht: p, self: self, interval: interval, lookup: lookup, full: full, log: log,
		wake: make(chan struct{}, 1), keys: map[cid.Cid]*announcement{}, fullAt: map[cid.Cid]time.Time{}}
}

// notify wakes the loop.
func (a *announcer) notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// setQuiet stops (true) or resumes (false) the announcements. A node that
// AutoNAT finds unreachable and that has no relay address is quiet: peers
// that find it could not ask it for a byte. On resuming, the keys that
// fell due meanwhile, and those added, are announced at once; the records
// of the others are still in the DHT.
func (a *announcer) setQuiet(quiet bool) {
	a.mu.Lock()
	was := a.quiet
	a.quiet = quiet
	a.mu.Unlock()
	if was != quiet {
		if quiet {
			a.log.Info("not announcing releases: AutoNAT finds this node unreachable and it has no relay address")
		} else {
			a.log.Info("announcing releases again: the node is reachable, or has a relay address")
		}
		a.notify()
	}
}

// isQuiet reports whether the announcements are stopped.
func (a *announcer) isQuiet() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.quiet
}

// noteFull records that a lookup found key full, so that placing key
// needs no lookup of its own for fullNoteTTL.
func (a *announcer) noteFull(key cid.Cid) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for k, at := range a.fullAt { // keep the map small
		if now.Sub(at) > fullNoteTTL {
			delete(a.fullAt, k)
		}
	}
	a.fullAt[key] = now
}

// place returns the key to announce key under: a shard key picked at
// random when key is full (a lookup found it full within fullNoteTTL, or
// one made now returns full providers besides this node), else key itself.
// A lookup that fails or times out leaves key under itself.
func (a *announcer) place(ctx context.Context, key cid.Cid) cid.Cid {
	a.mu.Lock()
	at, noted := a.fullAt[key]
	a.mu.Unlock()
	full := noted && time.Since(at) < fullNoteTTL
	if !full {
		lctx, cancel := context.WithTimeout(ctx, a.lookup)
		n := 0
		for ai := range a.dht.FindProvidersAsync(lctx, key, a.full+1) {
			if ai.ID != a.self {
				n++
			}
		}
		cancel()
		full = n >= a.full
	}
	if !full {
		return key
	}
	return ShardCID(key, rand.IntN(NumShards))
}

// add announces key, named name in logs, at once and then every interval;
// a key added again keeps its schedule and place, but for one whose last
// attempt failed, which is tried again at once.
func (a *announcer) add(key cid.Cid, name string) {
	a.mu.Lock()
	if old := a.keys[key]; old != nil {
		// Announced already (a file announced as its download started,
		// then served whole; a channel that gets a statement): it keeps
		// its schedule, and a Provide, a lookup of the 20 closest peers
		// and a record on each, is not made again at once.
		// One that has not succeeded yet is tried again at once.
		old.name = name
		retry := old.fail > 0
		if retry {
			old.last = time.Time{}
		}
		a.mu.Unlock()
		if retry {
			a.notify()
		}
		return
	}
	a.keys[key] = &announcement{name: name}
	a.mu.Unlock()
	a.notify()
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
	due := map[cid.Cid]announcement{}
	next := a.interval
	a.mu.Lock()
	if a.quiet {
		a.mu.Unlock()
		return a.interval // setQuiet wakes the loop
	}
	for c, st := range a.keys {
		at := st.due(a.interval)
		if !at.After(now) {
			due[c] = *st
		} else if d := at.Sub(now); d < next {
			next = d
		}
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for c, st := range due {
		wg.Go(func() { a.announce(ctx, c, st.name, st.placed) })
	}
	wg.Wait()
	if len(due) > 0 {
		return 0 // recompute: failures need a retry time
	}
	return max(next, minProvideWait)
}

// announce announces key once, under placed if it is defined, else where
// place puts it, and records the outcome. With an empty routing table it
// fails at once: a lookup would find nothing and place every key under
// itself, and the DHT would keep a record of it in its own store.
func (a *announcer) announce(ctx context.Context, key cid.Cid, name string, placed cid.Cid) {
	var err error
	if a.routes != nil && !a.routes() {
		err = errNoRoutes
	} else {
		if !placed.Defined() {
			placed = a.place(ctx, key)
		}
		pctx, cancel := context.WithTimeout(ctx, provideTimeout)
		err = a.dht.Provide(pctx, placed, true)
		cancel()
	}
	a.mu.Lock()
	if st := a.keys[key]; st != nil {
		st.last = time.Now()
		if err != nil {
			st.fail++
		} else {
			st.fail = 0
			st.placed = placed
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
	a.log.Debug("announced", "key", name, "cid", key, "under", placed, "shard", placed != key)
}

// watchReachability keeps the announcer quiet while AutoNAT finds the node
// unreachable (network.ReachabilityPrivate: peers cannot dial it) and it
// has no relay (/p2p-circuit) address, through which peers could reach it
// and punch a hole. Such a node still serves the peers it is connected to,
// but one found in the DHT could only fail the requests of whoever found
// it. sub delivers EvtLocalReachabilityChanged and
// EvtLocalAddressesUpdated. watchReachability returns when ctx ends,
// closing sub.
func (n *Node) watchReachability(ctx context.Context, sub event.Subscription, reach network.Reachability) {
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			reach = n.reachabilityEvent(e, reach)
		}
	}
}

// reachabilityEvent takes in e, an event of watchReachability's, given
// the reachability known before it, and returns the reachability known
// after it.
func (n *Node) reachabilityEvent(e any, reach network.Reachability) network.Reachability {
	if r, ok := e.(event.EvtLocalReachabilityChanged); ok {
		reach = r.Reachability
	}
	n.ann.setQuiet(reach == network.ReachabilityPrivate && !hasRelayAddr(n.h.Addrs()))
	return reach
}

// hasRelayAddr reports whether one of addrs is a relay (/p2p-circuit)
// address.
func hasRelayAddr(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			return true
		}
	}
	return false
}

// findProviders is findProviders on the node's DHT, counted in
// Stats.Lookups, telling the announcer of the keys it finds full.
func (n *Node) findProviders(ctx context.Context, base cid.Cid) <-chan peer.AddrInfo {
	return findProviders(ctx, n.dht, base, n.shardFull(), func() { n.lookups.Add(1) }, func() { n.ann.noteFull(base) })
}

// shardFull is the number of providers that makes a key full:
// providerLookupN, or Config.shardFull in tests.
func (n *Node) shardFull() int {
	if n.cfg.shardFull > 0 {
		return n.cfg.shardFull
	}
	return providerLookupN
}
