package p2phost

import (
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// setDefaultServiceLimits sets the resource manager's limits for the
// services the host runs (identify, ping, AutoNAT, hole punching, the
// relay) to the values go-libp2p's libp2p.SetDefaultServiceLimits sets. The
// node builds its host from go-libp2p's parts without its root package
// (hostbuild.go), which that function lives in;
// TestServiceLimitsMatchLibp2p checks that the values are the same.
//
// Each row gives a service and its protocols one limit and increase; the
// limits per peer do not grow with memory. A row without a service, or
// without protocols, sets only the other.
func setDefaultServiceLimits(config *rcmgr.ScalingLimitConfig) {
	type limit = rcmgr.BaseLimit
	type increase = rcmgr.BaseLimitIncrease
	const peerMemory = 32 * (256<<20 + 16<<10)
	rows := []struct {
		service   string
		protos    []protocol.ID
		limit     limit
		increase  increase
		peer      limit // the service's, per peer
		protoPeer limit // each protocol's, per peer
	}{
		{
			service:   identify.ServiceName,
			protos:    []protocol.ID{identify.ID, identify.IDPush},
			limit:     limit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 4 << 20},
			increase:  increase{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 4 << 20},
			peer:      limit{StreamsInbound: 16, StreamsOutbound: 16, Streams: 32, Memory: 1 << 20},
			protoPeer: limit{StreamsInbound: 16, StreamsOutbound: 16, Streams: 32, Memory: peerMemory},
		},
		{
			service:   ping.ServiceName,
			protos:    []protocol.ID{ping.ID},
			limit:     limit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 64, Memory: 4 << 20},
			increase:  increase{StreamsInbound: 64, StreamsOutbound: 64, Streams: 64, Memory: 4 << 20},
			peer:      limit{StreamsInbound: 2, StreamsOutbound: 3, Streams: 4, Memory: peerMemory},
			protoPeer: limit{StreamsInbound: 2, StreamsOutbound: 3, Streams: 4, Memory: peerMemory},
		},
		{
			service:   autonat.ServiceName,
			protos:    []protocol.ID{autonat.AutoNATProto},
			limit:     limit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 64, Memory: 4 << 20},
			increase:  increase{StreamsInbound: 4, StreamsOutbound: 4, Streams: 4, Memory: 2 << 20},
			peer:      limit{StreamsInbound: 2, StreamsOutbound: 2, Streams: 2, Memory: 1 << 20},
			protoPeer: limit{StreamsInbound: 2, StreamsOutbound: 2, Streams: 2, Memory: 1 << 20},
		},
		{
			service:   holepunch.ServiceName,
			protos:    []protocol.ID{holepunch.Protocol},
			limit:     limit{StreamsInbound: 32, StreamsOutbound: 32, Streams: 64, Memory: 4 << 20},
			increase:  increase{StreamsInbound: 8, StreamsOutbound: 8, Streams: 16, Memory: 4 << 20},
			peer:      limit{StreamsInbound: 2, StreamsOutbound: 2, Streams: 2, Memory: 1 << 20},
			protoPeer: limit{StreamsInbound: 2, StreamsOutbound: 2, Streams: 2, Memory: 1 << 20},
		},
		{
			service:  relayv2.ServiceName,
			limit:    limit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 256, Memory: 16 << 20},
			increase: increase{StreamsInbound: 256, StreamsOutbound: 256, Streams: 256, Memory: 16 << 20},
			peer:     limit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 64, Memory: 1 << 20},
		},
		{
			// The circuit protocols, used by relay clients and the service.
			protos:    []protocol.ID{circuit.ProtoIDv2Hop, circuit.ProtoIDv2Stop},
			limit:     limit{StreamsInbound: 640, StreamsOutbound: 640, Streams: 640, Memory: 16 << 20},
			increase:  increase{StreamsInbound: 640, StreamsOutbound: 640, Streams: 640, Memory: 16 << 20},
			protoPeer: limit{StreamsInbound: 128, StreamsOutbound: 128, Streams: 128, Memory: 32 << 20},
		},
	}
	for _, r := range rows {
		if r.service != "" {
			config.AddServiceLimit(r.service, r.limit, r.increase)
			config.AddServicePeerLimit(r.service, r.peer, increase{})
		}
		for _, p := range r.protos {
			config.AddProtocolLimit(p, r.limit, r.increase)
			config.AddProtocolPeerLimit(p, r.protoPeer, increase{})
		}
	}
}
