package p2p

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	libp2pyamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// Connection manager watermarks: above highConns connections libp2p trims
// down to lowConns.
const (
	lowConns  = 160
	highConns = 192
)

// bootstrapDialTimeout bounds the dial of one bootstrap peer in New.
const bootstrapDialTimeout = 10 * time.Second

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.UploadSlots <= 0 {
		c.UploadSlots = DefaultUploadSlots
	}
	if c.UploadSlotsPerPeer <= 0 {
		c.UploadSlotsPerPeer = DefaultUploadSlotsPerPeer
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.LookupTimeout <= 0 {
		c.LookupTimeout = DefaultLookupTimeout
	}
	if c.ReprovideInterval <= 0 {
		c.ReprovideInterval = DefaultReprovideInterval
	}
	if c.ProtocolPrefix == "" {
		c.ProtocolPrefix = PrivatePrefix
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = defaultListenAddrs()
	}
	return c
}

// defaultListenAddrs returns the addresses a node listens on when
// Config.ListenAddrs is empty: QUIC and TCP on every interface, any port.
func defaultListenAddrs() []string {
	return []string{
		"/ip4/0.0.0.0/udp/0/quic-v1",
		"/ip4/0.0.0.0/tcp/0",
		"/ip6/::/udp/0/quic-v1",
		"/ip6/::/tcp/0",
	}
}

// parseBootstrap parses bootstrap multiaddrs, each ending in /p2p/<peer id>,
// and merges the addresses of the same peer.
func parseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var boot []peer.AddrInfo
	for _, s := range addrs {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap peer %q: %w (want a multiaddr ending in /p2p/<peer id>)", s, err)
		}
		boot = append(boot, *ai)
	}
	return mergeAddrInfos(boot), nil
}

// mergeAddrInfos merges entries for the same peer.
func mergeAddrInfos(in []peer.AddrInfo) []peer.AddrInfo {
	var out []peer.AddrInfo
	idx := map[peer.ID]int{}
	for _, ai := range in {
		if i, ok := idx[ai.ID]; ok {
			out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
			continue
		}
		idx[ai.ID] = len(out)
		out = append(out, ai)
	}
	return out
}

// resourceLimits returns libp2p's default limits plus those of the
// rustpatcher service (ServiceName): at most 256 inbound streams and 32 MiB
// in all, 16 inbound streams per peer.
func resourceLimits() rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.AddServiceLimit(ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 32 << 20},
		rcmgr.BaseLimitIncrease{})
	limits.AddServicePeerLimit(ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 16, StreamsOutbound: 16, Streams: 32, Memory: 4 << 20},
		rcmgr.BaseLimitIncrease{})
	return limits.AutoScale()
}

// newHost starts the libp2p host of cfg, with its resource and connection
// managers.
func newHost(cfg Config, boot []peer.AddrInfo) (host.Host, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(lowConns, highConns)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	h, err := libp2p.New(hostOptions(cfg, boot, rm, cm)...)
	if err != nil {
		return nil, fmt.Errorf("starting libp2p host: %w", err)
	}
	return h, nil
}

// hostOptions returns the libp2p options of a node: QUIC and TCP, TLS
// (batched, coalesce.go) then Noise, yamux with larger frames and windows,
// TCP dialled first on private networks (dial.go), hole punching, AutoNAT,
// and what cfg asks for.
func hostOptions(cfg Config, boot []peer.AddrInfo, rm network.ResourceManager, cm *connmgr.BasicConnMgr) []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(quic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		// libp2p's default security transports, TLS first, with the
		// records of TLS written in batches, and yamux with larger
		// frames (coalesce.go).
		libp2p.Security(libp2ptls.ID, newCoalescedTLS),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(libp2pyamux.ID, muxer()),
		// TCP first on loopback and private networks (dial.go).
		libp2p.SwarmOpts(swarm.WithDialRanker(dialRanker)),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.EnableHolePunching(),
		libp2p.EnableNATService(),
	}
	if cfg.Identity != nil {
		opts = append(opts, libp2p.Identity(cfg.Identity))
	}
	if cfg.RelayService {
		// libp2p starts the relay only once AutoNAT finds the node
		// publicly reachable, which needs peers with public addresses
		// of their own to ask: in a private network whose other nodes
		// are all behind NATs nobody can, and the relay would never
		// start. A node told to relay is public by the operator's
		// word. Its AutoNAT service still dials others back, which is
		// how nodes behind NATs learn that they are.
		opts = append(opts, libp2p.EnableRelayService(), libp2p.ForceReachabilityPublic())
	}
	if len(boot) > 0 {
		// Behind a NAT (as AutoNAT finds), reserve a slot on a bootstrap
		// peer that runs a relay (rpseed --relay), so that others can
		// reach this node and hole punching can start.
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(boot))
	}
	if cfg.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	return append(opts, cfg.extra...)
}

// dhtOptions returns the DHT options of cfg: server mode or modes by
// reachability; on a private network its protocol prefix and only the
// bootstrap peers, on the public one the Amino DHT's bootstrap peers too.
func dhtOptions(cfg Config, boot []peer.AddrInfo) []dht.Option {
	mode := dht.ModeAuto
	if cfg.DHTServer {
		mode = dht.ModeServer
	}
	opts := []dht.Option{dht.Mode(mode)}
	dhtBoot := boot
	if cfg.Private {
		opts = append(opts, dht.ProtocolPrefix(protocol.ID(cfg.ProtocolPrefix)))
	} else {
		dhtBoot = append(append([]peer.AddrInfo{}, boot...), dht.GetDefaultBootstrapPeerAddrInfos()...)
	}
	if len(dhtBoot) > 0 {
		opts = append(opts, dht.BootstrapPeers(dhtBoot...))
	}
	return opts
}

// connectBootstrap dials the configured bootstrap peers in parallel, each
// for at most bootstrapDialTimeout, and logs the ones that fail.
func (n *Node) connectBootstrap(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ai := range n.bootstrap {
		if ai.ID == n.h.ID() {
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, bootstrapDialTimeout)
			defer cancel()
			if err := n.h.Connect(cctx, ai); err != nil {
				n.log.Warn("cannot reach bootstrap peer", "peer", ai.ID, "err", err)
			}
		})
	}
	wg.Wait()
}
