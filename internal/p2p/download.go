package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

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
	// must not hold the window, and the download, for long. One piece at
	// a time is asked twice; whichever copy arrives first is kept.
	stealAfter = 2 * time.Second
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
// Release.Open, and is the reader Open returns. A manager goroutine (run)
// keeps up to fetchParallel workers busy, one per peer; each worker asks
// its peer for runs of pieces inside the window, checks each piece as it
// arrives and hands it to the reader, which gets the bytes in order.
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
	base     *served // the node's own file that peers hold deltas from, or nil; released by Close

	ctx    context.Context // ends with Close, a failure or the caller's context
	cancel context.CancelFunc
	wg     sync.WaitGroup // run, the workers and lookups
	closed sync.Once

	mu         sync.Mutex
	wake       chan struct{}        // closed and replaced on every change
	next       int64                // the piece the reader is at
	skip       int64                // bytes of piece next already read
	pieces     map[int64]*pieceSlot // claimed or received pieces, all in the window
	free       [][]byte             // piece buffers to use again
	held       int64                // bytes in piece buffers in use
	maxHeld    int64                // the most bytes ever held, for tests
	peers      map[peer.ID]*fetchPeer
	order      []peer.ID // the peers in the order to ask them
	active     int       // workers running
	received   int       // pieces received, to tell progress
	tailFor    peer.ID   // the peer that delivered piece 0: it gets the tail
	withFirst  bool      // piece 0 is fetched by this download
	lookedUp   bool      // a lookup of providers has finished
	lookedUpAt time.Time // when the last one did
	looking    bool      // one runs
	err        error     // why the download failed; the reader returns it
	lastErr    error     // the last failure of a peer
}

// pieceSlot is a claimed or received piece.
type pieceSlot struct {
	by   peer.ID   // the peer asked for it
	at   time.Time // when it was asked
	dup  peer.ID   // another peer asked for it too (see stealAfter)
	data []byte    // nil while in flight
}

// fetchPeer is what a download knows of one peer.
type fetchPeer struct {
	ai      peer.AddrInfo
	active  bool      // a worker asks it
	bad     bool      // it sent provably bad data
	fails   int       // consecutive failures without a piece
	retryAt time.Time // not asked before
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
		next:     l.PieceAt(offset),
		pieces:   map[int64]*pieceSlot{},
		peers:    map[peer.ID]*fetchPeer{},
		tailFor:  r.firstPieceFrom(),
	}
	d.withFirst = d.next == 0
	off, _ := l.Piece(d.next)
	d.skip = offset - off
	if r.offer.Info.Format != region.V1 {
		d.parallel = 1
	}
	d.base = r.deltaBase()
	d.addPeers(r.candidates())
	return d
}

// start starts the manager, and a lookup of providers when fewer peers
// are known than the download would ask at once.
func (d *download) start() {
	d.mu.Lock()
	if len(d.order) < d.parallel {
		d.lookupLocked()
	}
	d.mu.Unlock()
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
		d.cancel()
		d.notifyLocked()
	}
}

// addPeers adds candidates the download does not know yet, after those it
// knows. The peers that sent bad data for this file are not among them.
func (d *download) addPeers(ais []peer.AddrInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addPeersLocked(ais)
}

func (d *download) addPeersLocked(ais []peer.AddrInfo) {
	self := d.n.h.ID()
	added := false
	for _, ai := range ais {
		if ai.ID == self || d.peers[ai.ID] != nil {
			continue
		}
		d.peers[ai.ID] = &fetchPeer{ai: ai}
		d.order = append(d.order, ai.ID)
		added = true
	}
	if added {
		d.notifyLocked()
	}
}

// lookupLocked starts a lookup of the file's providers unless one runs or
// the last one ended less than openLookupTimeout ago. d.mu is held.
func (d *download) lookupLocked() {
	if d.looking || time.Since(d.lookedUpAt) < openLookupTimeout {
		return
	}
	d.looking = true
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		found := d.r.lookup(d.ctx)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.looking, d.lookedUp, d.lookedUpAt = false, true, time.Now()
		d.addPeersLocked(d.withoutBad(found))
		d.notifyLocked() // the manager may wait for the lookup's end
	}()
}

