package p2phost

import (
	"sort"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// privateQUICDelay is how long a dial over QUIC waits for one over TCP to
// the same peer on loopback or a private network. libp2p waits 30 ms the
// other way round (swarm.PrivateTCPDelay); a TCP connection on a LAN takes a
// few milliseconds, but a busy node's handshakes take longer than 30 ms,
// and then QUIC won most races, the transport of the two that costs the
// most CPU (BenchmarkPropagation's 51 nodes on 2 cores ended up mostly on
// QUIC, docs/BENCHMARKS.md).
const privateQUICDelay = swarm.PublicTCPDelay

// dialRanker is libp2p's default dial ranking (swarm.DefaultDialRanker)
// except between addresses on loopback and private networks, where TCP is
// dialled first and QUIC privateQUICDelay later, so that two nodes on one
// LAN, which both listen on QUIC and TCP by default, connect over TCP.
// TCP moves a release faster than QUIC and for much less CPU time
// (quic-go sends datagrams of at most about 1.4 KB, each encrypted on its
// own; figures in docs/BENCHMARKS.md), and CPU time is what a seed serving
// a LAN spends. Public addresses keep libp2p's order, QUIC
// first, which suits NAT traversal; hole punching dials all addresses at
// once whatever the ranker says.
func dialRanker(addrs []ma.Multiaddr) []network.AddrDelay {
	ranked := swarm.DefaultDialRanker(addrs)
	first := -1 // the first private TCP dial
	for i, a := range ranked {
		if privateDirect(a.Addr) && isTCP(a.Addr) && (first < 0 || a.Delay < ranked[first].Delay) {
			first = i
		}
	}
	if first < 0 {
		return ranked
	}
	shift := ranked[first].Delay
	for i, a := range ranked {
		if !privateDirect(a.Addr) {
			continue
		}
		if isTCP(a.Addr) {
			ranked[i].Delay -= shift
		} else {
			ranked[i].Delay += privateQUICDelay
		}
	}
	// sort.SliceStable, not slices.SortStableFunc: a generic sort of a struct
	// links its own copy of the sort (docs/BENCHMARKS.md, Cost of embedding).
	sort.SliceStable(ranked, func(i, j int) bool { return ranked[i].Delay < ranked[j].Delay })
	return ranked
}

// privateDirect reports whether a is a direct (not relayed) address on
// loopback or a private network.
func privateDirect(a ma.Multiaddr) bool {
	return manet.IsPrivateAddr(a) && !hasProtocol(a, ma.P_CIRCUIT)
}

// isTCP reports whether a is a plain TCP address (not a WebSocket).
func isTCP(a ma.Multiaddr) bool {
	return hasProtocol(a, ma.P_TCP) && !hasProtocol(a, ma.P_WS) && !hasProtocol(a, ma.P_WSS)
}

func hasProtocol(a ma.Multiaddr, code int) bool {
	_, err := a.ValueForProtocol(code)
	return err == nil
}
