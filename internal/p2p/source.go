package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Limits of the client side.
const (
	maxCandidates     = 64 // peers asked for info in one Releases call
	infoConcurrency   = 8
	dialTimeout       = 10 * time.Second
	maxOpenRounds     = 12
	providerLookupN   = 32
	answerGrace       = 250 * time.Millisecond // see Releases
	openLookupTimeout = time.Second            // see Release.candidates
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

// Releases asks the providers of the channel, the bootstrap peers and the
// connected peers that speak the owner's protocol for their newest release,
// and returns those whose signature verifies with the owner key, grouped by
// release. Peers that answer with a forged or malformed info get a strike.
// It returns an error only when no peer at all could be asked.
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
		mu     sync.Mutex
		byID   = map[[wire.IDLen]byte]*Release{}
		order  [][wire.IDLen]byte
		asked  = map[peer.ID]bool{}
		wg     sync.WaitGroup
		sem    = make(chan struct{}, infoConcurrency)
		nAsked int
	)
	for ai := range cands {
		if ai.ID == s.n.h.ID() || asked[ai.ID] || len(asked) >= maxCandidates {
			continue
		}
		if s.n.strikesOf(ai.ID) >= maxStrikes {
			continue
		}
		asked[ai.ID] = true
		nAsked++
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			reg, in, err := s.n.askInfo(ctx, s.pub, s.target, ai)
			if err != nil {
				if !errors.Is(err, wire.ErrNotFound) && ctx.Err() == nil {
					s.n.log.Debug("info request failed", "peer", ai.ID, "err", err)
				}
				return
			}
			grace.Do(func() { time.AfterFunc(answerGrace, cancel) })
			id := wire.ReleaseID(reg)
			mu.Lock()
			defer mu.Unlock()
			r := byID[id]
			if r == nil {
				r = &Release{src: s, reg: reg, info: in, id: id}
				byID[id] = r
				order = append(order, id)
			}
			r.peers = append(r.peers, ai)
		}()
	}
	wg.Wait()
	if nAsked == 0 {
		return nil, fmt.Errorf("%w: none known yet to ask for %s releases", ErrNoPeers, s.target)
	}
	out := make([]*Release, 0, len(order))
	for _, id := range order {
		out = append(out, byID[id])
	}
	return out, nil
}

// candidates sends on out the peers to ask about key: bootstrap peers
// first, then connected peers that speak the owner's protocol, then the
// DHT's providers of key as they are found. It closes out when the lookup
// ends or LookupTimeout passes.
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
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for ai := range n.dht.FindProvidersAsync(lctx, key, providerLookupN) {
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
	s, err := n.h.NewStream(network.WithAllowLimitedConn(dctx, "rustpatcher"), ai.ID, protocol.ID(wire.ProtocolID(pub)))
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
	return s, nil
}

// askInfo asks ai for its newest release of target and checks the answer
// against the owner key. A malformed or forged answer gives ai a strike.
func (n *Node) askInfo(ctx context.Context, pub ed25519.PublicKey, target string, ai peer.AddrInfo) ([region.Size]byte, region.Info, error) {
	var zero [region.Size]byte
	s, err := n.request(ctx, pub, ai, &wire.Request{Kind: wire.KindInfo, Target: target})
	if err != nil {
		return zero, region.Info{}, err
	}
	defer s.Close()
	reg, in, err := wire.ReadInfo(s)
	if err != nil {
		if errors.Is(err, wire.ErrMalformed) && ctx.Err() == nil {
			n.strike(ai.ID, 2, fmt.Errorf("info answer: %w", err))
		}
		return zero, region.Info{}, fmt.Errorf("peer %s: %w", ai.ID, err)
	}
	if err := in.VerifySignature(pub); err != nil {
		n.strike(ai.ID, 3, fmt.Errorf("offered %s release %q: %w", target, in.Version, err))
		return zero, region.Info{}, fmt.Errorf("peer %s: offered release %q: %w", ai.ID, in.Version, err)
	}
	return reg, in, nil
}

// A Release is one signed release offered by one or more peers. Its Info
// verifies with the owner key; its bytes are checked by the caller.
type Release struct {
	src   *Source
	reg   [region.Size]byte
	info  region.Info
	id    [wire.IDLen]byte
	peers []peer.AddrInfo

	mu      sync.Mutex
	used    map[peer.ID]bool // peers this Release fetched from
	found   []peer.AddrInfo  // the last lookup of the release's providers
	foundAt time.Time
}

