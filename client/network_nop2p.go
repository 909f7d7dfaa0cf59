//go:build rustpatcher_nop2p

package client

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// This build has no peer-to-peer network (the tag rustpatcher_nop2p): the
// engine uses Config.Sources only.

// enabled reports whether the network is to be joined: never here.
func (nc NetworkConfig) enabled() bool { return false }

// check refuses every network setting but Disabled and OnListen: none of
// them can work without the network.
func (nc NetworkConfig) check() error {
	var set []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"Private", nc.Private},
		{"Bootstrap", len(nc.Bootstrap) > 0},
		{"ListenAddrs", len(nc.ListenAddrs) > 0},
		{"DHTServer", nc.DHTServer},
		{"UploadSlots", nc.UploadSlots != 0},
		{"UploadSlotsPerPeer", nc.UploadSlotsPerPeer != 0},
		{"UploadRate", nc.UploadRate != 0},
		{"IdleTimeout", nc.IdleTimeout != 0},
		{"IdentityFile", nc.IdentityFile != ""},
		{"QUIC", nc.QUIC != nil},
	} {
		if f.set {
			set = append(set, "Network."+f.name)
		}
	}
	if len(set) > 0 {
		return fmt.Errorf("client: %w: %s set, but this program is built with -tags rustpatcher_nop2p, which has no peer-to-peer network: leave the network settings zero, or build without the tag", ErrNetworkConfig, strings.Join(set, ", "))
	}
	return nil
}

// startNetwork returns no network.
func startNetwork(context.Context, NetworkConfig, []byte, *slog.Logger) (Source, io.Closer, error) {
	return nil, nil, nil
}
