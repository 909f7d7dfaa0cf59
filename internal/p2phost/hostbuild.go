package p2phost

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/host/observedaddrs"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	libp2pyamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
)

// A node's host is put together here from go-libp2p's parts rather than
// with libp2p.New. The root package github.com/libp2p/go-libp2p links every
// transport and security protocol it offers by default (WebSocket,
// WebTransport with HTTP/3, WebRTC with the pion stack, Noise) and the fx
// dependency injection it assembles them with, whether a node uses them or
// not: a quarter of the size an app that embeds the client grew by
// (docs/BENCHMARKS.md, Cost of embedding). A node needs QUIC and TCP, TLS,
// yamux, identify, AutoNAT, hole punching and the relay client (and the
// relay service for rpseed --relay), which is what buildHost assembles, the
// same way libp2p.New does (go-libp2p config.Config.NewNode).

// A SecurityProtocol is a security protocol for TCP connections offered
// after TLS: its protocol ID and a constructor with the parameters of
// go-libp2p's (noise.New, for one).
type SecurityProtocol struct {
	ID  protocol.ID
	New func(id protocol.ID, key crypto.PrivKey, muxers []tptu.StreamMuxer) (sec.SecureTransport, error)
}

// partsHost is a basic host with the parts its Close must stop besides
// those the basic host closes itself (the swarm, the peerstore, AutoNAT, the
// resource and connection managers).
type partsHost struct {
	*basichost.BasicHost
	closers []func() error // in order, before the basic host
	after   []func() error // in order, after it
}