// Info returns the release's signed region.
func (r *Release) Info() region.Info { return r.info }

// String names the release and, once this Release fetched bytes, the peers
// they came from. The update engine remembers a release that failed by this
// name, so a release whose bytes from one peer did not verify is tried again
// at the next poll (Releases returns new Release values), from other peers:
// the ones that delivered bad bytes get strikes.
func (r *Release) String() string {
	r.mu.Lock()
	var from []string
	for p := range r.used {
		from = append(from, p.String())
	}
	r.mu.Unlock()
	slices.Sort(from)
	if len(from) == 0 {
		return fmt.Sprintf("p2p %s release %s", r.src.target, r.info.Version)
	}
	return fmt.Sprintf("p2p %s release %s from %s", r.src.target, r.info.Version, strings.Join(from, ","))
}

// ID returns the release ID (see wire.ReleaseID).
func (r *Release) ID() [wire.IDLen]byte { return r.id }

// Peers returns the peers that offered the release.
func (r *Release) Peers() []peer.ID {
	var out []peer.ID
	for _, ai := range r.peers {
		out = append(out, ai.ID)
	}
	return out
}

// Open fetches the release from offset. It asks the peers that offered it
// and the DHT's providers of the release, starting each call with a
// different peer and putting peers with strikes last; a busy peer is
// skipped, and when all are busy Open waits and asks again, up to
// maxOpenRounds rounds. The returned reader yields exactly the bytes the
// signed size leaves from offset, and fails (so the caller calls Open again
// with the offset reached) when the peer stalls for IdleTimeout or closes
// early.
func (r *Release) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	n := r.src.n
	total := r.info.Size + region.Size
	if offset < 0 || uint64(offset) > total {
		return nil, fmt.Errorf("release %s: offset %d outside 0..%d", r.info.Version, offset, total)
	}
	if offset == 0 {
		n.suspectDelivered(r.id)
	}
	var lastErr error
	for round := 0; round < maxOpenRounds; round++ {
		cands := r.candidates(ctx, round > 0 || len(r.peers) == 0)
		if len(cands) == 0 {
			lastErr = fmt.Errorf("%w: nobody offers release %s", ErrNoPeers, r.info.Version)
		}
		busy := 0
		for _, ai := range cands {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			rc, err := n.fetch(ctx, r.src.pub, r.src.target, r.id, total, uint64(offset), ai)
			if err == nil {
				r.mu.Lock()
				if r.used == nil {
					r.used = map[peer.ID]bool{}
				}
				r.used[ai.ID] = true
				r.mu.Unlock()
				return rc, nil
			}
			lastErr = err
			if errors.Is(err, wire.ErrBusy) {
				busy++
			}
		}
		wait := min(50*time.Millisecond<<round, 500*time.Millisecond)
		wait += time.Duration(rand.Int64N(int64(wait)))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return nil, fmt.Errorf("%w: release %s not served after %d rounds: %w", ErrNoPeers, r.info.Version, maxOpenRounds, lastErr)
}

// candidates returns the peers to fetch from, in the order to try them.
func (r *Release) candidates(ctx context.Context, lookup bool) []peer.AddrInfo {
	n := r.src.n
	all := append([]peer.AddrInfo{}, r.peers...)
	r.mu.Lock()
	fresh := time.Since(r.foundAt) < openLookupTimeout
	found := r.found
	r.mu.Unlock()
	if lookup && !fresh {
		// Short lookups, at most one per openLookupTimeout: while every
		// peer is busy, the rounds must come back quickly to grab a slot
		// as it frees.
		ch := make(chan peer.AddrInfo, maxCandidates)
		go n.candidates(ctx, r.src.pub, ReleaseCID(r.src.pub, r.src.target, r.id), min(n.cfg.LookupTimeout, openLookupTimeout), ch)
		found = nil
		for ai := range ch {
			found = append(found, ai)
		}
		r.mu.Lock()
		r.found, r.foundAt = found, time.Now()
		r.mu.Unlock()
	}
	all = append(all, found...)
	seen := map[peer.ID]bool{n.h.ID(): true}
	var out []peer.AddrInfo
	for _, ai := range all {
		if !seen[ai.ID] {
			seen[ai.ID] = true
			out = append(out, ai)
		}
	}
	if len(out) == 0 {
		return nil
	}
	// Rotate so that each call starts with another peer, then put peers
	// with strikes last (stable, so the rotation holds among equals).
	n.mu.Lock()
	turn := n.turns[r.id]
	n.turns[r.id] = turn + 1
	n.mu.Unlock()
	k := turn % len(out)
	out = append(out[k:], out[:k]...)
	strikes := map[peer.ID]int{}
	for _, ai := range out {
		strikes[ai.ID] = n.strikesOf(ai.ID)
	}
	slices.SortStableFunc(out, func(a, b peer.AddrInfo) int { return strikes[a.ID] - strikes[b.ID] })
	// Drop peers with too many strikes unless nobody else is left.
	good := out[:0:0]
	for _, ai := range out {
		if strikes[ai.ID] < maxStrikes {
			good = append(good, ai)
		}
	}
	if len(good) > 0 {
		return good
	}
	return out
}

