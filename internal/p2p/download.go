package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/org/rustpatcher-go/internal/p2p/sched"
	"github.com/org/rustpatcher-go/internal/pack"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// The shape of a download.
const (
	// fetchParallel is the number of peers a download asks at once, each
	// with at most one request in flight. A v0 release, whose pieces
	// cannot be checked on arrival, is fetched from one peer at a time.
	fetchParallel = 4
	// fetchWindow is the number of pieces, from the one the reader is at,
	// that may be asked for or held at once: the reader gets the bytes in
	// order, and the memory a download holds is at most fetchWindow
	// pieces and a second copy of one of them (17 MiB; more only where
	// the tail is longer than a piece: see bound), whatever the length of
	// the file.
	fetchWindow = 16
	// piecesPerRequest is the number of pieces asked of one peer at a time
	// while several peers may be asked; the only peer known gets
	// wire.MaxPiecesPerRequest.
	piecesPerRequest = 4
	// maxIdleRounds bounds the rounds in which a download finds no peer
	// to ask and receives no piece; it then fails, and the caller may open
	// the file again.
	maxIdleRounds = 12
	// minProgress is what a peer must send within each IdleTimeout of an
	// answer: a peer that stalls, or drips a byte at a time, is dropped.
	minProgress = 64 << 10
	// stealAfter is how long a piece may be on its way from one peer
	// before a worker with nothing else to do asks another peer for it
	// too: a slow peer (one that sends just enough not to be dropped)
	// must not hold the window, and the download, for long. One request
	// at a time asks for pieces on their way from another peer; whichever
	// copy arrives first is kept (see sched).
	stealAfter = 2 * time.Second
	// endgameAfter is the silence after which, once every piece left of
	// the file is asked for, a peer's piece is asked of another too (and
	// twice the peer's pace): the last pieces wait less for a peer that
	// stalls. Not at once, as BitTorrent's endgame asks, since a piece
	// cannot be cancelled within an answer: a second copy costs its
	// peer's upload; and not less than a second, which a node short of
	// CPU may leave a fast peer's stream unread.
	endgameAfter = time.Second
)

// errBadData marks provably bad data from a peer: a piece or a list of
// piece hashes that does not match the signed root. The peer gets a strike.
var errBadData = errors.New("bad data")

// Failures of packed pieces (see fetchMode). The peer of a packed piece
// that fails, malformed, not decoding or not matching the signed root, gets
// a strike and is asked again in the next mode down: deltas, compressed
// pieces, raw pieces; so a bad delta or compressed stream costs a fallback
// to the full release, and an honest peer whose frames are damaged still
// delivers it.
var (
	// errBadDelta: a piece asked as a delta failed.
	errBadDelta = errors.New("bad delta")
	// errBadPacked: a piece asked compressed failed.
	errBadPacked = errors.New("bad compressed piece")
	// errNoPacked: the peer refused a packed request (an older node).
	errNoPacked = errors.New("packed pieces refused")
)

