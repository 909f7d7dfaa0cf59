package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Limits of fetching a release.
const (
	maxOpenRounds     = 12          // rounds of asking every candidate in one Open
	openLookupTimeout = time.Second // see Release.candidates
)

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

// FileID is zero: the v0 protocol does not name the file before the
// download.
func (r *Release) FileID() [sha256.Size]byte { return [sha256.Size]byte{} }

// Size is the length of the file peers serve: its content.
func (r *Release) Size() int64 { return r.info.ContentLen() }

// Reject is told that the bytes this Release delivered were refused; the
// peers that delivered them get strikes the next time the release is
// fetched from the start.
func (r *Release) Reject(reason error) {}

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
	total := uint64(r.info.ContentLen())
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
	k := n.book.nextTurn(r.id) % len(out)
	out = append(out[k:], out[:k]...)
	strikes := map[peer.ID]int{}
	for _, ai := range out {
		strikes[ai.ID] = n.strikes.of(ai.ID)
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
	for _, p := range n.book.takeDelivered(id) {
		n.strike(p, strikeForged, errors.New("delivered release bytes that were asked for again (failed verification)"))
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
			n.strike(ai.ID, strikeMalformed, fmt.Errorf("fetch answer: %w", err))
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
		f.n.book.markDelivered(f.id, f.peer)
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
	f.n.downloaded.Add(uint64(k))
	if err != nil {
		if errors.Is(err, io.EOF) && f.left == 0 {
			return k, nil
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		f.err = fmt.Errorf("peer %s: transfer broke with %d bytes left: %w", f.peer, f.left, err)
		if f.ctx.Err() == nil {
			f.n.strike(f.peer, strikeMalformed, f.err)
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
