// Package p2p is the libp2p node that both the client library and rpseed
// run: a host with TCP (and QUIC, Config.QUIC), a Kademlia DHT for discovery, and the
// rustpatcher stream protocol v1 (see package wire and docs/PROTOCOL.md) for
// signed info, piece hashes and pieces.
//
// A node serves the verified releases it was given with Serve and announces
// them in the DHT; it finds and fetches releases offered by others through a
// Source, from several peers at once. It never trusts a peer: every info is
// checked against the owner key, every length is computed from the signed
// region, every piece of a v1 release is checked against the signed root as
// it arrives, and a peer that sends provably bad data gets a strike that
// sends it to the back of the queue.
//
// A Node composes small parts, each with its own lock and file: the host
// (internal/p2phost, configured in host.go), the served releases and the stream handler
// (serve.go, served.go), upload slots (slots.go), strikes (strikes.go),
// announcements (announce.go), and the bookkeeping of fetches
// (fetchbook.go); Source and Release (source.go, release.go) find and fetch
// releases, and a download (download.go) moves the pieces of one Open.
package p2p

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/org/rustpatcher-go/internal/wire"
)

// ServiceName is the resource manager service that owns the streams of the
// rustpatcher protocol.
const ServiceName = "rustpatcher"

// PrivatePrefix is the DHT protocol prefix of private networks by default:
// their DHT speaks /rustpatcher/kad/1.0.0 and never mixes with the public
// Amino DHT (/ipfs/kad/1.0.0).
const PrivatePrefix = "/rustpatcher"

// Defaults for Config fields left zero.
const (
	// DefaultUploadSlots is small on purpose: a peer serves a release
	// only once it has all of it, so a few uploads at full speed spread a
	// release faster than many slow ones.
	DefaultUploadSlots = 2
	// DefaultUploadSlotsPerPeer is the number of uploads one peer may
	// hold at once.
	DefaultUploadSlotsPerPeer = 1
	// DefaultMinUploadRate is the rate, in bytes a second, below which an
	// upload that has run for 2 s loses its slot to a peer that asks for
	// one while none is free: a downloader that reads slowly (on purpose or
	// not) must not hold a slot others would use at full speed. 256 KiB/s
	// moves a 1 MiB piece in 4 s.
	DefaultMinUploadRate = 256 << 10
	// DefaultIdleTimeout bounds every read and write of a transfer.
	DefaultIdleTimeout = 10 * time.Second
	// DefaultLookupTimeout bounds one DHT provider lookup.
	DefaultLookupTimeout = 4 * time.Second
	// DefaultReprovideInterval is how often served releases are announced
	// again.
	DefaultReprovideInterval = 30 * time.Minute
)

// Sentinel errors.
var (
	// ErrNoPeers means no peer could answer a request.
	ErrNoPeers = errors.New("no peer available")
	// ErrClosed means the node was closed.
	ErrClosed = errors.New("node closed")
)