// A download fetches one file from an offset to its end, for one call of
// Release.Open, and is the reader Open returns. Which piece to ask of which
// peer, when to ask a second peer for a piece and when to leave a peer
// alone is decided by a sched.Scheduler, under d.mu; this type does the
// network's part: a manager goroutine (run) starts a worker for each peer
// the scheduler names, each worker does what the scheduler tells it
// (fetch the piece hashes, a run of pieces, or wait), checks each piece
// as it arrives and hands it to the reader, which gets the bytes in order.
//
// A peer that sends provably bad data (a piece or hash list that does not
// match the signed root, a malformed answer) gets a strike and is not asked
// for this file again. A peer that is busy, does not have the file, resets
// or refuses the stream, stalls or drips gets no strike: it is skipped for a
// while (longer after each failure) and asked again later.
type download struct {
	r        *Release
	n        *Node
	l        wire.Layout
	parallel int
	base     *served  // the node's own file that peers hold deltas from, or nil; released by Close
	into     *os.File // the file the download writes for its caller (Release.OpenFile), or nil
	from     int64    // the offset Open started at

	ctx    context.Context // ends with Close, a failure or the caller's context
	cancel context.CancelFunc
	wg     sync.WaitGroup // run, the workers and lookups
	closed sync.Once

	mu      sync.Mutex
	s       *sched.Scheduler
	wake    chan struct{}             // closed and replaced on every change
	skip    int64                     // bytes of the reader's piece already read
	data    map[int64][]byte          // received pieces, all in the window
	free    [][]byte                  // piece buffers to use again
	held    int64                     // bytes in piece buffers in use
	maxHeld int64                     // the most bytes ever held, for tests
	peers   map[peer.ID]peer.AddrInfo // every peer the download knows
	err     error                     // why the download failed; the reader returns it
	lastErr error                     // the last failure of a peer
	outs    [5]int                    // workers ended, by sched.Outcome, for traces
	asked   map[int64]bool            // pieces asked of a peer, for Stats.PiecesAskedTwice

	// Connected speakers (see connectedSpeakers): nothing says they hold
	// the file, so they join the scheduler (peers) only once a have answer
	// names a piece.
	pending map[peer.ID]bool // speakers asked have, not in the scheduler yet
	proven  map[peer.ID]bool // pending speakers a lookup found as providers since
	refused map[peer.ID]bool // speakers that refused have requests (older nodes)
	unheard map[peer.ID]bool // speakers whose have poll ended with not found or failures

	havePolls  chan struct{} // a token per have request or watch in flight (see pollHave)
	haveWanted atomic.Int32  // polls waiting for a token
}

// newDownload returns the download of r's file from offset, which must be
// below its length, not started yet.
func newDownload(ctx context.Context, r *Release, offset int64) *download {
	ctx, cancel := context.WithCancel(ctx)
	l := r.offer.Layout
	d := &download{
		r:        r,
		n:        r.src.n,
		l:        l,
		parallel: fetchParallel,
		ctx:      ctx,
		cancel:   cancel,
		wake:     make(chan struct{}),
		data:     map[int64][]byte{},
		peers:    map[peer.ID]peer.AddrInfo{},
		asked:    map[int64]bool{},
		pending:  map[peer.ID]bool{},
		proven:   map[peer.ID]bool{},
		refused:  map[peer.ID]bool{},
		unheard:  map[peer.ID]bool{},

		havePolls: make(chan struct{}, havePolls),
	}
	next := l.PieceAt(offset)
	off, _ := l.Piece(next)
	d.skip = offset - off
	d.from = offset
	if r.offer.Info.Format != region.V1 {
		d.parallel = 1
	}
	d.base = r.deltaBase()
	random := 0
	if r.offer.Info.Format == region.V1 {
		random = randomFirst
	}
	d.s = sched.New(sched.Config{
		Pieces:        l.NumPieces(),
		First:         next,
		Tail:          l.NumPieces() > 0 && l.IsTail(l.NumPieces()-1),
		TailFor:       sched.PeerID(r.firstPieceFrom()),
		Window:        fetchWindow,
		Parallel:      d.parallel,
		PerRequest:    piecesPerRequest,
		MaxPerRequest: wire.MaxPiecesPerRequest,
		StealAfter:    stealAfter,
		EndgameAfter:  endgameAfter,
		NeedHashes:    r.needsHashes(),
		RandomFirst:   random,
		Trade:         random > 0 && d.n.cfg.PiecesEarly,
		MaxIdleRounds: maxIdleRounds,
		LookupEvery:   lookupEvery,
		Rand:          rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	})
	d.addPeers(r.candidates())
	return d
}

// start starts the manager, and serves the file in part from now on when
// the piece hashes are in (startPartial; otherwise once they are).
func (d *download) start() {
	if d.r.pieceLeaves() != nil {
		d.n.startPartial(d.r, d.into)
	}
	d.wg.Add(1)
	go d.run()
}

