package p2phost

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	libp2pyamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// The drift tests compare each value this package copies from go-libp2p
// with what go-libp2p itself produces (see the package doc's upgrade
// checklist). TestServiceLimitsMatchLibp2p is in hostbuild_test.go.

// TestHostMatchesLibp2pNew checks the transport wiring against a host that
// libp2p.New builds with the same parts (QUIC and TCP, TLS, yamux, hole
// punching, the AutoNAT service, the relay client): the same transport
// serves each listen address and a relay address, both hosts offer the
// same protocols, and a connection between them over QUIC and over TCP
// negotiates TLS and yamux.
func TestHostMatchesLibp2pNew(t *testing.T) {
	listen := []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	mine := newTestHost(t, Config{ListenAddrs: listen})
	theirs, err := libp2p.New(
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(libp2pyamux.ID, libp2pyamux.DefaultTransport),
		libp2p.EnableHolePunching(),
		libp2p.EnableNATService(),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()

	// The transport of each kind of address.
	msw, tsw := mine.Network().(*swarm.Swarm), theirs.Network().(*swarm.Swarm)
	for _, a := range append(mine.Addrs(), ma.StringCast("/ip4/192.0.2.1/tcp/1/p2p/"+theirs.ID().String()+"/p2p-circuit")) {
		m, th := msw.TransportForDialing(a), tsw.TransportForDialing(a)
		t.Logf("%s: %T", a, m)
		if m == nil || th == nil || reflect.TypeOf(m) != reflect.TypeOf(th) {
			t.Errorf("%s: dialled with %T here, %T by libp2p.New's host", a, m, th)
		}
		if !isCircuit(a) {
			if m, th := msw.TransportForListening(a), tsw.TransportForListening(a); reflect.TypeOf(m) != reflect.TypeOf(th) {
				t.Errorf("%s: listened on with %T here, %T by libp2p.New's host", a, m, th)
			}
		}
	}

	// The protocols offered. Hole punching's appears with a public
	// address, which neither host has on loopback.
	waitProtocols := func(h host.Host) []protocol.ID {
		// Identify and AutoNAT register their handlers as they start.
		var p []protocol.ID
		for range 50 {
			p = h.Mux().Protocols()
			if slices.Contains(p, "/libp2p/autonat/1.0.0") {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		slices.Sort(p)
		return p
	}
	m, th := waitProtocols(mine), waitProtocols(theirs)
	t.Logf("protocols offered: %v", m)
	if !slices.Equal(m, th) {
		t.Errorf("protocols offered:\n here          %v\n libp2p.New's  %v", m, th)
	}

	// Both ways, over each transport: TLS and yamux.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for _, a := range theirs.Addrs() {
		mine.Network().ClosePeer(theirs.ID())
		mine.Peerstore().ClearAddrs(theirs.ID())
		if err := mine.Connect(ctx, peer.AddrInfo{ID: theirs.ID(), Addrs: []ma.Multiaddr{a}}); err != nil {
			t.Fatalf("connecting to libp2p.New's host at %s: %v", a, err)
		}
		for _, c := range mine.Network().ConnsToPeer(theirs.ID()) {
			st := c.ConnState()
			quic := slices.ContainsFunc(c.RemoteMultiaddr(), func(p ma.Component) bool { return p.Code() == ma.P_QUIC_V1 })
			seen[string(st.Transport)] = true
			if quic && st.Transport != "quic-v1" || !quic && (st.Security != libp2ptls.ID || st.StreamMultiplexer != libp2pyamux.ID) {
				t.Errorf("connection over %s: %+v, want QUIC, or TLS and yamux", c.RemoteMultiaddr(), st)
			}
		}
	}
	if !seen["quic-v1"] || !seen["tcp"] {
		t.Errorf("connected over %v, want QUIC and TCP", seen)
	}
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
