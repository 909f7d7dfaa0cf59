package client

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// TestSpawnConfigErrors checks that Spawn refuses a Config it cannot run
// with, and says what is wrong; TestConfigKey has the keys.
func TestSpawnConfigErrors(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	none := ""
	const quicPeer, tcpPeer = "12D3KooWFzwoQGHEg8qurVaxK8i94SoqmKFcAQxK625vuQQ5ov2j", "12D3KooWLApThzAbxc8QCsCLBMjhgXyK3JXX3V5BECzFDiW7Cctb"
	tests := []struct {
		name string
		cfg  options
		want string
		is   error
	}{
		{"no key", options{linked: &none}, "neither PublicKey nor PublicKeys", ErrNoKey},
		{"bad key", options{Config: Config{PublicKey: "not a key"}}, "malformed key", region.ErrBadKey},
		{"test vector key", options{Config: Config{PublicKey: TestVectorPublicKey}}, "test-vector key", ErrPublishedKey},
		{"bad mode", options{Config: Config{PublicKey: k.PublicText, Mode: At(24, 0)}}, "hour must be 0 to 23", nil},
		{"private network without bootstrap peers", options{Config: Config{PublicKey: k.PublicText, Network: NetworkConfig{Private: true}}}, netWant("Network.Private needs Network.Bootstrap peers"), ErrNetworkConfig},
		{"bootstrap address without /p2p/", options{Config: Config{PublicKey: k.PublicText, Network: NetworkConfig{Private: true, Bootstrap: []string{"/ip4/10.0.0.5/tcp/4001"}}}}, netWant(`bootstrap peer "/ip4/10.0.0.5/tcp/4001"`), ErrNetworkConfig},
		{"bad listen address", options{Config: Config{PublicKey: k.PublicText, Network: NetworkConfig{ListenAddrs: []string{"0.0.0.0:4001"}}}}, netWant(`listen address "0.0.0.0:4001"`), ErrNetworkConfig},
		{"QUIC listen address without QUIC", options{Config: Config{PublicKey: k.PublicText, Network: NetworkConfig{ListenAddrs: []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}}}}, netWant(`listen address "/ip4/0.0.0.0/udp/4001/quic-v1" is QUIC, and this node has TCP alone`), ErrNetworkConfig},
		{"bootstrap peer by QUIC alone", options{Config: Config{PublicKey: k.PublicText, Network: NetworkConfig{Private: true, Bootstrap: []string{"/ip4/10.0.0.5/udp/4001/quic-v1/p2p/" + quicPeer, "/ip4/10.0.0.6/tcp/4001/p2p/" + tcpPeer, "/ip4/10.0.0.6/udp/4001/quic-v1/p2p/" + tcpPeer}}}}, netWant("bootstrap peer " + quicPeer + " is given by QUIC addresses only"), ErrNetworkConfig},
		{"empty QUICTransport", options{Config: Config{PublicKey: k.PublicText, Network: NetworkConfig{QUIC: &QUICTransport{}}}}, netWant("empty QUICTransport"), ErrNetworkConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := spawn(context.Background(), tt.cfg)
			if err == nil {
				u.Close()
				t.Fatal("Spawn succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("Spawn error = %v, want %q / %v", err, tt.want, tt.is)
			}
		})
	}
	// Spawn takes the per-target map when it has this target.
	target := goTarget()
	u, err := Spawn(context.Background(), Config{PublicKeys: map[string]string{target: k.PublicText}, Network: NetworkConfig{Disabled: true}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Spawn with a key for %s: %v", target, err)
	}
	u.Close()
}

func ptr[T any](v T) *T { return &v }

func goTarget() string { return runtime.GOOS + "/" + runtime.GOARCH }
