package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/exefmt"
	"github.com/org/rustpatcher-go/internal/p2p/sched"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Pieces before the whole file (docs/PROTOCOL.md, "Serving pieces early"):
// a node serves each piece of a v1 release it is downloading as soon as it
// checked it against the signed root, from a spool file of its own, and
// peers learn which pieces it holds with have requests.
const (
	// maxPartials bounds the files a node serves while it downloads them.
	maxPartials = 2
	// maxHaveWaits bounds the have requests a node holds open at once
	// (see serveHave); above it, a have request is answered at once.
	maxHaveWaits = 64
	// havePolls bounds the watches (and have requests, of peers that
	// refuse watches) one download has in flight. A watch gives its turn
	// on after wire.MaxHaveWait when another peer waits for one (and a
	// have request is held that long at most), so a bound below the peers
	// a download knows leaves its turns with peers that have nothing new
	// while others gain pieces unseen: in the swarm simulator, with have
	// requests, 10,000 nodes with 20% dial-out-only and 5% churn took
	// 9.2 s with 32, 8.7 s with 64 and 7.5 s with 128 or none
	// (docs/BENCHMARKS.md). 128 streams stay well within the outbound
	// streams the resource manager allows the service (256).
	havePolls = 128
	// haveEvery is the least time between two have requests of one
	// download to one peer, and haveIdle the time after an answer that
	// told nothing new (the peer was too busy to hold the request).
	haveEvery = 100 * time.Millisecond
	haveIdle  = 500 * time.Millisecond
	// haveFails is the number of failed have requests in a row after
	// which a download stops asking a peer.
	haveFails = 3
	// randomFirst is the number of pieces a download picks at random,
	// rather than rarest first, so that nodes that start together from
	// one seed fetch different pieces and have some to trade at once.
	randomFirst = 4
)

// partial is what a served file being downloaded adds: which pieces the
// spool file holds. A piece is set only once it is written.
type partial struct {
	path string // the spool file, removed with the last reference; "" when into
	// into, when set, is the file a download writes for its caller
	// (Release.OpenFile), which the node serves from instead of a spool
	// of its own (served.f is its own read handle): only that download
	// adds pieces, having written them.
	into *os.File

	mu      sync.Mutex
	have    wire.Bitfield
	count   int
	changed chan struct{} // closed and replaced when a piece is added, and at the end
	ended   bool          // no longer served in part (see end)
}

