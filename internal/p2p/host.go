package p2p

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/org/rustpatcher-go/internal/p2phost"
)

// The rustpatcher service's resource limits (see docs/PROTOCOL.md, Limits);
// the host's own are in internal/p2phost.
const (
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
		c.ListenAddrs = p2phost.DefaultListenAddrs(c.QUIC != nil)
	}
	return c
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

// The yamux frame and window sizes of the host (serve.go sizes its copies
// by them).
const (
	muxerMaxMessage = p2phost.MuxerMaxMessage
	muxerHeader     = p2phost.MuxerHeader
	muxerWindow     = p2phost.MuxerWindow
)

// A SecurityProtocol is a security protocol for TCP connections offered
// after TLS (Config.MoreSecurity).
type SecurityProtocol = p2phost.SecurityProtocol

// QUIC makes a node's QUIC transport (Config.QUIC); hostquic.New is one.
type QUIC = p2phost.QUIC

// Metrics wires libp2p's Prometheus metrics into a node's host; package
// internal/p2phost/hostmetrics makes it.
type Metrics = p2phost.Metrics

// LoadIdentity reads the node key at path, or creates one there; see
// p2phost.LoadIdentity.
func LoadIdentity(path string) (crypto.PrivKey, error) { return p2phost.LoadIdentity(path) }

// newHost starts the libp2p host of cfg (internal/p2phost) with the
// bootstrap peers as static relays and the limits of the rustpatcher
// service (ServiceName): serviceStreams inbound streams and 32 MiB in all,
// streamsPerPeer inbound streams per peer.
func newHost(cfg Config, boot []peer.AddrInfo) (host.Host, error) {
	listen := cfg.ListenAddrs
	if cfg.noListen {
		listen = nil
	}
	return p2phost.New(p2phost.Config{
		Identity:     cfg.Identity,
		ListenAddrs:  listen,
		MoreSecurity: cfg.MoreSecurity,
		QUIC:         cfg.QUIC,
		RelayService: cfg.RelayService,
		StaticRelays: boot,
		Metrics:      cfg.Metrics,
		Reachability: cfg.reachability,
		Service: p2phost.Service{
			Name:      ServiceName,
			Limit:     rcmgr.BaseLimit{StreamsInbound: serviceStreams, StreamsOutbound: 256, Streams: serviceStreams + 256, Memory: 32 << 20},
			PeerLimit: rcmgr.BaseLimit{StreamsInbound: streamsPerPeer, StreamsOutbound: 16, Streams: streamsPerPeer + 16, Memory: 4 << 20},
		},
	})
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