// bound returns the most bytes the download may hold in piece buffers:
// fetchWindow pieces, one of which may be the tail, and a second copy of
// one piece on its way from another peer (see stealAfter).
func (d *download) bound() int64 {
	return (fetchWindow-1)*region.PieceSize + 2*d.l.MaxPieceLen()
}

// notifyLocked wakes everyone waiting for a change. d.mu is held.
func (d *download) notifyLocked() {
	close(d.wake)
	d.wake = make(chan struct{})
}

// failLocked ends the download with err, unless it ended already. d.mu is
// held.
func (d *download) failLocked(err error) {
	if d.err == nil {
		d.err = err
		d.s.Fail(err.Error())
		d.cancel()
		d.notifyLocked()
	}
}

// addPeers adds candidates the download does not know yet, after those it
// knows: peers that offered the file in their info answer, or providers of
// it in the DHT. The peers that sent bad data for this file are not among
// them. A peer that offered the file holds all of it; with
// Config.PiecesEarly, a provider of a v1 release may hold only some
// pieces: it is added holding none, and asked which it holds (pollHave).
// Without it, every peer is asked as if it held the whole file, as nodes
// did before have requests.
func (d *download) addPeers(ais []peer.AddrInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addPeersLocked(ais, false)
}

// addPeersLocked adds ais as addPeers does or, with speakers, as connected
// speakers (connectedSpeakers): peers that may hold pieces of the file or
// none. A speaker is only asked which it holds (pollHave), and joins the
// scheduler once it names a piece: until then it counts for nothing (a
// download whose other peers all sent bad data fails at once, as without
// speakers), and one that refuses, answers not found or fails is not asked
// again by this download, unless a lookup finds it as a provider of the
// file: then it is added as one. d.mu is held.
func (d *download) addPeersLocked(ais []peer.AddrInfo, speakers bool) {
	self := d.n.h.ID()
	added := false
	for _, ai := range ais {
		if _, known := d.peers[ai.ID]; known || ai.ID == self {
			continue
		}
		poll := d.n.cfg.PiecesEarly && !d.n.cfg.noHave && d.r.offer.Info.Format == region.V1 && !d.r.offered(ai.ID)
		switch {
		case d.pending[ai.ID]:
			if !speakers {
				d.proven[ai.ID] = true // its poll adds it as a provider
			}
			continue
		case d.refused[ai.ID] || d.unheard[ai.ID]:
			if speakers {
				continue // asked once
			}
		case speakers:
			if poll {
				d.pending[ai.ID] = true
				d.wg.Add(1)
				go d.pollHave(ai)
			}
			continue
		}
		var has []bool
		if poll && !d.refused[ai.ID] {
			// A provider that refused have requests as a connected
			// speaker is a node of an older release: it holds the whole
			// file it announces (has nil).
			has = make([]bool, d.l.NumPieces())
		} else {
			poll = false
		}
		delete(d.refused, ai.ID)
		delete(d.unheard, ai.ID)
		if d.addLocked(ai, has) && poll {
			d.wg.Add(1)
			go d.pollHave(ai)
		}
		added = true
	}
	if added {
		d.notifyLocked()
	}
}

// addLocked adds ai to the scheduler holding has (nil: every piece), and
// reports whether it was new. d.mu is held.
func (d *download) addLocked(ai peer.AddrInfo, has []bool) bool {
	delta := d.r.modeFor(ai.ID, d.base) == modeDelta
	if !d.s.AddPeer(sched.PeerID(ai.ID), sched.PeerInfo{Delta: delta, Has: has}) {
		return false
	}
	d.peers[ai.ID] = ai
	return true
}

// holdsAllLocked records that peer id holds every piece. d.mu is held.
func (d *download) holdsAllLocked(id sched.PeerID) {
	for i := range d.l.NumPieces() {
		d.s.Have(id, i)
	}
}

// lookupLocked starts a lookup of the file's providers, which the
// scheduler asked for. d.mu is held.
func (d *download) lookupLocked() {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if d.n.cfg.PiecesEarly {
			near := d.connectedSpeakers()
			d.mu.Lock()
			d.addPeersLocked(near, true)
			d.mu.Unlock()
		}
		found := d.r.lookup(d.ctx)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.addPeersLocked(d.withoutBad(found), false)
		d.s.LookupDone(time.Now())
		d.notifyLocked() // the manager may wait for the lookup's end
	}()
}