// withoutBad returns ais without the peers that sent bad data for the
// file. d.mu is held.
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

// run is the manager: it starts workers for the peers that may be asked,
// waits for changes, and fails the download after maxIdleRounds rounds in
// which no peer could be asked and no piece arrived, or at once when every
// peer known after a lookup sent bad data.
func (d *download) run() {
	defer d.wg.Done()
	idle, seen := 0, -1
	for {
		d.mu.Lock()
		if d.err != nil || !d.haveWorkLocked() {
			d.mu.Unlock()
			return
		}
		if d.received != seen {
			seen, idle = d.received, 0
		}
		d.fillLocked()
		wake := d.wake
		var wait time.Duration
		if d.active == 0 {
			// Nobody is asked, and nobody can be now.
			if !d.anyUsableLocked() && d.lookedUp && !d.looking {
				d.failLocked(d.noPeersError("every peer that offers it sent bad data or none is left"))
				d.mu.Unlock()
				return
			}
			if idle > maxIdleRounds {
				d.failLocked(d.noPeersError(fmt.Sprintf("no piece in %d rounds", maxIdleRounds)))
				d.mu.Unlock()
				return
			}
			d.lookupLocked()
			wait = d.retryWaitLocked(idle + 1)
		}
		d.mu.Unlock()
		var timer *time.Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-wake:
		case <-fire:
			idle++ // a round in which nobody could be asked
		case <-d.ctx.Done():
			d.mu.Lock()
			d.failLocked(d.ctx.Err())
			d.mu.Unlock()
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// noPeersError says why no peer could deliver. d.mu is held.
func (d *download) noPeersError(why string) error {
	err := fmt.Errorf("%w: file %x of release %s at piece %d: %s", ErrNoPeers, d.r.offer.FileID[:8], d.r.offer.Info.Version, d.next, why)
	if d.lastErr != nil {
		err = fmt.Errorf("%w (last: %w)", err, d.lastErr)
	}
	return err
}

// retryWaitLocked returns how long the manager waits in an idle round:
// until the next skipped peer may be asked again, within a backoff of 50
// ms doubling to 500 ms, plus as much again at random. d.mu is held.
func (d *download) retryWaitLocked(idle int) time.Duration {
	wait := min(50*time.Millisecond<<min(idle, 4), 500*time.Millisecond)
	wait += time.Duration(rand.Int64N(int64(wait)))
	now := time.Now()
	for _, p := range d.peers {
		if !p.bad && !p.active && p.retryAt.After(now) {
			wait = min(wait, max(p.retryAt.Sub(now), time.Millisecond))
		}
	}
	return wait
}

// anyUsableLocked reports whether some peer has not sent bad data. d.mu
// is held.
func (d *download) anyUsableLocked() bool { return d.usableLocked() > 0 }

// usableLocked returns the number of peers that have not sent bad data.
// d.mu is held.
func (d *download) usableLocked() int {
	n := 0
	for _, p := range d.peers {
		if !p.bad {
			n++
		}
	}
	return n
}

// haveWorkLocked reports whether some piece still has to be asked for or
// is on its way. d.mu is held.
func (d *download) haveWorkLocked() bool {
	end := d.l.NumPieces()
	if d.next+fetchWindow < end {
		return true
	}
	for i := d.next; i < end; i++ {
		if s := d.pieces[i]; s == nil || s.data == nil {
			return true
		}
	}
	return false
}

// unclaimedLocked reports whether some piece is neither received nor
// asked for. d.mu is held.
func (d *download) unclaimedLocked() bool {
	return int64(len(d.pieces)) < d.l.NumPieces()-d.next
}

// fillLocked starts workers for the first peers that may be asked, up to
// d.parallel of them (one while the piece hashes are not in). d.mu is held.
func (d *download) fillLocked() {
	limit := d.parallel
	if d.r.needsHashes() {
		limit = 1
	}
	deltasOnly := d.deltaPeersLocked() > 0
	now := time.Now()
	for _, id := range d.order {
		if d.active >= limit || !d.unclaimedLocked() {
			return
		}
		p := d.peers[id]
		if p.active || p.bad || now.Before(p.retryAt) {
			continue
		}
		if deltasOnly && d.r.modeFor(id, d.base) != modeDelta {
			continue
		}
		p.active = true
		d.active++
		d.wg.Add(1)
		go d.work(p)
	}
}

// deltaPeersLocked returns the number of peers that may be asked for
// deltas now or soon: while there are, only they are asked, since a
// delta is a small part of what the others would send. A peer that failed
// twice in a row (busy, unreachable) no longer counts. d.mu is held.
func (d *download) deltaPeersLocked() int {
	if d.base == nil {
		return 0
	}
	n := 0
	for id, p := range d.peers {
		if !p.bad && p.fails < 2 && d.r.modeFor(id, d.base) == modeDelta {
			n++
		}
	}
	return n
}

// work asks p for pieces until none is left to ask for, or p fails.
func (d *download) work(p *fetchPeer) {
	defer d.wg.Done()
	err := d.serve(p.ai)
	var strike int
	d.mu.Lock()
	p.active = false
	d.active--
	if err != nil && d.ctx.Err() == nil {
		d.lastErr = err
		switch {
		case errors.Is(err, errNoPacked):
			d.r.demote(p.ai.ID, modePacked) // an older node: ask it at once for raw pieces
		case errors.Is(err, errBadDelta), errors.Is(err, errBadPacked):
			strike = strikeForged
			if errors.Is(err, wire.ErrMalformed) {
				strike = strikeMalformed
			}
			m := modePacked
			if errors.Is(err, errBadDelta) {
				m = modeDelta
			}
			d.r.demote(p.ai.ID, m)
			d.n.log.Info("packed pieces from a peer failed; asking for the full pieces", "peer", p.ai.ID, "file", fmt.Sprintf("%x", d.r.offer.FileID[:8]), "err", err)
		case errors.Is(err, errBadData):
			p.bad, strike = true, strikeForged
		case errors.Is(err, wire.ErrMalformed):
			p.bad, strike = true, strikeMalformed
		default:
			p.fails++
			p.retryAt = time.Now().Add(retryDelay(p.fails, err))
			d.n.log.Debug("peer skipped for a while", "peer", p.ai.ID, "file", fmt.Sprintf("%x", d.r.offer.FileID[:8]), "err", err)
		}
	}
	d.notifyLocked()
	d.mu.Unlock()
	if strike > 0 {
		if p.bad {
			d.r.markBad(p.ai.ID)
		}
		d.n.strike(p.ai.ID, strike, fmt.Errorf("file %x of release %s: %w", d.r.offer.FileID[:8], d.r.offer.Info.Version, err))
	}
}

// retryDelay is how long a peer that failed fails times in a row without
// proving bad is left alone: a busy peer briefly (a slot may free at any
// time), others longer, up to 10 s, with some jitter.
func retryDelay(fails int, err error) time.Duration {
	base, top := 500*time.Millisecond, 10*time.Second
	if errors.Is(err, wire.ErrBusy) {
		base, top = 50*time.Millisecond, time.Second
	}
	d := min(base<<min(fails-1, 8), top)
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}

// serve fetches the piece hashes from ai if they are not in yet, then runs
// of pieces until no piece is left to ask for.
func (d *download) serve(ai peer.AddrInfo) error {
	if d.r.needsHashes() {
		if err := d.fetchHashes(ai); err != nil {
			return err
		}
	}
	var frame []byte
	for {
		batch := d.claim(ai.ID)
		if batch == nil {
			return nil
		}
		if err := d.fetchPieces(ai, batch, &frame); err != nil {
			return err
		}
	}
}

// claim waits for a run of pieces that p may ask for and marks them as
// asked of p. It returns nil when every piece is received or the download
// ended.
func (d *download) claim(p peer.ID) []int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.err != nil || !d.haveWorkLocked() {
			return nil
		}
		now := time.Now()
		if batch := d.claimableLocked(p); len(batch) > 0 {
			for _, i := range batch {
				d.pieces[i] = &pieceSlot{by: p, at: now}
			}
			return batch
		}
		if i, ok := d.stealableLocked(p, now); ok {
			d.pieces[i].dup = p
			return []int64{i}
		}
		if !d.unclaimedLocked() && !d.inFlightLocked() {
			return nil
		}
		// The window is full, only the tail is left and waits for the
		// peer that delivered piece 0, or pieces are on their way from
		// others: wait for a change, or until one may be stolen.
		wake := d.wake
		d.mu.Unlock()
		t := time.NewTimer(stealAfter / 4)
		select {
		case <-wake:
		case <-t.C:
		case <-d.ctx.Done():
		}
		t.Stop()
		d.mu.Lock()
	}
}

