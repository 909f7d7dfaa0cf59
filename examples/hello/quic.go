//go:build hello_quic

package main

import (
	"github.com/org/rustpatcher-go/client"
	"github.com/org/rustpatcher-go/client/quic"
)

// quicTransport asks for QUIC besides TCP: this build has the tag
// hello_quic.
func quicTransport() *client.QUICTransport { return quic.Transport() }
