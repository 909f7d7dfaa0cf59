//go:build rustpatcher_nop2p

package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/quicopt"
	"github.com/org/rustpatcher-go/internal/regiontest"
)

// netWant is the error a network setting gets in a build without the
// network: it names the tag, whatever the setting.
func netWant(string) string { return "built with -tags rustpatcher_nop2p" }

// TestNoP2P: without the network, a zero NetworkConfig (or Disabled) runs
// with the Config's sources only, and any network setting is refused,
// naming it and the tag.
func TestNoP2P(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	for _, nc := range []NetworkConfig{{}, {Disabled: true}, {OnListen: func(string) {}}} {
		if err := nc.check(); err != nil || nc.enabled() {
			t.Errorf("%+v: check %v, enabled %v", nc, err, nc.enabled())
		}
	}
	for name, nc := range map[string]NetworkConfig{
		"Network.Bootstrap":    {Bootstrap: []string{"/ip4/127.0.0.1/tcp/1/p2p/x"}},
		"Network.DHTServer":    {DHTServer: true, Disabled: true},
		"Network.IdentityFile": {IdentityFile: "id"},
		"Network.UploadRate":   {UploadRate: 5},
		"Network.QUIC":         {QUIC: quicopt.New()},
	} {
		_, err := Spawn(context.Background(), Config{PublicKey: k.PublicText, Network: nc})
		if !errors.Is(err, ErrNetworkConfig) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "rustpatcher_nop2p") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A mirror source updates the program without the network.
	m := newMirrorRig(t)
	m.publish("2.0.0", 300_000, 2)
	cfg := m.config()
	cfg.Network = NetworkConfig{}
	m.spawn(cfg)
	m.waitEvent(0, EventApplied, nil)
}