// claimableLocked returns the first run of pieces in the window that
// nobody asked for, at most a request's worth. The tail goes to the peer
// that delivered piece 0 while it is asked in this download, so that the
// two parts of the file the root does not cover come from one peer. d.mu
// is held.
func (d *download) claimableLocked(p peer.ID) []int64 {
	per := int64(piecesPerRequest)
	if d.usableLocked() == 1 || d.r.modeFor(p, d.base) == modeDelta {
		// The only peer, or deltas, which take few bytes: fewer round
		// trips.
		per = wire.MaxPiecesPerRequest
	}
	end := min(d.l.NumPieces(), d.next+fetchWindow)
	var batch []int64
	for i := d.next; i < end && int64(len(batch)) < per; i++ {
		if d.pieces[i] != nil {
			if len(batch) > 0 {
				break
			}
			continue
		}
		if !d.tailOKLocked(p, i) {
			break
		}
		batch = append(batch, i)
	}
	return batch
}

// tailOKLocked reports whether p may ask for piece i: any piece but the
// tail, which waits until piece 0 is in and then goes to the peer that
// delivered it, while that peer is asked in this download. d.mu is held.
func (d *download) tailOKLocked(p peer.ID, i int64) bool {
	if !d.l.IsTail(i) || d.tailFor == p {
		return true
	}
	if d.tailFor == "" {
		// Piece 0, asked first, is on its way; a download resumed past
		// it has no peer to wait for.
		return !d.withFirst
	}
	o := d.peers[d.tailFor]
	return o == nil || !o.active
}