// Config configures a Node. The zero Config joins the public network.
type Config struct {
	// Private selects a private network: the DHT uses ProtocolPrefix
	// instead of the public Amino DHT and bootstraps only from Bootstrap.
	Private bool
	// ProtocolPrefix is the DHT protocol prefix of a private network;
	// empty means PrivatePrefix. Ignored in public mode.
	ProtocolPrefix string
	// Bootstrap lists peers to join through, as multiaddrs with /p2p/<id>.
	// They are also asked directly for releases, as seeds. In public mode
	// the Amino DHT's default bootstrap peers are added.
	Bootstrap []string
	// ListenAddrs are multiaddrs to listen on; empty means TCP, and QUIC
	// with Config.QUIC, on all interfaces and any port.
	ListenAddrs []string
	// QUIC adds QUIC to TCP: hostquic.New (internal/p2phost/hostquic).
	// rpseed has it; an app has it only when it asks (client/quic), so
	// that an app on TCP alone does not link quic-go. Without it a QUIC
	// listen address is refused (p2phost.ErrNoQUIC) and peers are
	// dialled over TCP.
	QUIC QUIC
	// Identity is the node's key; nil means a fresh random one.
	Identity crypto.PrivKey
	// DHTServer runs the DHT in server mode (seeds, tests on loopback);
	// otherwise the DHT switches modes by reachability (AutoNAT).
	DHTServer bool
	// RelayService lets the node act as a circuit relay for others, for
	// hole punching and info requests. It declares the node publicly
	// reachable, so that the relay runs at once: set it only on a node
	// that others can dial.
	RelayService bool
	// MoreSecurity are security protocols offered on TCP after TLS, which
	// every go-libp2p peer and every rustpatcher node speaks: rpseed adds
	// Noise, for peers of the public DHT that speak nothing else. Each one
	// grows every program that links it, so the client offers TLS alone.
	MoreSecurity []SecurityProtocol
	// UploadSlots bounds concurrent uploads in total, and
	// UploadSlotsPerPeer per peer; a peer that finds no free slot gets a
	// "busy" answer and moves on. Zero means the defaults (2 and 1).
	UploadSlots, UploadSlotsPerPeer int
	// UploadRate caps the node's upload bandwidth, in bytes per second,
	// over all uploads; zero means no cap.
	UploadRate int
	// MinUploadRate is the rate, in bytes per second, below which an
	// upload that has run for 2 s loses its slot to a peer that asks for
	// one while none is free. Zero means DefaultMinUploadRate, or half an
	// upload's share of UploadRate when that is lower; negative means
	// slots are never taken back.
	MinUploadRate int
	// IdleTimeout bounds every read and write of a transfer and the
	// reading of a request; zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// LookupTimeout bounds one DHT provider lookup; zero means
	// DefaultLookupTimeout.
	LookupTimeout time.Duration
	// ReprovideInterval is how often served releases are announced again;
	// zero means DefaultReprovideInterval.
	ReprovideInterval time.Duration
	// PackDir, if set, is a directory where the node keeps the pieces of
	// the releases it serves compressed, and deltas from older files (see
	// MakeDeltas), made in the background; packed requests are answered
	// from them. Without it, pieces are compressed on the fly.
	PackDir string
	// NoCompression answers packed requests with raw pieces and makes
	// nothing in PackDir: for seeds short of CPU.
	NoCompression bool
	// PiecesEarly makes the node serve each piece of a v1 release it
	// downloads as soon as it checked it, before it holds the whole file
	// (docs/PROTOCOL.md, "Serving pieces early"), and keep an ended
	// upload's slot for its peer 50 ms rather than 500 ms (slots.go).
	// With it, the node's downloads also ask the providers they find
	// which pieces they hold, and the connected peers that speak the
	// owner's protocol too, asking those only for the pieces they name.
	// Off by default; apps (package client) and rpseed turn it on: it
	// spreads a release faster (docs/BENCHMARKS.md, propagation). Every
	// node answers have requests either way, and downloads from peers
	// that serve pieces early as an older node does (see
	// docs/PROTOCOL.md).
	PiecesEarly bool
	// Metrics, if set, wires libp2p's own Prometheus metrics into the
	// host (package p2phost/hostmetrics makes it); otherwise libp2p
	// metrics are off.
	Metrics *Metrics
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// OnReport, if set, is called with what each rollout request reports
	// (see wire.Report): the asking peer, the owner key and target of the
	// request, and the versions the peer says it runs and last rolled
	// back from, unauthenticated. It runs on the stream's goroutine
	// before the answer, so it must return quickly.
	OnReport func(from peer.ID, pub ed25519.PublicKey, target string, r wire.Report)

	// For tests: noListen listens on no address at all (an empty
	// ListenAddrs means the defaults), and reachability, if known, fixes
	// what AutoNAT reports instead of asking peers.
	noListen     bool
	reachability network.Reachability
	// streamLimit replaces maxStreams when positive, for tests.
	streamLimit int
	// shardFull replaces providerLookupN as the number of providers that
	// makes a DHT key full (shards.go) when positive, for tests.
	shardFull int
	// noHave makes the node behave as one of a release before have
	// requests, for tests and benchmarks: it refuses them, serves only
	// whole files and asks every peer for pieces as if it held them all.
	noHave bool
	// noWatch makes the node behave as one of the release after have
	// requests and before watches, for tests: it refuses watches and asks
	// its peers have requests alone.
	noWatch bool
	// slotGrace replaces slotGrace and earlySlotGrace when nonzero
	// (negative: none), for benchmarks.
	slotGrace time.Duration
	// onDownload, if set, is called with every download as it starts,
	// for traces in benchmarks.
	onDownload func(*download)
	// spoolDir is where the spools of files served while they download
	// are made; empty means os.TempDir.
	spoolDir string
}

