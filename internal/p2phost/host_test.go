package p2phost

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
)

// newTestHost starts a host of cfg with QUIC (as rpseed's), on QUIC and TCP
// on loopback unless cfg lists addresses, and closes it when the test ends.
func newTestHost(t testing.TB, cfg Config) host.Host {
	t.Helper()
	cfg.QUIC = hostquic.New
	if len(cfg.ListenAddrs) == 0 {
		cfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}
