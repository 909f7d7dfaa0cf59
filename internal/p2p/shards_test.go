package p2p

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/swarmsim"
)

// TestShardCID pins the shard keys of docs/PROTOCOL.md to digests
// computed apart from this code (Python's hashlib).
func TestShardCID(t *testing.T) {
	t.Parallel()
	pub := make([]byte, 32)
	for i := range pub {
		pub[i] = byte(i)
	}
	ch := ChannelCID(pub, "linux/amd64")
	for _, tt := range []struct {
		key  cid.Cid
		want string
	}{
		{ch, "a99103b45f2daf35e5de2150eebf48e71d3e9c4473d5470aa8c65c9667ad472c"},
		{ShardCID(ch, 5), "fe40e669cf9401ae7e3de92aaf625b559d67015987e173a9d5fcc7f3804ce606"},
		{ShardCID(ch, NumShards-1), "351856ace019f67f8f4b44feb7f65e40d38bb302b6716a5cd6abbcae6e992e17"},
	} {
		if got := hex.EncodeToString(digestOf(tt.key)); got != tt.want {
			t.Errorf("digest of %s = %s, want %s", tt.key, got, tt.want)
		}
		if tt.key.Prefix() != ch.Prefix() {
			t.Errorf("%s is not a raw sha2-256 CIDv1", tt.key)
		}
	}
	seen := map[cid.Cid]bool{ch: true}
	for i := range NumShards {
		k := ShardCID(ch, i)
		if seen[k] {
			t.Fatalf("shard %d repeats a key", i)
		}
		seen[k] = true
	}
}

// TestAnnouncerPlaces checks where the announcer puts a key: under itself
// while a lookup returns fewer than full providers besides this node, else
// under a shard key, which it keeps on every later announcement.
func TestAnnouncerPlaces(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		held    int
		selfIn  bool
		noted   bool // a lookup found the key full lately
		shard   bool
		lookups int // made by the announcer
	}{
		{"empty", 0, false, false, false, 1},
		{"one short", providerLookupN - 1, false, false, false, 1},
		{"one short and this node", providerLookupN - 1, true, false, false, 1},
		{"full", providerLookupN, false, false, true, 1},
		{"full and this node", providerLookupN, true, false, true, 1},
		{"full before", 0, false, true, true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			key := derivedCID("test\x00", []byte(tt.name))
			d := &fakeDHT{held: map[cid.Cid]int{key: tt.held}, selfIn: tt.selfIn}
			a := newAnnouncer(d, fakeSelf, time.Hour, time.Second, providerLookupN, slog.New(slog.DiscardHandler))
			if tt.noted {
				a.noteFull(key)
			}
			a.add(key, "k")
			a.announceDue(ctx)
			if len(d.got) != 1 {
				t.Fatalf("%d announcements, want 1", len(d.got))
			}
			placed := d.got[0]
			shard := -1
			for i := range NumShards {
				if ShardCID(key, i) == placed {
					shard = i
				}
			}
			if tt.shard != (shard >= 0) || (!tt.shard && placed != key) {
				t.Fatalf("announced under %s (shard %d), want shard %v", placed, shard, tt.shard)
			}
			if len(d.lookedUp) != tt.lookups {
				t.Fatalf("%d lookups, want %d", len(d.lookedUp), tt.lookups)
			}
			// Announced again (the interval, twice): same place, no new
			// lookup, even once the key filled up or emptied; added again
			// (a new release), it keeps its place and schedule.
			d.held[key] = providerLookupN - tt.held
			a.keys[key].last = time.Time{}
			a.announceDue(ctx)
			a.add(key, "k")
			a.announceDue(ctx)
			a.keys[key].last = time.Time{}
			a.announceDue(ctx)
			if len(d.got) != 3 || d.got[1] != placed || d.got[2] != placed {
				t.Fatalf("announced under %v, want %s three times", d.got, placed)
			}
			if len(d.lookedUp) != tt.lookups {
				t.Fatalf("%d lookups after announcing again, want %d", len(d.lookedUp), tt.lookups)
			}
		})
	}
}

// TestAnnouncerQuiet checks that a quiet announcer announces nothing and,
// when it may again, announces at once the keys that fell due meanwhile
// and no other.
func TestAnnouncerQuiet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := &fakeDHT{}
	a := newAnnouncer(d, fakeSelf, time.Hour, time.Second, providerLookupN, slog.New(slog.DiscardHandler))
	k1 := derivedCID("test\x00", []byte("1"))
	k2 := derivedCID("test\x00", []byte("2"))
	a.add(k1, "k1")
	a.announceDue(ctx)
	a.setQuiet(true)
	a.add(k2, "k2")
	if wait := a.announceDue(ctx); wait != time.Hour {
		t.Fatalf("quiet announceDue = %v, want the interval", wait)
	}
	if d.count(k1) != 1 || d.count(k2) != 0 || len(d.lookedUp) != 1 {
		t.Fatalf("quiet: announced k1 %d and k2 %d times after %d lookups, want 1, 0, 1", d.count(k1), d.count(k2), len(d.lookedUp))
	}
	select {
	case <-a.wake: // from add
	default:
	}
	a.setQuiet(false)
	select {
	case <-a.wake:
	default:
		t.Fatal("resuming did not wake the loop")
	}
	a.announceDue(ctx)
	if d.count(k1) != 1 || d.count(k2) != 1 {
		t.Fatalf("resumed: announced k1 %d and k2 %d times, want 1 and 1", d.count(k1), d.count(k2))
	}
	// k1 falls due while the node is quiet.
	a.setQuiet(true)
	a.mu.Lock()
	a.keys[k1].last = time.Now().Add(-2 * time.Hour)
	a.mu.Unlock()
	a.announceDue(ctx)
	a.setQuiet(false)
	a.announceDue(ctx)
	if d.count(k1) != 2 || d.count(k2) != 1 {
		t.Fatalf("resumed after k1 fell due: announced k1 %d and k2 %d times, want 2 and 1", d.count(k1), d.count(k2))
	}
}

