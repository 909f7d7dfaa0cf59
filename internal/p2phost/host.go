package p2phost

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a host.
type Config struct {
	// Identity is the host's key; nil means a fresh random one.
	Identity crypto.PrivKey
	// ListenAddrs are the multiaddrs to listen on; empty means none.
	// DefaultListenAddrs are TCP (and QUIC) on every interface.
	ListenAddrs []string
	// QUIC, if set, adds the QUIC transport to TCP (package hostquic
	// makes it); a host without it dials and listens over TCP only.
	QUIC QUIC
	// MoreSecurity are security protocols offered on TCP after TLS.
	MoreSecurity []SecurityProtocol
	// RelayService lets the host act as a circuit relay for others. It
	// declares the host publicly reachable (see addAutoNAT).
	RelayService bool
	// StaticRelays are the peers AutoRelay reserves a slot on when
	// AutoNAT finds the host behind a NAT; none means no AutoRelay.
	StaticRelays []peer.AddrInfo
	// Metrics, if set, wires libp2p's Prometheus metrics into the host
	// (package hostmetrics); otherwise they are off.
	Metrics *Metrics
	// Reachability, if known, fixes what AutoNAT reports instead of
	// asking peers (tests).
	Reachability network.Reachability
	// Service is the application protocol's resource manager service.
	Service Service
}

// Metrics wires libp2p's Prometheus metrics into a host's parts:
// constructors of the metrics tracers, which package hostmetrics provides,
// rather than a registerer, so that a host without metrics (every app's)
// does not link them (53 KB of an app's stripped binary; docs/BENCHMARKS.md,
// Cost of embedding), as MoreSecurity keeps Noise out of apps. All fields
// are required.
type Metrics struct {
	// Registerer receives the metrics of the basic host and of QUIC.
	Registerer prometheus.Registerer
	// ResourceManager registers the resource manager's metrics.
	ResourceManager func()
	// EventBus, Swarm, AutoRelay and AutoNAT return the option of each
	// part that makes it report to Registerer.
	EventBus  func() eventbus.Option
	Swarm     func() swarm.Option
	AutoRelay func() autorelay.Option
	AutoNAT   func() autonat.Option
}

// QUIC makes the QUIC transport of a swarm of key, whose connections rm
// counts, and what to close after the swarm (its connection manager); reg,
// if not nil, receives its metrics. hostquic.New is one. A constructor,
// rather than the transport itself, keeps quic-go out of the programs that
// do not ask for it (an app on TCP alone: 1.6 MB of its stripped binary;
// docs/BENCHMARKS.md, Cost of embedding), as Metrics and
// Config.MoreSecurity do for theirs.
type QUIC func(key crypto.PrivKey, rm network.ResourceManager, reg prometheus.Registerer) (transport.Transport, io.Closer, error)

// ErrNoQUIC means a QUIC listen address was given to a host without QUIC
// (Config.QUIC).
var ErrNoQUIC = errors.New("QUIC is not one of this host's transports")

// Service is the resource manager service of the application protocol
// that runs on the host, with its limits in all and per peer (they do not
// grow with memory).
type Service struct {
	Name             string
	Limit, PeerLimit rcmgr.BaseLimit
}

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
)

// DefaultListenAddrs returns the addresses a node listens on by default:
// TCP on every interface, any port, and QUIC as well if quic.
func DefaultListenAddrs(quic bool) []string {
	if !quic {
		return []string{"/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0"}
	}
	return []string{
		"/ip4/0.0.0.0/udp/0/quic-v1",
		"/ip4/0.0.0.0/tcp/0",
		"/ip6/::/udp/0/quic-v1",
		"/ip6/::/tcp/0",
	}
}

// resourceLimits returns libp2p's default limits with maxInboundConns, and
// those of svc.
func resourceLimits(svc Service) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	setDefaultServiceLimits(&limits)
	limits.SystemBaseLimit.ConnsInbound = maxInboundConns
	limits.SystemLimitIncrease.ConnsInbound = 0
	limits.SystemBaseLimit.Conns = max(limits.SystemBaseLimit.Conns, maxInboundConns+limits.SystemBaseLimit.ConnsOutbound)
	limits.SystemLimitIncrease.Conns = limits.SystemLimitIncrease.ConnsOutbound
	if svc.Name != "" {
		limits.AddServiceLimit(svc.Name, svc.Limit, rcmgr.BaseLimitIncrease{})
		limits.AddServicePeerLimit(svc.Name, svc.PeerLimit, rcmgr.BaseLimitIncrease{})
	}
	return limits.AutoScale()
}

// resourceOptions returns the resource manager's per-address connection
// limits: connsPerIP per IPv4 address and IPv6 /56, four times as many per
// IPv6 /48; loopback stays exempt, as in libp2p's defaults. Without
// metrics, the manager's statistics are off too: libp2p keeps them by
// default, formatting a time and taking a lock for every stream and
// memory reservation (5% of the CPU of BenchmarkPropagation) for
// collectors nobody registered.
func resourceOptions(metrics bool) []rcmgr.Option {
	opts := []rcmgr.Option{rcmgr.WithLimitPerSubnet(
		[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: connsPerIP}},
		[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: connsPerIP}, {PrefixLength: 48, ConnCount: 4 * connsPerIP}},
	)}
	if !metrics {
		opts = append(opts, rcmgr.WithMetricsDisabled())
	}
	return opts
}

// New starts the libp2p host of cfg, with its resource and connection
// managers, listening on cfg.ListenAddrs. Closing it stops everything it
// started.
func New(cfg Config) (host.Host, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(cfg.Service)), resourceOptions(cfg.Metrics != nil)...)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(lowConns, highConns, connmgr.WithGracePeriod(connGrace))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	h, err := buildHost(cfg, rm, cm)
	if err != nil {
		return nil, fmt.Errorf("starting libp2p host: %w", err)
	}
	return h, nil
}