// stealableLocked returns the first piece in the window that another peer
// was asked for more than stealAfter ago and has not delivered, for p to
// be asked too, unless a piece is asked of two peers already. d.mu is held.
func (d *download) stealableLocked(p peer.ID, now time.Time) (int64, bool) {
	end := min(d.l.NumPieces(), d.next+fetchWindow)
	var found int64 = -1
	for i := d.next; i < end; i++ {
		s := d.pieces[i]
		if s == nil || s.data != nil {
			continue
		}
		if s.dup != "" {
			return 0, false
		}
		if found < 0 && s.by != p && now.Sub(s.at) > stealAfter && d.tailOKLocked(p, i) {
			found = i
		}
	}
	return found, found >= 0
}

// inFlightLocked reports whether some piece is asked for and not
// received. d.mu is held.
func (d *download) inFlightLocked() bool {
	for _, s := range d.pieces {
		if s.data == nil {
			return true
		}
	}
	return false
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
	d.r.setPieceChecker(c)
	return nil
}

// fetchPieces asks ai for the pieces of batch, a run, checks each as it
// arrives and hands it to the reader. The check of a piece runs while the
// next one is read. The pieces not received go back to be asked of others.
//
// frame is the worker's buffer for the data of a packed piece before it
// is decoded, made when first needed.
func (d *download) fetchPieces(ai peer.AddrInfo, batch []int64, frame *[]byte) error {
	got := 0
	defer func() { d.unclaim(ai.ID, batch[got:]) }()
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
	// prev is the check of the piece read before, if any.
	var prev chan checkedPiece
	finish := func() error {
		c := <-prev
		prev = nil
		if c.err != nil {
			d.putBuffer(c.buf)
			return c.err
		}
		d.receive(ai.ID, c.i, c.piece)
		got++
		return nil
	}
	for _, i := range batch {
		buf := d.buffer(i)
		var b []byte
		var err error
		if mode == modePieces {
			if b, err = d.l.ReadPiece(pr, i, buf); err == nil {
				d.n.downloaded.Add(uint64(len(b)))
			}
		} else {
			if *frame == nil {
				*frame = make([]byte, d.l.MaxPieceLen())
			}
			b, err = d.readPacked(pr, i, buf, *frame, mode)
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
		ch := make(chan checkedPiece, 1)
		go func() {
			err := d.check(i, b)
			if err != nil && mode != modePieces {
				err = packedError(mode, err)
			}
			ch <- checkedPiece{i: i, piece: b, buf: buf, err: err}
		}()
		if prev != nil {
			if err := finish(); err != nil {
				s.Reset()
				if c := <-ch; c.buf != nil {
					d.putBuffer(c.buf)
				}
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

// readPacked reads the frame of piece i from r, its data into frame (a
// raw piece's straight into buf), and decodes it into buf. A frame that is
// malformed or does not decode fails with packedError; a failure to read
// the base, this node's own file, does not.
func (d *download) readPacked(r io.Reader, i int64, buf, frame []byte, mode fetchMode) ([]byte, error) {
	p, err := d.l.ReadPackedInto(r, i, frame, buf)
	if err != nil {
		if errors.Is(err, wire.ErrMalformed) {
			err = packedError(mode, err)
		}
		return nil, err
	}
	d.n.downloaded.Add(uint64(1 + len(p.Data)))
	_, n := d.l.Piece(i)
	if p.Method == wire.PackRaw {
		return p.Data, nil // read into buf, exactly the piece's length
	}
	dec, err := d.n.decoders.get(d.ctx)
	if err != nil {
		return nil, err
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
		return nil, err
	}
	return buf[:n], nil
}

// packedError marks err, the failure of a piece asked in mode m, as the
// failure of that mode (errBadDelta or errBadPacked).
func packedError(m fetchMode, err error) error {
	if m == modeDelta {
		return fmt.Errorf("%w: %w", errBadDelta, err)
	}
	return fmt.Errorf("%w: %w", errBadPacked, err)
}

// checkedPiece is the outcome of the check of piece i, read into buf.
type checkedPiece struct {
	i     int64
	piece []byte
	buf   []byte
	err   error
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
	d.peers[p].fails = 0
	s := d.pieces[i]
	if s != nil && s.dup == p {
		s.dup = ""
	}
	if s == nil || s.data != nil {
		d.putBufferLocked(b) // the other copy came first
		d.notifyLocked()
		return
	}
	s.data = b
	d.received++
	d.r.delivered(p, i)
	if i == 0 {
		d.tailFor = p
	}
	d.notifyLocked()
}

// unclaim gives back the pieces of batch that p was asked for and did not
// deliver; a piece asked of another peer too stays with that peer.
func (d *download) unclaim(p peer.ID, batch []int64) {
	if len(batch) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, i := range batch {
		s := d.pieces[i]
		switch {
		case s == nil:
		case s.dup == p:
			s.dup = ""
		case s.by == p && s.data == nil && s.dup != "":
			s.by, s.dup, s.at = s.dup, "", time.Now()
		case s.by == p && s.data == nil:
			delete(d.pieces, i)
		}
	}
	d.notifyLocked()
}

// Read reads the file's bytes in order, waiting for the pieces to arrive.
// It returns io.EOF at the end of the file, and the download's error once
// the bytes received before it failed are read.
func (d *download) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.next == d.l.NumPieces() {
			return 0, io.EOF
		}
		if s := d.pieces[d.next]; s != nil && s.data != nil {
			k := copy(p, s.data[d.skip:])
			d.skip += int64(k)
			if d.skip == int64(len(s.data)) {
				d.putBufferLocked(s.data)
				delete(d.pieces, d.next)
				d.next++
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
		d.pieces, d.free = nil, nil
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