// TestFindProvidersShards checks the keys a lookup looks up: the key
// alone while it is not full, then shard keys until they gave full
// providers, one was empty, or maxShardLookups were looked up.
func TestFindProvidersShards(t *testing.T) {
	t.Parallel()
	base := derivedCID("test\x00", []byte("base"))
	all := func(n int) map[cid.Cid]int {
		m := map[cid.Cid]int{base: providerLookupN}
		for i := range NumShards {
			m[ShardCID(base, i)] = n
		}
		return m
	}
	for _, tt := range []struct {
		name      string
		held      map[cid.Cid]int
		lookups   int
		providers int
	}{
		{"empty", map[cid.Cid]int{}, 1, 0},
		{"not full", map[cid.Cid]int{base: providerLookupN - 1}, 1, providerLookupN - 1},
		{"full, shards empty", all(0), 2, providerLookupN},
		{"full, shards sparse", all(10), 5, providerLookupN + 40},
		{"full, shards of 16", all(16), 3, 2 * providerLookupN},
		{"full, shards full", all(providerLookupN), 2, 2 * providerLookupN},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := &fakeDHT{held: tt.held}
			lookups, full := 0, false
			var got []peer.ID
			for ai := range findProviders(context.Background(), d, base, providerLookupN, func() { lookups++ }, func() { full = true }) {
				got = append(got, ai.ID)
			}
			if lookups != tt.lookups || len(d.lookedUp) != tt.lookups {
				t.Errorf("%d lookups counted, %d made, want %d", lookups, len(d.lookedUp), tt.lookups)
			}
			if len(got) != tt.providers {
				t.Errorf("%d providers, want %d", len(got), tt.providers)
			}
			if full != (tt.held[base] >= providerLookupN) {
				t.Errorf("full reported %v with %d providers under the key", full, tt.held[base])
			}
			if len(d.lookedUp) > 0 && d.lookedUp[0] != base {
				t.Errorf("first lookup of %s, want the key itself", d.lookedUp[0])
			}
			for _, k := range d.lookedUp[min(1, len(d.lookedUp)):] {
				if _, ok := tt.held[k]; !ok || k == base {
					t.Errorf("looked up %s, not a shard key", k)
				}
			}
		})
	}
}

