//go:build !hello_quic

package main

import "github.com/org/rustpatcher-go/client"

// quicTransport returns nil: without the tag hello_quic, hello's node runs
// on TCP alone, and hello links no QUIC.
func quicTransport() *client.QUICTransport { return nil }