// maxConnectedSpeakers bounds the connected peers a lookup adds at once.
const maxConnectedSpeakers = 32

// connectedSpeakers returns up to maxConnectedSpeakers peers this node is
// connected to whose identify lists the owner's protocol, at random, the
// peers with fewer strikes first: a node registers the protocol once it
// serves pieces of a release, so a swarm that downloads together finds its
// members without waiting for their DHT announcements. Nothing says that
// such a peer holds the file: it is asked only for the pieces it names in
// a have answer, and those of another file answer not found, or refuse
// the request (an older node), and are left alone. The peers that sent
// bad data for the file, and those with maxStrikes or more, are left out:
// a speaker is an extra, which a download needs less than a provider.
func (d *download) connectedSpeakers() []peer.AddrInfo {
	n := d.n
	proto := protocol.ID(wire.ProtocolID(d.r.src.pub))
	var out []peer.AddrInfo
	strikes := map[peer.ID]int{}
	for _, p := range n.h.Network().Peers() {
		if ok, _ := n.h.Peerstore().SupportsProtocols(p, proto); len(ok) == 0 {
			continue
		}
		if k := n.strikes.of(p); k < maxStrikes {
			strikes[p] = k
			out = append(out, peer.AddrInfo{ID: p, Addrs: n.h.Peerstore().Addrs(p)})
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	sort.SliceStable(out, func(i, j int) bool { return strikes[out[i].ID] < strikes[out[j].ID] })
	out = d.withoutBad(out)
	return out[:min(len(out), maxConnectedSpeakers)]
}

// withoutBad returns ais without the peers that sent bad data for the
// file, in any download of it.
func (d *download) withoutBad(ais []peer.AddrInfo) []peer.AddrInfo {
	d.r.mu.Lock()
	defer d.r.mu.Unlock()
	var out []peer.AddrInfo
	for _, ai := range ais {
		if !d.r.bad[ai.ID] {
			out = append(out, ai)
		}
	}
	return out
}

// run is the manager: it asks the scheduler what to do, starts the
// workers and lookups it names, and waits for a change or the time the
// scheduler gave, until every piece is received or the download failed.
func (d *download) run() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if d.err != nil {
			d.mu.Unlock()
			return
		}
		pl := d.s.Plan(time.Now())
		if pl.Fail != "" {
			d.failLocked(d.noPeersError(pl.Fail))
		}
		if pl.Done {
			d.mu.Unlock()
			return
		}
		for _, id := range pl.Start {
			d.wg.Add(1)
			go d.work(d.peers[peer.ID(id)])
		}
		if pl.Lookup {
			d.lookupLocked()
		}
		wake := d.wake
		d.mu.Unlock()
		if !d.wait(wake, pl.Wake) {
			d.mu.Lock()
			d.failLocked(d.ctx.Err())
			d.mu.Unlock()
		}
	}
}

// wait waits for wake to be closed or until (when it is set), and reports
// false when the download ended first.
func (d *download) wait(wake <-chan struct{}, until time.Time) bool {
	var fire <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(max(time.Until(until), time.Millisecond))
		defer t.Stop()
		fire = t.C
	}
	select {
	case <-wake:
	case <-fire:
	case <-d.ctx.Done():
		return false
	}
	return true
}

// noPeersError says why no peer could deliver. d.mu is held.
func (d *download) noPeersError(why string) error {
	err := fmt.Errorf("%w: file %x of release %s at piece %d: %s", ErrNoPeers, d.r.offer.FileID[:8], d.r.offer.Info.Version, d.s.ReaderAt(), why)
	if d.lastErr != nil {
		err = fmt.Errorf("%w (last: %w)", err, d.lastErr)
	}
	return err
}