// A Node is a libp2p host with the DHT and the rustpatcher protocol.
type Node struct {
	cfg       Config
	h         host.Host
	dht       *dht.IpfsDHT
	log       *slog.Logger
	bootstrap []peer.AddrInfo

	ctx    context.Context // done once the node closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // the announcer's loop
	closed atomic.Bool

	// serveMu orders Serve and Unserve, so that the served releases and
	// their announcements change together.
	serveMu sync.Mutex
	server  *server
	ann     *announcer
	strikes *strikes
	book    *fetchBook
	refused *refusedOffers

	packer   *packer      // nil without Config.PackDir
	decoders *decoderPool // shared by the downloads' packed pieces
	frames   sync.Pool    // *[]byte: the downloads' packed frames (see frameBuf)

	downloaded atomic.Uint64 // release bytes fetched, for Stats
	askedTwice atomic.Uint64 // asks of pieces asked before, for Stats
	lookups    atomic.Uint64 // DHT provider lookups made, for Stats

	report atomic.Pointer[wire.Report] // see SetReport
}

// New starts a node: it listens, joins the DHT through the bootstrap peers
// and returns. The DHT's routing table fills in the background.
func New(ctx context.Context, cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	boot, err := parseBootstrap(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	h, err := newHost(cfg, boot)
	if err != nil {
		return nil, err
	}
	kad, err := dht.New(h, dhtOptions(cfg, boot)...)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("starting the DHT: %w", err)
	}
	nctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:       cfg,
		h:         h,
		dht:       kad,
		log:       cfg.Logger,
		bootstrap: boot,
		ctx:       nctx,
		cancel:    cancel,
		server:    newServer(nctx, h, cfg),
		ann:       newAnnouncer(kad, h.ID(), cfg.ReprovideInterval, cfg.LookupTimeout, cmp.Or(cfg.shardFull, providerLookupN), cfg.Logger),
		strikes:   newStrikes(),
		book:      newFetchBook(),
		refused:   newRefusedOffers(),
		decoders:  newDecoderPool(),
	}
	n.ann.routes = func() bool { return kad.RoutingTable().Size() > 0 }
	if cfg.PackDir != "" && !cfg.NoCompression {
		n.packer = newPacker(cfg.PackDir, n.server, cfg.Logger)
	}
	// AutoNAT's verdict so far is taken in before the announcer runs, so
	// that a node already found unreachable announces nothing; the
	// events bring the changes (and the verdict again).
	sub, err := h.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtLocalAddressesUpdated)})
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("watching reachability: %w", err)
	}
	reach := network.ReachabilityUnknown
	if an, ok := h.(interface{ GetAutoNat() autonat.AutoNAT }); ok && an.GetAutoNat() != nil {
		reach = n.reachabilityEvent(event.EvtLocalReachabilityChanged{Reachability: an.GetAutoNat().Status()}, reach)
	}
	n.wg.Go(func() { n.watchReachability(nctx, sub, reach) })
	n.connectBootstrap(ctx)
	if err := kad.Bootstrap(nctx); err != nil {
		n.Close()
		return nil, fmt.Errorf("bootstrapping the DHT: %w", err)
	}
	n.wg.Go(func() { n.ann.run(nctx) })
	if n.packer != nil {
		n.wg.Go(func() { n.packer.run(nctx) })
	}
	n.log.Info("p2p node started", "peer", h.ID(), "private", cfg.Private, "bootstrap", len(boot), "dht_server", cfg.DHTServer)
	return n, nil
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Host returns the node's libp2p host.
func (n *Node) Host() host.Host { return n.h }

// Addrs returns the node's listen addresses as full multiaddrs ending in
// /p2p/<peer id>, ready to pass as a bootstrap address.
func (n *Node) Addrs() []string {
	p2p, err := ma.NewMultiaddr("/p2p/" + n.h.ID().String())
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range n.h.Addrs() {
		out = append(out, a.Encapsulate(p2p).String())
	}
	return out
}

// Close stops serving, leaves the network and closes every served file
// once its uploads have finished.
func (n *Node) Close() error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	all := n.server.close()
	n.cancel()
	n.wg.Wait()
	for _, s := range all {
		s.release()
	}
	err := n.dht.Close()
	if herr := n.h.Close(); err == nil {
		err = herr
	}
	return err
}

