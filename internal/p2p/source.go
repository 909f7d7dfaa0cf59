package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"golang.org/x/sync/errgroup"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Limits of finding releases.
const (
	maxCandidates   = 64 // peers asked for info in one Releases call
	infoConcurrency = 8  // info requests at once
	dialTimeout     = 10 * time.Second
	providerLookupN = 32                     // providers taken from one lookup
	answerGrace     = 250 * time.Millisecond // see Releases
)

// A Source finds the releases of one owner key and target on the network
// and fetches them. It is also the node's Seeder for that key and target.
type Source struct {
	n      *Node
	pub    ed25519.PublicKey
	target string
}

// Source returns the source of releases signed by pub for target
// ("GOOS/GOARCH").
func (n *Node) Source(pub ed25519.PublicKey, target string) *Source {
	return &Source{n: n, pub: pub, target: target}
}

// String names the source in logs.
func (s *Source) String() string {
	return "p2p " + s.target
}

// Seed serves the verified binary at path, whose region is in, and
// announces it; see Node.Serve.
func (s *Source) Seed(ctx context.Context, path string, in region.Info) error {
	return s.n.Serve(ctx, s.pub, s.target, path, in)
}

// SeedDownloaded serves the binary at path, whose region is in and whose
// file ID is id, written from this node's own download of it and verified
// as it was written; see Node.ServeDownloaded.
func (s *Source) SeedDownloaded(ctx context.Context, path string, in region.Info, id [wire.IDLen]byte) error {
	return s.n.ServeDownloaded(ctx, s.pub, s.target, path, in, id)
}

// Releases asks the providers of the channel, the bootstrap peers and the
// connected peers that speak the owner's protocol for their newest release,
// and returns those whose signature verifies with the owner key, grouped by
// file: one Release per region, file length and file ID, with the peers
// that offered it. Peers that answer with a forged or malformed info get a
// strike. It returns an error only when no peer at all could be asked.
func (s *Source) Releases(ctx context.Context) ([]*Release, error) {
	if err := s.n.checkOpen(); err != nil {
		return nil, err
	}
	// Once a verified answer is in, the others get answerGrace more
	// before the lookup and the queries still running are cut short: a
	// DHT lookup may otherwise wait on unreachable peers until
	// LookupTimeout.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var grace sync.Once
	cands := make(chan peer.AddrInfo, maxCandidates)
	go s.n.candidates(ctx, s.pub, ChannelCID(s.pub, s.target), s.n.cfg.LookupTimeout, cands)

	var (
		mu    sync.Mutex
		byKey = map[offerKey]*Release{}
		order []offerKey
		asked = map[peer.ID]bool{}
		g     errgroup.Group
	)
	g.SetLimit(infoConcurrency)
	var struck []peer.AddrInfo // asked only if no other peer offers a release
	ask := func(ai peer.AddrInfo) {
		asked[ai.ID] = true
		g.Go(func() error {
			o, err := s.n.askInfo(ctx, s.pub, s.target, ai)
			if err != nil {
				if !errors.Is(err, wire.ErrNotFound) && ctx.Err() == nil {
					s.n.log.Debug("info request failed", "peer", ai.ID, "err", err)
				}
				return nil // other peers may answer
			}
			k := offerKey{reg: o.Region, size: o.Layout.Size, id: o.FileID}
			if s.n.refused.has(k) {
				s.n.strike(ai.ID, strikeForged, fmt.Errorf("offered again file %x of %s release %q with a length of %d bytes, refused as impossible", o.FileID[:8], s.target, o.Info.Version, o.Layout.Size))
				return nil
			}
			grace.Do(func() { time.AfterFunc(answerGrace, cancel) })
			mu.Lock()
			defer mu.Unlock()
			r := byKey[k]
			if r == nil {
				r = newRelease(s, o)
				byKey[k] = r
				order = append(order, k)
			}
			r.peers = append(r.peers, ai)
			r.mu.Lock()
			r.exts[ai.ID] = o.Ext
			r.mu.Unlock()
			return nil
		})
	}
	for ai := range cands {
		if ai.ID == s.n.h.ID() || asked[ai.ID] || len(asked)+len(struck) >= maxCandidates {
			continue
		}
		if s.n.strikes.of(ai.ID) >= maxStrikes {
			if !slices.ContainsFunc(struck, func(p peer.AddrInfo) bool { return p.ID == ai.ID }) {
				struck = append(struck, ai)
			}
			continue
		}
		ask(ai)
	}
	g.Wait()
	if len(order) == 0 && len(struck) > 0 && ctx.Err() == nil {
		// Peers with too many strikes are asked last, when nobody else
		// has the release: a strike may be a misunderstanding, and no
		// update at all is worse than a download that checks every piece.
		for _, ai := range struck {
			ask(ai)
		}
		g.Wait()
	}
	if len(asked) == 0 {
		return nil, fmt.Errorf("%w: none known yet to ask for %s releases", ErrNoPeers, s.target)
	}
	out := make([]*Release, 0, len(order))
	for _, k := range order {
		out = append(out, byKey[k])
	}
	return out, nil
}

// offerKey groups the peers that offer one file: a peer that names the
// file ID of others with another region or length offers another file.
type offerKey struct {
	reg  [region.Size]byte
	size int64
	id   [wire.IDLen]byte
}

