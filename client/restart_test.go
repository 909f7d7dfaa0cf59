//go:build !rustpatcher_nop2p

package client

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	"github.com/org/rustpatcher-go/internal/quicopt"
)

// TestRestartLeavesNetwork: before the process is replaced by a restart,
// the engine closes its network, so that a peer sees the connection close
// at once (after an exec, nothing would tell it); when the restart
// returns (it failed), the engine joins the network again.
func TestRestartLeavesNetwork(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// QUIC only: a QUIC connection to a process that is gone stays open
	// until its idle timeout (a TCP one the kernel closes on exec).
	loop := []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	seed, err := p2p.New(ctx, p2p.Config{Private: true, ListenAddrs: loop, QUIC: hostquic.New, DHTServer: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()

	var mu sync.Mutex
	var ids []peer.ID // of each network the engine joined
	joined := make(chan struct{}, 10)
	restarted := make(chan bool, 1) // whether the seed saw the node leave
	cfg := r.config()
	cfg.Mode = Now()
	cfg.Network = NetworkConfig{Private: true, Bootstrap: seed.Addrs(), ListenAddrs: loop, QUIC: quicopt.New(hostquic.New), DHTServer: true,
		OnListen: func(a string) {
			id, err := peer.Decode(a[strings.LastIndex(a, "/")+1:])
			if err != nil {
				t.Errorf("listen address %q: %v", a, err)
				return
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
			joined <- struct{}{}
		}}
	cfg.restart = func(string, []string, []string) error {
		mu.Lock()
		id := ids[len(ids)-1]
		mu.Unlock()
		// The node closed its side; the seed hears of it in a moment.
		deadline := time.Now().Add(5 * time.Second)
		for seed.Host().Network().Connectedness(id) == network.Connected && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		restarted <- seed.Host().Network().Connectedness(id) != network.Connected
		return nil // as if exec had failed: the process goes on
	}
	u := r.spawn(cfg)
	select {
	case <-joined:
	case <-ctx.Done():
		t.Fatal("the network did not start")
	}
	// The seed knows the node before the update comes.
	mu.Lock()
	first := ids[0]
	mu.Unlock()
	for seed.Host().Network().Connectedness(first) != network.Connected {
		if ctx.Err() != nil {
			t.Fatal("the node never connected to the seed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.release("prog-2.0.0", 2, r.key, "2.0.0")
	u.Check()
	select {
	case left := <-restarted:
		if !left {
			t.Fatal("the seed still had a connection to the node 5 s after the restart began: the engine did not leave the network before restarting")
		}
	case <-ctx.Done():
		t.Fatal("no restart")
	}
	select {
	case <-joined:
	case <-ctx.Done():
		t.Fatal("the engine did not join the network again after the restart returned")
	}
}
