package p2p

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/org/rustpatcher-go/internal/wire"
)

// silentFlood keeps each streams streams of proto open from each of n
// identities to seed, negotiated but without a request, opening another
// whenever the seed ends one, until ctx is done; it returns when all have
// stopped.
func silentFlood(t *testing.T, ctx context.Context, seed *Node, proto protocol.ID, n, each int) (wait func()) {
	var wg sync.WaitGroup
	ai := peer.AddrInfo{ID: seed.ID(), Addrs: seed.Host().Addrs()}
	for range n {
		h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport),
			libp2p.ResourceManager(&network.NullResourceManager{}), libp2p.DisableRelay(), libp2p.DisableMetrics())
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Connect(ctx, ai); err != nil {
			t.Fatal(err)
		}
		var hw sync.WaitGroup
		for range each {
			hw.Go(func() { holdSilent(ctx, h, seed.ID(), proto) })
		}
		wg.Go(func() {
			hw.Wait()
			h.Close()
		})
	}
	return wg.Wait
}

// holdSilent keeps a stream of proto from h to p open, negotiated but
// without a request, opening another whenever p ends it, until ctx is
// done.
func holdSilent(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID) {
	for ctx.Err() == nil {
		s, err := h.NewStream(ctx, p, proto)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		stop := context.AfterFunc(ctx, func() { s.Reset() })
		s.Read(make([]byte, 1)) // negotiates, then waits
		stop()
		s.Reset()
	}
}

// TestFloodNoBlame floods a seed whose handler holds 4 streams with silent
// streams from 8 identities, one each, so that a client's requests are
// refused (reset) for as long as it lasts: the client gives the seed no
// strike for it, and once the flood ends it finds and fetches the release
// at once, also when libp2p had put the seed's addresses on its dial
// backoff.
func TestFloodNoBlame(t *testing.T) {
	t.Parallel()
	key, path, in := writeRelease(t, 3<<20)
	pub := key.Public
	ctx := testContext(t)
	seed := newTestSeed(t, ctx, Config{streamLimit: 4, IdleTimeout: time.Second}, pub, path, in)
	client := newTestNode(t, Config{IdleTimeout: time.Second}, seed)
	src := client.Source(pub, testTarget)
	r := onlyRelease(t, ctx, src)

	fctx, stopFlood := context.WithCancel(ctx)
	wait := silentFlood(t, fctx, seed, protocol.ID(wire.ProtocolID(pub)), 8, 1)
	waitFor(t, "the flood holding every place", func() bool { return seed.server.admit.held() >= 4 })
	refused := seed.Stats().StreamsRefused
	for range 3 {
		if rels, err := src.Releases(ctx); err == nil && len(rels) > 0 {
			t.Log("an info request got through the flood")
		}
		// Each try lasts until its deadline while the flood holds
		// the seed's places (it was 2 s; half a second keeps -short
		// short, and three tries still ask the flooded seed).
		dctx, dcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		if _, err := fetchFile(dctx, r, pub); err == nil {
			t.Log("a download got through the flood")
		}
		dcancel()
	}
	if seed.Stats().StreamsRefused == refused {
		t.Fatal("no stream refused during the flood: the test did not exercise refusals")
	}
	if s := client.strikes.of(seed.ID()); s != 0 {
		t.Fatalf("the client struck the seed %d times for refused streams", s)
	}
	stopFlood()
	wait()

	// libp2p's dial backoff, as after dials that failed during a flood.
	client.Host().Network().ClosePeer(seed.ID())
	sw := client.Host().Network().(*swarm.Swarm)
	for _, a := range seed.Host().Addrs() {
		for range 5 {
			sw.Backoff().AddBackoff(seed.ID(), a)
		}
	}
	start := time.Now()
	r = onlyRelease(t, ctx, src)
	got, err := fetchFile(ctx, r, pub)
	if err != nil || int64(len(got)) != in.ContentLen() {
		t.Fatalf("after the flood: %d bytes, %v", len(got), err)
	}
	t.Logf("found and fetched %v after the flood", time.Since(start).Round(time.Millisecond))
	if s := client.strikes.of(seed.ID()); s != 0 {
		t.Fatalf("the seed has %d strikes", s)
	}
}

// TestFloodFairStreams floods a seed whose handler holds 8 streams with 4
// identities that keep 4 silent streams open each: a client with one
// stream at a time takes the place of a waiting stream of one of them,
// and its requests are answered.
func TestFloodFairStreams(t *testing.T) {
	t.Parallel()
	key, path, in := writeRelease(t, 2<<20)
	pub := key.Public
	ctx := testContext(t)
	seed := newTestSeed(t, ctx, Config{streamLimit: 8}, pub, path, in)
	fctx, stopFlood := context.WithCancel(ctx)
	wait := silentFlood(t, fctx, seed, protocol.ID(wire.ProtocolID(pub)), 4, 4)
	defer func() { stopFlood(); wait() }()
	waitFor(t, "the flood holding every place", func() bool {
		return seed.server.admit.held() >= 8 && seed.Stats().StreamsRefused > 0
	})
	client := newTestNode(t, Config{}, seed)
	r := onlyRelease(t, ctx, client.Source(pub, testTarget))
	got, err := fetchFile(ctx, r, pub)
	if err != nil || int64(len(got)) != in.ContentLen() {
		t.Fatalf("under the flood: %d bytes, %v", len(got), err)
	}
	if seed.Stats().StreamsEvicted == 0 {
		t.Error("no waiting stream gave its place: the client got in some other way")
	}
}