// work does what the scheduler tells for peer ai until it says stop, or
// a request fails; it then tells the scheduler how it ended.
func (d *download) work(ai peer.AddrInfo) {
	defer d.wg.Done()
	id := sched.PeerID(ai.ID)
	err := d.serve(ai)
	out := sched.Finished
	var strike int
	bad := false
	d.mu.Lock()
	if err != nil && d.ctx.Err() == nil {
		d.lastErr = err
		switch {
		case errors.Is(err, errNoPacked):
			d.r.demote(ai.ID, modePacked) // an older node: ask it at once for raw pieces
			d.s.NoDelta(id)
			out = sched.Retry
		case errors.Is(err, errBadDelta), errors.Is(err, errBadPacked):
			strike = strikeForged
			if errors.Is(err, wire.ErrMalformed) {
				strike = strikeMalformed
			}
			m := modePacked
			if errors.Is(err, errBadDelta) {
				m = modeDelta
			}
			d.r.demote(ai.ID, m)
			d.s.NoDelta(id)
			out = sched.Retry
			d.n.log.Info("packed pieces from a peer failed; asking for the full pieces", "peer", ai.ID, "file", fmt.Sprintf("%x", d.r.offer.FileID[:8]), "err", err)
		case errors.Is(err, errBadData):
			bad, strike, out = true, strikeForged, sched.Bad
		case errors.Is(err, wire.ErrMalformed):
			bad, strike, out = true, strikeMalformed, sched.Bad
		case errors.Is(err, wire.ErrBusy):
			out = sched.Busy
		default:
			out = sched.Failed
			d.n.log.Debug("peer skipped for a while", "peer", ai.ID, "file", fmt.Sprintf("%x", d.r.offer.FileID[:8]), "err", err)
		}
	}
	d.s.Done(id, out, time.Now())
	d.outs[out]++
	d.notifyLocked()
	d.mu.Unlock()
	if strike > 0 {
		if bad {
			d.r.markBad(ai.ID)
		}
		d.n.strike(ai.ID, strike, fmt.Errorf("file %x of release %s: %w", d.r.offer.FileID[:8], d.r.offer.Info.Version, err))
	}
}

// serve asks ai for what the scheduler tells: the piece hashes, runs of
// pieces, until it says stop.
func (d *download) serve(ai peer.AddrInfo) error {
	id := sched.PeerID(ai.ID)
	var frame []byte
	defer func() { d.n.putFrameBuf(frame) }()
	for {
		d.mu.Lock()
		a := d.s.Next(id, time.Now())
		wake := d.wake
		if a.Kind == sched.Pieces {
			for _, p := range a.Pieces {
				if d.asked[p] {
					d.n.askedTwice.Add(1)
				}
				d.asked[p] = true
			}
		}
		d.mu.Unlock()
		switch a.Kind {
		case sched.Stop:
			return nil
		case sched.Hashes:
			err := d.fetchHashes(ai)
			d.mu.Lock()
			d.s.HashesDone(id, err == nil, time.Now())
			d.notifyLocked() // the manager may start more workers now
			d.mu.Unlock()
			if err != nil {
				return err
			}
		case sched.Pieces:
			if err := d.fetchPieces(ai, a.Pieces, &frame); err != nil {
				return err
			}
		case sched.Wait:
			if !d.wait(wake, a.Until) {
				return nil
			}
		}
	}
}

// fetchHashes asks ai for the file's piece hashes and keeps them when
// their root is the signed one.
func (d *download) fetchHashes(ai peer.AddrInfo) error {
	s, err := d.n.request(d.ctx, d.r.src.pub, ai, &wire.Request{Kind: wire.KindHashes, Target: d.r.src.target, ID: d.r.offer.FileID})
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(d.ctx, func() { s.Reset() })
	defer stop()
	leaves, err := wire.ReadHashes(s, d.l)
	if err != nil {
		s.Reset()
		return fmt.Errorf("peer %s: piece hashes: %w", ai.ID, err)
	}
	c, err := region.NewPieceChecker(d.r.offer.Info, leaves, d.l.Size)
	if err != nil {
		return fmt.Errorf("peer %s: %w: piece hashes: %w", ai.ID, errBadData, err)
	}
	d.r.setPieceChecker(c, leaves)
	d.n.startPartial(d.r, d.into)
	return nil
}