// Close stops the host and its parts.
func (h *partsHost) Close() error {
	var errs []error
	for _, c := range h.closers {
		errs = append(errs, c())
	}
	errs = append(errs, h.BasicHost.Close())
	for _, c := range h.after {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// buildHost starts the libp2p host of cfg: QUIC and TCP, TLS (batched,
// coalesce.go), yamux with larger frames and windows, TCP dialled first on
// private networks (dial.go), identify and ping, hole punching, AutoNAT (as
// a client, and as a service to others), the relay transport, AutoRelay with
// cfg.StaticRelays, and the relay service if cfg asks for it. rm and cm are the resource and connection managers; the host owns
// them from then on, also when buildHost fails.
func buildHost(cfg Config, rm network.ResourceManager, cm *connmgr.BasicConnMgr) (host.Host, error) {
	// undo stops what was started, last first, until the basic host
	// takes over.
	undo := []func() error{rm.Close, cm.Close}
	fail := func(err error) (host.Host, error) {
		for _, f := range slices.Backward(undo) {
			f()
		}
		return nil, err
	}
	key := cfg.Identity
	if key == nil {
		var err error
		if key, _, err = crypto.GenerateEd25519Key(rand.Reader); err != nil {
			return fail(err)
		}
	}
	m := cfg.Metrics
	var reg prometheus.Registerer
	var busOpts []eventbus.Option
	if m != nil {
		reg = m.Registerer
		m.ResourceManager()
		busOpts = append(busOpts, m.EventBus())
	}
	bus := eventbus.NewBus(busOpts...)
	swarmOpts := []swarm.Option{
		// TCP first on loopback and private networks (dial.go).
		swarm.WithDialRanker(dialRanker),
		swarm.WithResourceManager(rm),
	}
	if m != nil {
		swarmOpts = append(swarmOpts, m.Swarm())
	}
	sw, qcm, err := newSwarm(key, cfg.QUIC, cfg.MoreSecurity, bus, rm, reg, swarmOpts...)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, sw.Peerstore().Close, qcm.Close, sw.Close)
	obs, err := observedaddrs.NewManager(bus, sw.Swarm)
	if err != nil {
		return fail(fmt.Errorf("observed addresses: %w", err))
	}
	undo = append(undo, obs.Close)
	bh, err := basichost.NewHost(sw.Swarm, &basichost.HostOpts{
		EventBus:             bus,
		ConnManager:          cm,
		EnablePing:           true,
		EnableHolePunching:   true,
		EnableRelayService:   cfg.RelayService,
		EnableMetrics:        m != nil,
		PrometheusRegisterer: reg,
		ObservedAddrsManager: obs,
	})
	if err != nil {
		return fail(fmt.Errorf("host: %w", err))
	}
	// From here on h.Close stops everything.
	h := &partsHost{BasicHost: bh, closers: []func() error{obs.Close}, after: []func() error{qcm.Close}}
	if err := startHost(cfg, h, sw, obs); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// startHost adds the relay transport to the new host h, listens, and
// starts its services: AutoRelay with cfg.StaticRelays, identify and
// AutoNAT.
func startHost(cfg Config, h *partsHost, sw *nodeSwarm, obs *observedaddrs.Manager) error {
	// The relay transport: connections through a relay to peers that
	// cannot be reached directly, and their hole punching.
	if err := relayclient.AddTransport(h.BasicHost, sw.upgrader); err != nil {
		return fmt.Errorf("relay transport: %w", err)
	}
	listen, err := listenMultiaddrs(cfg)
	if err != nil {
		return err
	}
	if err := sw.Listen(listen...); err != nil {
		return err
	}
	obs.Start(sw.Swarm)
	if len(cfg.StaticRelays) > 0 {
		// Behind a NAT (as AutoNAT finds), reserve a slot on a static
		// relay (a bootstrap peer that runs rpseed --relay), so that
		// others can reach this node and hole punching can start.
		opts := []autorelay.Option{autorelay.WithStaticRelays(cfg.StaticRelays)}
		if cfg.Metrics != nil {
			opts = append(opts, cfg.Metrics.AutoRelay())
		}
		ar, err := autorelay.NewAutoRelay(h.BasicHost, opts...)
		if err != nil {
			return fmt.Errorf("autorelay: %w", err)
		}
		ar.Start()
		h.closers = append([]func() error{ar.Close}, h.closers...)
	}
	h.BasicHost.Start()
	return addAutoNAT(cfg, h.BasicHost, sw.ResourceManager())
}

// IsQUIC reports whether a is a QUIC address (of any QUIC version).
func IsQUIC(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Code() == ma.P_QUIC_V1 || c.Code() == ma.P_QUIC {
			return true
		}
	}
	return false
}

// listenMultiaddrs parses cfg.ListenAddrs; a QUIC address needs cfg.QUIC.
func listenMultiaddrs(cfg Config) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, s := range cfg.ListenAddrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %w", s, err)
		}
		if cfg.QUIC == nil && IsQUIC(a) {
			return nil, fmt.Errorf("listen address %q: %w", s, ErrNoQUIC)
		}
		out = append(out, a)
	}
	return out, nil
}

// nopCloser is what a swarm without QUIC closes after itself: nothing.
type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// nodeSwarm is a swarm with its TCP (and QUIC) transports and the upgrader
// that secures and multiplexes TCP connections. The host is given the
// *swarm.Swarm itself, which is what its Network() returns (source.go
// (internal/p2p's source.go) clears the swarm's dial backoff through it).
type nodeSwarm struct {
	*swarm.Swarm
	upgrader transport.Upgrader
}