// candidates sends on out the peers to ask about key: bootstrap peers
// first, then connected peers that speak the owner's protocol, then the
// DHT's providers of key and, when it is full, of its shard keys
// (findProviders) as they are found (none for cid.Undef). It closes out
// when the lookup ends or timeout passes.
func (n *Node) candidates(ctx context.Context, pub ed25519.PublicKey, key cid.Cid, timeout time.Duration, out chan<- peer.AddrInfo) {
	defer close(out)
	send := func(ai peer.AddrInfo) bool {
		select {
		case out <- ai:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, ai := range n.bootstrap {
		if !send(ai) {
			return
		}
	}
	proto := protocol.ID(wire.ProtocolID(pub))
	for _, p := range n.h.Network().Peers() {
		if ok, _ := n.h.Peerstore().SupportsProtocols(p, proto); len(ok) > 0 {
			if !send(peer.AddrInfo{ID: p}) {
				return
			}
		}
	}
	if !key.Defined() {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for ai := range n.findProviders(lctx, key) {
		if !send(ai) {
			return
		}
	}
}

// connect makes sure there is a connection to ai, looking its addresses up
// in the DHT when none are known.
func (n *Node) connect(ctx context.Context, ai peer.AddrInfo) error {
	if n.h.Network().Connectedness(ai.ID) == network.Connected {
		return nil
	}
	if len(ai.Addrs) == 0 && len(n.h.Peerstore().Addrs(ai.ID)) == 0 {
		found, err := n.dht.FindPeer(ctx, ai.ID)
		if err != nil {
			return fmt.Errorf("finding addresses of %s: %w", ai.ID, err)
		}
		ai = found
	}
	if len(ai.Addrs) > 0 {
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	}
	// libp2p refuses to dial a peer whose dials failed lately, for up to
	// minutes: a seed that refused connections during a flood would stay
	// out of reach long after it ended. The callers pace their own
	// retries (a poll, a download's backoff), so every one dials.
	if sw, ok := n.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(ai.ID)
	}
	return n.h.Connect(ctx, ai)
}

// request opens a stream of the owner's protocol to ai and sends req with a
// fresh namespace check.
func (n *Node) request(ctx context.Context, pub ed25519.PublicKey, ai peer.AddrInfo, req *wire.Request) (network.Stream, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := n.connect(dctx, ai); err != nil {
		return nil, fmt.Errorf("peer %s: connecting: %w", ai.ID, err)
	}
	req.Auth = wire.Auth(pub, time.Now())
	b, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	// Only info, rotations and rollout requests, whose answers are at
	// most 17 KiB, may go over a limited (relayed) connection. A relay carries at most
	// 128 KiB, for 2 minutes, per connection, and cuts a stream at its
	// limit as if the peer had ended its answer early (a malformed answer,
	// struck). Hashes and pieces wait, within dialTimeout, for the direct
	// connection that hole punching makes; a peer that cannot be reached
	// directly fails the request unstruck.
	sctx := dctx
	if req.Kind == wire.KindInfo || req.Kind == wire.KindRotations || req.Kind == wire.KindRollout {
		sctx = network.WithAllowLimitedConn(dctx, "rustpatcher")
	}
	s, err := n.h.NewStream(sctx, ai.ID, protocol.ID(wire.ProtocolID(pub)))
	if err != nil {
		return nil, fmt.Errorf("peer %s: opening a stream: %w", ai.ID, err)
	}
	if err := s.Scope().SetService(ServiceName); err != nil {
		s.Reset()
		return nil, fmt.Errorf("peer %s: %w", ai.ID, err)
	}
	s.SetDeadline(time.Now().Add(n.cfg.IdleTimeout))
	if _, err := s.Write(b); err != nil {
		s.Reset()
		return nil, fmt.Errorf("peer %s: sending %v request: %w", ai.ID, req.Kind, err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, fmt.Errorf("peer %s: %w", ai.ID, err)
	}
	// Which path the request takes: a /p2p-circuit address (limited) is a
	// relayed connection, any other a direct one.
	n.log.Debug("request sent", "peer", ai.ID, "kind", req.Kind, "conn", s.Conn().RemoteMultiaddr(), "limited", s.Conn().Stat().Limited)
	return s, nil
}

// askInfo asks ai for its newest release of target and checks the answer:
// the frame, the signature with the owner key, and the file length
// against the signed content and target (region.Info.CheckFileSize). A malformed or forged answer gives ai a
// strike; a refused or broken stream does not.
func (n *Node) askInfo(ctx context.Context, pub ed25519.PublicKey, target string, ai peer.AddrInfo) (wire.Offer, error) {
	s, err := n.request(ctx, pub, ai, &wire.Request{Kind: wire.KindInfo, Target: target})
	if err != nil {
		return wire.Offer{}, err
	}
	defer s.Close()
	o, err := wire.ReadInfo(s)
	if err != nil {
		if errors.Is(err, wire.ErrMalformed) && ctx.Err() == nil {
			n.strike(ai.ID, strikeMalformed, fmt.Errorf("info answer: %w", err))
		}
		return wire.Offer{}, fmt.Errorf("peer %s: %w", ai.ID, err)
	}
	if err := o.Info.VerifySignature(pub); err != nil {
		n.strike(ai.ID, strikeForged, fmt.Errorf("offered %s release %q: %w", target, o.Info.Version, err))
		return wire.Offer{}, fmt.Errorf("peer %s: offered release %q: %w", ai.ID, o.Info.Version, err)
	}
	// A genuine region with a length its file cannot have (a tail after
	// an ELF file) is a lie about the file: it is never downloaded.
	if err := o.Info.CheckFileSize(o.Layout.Size); err != nil {
		n.strike(ai.ID, strikeForged, fmt.Errorf("offered %s release %q: %w", target, o.Info.Version, err))
		return wire.Offer{}, fmt.Errorf("peer %s: offered release %q: %w", ai.ID, o.Info.Version, err)
	}
	return o, nil
}
