package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/org/rustpatcher-go/internal/wire"
)

// TestRelayedInfo checks that a seed with RelayService relays for a node
// behind a NAT: the node reserves a slot on its bootstrap peer, and another
// peer gets the node's signed info through the relay alone, but never sends
// a hashes or pieces request over it.
func TestRelayedInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real hosts on loopback; runs without -short")
	}
	key, path, in := writeRelease(t, 4096)
	pub := key.Public
	ctx := testContext(t)
	// RelayService runs the relay at once, although AutoNAT could never
	// find a node on loopback publicly reachable.
	relay := newTestNode(t, Config{RelayService: true})
	// The hidden node listens nowhere: it can only be reached through the
	// relay. AutoNAT is told it is behind a NAT.
	hidden, err := New(ctx, Config{Private: true, DHTServer: true, ListenAddrs: []string{}, Bootstrap: relay.Addrs(),
		noListen: true, reachability: network.ReachabilityPrivate})
	if err != nil {
		t.Fatal(err)
	}
	defer hidden.Close()
	if err := hidden.Serve(ctx, pub, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	// libp2p lists circuit addresses only for relays with public
	// addresses; on loopback, build the address by hand and try until the
	// hidden node's reservation is in place.
	var circuit []ma.Multiaddr
	for _, a := range relay.Addrs() {
		circuit = append(circuit, ma.StringCast(a+"/p2p-circuit"))
	}
	// The client listens nowhere either, so that neither side can dial
	// the other directly (hole punching would otherwise make a direct
	// connection on loopback, and the release bytes would rightly take it).
	client, err := New(ctx, Config{Private: true, ListenAddrs: []string{}, noListen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var got wire.Offer
	for i := 0; i < 100; i++ {
		got, err = client.askInfo(ctx, pub, testTarget, peer.AddrInfo{ID: hidden.ID(), Addrs: circuit})
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("info through the relay: %v", err)
	}
	if got.Info != in {
		t.Fatalf("info through the relay = %+v", got.Info)
	}
	if c := client.Host().Network().ConnsToPeer(hidden.ID()); len(c) == 0 || !c[0].Stat().Limited {
		t.Errorf("the connection to the hidden node is not a limited (relayed) one")
	}

	// Release bytes never go through the relay: a hashes or pieces request
	// waits for a direct connection, which cannot come here, and is never
	// sent.
	for _, kind := range []wire.Kind{wire.KindHashes, wire.KindPieces} {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		s, err := client.request(rctx, pub, peer.AddrInfo{ID: hidden.ID(), Addrs: circuit},
			&wire.Request{Kind: kind, Target: testTarget, ID: got.FileID, Count: 1})
		rcancel()
		if err == nil {
			s.Reset()
			t.Errorf("a %v request was sent over the relayed connection", kind)
		}
	}
	if st := hidden.Stats(); st.HashesRequests != 0 || st.FetchRequests != 0 || st.BytesUploaded != 0 {
		t.Errorf("the hidden node answered through the relay: %+v", st)
	}
	if st := client.Stats(); st.Strikes != 0 {
		t.Errorf("the client struck the hidden node: %+v", st)
	}
}