// checkOpen returns ErrClosed once the node is closed.
func (n *Node) checkOpen() error {
	if n.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Provide announces in the DHT that this node provides key, once. Serve
// announces served releases by itself; Provide is for tools and tests.
func (n *Node) Provide(ctx context.Context, key cid.Cid) error {
	return n.dht.Provide(ctx, key, true)
}

// Stats is a snapshot of a node's counters.
type Stats struct {
	// Peers is the number of connected peers.
	Peers int
	// Served is the number of releases served.
	Served int
	// ActiveUploads is the number of uploads running now.
	ActiveUploads int
	// InfoRequests, HashesRequests and FetchRequests count the info,
	// hashes and pieces requests answered (packed ones included), and
	// PackedRequests the packed requests among them.
	InfoRequests, HashesRequests, FetchRequests, PackedRequests uint64
	// RolloutRequests counts the rollout requests answered, HaveRequests
	// the have requests, WatchRequests the watch requests and HaveUpdates
	// the bitfields sent in answer to watches.
	RolloutRequests, HaveRequests, WatchRequests, HaveUpdates uint64
	// Busy counts pieces requests refused for want of an upload slot.
	Busy uint64
	// BadRequests counts malformed requests and failed namespace checks.
	BadRequests uint64
	// StreamsRefused counts streams of the protocol refused by the stream
	// limits, and StreamsEvicted streams without a request that gave
	// their place to a peer with fewer streams.
	StreamsRefused, StreamsEvicted uint64
	// UploadsTakenBack counts uploads slower than the minimum rate whose
	// slot went to a peer that asked while none was free.
	UploadsTakenBack uint64
	// BytesUploaded and BytesDownloaded count release bytes moved, as
	// sent on the wire: packed pieces count their frames' bytes.
	BytesUploaded, BytesDownloaded uint64
	// PiecesAskedTwice counts the asks of a piece after its first: of a
	// second peer while on its way from a first (a slow peer's, or the
	// last ones), or again after an ask failed or stalled. Each may have
	// been sent twice, in part or whole.
	PiecesAskedTwice uint64
	// Strikes counts misbehaviour seen from peers.
	Strikes uint64
	// Provides and ProvideErrors count DHT announcements.
	Provides, ProvideErrors uint64
	// Lookups counts DHT provider lookups (a channel or release key and
	// each of its shard keys looked up counts one).
	Lookups uint64
	// Quiet reports that the node announces nothing: AutoNAT finds it
	// unreachable and it has no relay address.
	Quiet bool
	// LastProvide is when an announcement last succeeded, and
	// LastProvideError when one last failed, with ProvideError its error
	// (zero and nil while none did).
	LastProvide, LastProvideError time.Time
	ProvideError                  error
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	c := &n.server.counts
	ok, failed, err := n.ann.outcomes()
	return Stats{
		LastProvide:      ok,
		LastProvideError: failed,
		ProvideError:     err,
		Peers:            len(n.h.Network().Peers()),
		Served:           n.server.count(),
		ActiveUploads:    n.server.slots.active(),
		InfoRequests:     c.info.Load(),
		HashesRequests:   c.hashes.Load(),
		FetchRequests:    c.pieces.Load(),
		PackedRequests:   c.packed.Load(),
		RolloutRequests:  c.rollouts.Load(),
		HaveRequests:     c.have.Load(),
		WatchRequests:    c.watch.Load(),
		HaveUpdates:      c.haveUpdates.Load(),
		Busy:             c.busy.Load(),
		BadRequests:      c.bad.Load(),
		StreamsRefused:   n.server.admit.refused.Load(),
		StreamsEvicted:   n.server.admit.evicted.Load(),
		UploadsTakenBack: n.server.slots.revoked.Load(),
		BytesUploaded:    c.up.Load(),
		BytesDownloaded:  n.downloaded.Load(),
		PiecesAskedTwice: n.askedTwice.Load(),
		Strikes:          n.strikes.given.Load(),
		Provides:         n.ann.provided.Load(),
		ProvideErrors:    n.ann.failed.Load(),
		Lookups:          n.lookups.Load(),
		Quiet:            n.ann.isQuiet(),
	}
}