// fetchPieces asks ai for the pieces of batch, a run, checks each as it
// arrives and hands it to the reader at once. The check of a piece runs
// while the next one is read. The pieces not received go back to be asked
// of others when the worker ends (sched.Scheduler.Done).
//
// frame is the worker's buffer for the data of a packed piece before it
// is decoded, made when first needed.
func (d *download) fetchPieces(ai peer.AddrInfo, batch []int64, frame *[]byte) error {
	mode := d.r.modeFor(ai.ID, d.base)
	req := &wire.Request{Kind: wire.KindPieces, Target: d.r.src.target, ID: d.r.offer.FileID, First: uint32(batch[0]), Count: uint32(len(batch))}
	if mode != modePieces {
		req.Kind = wire.KindPacked
		if mode == modeDelta {
			req.Base = d.base.id
		}
	}
	s, err := d.n.request(d.ctx, d.r.src.pub, ai, req)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(d.ctx, func() { s.Reset() })
	defer stop()
	pr := &progressReader{s: s, idle: d.n.cfg.IdleTimeout}
	if err := wire.ReadPiecesHeader(pr); err != nil {
		s.Reset()
		if mode != modePieces && errors.Is(err, wire.ErrRefused) {
			err = fmt.Errorf("%w: %w", errNoPacked, err)
		}
		return fmt.Errorf("peer %s: %v pieces %d+%d: %w", ai.ID, req.Kind, batch[0], len(batch), err)
	}
	// prev is the check of the piece read before, if any: a piece that
	// passes is handed on by its check, without waiting for the next
	// piece to be read (a slow peer's piece 0 must reach the reader, and
	// wake the manager, as soon as it is in).
	var prev chan error
	finish := func() error {
		err := <-prev
		prev = nil
		return err
	}
	for _, i := range batch {
		buf := d.buffer(i)
		var b []byte
		var err error
		raw := false // the peer sent it as it is in a packed frame
		if mode == modePieces {
			if b, err = d.l.ReadPiece(pr, i, buf); err == nil {
				d.n.downloaded.Add(uint64(len(b)))
			}
		} else {
			if *frame == nil {
				*frame = d.n.frameBuf(d.l.MaxPieceLen())
			}
			b, raw, err = d.readPacked(pr, i, buf, *frame, mode)
		}
		if err != nil {
			d.putBuffer(buf)
			s.Reset()
			if prev != nil {
				if cerr := finish(); cerr != nil {
					err = cerr
				}
			}
			return fmt.Errorf("peer %s: %w", ai.ID, err)
		}
		ch := make(chan error, 1)
		go func() {
			err := d.check(i, b)
			if err != nil {
				if mode != modePieces {
					err = packedError(mode, err)
				}
				d.putBuffer(buf)
			} else if d.into != nil {
				d.receiveInto(ai.ID, i, b, raw)
			} else {
				d.n.keepPiece(d.r, i, b, raw, nil)
				d.receive(ai.ID, i, b)
			}
			ch <- err
		}()
		if prev != nil {
			if err := finish(); err != nil {
				s.Reset()
				<-ch
				return fmt.Errorf("peer %s: %w", ai.ID, err)
			}
		}
		prev = ch
	}
	if err := finish(); err != nil {
		s.Reset()
		return fmt.Errorf("peer %s: %w", ai.ID, err)
	}
	s.Close()
	return nil
}

// frameBuf returns a buffer of n bytes for the data of a packed piece:
// one a worker gave back when it is that size, since a fresh piece-sized
// buffer per worker cost a busy node more in zeroing and collection than
// the pieces' check.
func (n *Node) frameBuf(size int64) []byte {
	if b, ok := n.frames.Get().(*[]byte); ok && int64(len(*b)) == size {
		return *b
	}
	return make([]byte, size)
}

