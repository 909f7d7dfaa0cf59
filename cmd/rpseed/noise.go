package main

import (
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
)

// newNoise is libp2p's Noise security transport, which rpseed offers on TCP
// after TLS (p2p.Config.MoreSecurity) for peers of the public DHT that
// speak no TLS. Apps offer TLS alone.
func newNoise(id protocol.ID, key crypto.PrivKey, muxers []tptu.StreamMuxer) (sec.SecureTransport, error) {
	return noise.New(id, key, muxers)
}
