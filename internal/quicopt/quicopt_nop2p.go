//go:build rustpatcher_nop2p

// Package quicopt carries an app's choice of QUIC from package client/quic
// to client's network (client.NetworkConfig.QUIC). Built with the tag
// rustpatcher_nop2p, as here, it carries nothing, and client refuses it.
package quicopt

// Transport is QUIC for an app's node; with rustpatcher_nop2p, nothing.
type Transport struct{}

// New returns a Transport that carries nothing.
func New() *Transport { return &Transport{} }