// putFrameBuf gives back a buffer that frameBuf returned (nil: none).
func (n *Node) putFrameBuf(b []byte) {
	if len(b) == region.PieceSize {
		n.frames.Put(&b)
	}
}

// readPacked reads the frame of piece i from r, its data into frame (a
// raw piece's straight into buf), and decodes it into buf; raw reports a
// piece the peer sent as it is, having found it not worth compressing. A
// frame that is malformed or does not decode fails with packedError; a
// failure to read the base, this node's own file, does not.
func (d *download) readPacked(r io.Reader, i int64, buf, frame []byte, mode fetchMode) (b []byte, raw bool, err error) {
	p, err := d.l.ReadPackedInto(r, i, frame, buf)
	if err != nil {
		if errors.Is(err, wire.ErrMalformed) {
			err = packedError(mode, err)
		}
		return nil, false, err
	}
	d.n.downloaded.Add(uint64(1 + len(p.Data)))
	_, n := d.l.Piece(i)
	if p.Method == wire.PackRaw {
		return p.Data, true, nil // read into buf, exactly the piece's length
	}
	dec, err := d.n.decoders.get(d.ctx)
	if err != nil {
		return nil, false, err
	}
	defer d.n.decoders.put(dec)
	var base io.ReaderAt
	var baseSize int64
	if mode == modeDelta {
		base, baseSize = d.base.f, d.base.layout.Size
	}
	if err := dec.Unpack(p, base, baseSize, buf[:n]); err != nil {
		if errors.Is(err, pack.ErrBad) {
			err = packedError(mode, fmt.Errorf("piece %d: %w", i, err))
		}
		return nil, false, err
	}
	return buf[:n], false, nil
}

// packedError marks err, the failure of a piece asked in mode m, as the
// failure of that mode (errBadDelta or errBadPacked).
func packedError(m fetchMode, err error) error {
	if m == modeDelta {
		return fmt.Errorf("%w: %w", errBadDelta, err)
	}
	return fmt.Errorf("%w: %w", errBadPacked, err)
}

// check checks piece i of a v1 release against the signed root and,
// where the piece holds the region, against the signed region, which the
// root leaves out. The tail, and every piece of a v0 release, cannot be
// checked here.
func (d *download) check(i int64, b []byte) error {
	in := d.r.offer.Info
	if in.Format != region.V1 || d.l.IsTail(i) {
		return nil
	}
	c := d.r.pieceChecker()
	if c == nil {
		return errors.New("no piece hashes to check against") // cannot happen: serve fetched them
	}
	if err := c.Check(i, b); err != nil {
		return fmt.Errorf("%w: %w", errBadData, err)
	}
	off, n := d.l.Piece(i)
	ro := int64(in.Offset)
	if lo, hi := max(off, ro), min(off+n, ro+region.Size); lo < hi {
		if !bytes.Equal(b[lo-off:hi-off], d.r.offer.Region[lo-ro:hi-ro]) {
			return fmt.Errorf("%w: piece %d holds another region than the signed one", errBadData, i)
		}
	}
	return nil
}

// buffer returns a buffer for piece i: one of PieceSize bytes, used again
// once read, or one of the tail's length.
func (d *download) buffer(i int64) []byte {
	_, n := d.l.Piece(i)
	d.mu.Lock()
	defer d.mu.Unlock()
	var b []byte
	switch {
	case n > region.PieceSize:
		b = make([]byte, n)
	case len(d.free) > 0:
		b = d.free[len(d.free)-1]
		d.free = d.free[:len(d.free)-1]
	default:
		b = make([]byte, region.PieceSize)
	}
	d.held += int64(cap(b))
	d.maxHeld = max(d.maxHeld, d.held)
	return b
}

// putBuffer gives back a buffer that buffer returned.
func (d *download) putBuffer(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.putBufferLocked(b)
}

func (d *download) putBufferLocked(b []byte) {
	d.held -= int64(cap(b))
	if cap(b) == region.PieceSize && d.err == nil {
		d.free = append(d.free, b[:cap(b)])
	}
}

