package p2phost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
)

// TestServiceLimitsMatchLibp2p checks that setDefaultServiceLimits
// still gives what libp2p.SetDefaultServiceLimits gives.
func TestServiceLimitsMatchLibp2p(t *testing.T) {
	var mine, theirs rcmgr.ScalingLimitConfig
	setDefaultServiceLimits(&mine)
	libp2p.SetDefaultServiceLimits(&theirs)
	if !reflect.DeepEqual(mine, theirs) {
		t.Errorf("service limits differ from libp2p's:\n%+v\n%+v", mine, theirs)
	}
}

// TestHostServices checks what a host offers: QUIC and TCP
// listeners only, and the protocols of identify, ping, AutoNAT and the
// relay client, and the relay's with RelayService. (Hole punching's
// /libp2p/dcutr is offered once the node has a public address, which never
// happens on loopback.)
func TestHostServices(t *testing.T) {
	for _, relay := range []bool{false, true} {
		h := newTestHost(t, Config{RelayService: relay})
		for _, a := range h.Addrs() {
			if _, err := a.ValueForProtocol(ma.P_TCP); err == nil && len(ma.Split(a)) == 2 {
				continue
			}
			if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil && len(ma.Split(a)) == 3 {
				continue
			}
			t.Errorf("listens on %s, not plain QUIC or TCP", a)
		}
		if _, ok := h.Network().(*swarm.Swarm); !ok {
			t.Errorf("the host's network is a %T, not a *swarm.Swarm", h.Network())
		}
		protos := h.Mux().Protocols()
		want := []protocol.ID{
			"/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0",
			"/libp2p/autonat/1.0.0",
			"/libp2p/circuit/relay/0.2.0/stop",
		}
		for _, p := range want {
			if !slices.Contains(protos, p) {
				t.Errorf("relay service %v: protocol %s missing from %v", relay, p, protos)
			}
		}
		// A node with the relay service counts as public and relays at
		// once; others never relay.
		hop := slices.Contains(protos, "/libp2p/circuit/relay/0.2.0/hop")
		for i := 0; relay && !hop && i < 100; i++ { // the relay starts on an event
			time.Sleep(20 * time.Millisecond)
			hop = slices.Contains(h.Mux().Protocols(), "/libp2p/circuit/relay/0.2.0/hop")
		}
		if hop != relay {
			t.Errorf("relay service %v: hop protocol offered: %v", relay, hop)
		}
	}
}

// TestHostWithoutQUIC checks a host without Config.QUIC (an app's unless
// it asks for QUIC): it refuses a QUIC listen address with ErrNoQUIC, naming
// it, listens on TCP alone by default, and reaches a host with QUIC and TCP
// over TCP.
func TestHostWithoutQUIC(t *testing.T) {
	q := "/ip4/127.0.0.1/udp/0/quic-v1"
	h, err := New(Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", q}})
	if err == nil {
		h.Close()
		t.Fatal("a host without QUIC listened on a QUIC address")
	}
	if !errors.Is(err, ErrNoQUIC) || !strings.Contains(err.Error(), q) {
		t.Errorf("error %q does not name %s as a QUIC address the host cannot listen on", err, q)
	}
	if d := DefaultListenAddrs(false); slices.ContainsFunc(d, func(s string) bool { return IsQUIC(ma.StringCast(s)) }) || len(d) != 2 {
		t.Errorf("DefaultListenAddrs(false) = %v, want TCP over IPv4 and IPv6 only", d)
	}
	tcpOnly, err := New(Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tcpOnly.Close()
	both := newTestHost(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tcpOnly.Connect(ctx, peer.AddrInfo{ID: both.ID(), Addrs: both.Addrs()}); err != nil {
		t.Fatalf("a host without QUIC cannot reach one with QUIC and TCP: %v", err)
	}
	for _, c := range tcpOnly.Network().ConnsToPeer(both.ID()) {
		if IsQUIC(c.RemoteMultiaddr()) {
			t.Errorf("connected over %s without QUIC", c.RemoteMultiaddr())
		}
	}
}

// TestMoreSecurity checks that a host offers Noise on TCP only when
// Config.MoreSecurity asks for it (rpseed does): a peer that speaks Noise
// alone connects to such a host and not to one with TLS alone.
func TestMoreSecurity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	noiseOnly, err := libp2p.New(libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer noiseOnly.Close()
	newNoise := func(id protocol.ID, key crypto.PrivKey, muxers []tptu.StreamMuxer) (sec.SecureTransport, error) {
		return noise.New(id, key, muxers)
	}
	for _, tt := range []struct {
		more []SecurityProtocol
		ok   bool
	}{
		{nil, false},
		{[]SecurityProtocol{{ID: noise.ID, New: newNoise}}, true},
	} {
		h := newTestHost(t, Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, MoreSecurity: tt.more})
		err := noiseOnly.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		if (err == nil) != tt.ok {
			t.Errorf("more security %v: a Noise-only peer connects: %v", tt.more != nil, err)
		}
	}
}

// TestHostClose checks that closing a host stops every goroutine it
// started, and so does a host that fails to start.
func TestHostClose(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	inUse := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", busy.Addr().(*net.TCPAddr).Port)
	before := runtime.NumGoroutine()
	for range 3 {
		h, err := New(Config{QUIC: hostquic.New, ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		if h, err := New(Config{ListenAddrs: []string{inUse}}); err == nil {
			h.Close()
			t.Fatalf("a host listening on %s, which is in use, started", inUse)
		}
	}
	var now int
	for range 100 {
		if now = runtime.NumGoroutine(); now <= before+2 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Errorf("%d goroutines before, %d after three hosts closed:\n%s", before, now, buf[:runtime.Stack(buf, true)])
}