// suspectDelivered gives a strike to every peer that delivered the whole
// release id before: the caller asking for it from the start again means the
// bytes did not verify.
func (n *Node) suspectDelivered(id [wire.IDLen]byte) {
	n.mu.Lock()
	ps := n.delivered[id]
	delete(n.delivered, id)
	n.mu.Unlock()
	for p := range ps {
		n.strike(p, 3, fmt.Errorf("delivered release bytes that were asked for again (failed verification)"))
	}
}

// fetch asks ai for release id from offset and returns a reader of exactly
// the total-offset bytes that follow.
func (n *Node) fetch(ctx context.Context, pub ed25519.PublicKey, target string, id [wire.IDLen]byte, total, offset uint64, ai peer.AddrInfo) (io.ReadCloser, error) {
	s, err := n.request(ctx, pub, ai, &wire.Request{Kind: wire.KindFetch, Target: target, ID: id, Offset: offset})
	if err != nil {
		return nil, err
	}
	if err := wire.ReadFetchHeader(s, total-offset); err != nil {
		s.Reset()
		if !errors.Is(err, wire.ErrBusy) && !errors.Is(err, wire.ErrNotFound) {
			n.strike(ai.ID, 2, fmt.Errorf("fetch answer: %w", err))
		}
		return nil, fmt.Errorf("peer %s: %w", ai.ID, err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	return &fetchReader{ctx: ctx, n: n, s: s, peer: ai.ID, id: id, left: total - offset, stop: stop}, nil
}

// fetchReader reads the body of a fetch response: exactly left bytes, each
// read within IdleTimeout.
type fetchReader struct {
	ctx  context.Context
	n    *Node
	s    network.Stream
	peer peer.ID
	id   [wire.IDLen]byte
	left uint64
	stop func() bool
	err  error

	window time.Time // start of the current progress window
	got    uint64    // bytes received in it
}

// minProgress is what a peer must send within each IdleTimeout of a
// transfer.
const minProgress = 64 << 10

func (f *fetchReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.left == 0 {
		f.n.markDelivered(f.id, f.peer)
		f.err = io.EOF
		return 0, io.EOF
	}
	if uint64(len(p)) > f.left {
		p = p[:f.left]
	}
	// The peer must deliver minProgress bytes (or the rest) within each
	// IdleTimeout: a per-read deadline alone would let a peer that drips
	// a byte at a time hold the download forever.
	if f.window.IsZero() || f.got >= minProgress {
		f.window, f.got = time.Now(), 0
		f.s.SetReadDeadline(f.window.Add(f.n.cfg.IdleTimeout))
	}
	k, err := f.s.Read(p)
	f.got += uint64(k)
	f.left -= uint64(k)
	f.n.stats.down.Add(uint64(k))
	if err != nil {
		if errors.Is(err, io.EOF) && f.left == 0 {
			return k, nil
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		f.err = fmt.Errorf("peer %s: transfer broke with %d bytes left: %w", f.peer, f.left, err)
		if f.ctx.Err() == nil {
			f.n.strike(f.peer, 2, f.err)
		}
		return k, f.err
	}
	return k, nil
}

func (f *fetchReader) Close() error {
	f.stop()
	if f.left > 0 {
		return f.s.Reset()
	}
	return f.s.Close()
}

// markDelivered records that p delivered the whole of release id.
func (n *Node) markDelivered(id [wire.IDLen]byte, p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.delivered[id]
	if m == nil {
		m = map[peer.ID]bool{}
		n.delivered[id] = m
	}
	m[p] = true
}
