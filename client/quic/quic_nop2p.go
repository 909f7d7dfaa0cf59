//go:build rustpatcher_nop2p

package quic

import (
	"github.com/org/rustpatcher-go/client"
	"github.com/org/rustpatcher-go/internal/quicopt"
)

func transport() *client.QUICTransport { return quicopt.New() }