// receive hands piece i, checked, from p to the reader, unless another
// peer asked for it too delivered it first.
func (d *download) receive(p peer.ID, i int64, b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil || !d.s.Received(sched.PeerID(p), i, time.Now()) {
		d.putBufferLocked(b) // the other copy came first
		d.notifyLocked()
		return
	}
	d.data[i] = b
	d.r.delivered(p, i)
	d.notifyLocked()
}

// receiveInto is receive for a download that writes the file for its
// caller (Release.OpenFile): it writes piece i, checked, from p at its
// offset in d.into, unless another peer's copy came first, before the
// reader may read it, so that the file holds every byte the reader
// returned; the node serves the piece from there (keepPiece). A failed
// write fails the download with an error that wraps ErrWrite.
func (d *download) receiveInto(p peer.ID, i int64, b []byte, raw bool) {
	d.mu.Lock()
	if d.err != nil || !d.s.Received(sched.PeerID(p), i, time.Now()) {
		d.putBufferLocked(b) // the other copy came first
		d.notifyLocked()
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	// Only the bytes the reader returns: below the offset Open started
	// at, the caller's file holds what it read before, which an unchecked
	// piece (piece 0's header fields, the tail) from another peer must not
	// overwrite.
	off, _ := d.l.Piece(i)
	from := max(0, d.from-off)
	if _, err := d.into.WriteAt(b[from:], off+from); err != nil {
		d.mu.Lock()
		d.putBufferLocked(b)
		d.failLocked(fmt.Errorf("%w: piece %d of file %x: %w", ErrWrite, i, d.r.offer.FileID[:8], err))
		d.mu.Unlock()
		return
	}
	if from == 0 {
		d.n.keepPiece(d.r, i, b, raw, d.into)
	} else {
		// The caller's file does not hold this download's copy of the
		// bytes below from: the node keeps the piece in a spool, if it
		// has one for the file, not in the caller's file.
		d.n.keepPiece(d.r, i, b, raw, nil)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		d.putBufferLocked(b)
		return
	}
	d.data[i] = b
	d.r.delivered(p, i)
	d.notifyLocked()
}

// Read reads the file's bytes in order, waiting for the pieces to arrive.
// It returns io.EOF at the end of the file, and the download's error once
// the bytes received before it failed are read.
func (d *download) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		next := d.s.ReaderAt()
		if next == d.l.NumPieces() {
			return 0, io.EOF
		}
		if b := d.data[next]; b != nil {
			k := copy(p, b[d.skip:])
			d.skip += int64(k)
			if d.skip == int64(len(b)) {
				d.putBufferLocked(b)
				delete(d.data, next)
				d.s.Consumed()
				d.skip = 0
				d.notifyLocked()
			}
			return k, nil
		}
		if d.err != nil {
			return 0, d.err
		}
		wake := d.wake
		d.mu.Unlock()
		<-wake // failLocked notifies when the download ends
		d.mu.Lock()
	}
}

// Close stops the download and waits for its goroutines.
func (d *download) Close() error {
	d.closed.Do(func() {
		d.mu.Lock()
		d.failLocked(errors.New("download closed"))
		d.mu.Unlock()
		d.wg.Wait()
		d.mu.Lock()
		d.data, d.free = nil, nil
		d.mu.Unlock()
		if d.base != nil {
			d.base.release()
		}
	})
	return nil
}

// progressReader reads an answer from s and requires minProgress bytes
// (or the rest) within every idle period: a per-read deadline alone would
// let a peer that drips a byte at a time hold the download forever.
type progressReader struct {
	s      network.Stream
	idle   time.Duration
	window time.Time // start of the current progress window
	got    int       // bytes received in it
}

func (r *progressReader) Read(p []byte) (int, error) {
	if r.window.IsZero() || r.got >= minProgress {
		r.window, r.got = time.Now(), 0
		r.s.SetReadDeadline(r.window.Add(r.idle))
	}
	k, err := r.s.Read(p)
	r.got += k
	return k, err
}