// newSwarm returns a swarm of key with a fresh peerstore and the TCP
// transport (secured with TLS, then the more protocols), and QUIC's if q is
// not nil, with what the caller closes after the swarm (QUIC's connection
// manager; nothing without QUIC). reg, if not nil, receives the QUIC
// metrics.
func newSwarm(key crypto.PrivKey, q QUIC, more []SecurityProtocol, bus event.Bus, rm network.ResourceManager, reg prometheus.Registerer, opts ...swarm.Option) (_ *nodeSwarm, _ io.Closer, err error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	ps, err := pstoremem.NewPeerstore()
	if err != nil {
		return nil, nil, err
	}
	if err := addKeys(ps, id, key); err != nil {
		ps.Close()
		return nil, nil, err
	}
	sw, err := swarm.NewSwarm(id, ps, bus, opts...)
	if err != nil {
		ps.Close()
		return nil, nil, err
	}
	var tpts []transport.Transport
	var qcm io.Closer = nopCloser{}
	if q != nil {
		var qt transport.Transport
		if qt, qcm, err = q(key, rm, reg); err != nil {
			sw.Close()
			ps.Close()
			return nil, nil, err
		}
		tpts = append(tpts, qt)
	}
	defer func() {
		if err != nil {
			sw.Close()
			qcm.Close()
			ps.Close()
		}
	}()
	muxers := []tptu.StreamMuxer{{ID: libp2pyamux.ID, Muxer: muxer()}}
	tls, err := newCoalescedTLS(libp2ptls.ID, key, muxers)
	if err != nil {
		return nil, nil, err
	}
	secs := []sec.SecureTransport{tls}
	for _, p := range more {
		t, err := p.New(p.ID, key, muxers)
		if err != nil {
			return nil, nil, fmt.Errorf("security protocol %s: %w", p.ID, err)
		}
		secs = append(secs, t)
	}
	up, err := tptu.New(secs, muxers, nil, rm, nil)
	if err != nil {
		return nil, nil, err
	}
	t, err := tcp.NewTCPTransport(up, rm, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("TCP transport: %w", err)
	}
	for _, tpt := range append(tpts, t) {
		if err := sw.AddTransport(tpt); err != nil {
			return nil, nil, err
		}
	}
	return &nodeSwarm{Swarm: sw, upgrader: up}, qcm, nil
}

// addKeys records a node's own keys in its peerstore.
func addKeys(ps peerstore.Peerstore, id peer.ID, key crypto.PrivKey) error {
	if err := ps.AddPrivKey(id, key); err != nil {
		return err
	}
	return ps.AddPubKey(id, key.GetPublic())
}

// addAutoNAT starts AutoNAT on h: a client that asks peers to dial back
// the host's public addresses, and the service that does so for others,
// from a swarm of its own with a throwaway key, as libp2p.New with
// EnableNATService does. A node with the relay service is public;
// cfg.Reachability (tests) fixes the answer.
func addAutoNAT(cfg Config, h *basichost.BasicHost, rm network.ResourceManager) error {
	opts := []autonat.Option{
		autonat.UsingAddresses(func() []ma.Multiaddr {
			return slices.DeleteFunc(h.AllAddrs(), func(a ma.Multiaddr) bool { return !manet.IsPublicAddr(a) })
		}),
	}
	if cfg.Metrics != nil {
		opts = append(opts, cfg.Metrics.AutoNAT())
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return err
	}
	dialer, qcm, err := newSwarm(key, cfg.QUIC, cfg.MoreSecurity, eventbus.NewBus(), rm, nil,
		swarm.WithDialRanker(swarm.NoDelayDialRanker),
		swarm.WithResourceManager(rm),
		swarm.WithUDPBlackHoleSuccessCounter(nil),
		swarm.WithIPv6BlackHoleSuccessCounter(nil))
	if err != nil {
		return fmt.Errorf("autonat dialer: %w", err)
	}
	// AutoNAT closes the dialer with the host; its QUIC connection manager
	// and peerstore follow.
	go func() {
		<-dialer.Done()
		qcm.Close()
		dialer.Peerstore().Close()
	}()
	opts = append(opts, autonat.EnableService(dialer.Swarm))
	reach := cfg.Reachability
	if reach == network.ReachabilityUnknown && cfg.RelayService {
		// libp2p starts the relay only once AutoNAT finds the node
		// publicly reachable, which needs peers with public addresses
		// of their own to ask: in a private network whose other nodes
		// are all behind NATs nobody can, and the relay would never
		// start. A node told to relay is public by the operator's
		// word. Its AutoNAT service still dials others back, which is
		// how nodes behind NATs learn that they are.
		reach = network.ReachabilityPublic
	}
	if reach != network.ReachabilityUnknown {
		opts = append(opts, autonat.WithReachability(reach))
	}
	an, err := autonat.New(h, opts...)
	if err != nil {
		dialer.Close()
		return fmt.Errorf("autonat: %w", err)
	}
	h.SetAutoNat(an)
	return nil
}