// end records that the file is no longer served in part, served whole
// from now on or not at all, and wakes the watches of it (serveWatch).
func (p *partial) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ended {
		p.ended = true
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// holdsRange reports whether s holds count pieces from first: every piece
// of a whole file, only those written of one being downloaded.
func (s *served) holdsRange(first, count uint32) bool {
	if s.part == nil {
		return true
	}
	s.part.mu.Lock()
	defer s.part.mu.Unlock()
	for i := int64(first); i < int64(first)+int64(count); i++ {
		if !s.part.have.Has(i) {
			return false
		}
	}
	return true
}

// haveState returns a copy of the pieces s holds, their number, and a
// channel closed when it holds more or is no longer served in part (nil
// for a whole file); ended reports the latter.
func (s *served) haveState() (bf wire.Bitfield, count int, changed <-chan struct{}, ended bool) {
	if s.part == nil {
		b := wire.NewBitfield(s.layout)
		for i := range s.layout.NumPieces() {
			b.Set(i)
		}
		return b, int(s.layout.NumPieces()), nil, false
	}
	s.part.mu.Lock()
	defer s.part.mu.Unlock()
	return append(wire.Bitfield(nil), s.part.have...), s.part.count, s.part.changed, s.part.ended
}

// earlyServable reports whether piece i, checked against the signed root,
// may be served before the whole file is verified: any content piece, but
// the tail, which nothing checks on arrival, and piece 0 where it holds
// header fields the root leaves out (a code signature's), which only the
// engine's check of the whole file covers. A node never passes on bytes it
// could be struck for.
func earlyServable(l wire.Layout, i int64, b []byte) bool {
	switch {
	case l.IsTail(i):
		return false
	case i != 0:
		return true
	case l.Size != l.Content:
		return false
	}
	h, err := exefmt.Parse(b[:min(len(b), exefmt.MaxHeader)], l.Size)
	return err == nil && len(h.Mutable) == 0
}

// keepPiece writes piece i of r's file, b, checked against the signed
// root, to the node's spool of the file and serves it from there at once,
// when the node serves pieces early (Config.PiecesEarly).
// The spool is made as the download has the piece hashes (startPartial)
// or at the first piece, when the node serves the file neither whole nor
// in part, and announced in the DHT under the file's release key; a
// failure to write it costs only the early serving. raw reports that the
// peer sent the piece as it is, having found it not worth compressing: the
// node's uploads of it do not try either.
//
// into is the file the download writes for its caller (Release.OpenFile),
// which holds b at its offset already, or nil: when the node serves the
// file from into, the piece is not written again; when it serves it from
// another caller's file, which it does not write, the piece is left out.
func (n *Node) keepPiece(r *Release, i int64, b []byte, raw bool, into *os.File) {
	if !earlyServable(r.offer.Layout, i, b) {
		return
	}
	sv := n.partialOf(r, into)
	if sv == nil {
		return
	}
	defer sv.release()
	p := sv.part
	p.mu.Lock()
	if p.have.Has(i) || (p.into != nil && p.into != into) {
		p.mu.Unlock()
		return
	}
	if p.into == nil {
		off, _ := sv.layout.Piece(i)
		if _, err := sv.f.WriteAt(b, off); err != nil {
			p.mu.Unlock()
			n.log.Warn("cannot keep a piece to serve it early", "file", fmt.Sprintf("%x", sv.id[:8]), "piece", i, "err", err)
			return
		}
	}
	if raw {
		sv.setRaw(i) // its uploads send it as it is, without a try
	}
	p.have.Set(i)
	p.count++
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// startPartial makes the spool of r's file and announces it, when the node
// serves pieces early, as soon as a download of the file has its piece
// hashes: before its first piece, so that peers find the node in the DHT
// while it has none and learn of each piece as it comes by their have
// requests, rather than a lookup after its first piece (in the swarm
// simulator, 1,000 nodes are done in 6.0 s rather than 7.1 s, with a
// third of the busy answers; docs/BENCHMARKS.md).
func (n *Node) startPartial(r *Release, into *os.File) {
	if sv := n.partialOf(r, into); sv != nil {
		sv.release()
	}
}

// partialOf returns the file of r this node serves in part, with a
// reference taken, making it and announcing it when it serves the file
// neither whole nor in part (from into when set, see partialFor); nil
// when the node does not serve pieces early, or the file cannot be.
func (n *Node) partialOf(r *Release, into *os.File) *served {
	if !n.cfg.PiecesEarly || n.cfg.noHave || r.offer.Info.Format != region.V1 {
		return nil
	}
	sv, isNew := n.server.partialFor(n, r, into)
	if sv != nil && isNew {
		n.ann.add(ReleaseCID(sv.pub, sv.target, sv.id), fmt.Sprintf("release %s %s file %x (pieces)", sv.target, sv.info.Version, sv.id[:8]))
		n.log.Debug("serving pieces of a release while it downloads", "target", sv.target, "version", sv.info.Version, "file", fmt.Sprintf("%x", sv.id[:8]))
	}
	return sv
}

// partialFor returns the file of r this node serves in part, with a
// reference taken, making it when it serves the file neither whole nor in
// part; nil when it serves it whole, has maxPartials files in part, does
// not have the piece hashes or cannot make the spool. isNew reports that
// it was made. A partial it makes serves from into, the file a download
// writes for its caller, when set and the node can open it for reading
// (not on Windows, where that handle would keep the caller from renaming
// the file): each piece is then written once. Otherwise it serves from a
// spool file of its own.
func (s *server) partialFor(n *Node, r *Release, into *os.File) (sv *served, isNew bool) {
	id := r.offer.FileID
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.byID[id] != nil {
		return nil, false
	}
	if sv = s.partials[id]; sv != nil {
		sv.acquire()
		return sv, false
	}
	leaves := r.pieceLeaves()
	if len(s.partials) >= maxPartials || leaves == nil || s.isWithdrawn(r.src.pub, r.src.target, r.offer.Info.Version) {
		return nil, false
	}
	part := &partial{have: wire.NewBitfield(r.offer.Layout), changed: make(chan struct{})}
	f := readerOf(into)
	if f != nil {
		part.into = into
	} else {
		var err error
		if f, err = os.CreateTemp(n.cfg.spoolDir, "rustpatcher-pieces-*"); err != nil {
			n.log.Warn("cannot make a spool to serve pieces early", "err", err)
			return nil, false
		}
		part.path = f.Name()
	}
	sv = &served{pub: r.src.pub, target: r.src.target, info: r.offer.Info, reg: r.offer.Region, id: id, layout: r.offer.Layout,
		leaves: leaves, f: f, refs: 1, part: part}
	sv.raw = make([]atomic.Uint64, (r.offer.Layout.NumPieces()+63)/64)
	s.partials[id] = sv
	s.handleProtocol(sv.pub)
	sv.acquire()
	return sv, true
}

// readerOf opens a read handle of into, the file a download writes for
// its caller, for the node to serve from; nil when into is nil, on
// Windows, or when its path no longer names it.
func readerOf(into *os.File) *os.File {
	if into == nil || runtime.GOOS == "windows" {
		return nil
	}
	f, err := os.Open(into.Name())
	if err != nil {
		return nil
	}
	a, err1 := f.Stat()
	b, err2 := into.Stat()
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		f.Close()
		return nil
	}
	return f
}

// takePartial stops serving the file id in part and returns it (not
// released yet), or nil.
func (s *server) takePartial(id [wire.IDLen]byte) *served {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.partials[id]
	delete(s.partials, id)
	if sv != nil {
		sv.part.end()
	}
	return sv
}

// dropPartial stops serving the file id in part, and announcing it unless
// it is served whole.
func (n *Node) dropPartial(id [wire.IDLen]byte) {
	n.serveMu.Lock()
	sv := n.server.takePartial(id)
	if sv != nil && n.server.byIDOf(id) == nil {
		n.ann.remove(ReleaseCID(sv.pub, sv.target, id))
	}
	n.serveMu.Unlock()
	if sv != nil {
		sv.release()
	}
}

// serveHave answers a have request: the pieces of the file this node
// holds. When it holds no more than the asking node knows (Request.Known)
// and the file is not whole, it waits for a piece, at most MaxHaveWait
// (IdleTimeout if shorter), while it holds fewer than maxHaveWaits such
// requests; otherwise it answers at once. It takes no upload slot: the
// answer is one bit per piece.
func (s *server) serveHave(ctx context.Context, st network.Stream, pub ed25519.PublicKey, req *wire.Request) {
	sv := s.acquire(pub, req.Target, req.ID)
	if sv == nil {
		wire.WriteError(st, wire.StatusNotFound, "file not served here")
		return
	}
	defer sv.release()
	bf, count, changed, _ := sv.haveState()
	if changed != nil && count <= int(req.Known) {
		select {
		case s.haveWaits <- struct{}{}:
			t := time.NewTimer(min(wire.MaxHaveWait, s.idle))
			select {
			case <-changed:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			<-s.haveWaits
			bf, _, _, _ = sv.haveState()
		default:
		}
	}
	st.SetWriteDeadline(time.Now().Add(s.idle))
	wire.WriteHave(st, bf)
}

// serveWatch answers a watch request (wire.KindWatch): the pieces of the
// file this node holds at once, then again each time it holds more, at
// most one bitfield every wire.WatchEvery, and the same again after
// wire.MaxHaveWait without a change. It ends after a bitfield of the whole
// file (once served whole, the file's watches get one), when the node
// stops serving the file, or when the peer is gone (a write fails). A
// watch holds a stream, a goroutine and a reference to the file for as
// long as it runs: the node holds at most maxWatches of them, at most
// maxWatchesPerPeer of one peer; past either, the request gets its first
// bitfield alone, and the peer asks again later. It takes no upload slot.
func (s *server) serveWatch(ctx context.Context, st network.Stream, remote peer.ID, pub ed25519.PublicKey, req *wire.Request) {
	sv := s.acquire(pub, req.Target, req.ID)
	if sv == nil {
		wire.WriteError(st, wire.StatusNotFound, "file not served here")
		return
	}
	defer func() { sv.release() }()
	held := s.startWatch(remote)
	if held {
		defer s.endWatch(remote)
	}
	sent, first := 0, true
	var last time.Time
	for {
		bf, count, changed, ended := sv.haveState()
		if ended {
			// Served whole from now on, or not at all.
			whole := s.acquire(pub, req.Target, req.ID)
			if whole == nil || whole.part != nil {
				if whole != nil {
					whole.release()
				}
				return
			}
			sv.release()
			sv = whole
			continue
		}
		if first || count > sent || time.Since(last) >= wire.MaxHaveWait {
			st.SetWriteDeadline(time.Now().Add(s.idle))
			var err error
			if first {
				err = wire.WriteHave(st, bf)
			} else {
				err = wire.WriteWatchUpdate(st, bf)
			}
			if err != nil {
				return
			}
			s.counts.haveUpdates.Add(1)
			sent, first, last = count, false, time.Now()
		}
		if changed == nil || !held {
			return
		}
		t := time.NewTimer(time.Until(last.Add(wire.WatchEvery)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		t.Reset(time.Until(last.Add(wire.MaxHaveWait)))
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// The bounds of the watches a node serves (see serveWatch).
const (
	maxWatches        = 64
	maxWatchesPerPeer = 4
)

// startWatch takes a place for a watch of peer p, and reports false when
// the node holds maxWatches, or maxWatchesPerPeer of p's, already.
func (s *server) startWatch(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watchesHeld >= maxWatches || s.watchesOf[p] >= maxWatchesPerPeer {
		return false
	}
	s.watchesHeld++
	s.watchesOf[p]++
	return true
}

// endWatch gives back a place startWatch took.
func (s *server) endWatch(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchesHeld--
	if s.watchesOf[p]--; s.watchesOf[p] == 0 {
		delete(s.watchesOf, p)
	}
}

// askHave asks ai which pieces of the file it holds, telling it the number
// the download knows of.
func (d *download) askHave(ai peer.AddrInfo, known int) (wire.Bitfield, error) {
	s, err := d.n.request(d.ctx, d.r.src.pub, ai, &wire.Request{Kind: wire.KindHave, Target: d.r.src.target, ID: d.r.offer.FileID, Known: uint32(known)})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	stop := context.AfterFunc(d.ctx, func() { s.Reset() })
	defer stop()
	s.SetReadDeadline(time.Now().Add(wire.MaxHaveWait + d.n.cfg.IdleTimeout))
	bf, err := wire.ReadHave(s, d.l)
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("peer %s: have: %w", ai.ID, err)
	}
	return bf, nil
}

// watchHave asks ai to tell which pieces of the file it holds and each
// time it holds more (wire.KindWatch), telling it the number the download
// knows of, and calls got with each bitfield (update: after the first of
// the answer, which it names every piece of), until the answer ends (nil),
// fails, or got returns false.
func (d *download) watchHave(ai peer.AddrInfo, known int, got func(bf wire.Bitfield, update bool) bool) error {
	s, err := d.n.request(d.ctx, d.r.src.pub, ai, &wire.Request{Kind: wire.KindWatch, Target: d.r.src.target, ID: d.r.offer.FileID, Known: uint32(known)})
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(d.ctx, func() { s.Reset() })
	defer stop()
	s.SetReadDeadline(time.Now().Add(wire.MaxHaveWait + d.n.cfg.IdleTimeout))
	bf, err := wire.ReadHave(s, d.l)
	for update := false; err == nil; update = true {
		if !got(bf, update) {
			s.Reset() // the peer stops at its next write
			return nil
		}
		s.SetReadDeadline(time.Now().Add(wire.MaxHaveWait + d.n.cfg.IdleTimeout))
		bf, err = wire.ReadWatchUpdate(s, d.l, bf)
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	s.Reset()
	return fmt.Errorf("peer %s: watch: %w", ai.ID, err)
}

// pollHave learns which pieces ai holds, a provider of the file (which
// may hold only some) or a connected speaker (which may hold none; see
// addPeersLocked), and tells the scheduler each piece it gets, until it
// holds them all, the download ends, it answers not found or it fails
// haveFails times in a row. It watches ai (watchHave), asking again after
// each watch that ends early; a peer that refuses watches, a node of the
// release before them, is asked have requests instead. A provider that
// refuses those too is a node of an older release still, which serves only
// whole files: it holds every piece. A speaker that refuses them is left
// out, unless a lookup found it as a provider meanwhile: an older node
// connected for another reason (another release, the DHT), or a hostile
// one, is asked for nothing.
func (d *download) pollHave(ai peer.AddrInfo) {
	defer d.wg.Done()
	id := sched.PeerID(ai.ID)
	total := int(d.l.NumPieces())
	known, fails := 0, 0
	watch := !d.n.cfg.noWatch
	// ended ends the poll of a speaker that named no piece, and that
	// refused the request (older) or not: it is remembered as such,
	// unless a lookup found it as a provider meanwhile; then one that
	// refused is added holding every piece, and another is left out.
	ended := func(older bool) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.pending[ai.ID] {
			return
		}
		delete(d.pending, ai.ID)
		switch {
		case d.proven[ai.ID]:
			delete(d.proven, ai.ID)
			if older {
				d.addLocked(ai, nil)
			}
		case older:
			d.refused[ai.ID] = true
		default:
			d.unheard[ai.ID] = true
		}
		d.notifyLocked() // the download may have a peer more, or none left
	}
	// got takes a bitfield of ai's; it reports whether to go on
	// watching: while ai may hold more, unless the watch ran
	// wire.MaxHaveWait while another poll of the download waits for a
	// turn (then it gives its turn on). told is set when a bitfield named
	// more pieces than known before. An update that names no more pieces
	// than the one before (which it names all of: wire.ReadWatchUpdate)
	// is the same bitfield again, and costs no more than reading it: a
	// peer that sends it over and over wastes its own upload.
	told := false
	var since time.Time // the watch's start
	goOn := func() bool {
		return known < total && (time.Since(since) < wire.MaxHaveWait || d.haveWanted.Load() == 0)
	}
	got := func(bf wire.Bitfield, update bool) bool {
		fails = 0
		c := bf.Count()
		if update && c == known {
			return goOn()
		}
		if c > known {
			told = true
		}
		known = c
		if c > 0 {
			d.join(ai)
		}
		d.mu.Lock()
		news := false
		for i := range d.l.NumPieces() {
			if bf.Has(i) && d.s.Have(id, i) {
				news = true
			}
		}
		if news {
			d.notifyLocked() // only a piece the download still needs wakes it
		}
		d.mu.Unlock()
		return goOn()
	}
	for d.ctx.Err() == nil {
		d.haveWanted.Add(1)
		select {
		case d.havePolls <- struct{}{}:
			d.haveWanted.Add(-1)
		case <-d.ctx.Done():
			d.haveWanted.Add(-1)
			return
		}
		told, since = false, time.Now()
		var err error
		if watch {
			err = d.watchHave(ai, known, got)
			if errors.Is(err, wire.ErrRefused) {
				watch = false // a node of the release before watches
				<-d.havePolls
				continue
			}
		} else {
			var bf wire.Bitfield
			if bf, err = d.askHave(ai, known); err == nil {
				got(bf, false)
			}
		}
		<-d.havePolls
		wait := haveEvery
		switch {
		case errors.Is(err, wire.ErrRefused):
			d.mu.Lock()
			pending := d.pending[ai.ID]
			if !pending {
				d.holdsAllLocked(id)
				d.notifyLocked()
			}
			d.mu.Unlock()
			if pending {
				ended(true)
			}
			return
		case errors.Is(err, wire.ErrMalformed):
			d.r.markBad(ai.ID)
			d.n.strike(ai.ID, strikeMalformed, fmt.Errorf("file %x of release %s: %w", d.r.offer.FileID[:8], d.r.offer.Info.Version, err))
			ended(false)
			return
		case errors.Is(err, wire.ErrNotFound):
			ended(false)
			return
		case err != nil:
			if fails++; fails >= haveFails {
				ended(false)
				return
			}
			wait = haveIdle
		case known == total:
			return
		case !told:
			wait = haveIdle
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-d.ctx.Done():
			t.Stop()
			return
		}
	}
}

// join adds ai, a connected speaker that named a piece, to the scheduler
// holding none yet (pollHave tells it which), unless it is there.
func (d *download) join(ai peer.AddrInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending[ai.ID] {
		delete(d.pending, ai.ID)
		delete(d.proven, ai.ID)
		d.addLocked(ai, make([]bool, d.l.NumPieces()))
	}
}

// pieceLeaves returns the file's piece hashes once they are in.
func (r *Release) pieceLeaves() [][sha256.Size]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaves
}

// takePartials stops serving in part the files of target signed by pub
// whose version is among versions, and returns them (not released yet).
func (s *server) takePartials(pub ed25519.PublicKey, target string, versions []string) []*served {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*served
	for id, sv := range s.partials {
		if sv.pub.Equal(pub) && sv.target == target && slices.Contains(versions, sv.info.Version) {
			delete(s.partials, id)
			sv.part.end()
			out = append(out, sv)
		}
	}
	return out
}
