package p2p

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// Connection manager watermarks: above highConns connections libp2p trims
// down to lowConns, closing first the connections of peers that are worth
// least to it (no DHT routing table entry, no streams), among those older
// than connGrace.
const (
	lowConns  = 160
	highConns = 192
	// connGrace is how long a new connection is safe from trimming
	// (libp2p's default is a minute): long enough for a client to ask
	// for info and start a download, short enough that connections held
	// open by peers that ask nothing are trimmed soon under pressure.
	connGrace = 20 * time.Second
)

// Resource manager limits beyond libp2p's defaults (see docs/PROTOCOL.md,
// Limits).
const (
	// maxInboundConns bounds inbound connections in all (libp2p scales
	// its default with memory: 64 plus 64 per GiB of an eighth of it).
	// One is about 65 KB, so 512 cost about 35 MB; they are far above
	// highConns, so that peers connecting while others hold connections
	// open are let in, and the connection manager trims.
	maxInboundConns = 512
	// connsPerIP bounds the connections from one IPv4 address or IPv6
	// /56 (libp2p's default is 8; loopback is exempt): a node holds one
	// or two connections to a peer, and 32 leave room for a NATed site
	// with 16 nodes. An IPv6 /48 may hold four times as many.
	connsPerIP = 32
	// serviceStreams is the hard limit of inbound streams of the protocol,
	// twice maxStreams: the handler shares maxStreams fairly (admit.go)
	// and needs to see the streams it chooses between.
	serviceStreams = 2 * maxStreams
	// streamsPerPeer bounds the inbound streams of the protocol one peer
	// holds: a download asks each peer one request at a time, plus info
	// and hashes requests; 8 leave room for two downloads and a poll.
	streamsPerPeer = 8
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

// resourceLimits returns libp2p's default limits with maxInboundConns, and
// those of the rustpatcher service (ServiceName): serviceStreams inbound
// streams and 32 MiB in all, streamsPerPeer inbound streams per peer.
func resourceLimits() rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	setDefaultServiceLimits(&limits)
	limits.SystemBaseLimit.ConnsInbound = maxInboundConns
	limits.SystemLimitIncrease.ConnsInbound = 0
	limits.SystemBaseLimit.Conns = max(limits.SystemBaseLimit.Conns, maxInboundConns+limits.SystemBaseLimit.ConnsOutbound)
	limits.SystemLimitIncrease.Conns = limits.SystemLimitIncrease.ConnsOutbound
	limits.AddServiceLimit(ServiceName,
		rcmgr.BaseLimit{StreamsInbound: serviceStreams, StreamsOutbound: 256, Streams: serviceStreams + 256, Memory: 32 << 20},
		rcmgr.BaseLimitIncrease{})
	limits.AddServicePeerLimit(ServiceName,
		rcmgr.BaseLimit{StreamsInbound: streamsPerPeer, StreamsOutbound: 16, Streams: streamsPerPeer + 16, Memory: 4 << 20},
		rcmgr.BaseLimitIncrease{})
	return limits.AutoScale()
}

// resourceOptions returns the resource manager's per-address connection
// limits: connsPerIP per IPv4 address and IPv6 /56, four times as many per
// IPv6 /48; loopback stays exempt, as in libp2p's defaults.
func resourceOptions() []rcmgr.Option {
	return []rcmgr.Option{rcmgr.WithLimitPerSubnet(
		[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: connsPerIP}},
		[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: connsPerIP}, {PrefixLength: 48, ConnCount: 4 * connsPerIP}},
	)}
}

// newHost starts the libp2p host of cfg, with its resource and connection
// managers.
func newHost(cfg Config, boot []peer.AddrInfo) (host.Host, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits()), resourceOptions()...)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(lowConns, highConns, connmgr.WithGracePeriod(connGrace))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	h, err := buildHost(cfg, boot, rm, cm)
	if err != nil {
		return nil, fmt.Errorf("starting libp2p host: %w", err)
	}
	return h, nil
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
