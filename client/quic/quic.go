// Package quic adds QUIC to an app's peer-to-peer network. An app's node
// dials and listens over TCP alone unless it asks for QUIC:
//
//	cfg.Network.QUIC = quic.Transport()
//
// With it the node listens on QUIC (UDP) and TCP by default and takes QUIC
// listen addresses (Network.ListenAddrs such as
// "/ip4/0.0.0.0/udp/4001/quic-v1"). QUIC is kept out of the default build
// because it costs every app that links it about 1.6 MB of its stripped
// binary (quic-go) and twice TCP's CPU per byte transferred; TCP reaches
// every rustpatcher seed and node, and hole punching works over TCP too.
// Ask for QUIC where a fleet's NATs or firewalls let UDP through more
// readily than TCP.
//
// Built with -tags rustpatcher_nop2p, which has no network at all,
// Transport returns a value that client refuses with an error naming the
// tag.
package quic

import "github.com/org/rustpatcher-go/client"

// Transport returns QUIC for client.NetworkConfig.QUIC.
func Transport() *client.QUICTransport { return transport() }
