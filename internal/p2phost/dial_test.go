package p2phost

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

func TestDialRanker(t *testing.T) {
	t.Parallel()
	const (
		lq  = "/ip4/127.0.0.1/udp/4001/quic-v1"
		lt  = "/ip4/127.0.0.1/tcp/4001"
		pq  = "/ip4/192.168.1.5/udp/4001/quic-v1"
		pt  = "/ip4/192.168.1.5/tcp/4001"
		pws = "/ip4/192.168.1.5/tcp/4002/ws"
		gq  = "/ip4/1.2.3.4/udp/4001/quic-v1"
		gt  = "/ip4/1.2.3.4/tcp/4001"
	)
	d := privateQUICDelay
	for _, tc := range []struct {
		name  string
		addrs []string
		want  map[string]time.Duration
	}{
		{"loopback: TCP first", []string{lq, lt}, map[string]time.Duration{lt: 0, lq: d}},
		{"LAN: TCP first", []string{pq, pt}, map[string]time.Duration{pt: 0, pq: d}},
		{"LAN without TCP: unchanged", []string{pq}, map[string]time.Duration{pq: 0}},
		{"LAN WebSocket is not TCP", []string{pq, pws}, nil},
		{"public: libp2p's order", []string{gq, gt}, nil},
		{"public and LAN", []string{gq, gt, pq, pt}, map[string]time.Duration{pt: 0, pq: d, gq: 0, gt: swarm.PublicTCPDelay}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var addrs []ma.Multiaddr
			for _, s := range tc.addrs {
				addrs = append(addrs, ma.StringCast(s))
			}
			want := tc.want
			if want == nil { // libp2p's default ranking
				want = map[string]time.Duration{}
				for _, a := range swarm.DefaultDialRanker(append([]ma.Multiaddr(nil), addrs...)) {
					want[a.Addr.String()] = a.Delay
				}
			}
			got := dialRanker(addrs)
			if len(got) != len(want) {
				t.Fatalf("%d addresses ranked, want %d: %v", len(got), len(want), got)
			}
			for i, a := range got {
				if w, ok := want[a.Addr.String()]; !ok || a.Delay != w {
					t.Errorf("%s: delay %v, want %v", a.Addr, a.Delay, w)
				}
				if i > 0 && got[i-1].Delay > a.Delay {
					t.Errorf("not in order of delay: %v", got)
				}
			}
		})
	}
}

// TestLANPeersConnectOverTCP starts two hosts that listen on QUIC and TCP,
// as nodes do by default, and checks that they end up connected over TCP.
func TestLANPeersConnectOverTCP(t *testing.T) {
	t.Parallel()
	a := newTestHost(t, Config{})
	b := newTestHost(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatal(err)
	}
	conns := b.Network().ConnsToPeer(a.ID())
	if len(conns) == 0 {
		t.Fatal("not connected")
	}
	for _, c := range conns {
		if !isTCP(c.RemoteMultiaddr()) {
			t.Errorf("connected over %s, want TCP", c.RemoteMultiaddr())
		}
	}
}
