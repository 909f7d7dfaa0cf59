//go:build !rustpatcher_nop2p

// Package quicopt carries an app's choice of QUIC from package client/quic
// to client's network (client.NetworkConfig.QUIC), so that client does not
// link quic-go unless the app imports client/quic. Built with the tag
// rustpatcher_nop2p it carries nothing, and client refuses it.
package quicopt

import "github.com/org/rustpatcher-go/internal/p2phost"

// Transport is QUIC for an app's node.
type Transport struct{ q p2phost.QUIC }

// New returns the Transport of q.
func New(q p2phost.QUIC) *Transport { return &Transport{q: q} }

// Constructor returns the QUIC constructor t carries; nil for a zero
// Transport.
func (t *Transport) Constructor() p2phost.QUIC { return t.q }
