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

func TestSpawnConfigErrors(t *testing.T) {
	t.Parallel()
	k, other := regiontest.NewKey(t), regiontest.NewKey(t)
	none := ""
	target := goTarget()
	tests := []struct {
		name string
		cfg  Config
		want string
		is   error
	}{
		{"no key", Config{linked: &none}, "neither PublicKey nor PublicKeys", ErrNoKey},
		{"no key for target", Config{PublicKeys: map[string]string{"plan9/mips": k.PublicText}, linked: &none}, `no entry "` + target + `"`, ErrNoKey},
		{"bad key", Config{PublicKey: "not a key"}, "malformed key", region.ErrBadKey},
		{"README placeholder", Config{PublicKey: "<your public key from rpsign gen>"}, "want the 52-character z-base-32 key", region.ErrBadKey},
		{"bad linked key", Config{linked: ptr("not a key")}, "linked in with -X " + LinkedKeyFlag, region.ErrBadKey},
		{"linked and Config differ", Config{PublicKey: k.PublicText, linked: &other.PublicText}, "but the build links in " + other.PublicText, nil},
		{"linked and PublicKeys differ", Config{PublicKeys: map[string]string{target: k.PublicText}, linked: &other.PublicText}, "but the build links in", nil},
		{"test vector key", Config{PublicKey: TestVectorPublicKey}, "test-vector key", ErrPublishedKey},
		{"linked test vector key", Config{linked: ptr(TestVectorPublicKey)}, "test-vector key", ErrPublishedKey},
		{"bad mode", Config{PublicKey: k.PublicText, Mode: At(24, 0)}, "hour must be 0 to 23", nil},
		{"private network without bootstrap peers", Config{PublicKey: k.PublicText, Network: NetworkConfig{Private: true}}, "Network.Private needs Network.Bootstrap peers", ErrNetworkConfig},
		{"bootstrap address without /p2p/", Config{PublicKey: k.PublicText, Network: NetworkConfig{Private: true, Bootstrap: []string{"/ip4/10.0.0.5/tcp/4001"}}}, `bootstrap peer "/ip4/10.0.0.5/tcp/4001"`, ErrNetworkConfig},
		{"bad listen address", Config{PublicKey: k.PublicText, Network: NetworkConfig{ListenAddrs: []string{"0.0.0.0:4001"}}}, `listen address "0.0.0.0:4001"`, ErrNetworkConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := Spawn(context.Background(), tt.cfg)
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
	u, err := Spawn(context.Background(), Config{PublicKeys: map[string]string{target: k.PublicText}, Network: NetworkConfig{Disabled: true}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Spawn with a key for %s: %v", target, err)
	}
	u.Close()
}

func ptr[T any](v T) *T { return &v }

func goTarget() string { return runtime.GOOS + "/" + runtime.GOARCH }
