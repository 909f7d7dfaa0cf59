package client

import (
	"context"
	"io"
	"log/slog"
)

// NetworkConfig configures the peer-to-peer network that Spawn joins.
// The zero value joins the public network with no extra bootstrap peers.
type NetworkConfig struct {
	// Disabled turns the network off: only Config.Sources are used.
	Disabled bool
}

// startNetwork joins the peer-to-peer network and returns it as a Source
// (which is also a Seeder), or nil when the network is disabled.
// PLACEHOLDER: the libp2p network lands with issue 4.
func startNetwork(ctx context.Context, nc NetworkConfig, pub []byte, log *slog.Logger) (Source, io.Closer, error) {
	return nil, nil, nil
}