// TestShardedNetwork runs the scheme on a real DHT of loopback nodes, with
// a key full at 2 providers rather than 32: the first two holders announce
// the channel and release keys themselves, the others shard keys; a new
// node finds the release and fetches it with two or more lookups a poll;
// a node that looks up only the channel key (an older node) finds the
// first two, and a new node finds a holder that announced only the channel
// key (as older nodes do).
func TestShardedNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real hosts on loopback; runs without -short")
	}
	t.Parallel()
	const full, holders = 2, 5
	key, path, in := writeRelease(t, 256<<10)
	pub := key.Public
	ctx := testContext(t)
	ch := ChannelCID(pub, testTarget)
	boot := newTestNode(t, Config{shardFull: full})
	var nodes []*Node
	for i := range holders {
		n := newTestNode(t, Config{shardFull: full}, boot)
		if err := n.Serve(ctx, pub, testTarget, path, in); err != nil {
			t.Fatal(err)
		}
		// One after another: each places its keys seeing the others'.
		for n.Stats().Provides < 2 && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		if ctx.Err() != nil {
			t.Fatalf("holder %d did not announce within the test's minute", i)
		}
		nodes = append(nodes, n)
	}
	rel := ReleaseCID(pub, testTarget, nodes[0].server.newestOf(pub, testTarget).id)
	client := newTestNode(t, Config{shardFull: full}, boot)
	waitRoutes(ctx, t, client)
	for i, n := range nodes {
		for _, base := range []cid.Cid{ch, rel} {
			n.ann.mu.Lock()
			placed := n.ann.keys[base].placed
			n.ann.mu.Unlock()
			if (i < full) != (placed == base) {
				t.Errorf("holder %d announced %s under %s, want it under itself only for the first %d", i, base, placed, full)
			}
			// The client finds the holder where it announced.
			if !slices.Contains(lookupIDs(ctx, client, placed), n.ID()) {
				t.Errorf("holder %d not found under %s", i, placed)
			}
		}
	}
	// An older node looks up the channel key only: it finds the first
	// holders.
	if got := lookupIDs(ctx, client, ch); len(got) != full || !slices.Contains(got, nodes[0].ID()) || !slices.Contains(got, nodes[1].ID()) {
		t.Errorf("the channel key holds %v, want the first %d holders", got, full)
	}

	rels, err := client.Source(pub, testTarget).Releases(ctx)
	if err != nil || len(rels) != 1 {
		t.Fatalf("Releases: %d releases, %v", len(rels), err)
	}
	if b := readAllFrom(t, rels[0], 0); int64(len(b)) != rels[0].Size() {
		t.Errorf("fetched %d bytes of %d", len(b), rels[0].Size())
	}

	// The lookups of a poll (what Releases and a download's lookup
	// run), against ShardLoad's model of the same fleet.
	const polls = 20
	before := client.Stats().Lookups
	most := uint64(0)
	for range polls {
		b := client.Stats().Lookups
		found := 0
		for range client.findProviders(ctx, ch) {
			found++
		}
		l := client.Stats().Lookups - b
		most = max(most, l)
		if l < 2 || l > 1+maxShardLookups || found < full {
			t.Errorf("a poll made %d lookups and found %d providers, want 2 to %d lookups and at least %d", l, found, 1+maxShardLookups, full)
		}
	}
	mean := float64(client.Stats().Lookups-before) / polls
	model := swarmsim.ShardLoad(swarmsim.ShardConfig{Nodes: holders, Shards: NumShards, Full: full, Want: full, Polls: 1000, MaxShardLookups: maxShardLookups, Seed: 1})
	t.Logf("%d holders, full at %d: %.2f lookups per poll (at most %d); the model: %.2f (at most %d)", holders, full, mean, most, model.LookupsPerPoll, model.MaxLookups)
	if math.Abs(mean-model.LookupsPerPoll) > 0.5 {
		t.Errorf("%.2f lookups per poll, the model %.2f", mean, model.LookupsPerPoll)
	}

	// A holder that announces the channel key only, as older nodes do, is
	// found by the lookup of newer ones.
	old := newTestNode(t, Config{}, boot)
	other := ChannelCID(pub, "linux/arm64")
	waitRoutes(ctx, t, old)
	if err := old.Provide(ctx, other); err != nil {
		t.Fatal(err)
	}
	var found []peer.ID
	for ai := range client.findProviders(ctx, other) {
		found = append(found, ai.ID)
	}
	if !slices.Contains(found, old.ID()) {
		t.Errorf("an older node's announcement not found: %v", found)
	}
}

// waitRoutes waits until n's routing table holds a peer.
func waitRoutes(ctx context.Context, t *testing.T, n *Node) {
	t.Helper()
	for n.dht.RoutingTable().Size() == 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatal("the routing table stayed empty")
	}
}

// lookupIDs returns the providers of key alone that n's DHT finds.
func lookupIDs(ctx context.Context, n *Node, key cid.Cid) []peer.ID {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var ids []peer.ID
	for ai := range n.dht.FindProvidersAsync(lctx, key, 0) {
		ids = append(ids, ai.ID)
	}
	return ids
}

// TestQuietWhenUnreachable checks that a node AutoNAT finds unreachable,
// without a relay address, announces nothing, while a reachable one
// announces at once.
func TestQuietWhenUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real hosts on loopback; runs without -short")
	}
	t.Parallel()
	key, path, in := writeRelease(t, 64<<10)
	pub := key.Public
	ctx := testContext(t)
	boot := newTestNode(t, Config{})
	hidden := newTestNode(t, Config{reachability: network.ReachabilityPrivate}, boot)
	public := newTestNode(t, Config{reachability: network.ReachabilityPublic}, boot)
	// Quiet from New on, before any announcement could start.
	if !hidden.Stats().Quiet {
		t.Fatal("the unreachable node is not quiet once New returned")
	}
	for _, n := range []*Node{hidden, public} {
		if err := n.Serve(ctx, pub, testTarget, path, in); err != nil {
			t.Fatal(err)
		}
	}
	for public.Stats().Provides < 2 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	// The hidden node had as long as the public one, and more.
	time.Sleep(500 * time.Millisecond)
	hs, ps := hidden.Stats(), public.Stats()
	if !hs.Quiet || hs.Provides != 0 || hs.ProvideErrors != 0 {
		t.Errorf("unreachable node: quiet %v, %d announcements, %d failed; want quiet and none", hs.Quiet, hs.Provides, hs.ProvideErrors)
	}
	if ps.Quiet || ps.Provides < 2 {
		t.Errorf("reachable node: quiet %v, %d announcements; want 2", ps.Quiet, ps.Provides)
	}
	waitRoutes(ctx, t, boot)
	got := lookupIDs(ctx, boot, ChannelCID(pub, testTarget))
	if !slices.Contains(got, public.ID()) || slices.Contains(got, hidden.ID()) {
		t.Errorf("channel providers %v, want the reachable node %s and not the unreachable one %s", got, public.ID(), hidden.ID())
	}
}
