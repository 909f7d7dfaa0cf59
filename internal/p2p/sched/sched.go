// Package sched decides, for one download of one file, which pieces to ask
// of which peer, when to ask a second peer for a piece a first one is slow
// to deliver, and when to leave a peer alone for a while or for good.
//
// A Scheduler holds no bytes, opens no connection, runs no goroutine and
// reads no clock: every call that depends on the time is given it, and the
// only randomness (backoff jitter, the random first pieces) comes from the
// *rand.Rand in its Config. The network code (internal/p2p's download) and
// the swarm simulator drive the same type, and its tests are tables of
// calls and the decisions they must produce.
//
// The rules (docs/PROTOCOL.md, "Fetching"):
//
//   - Pieces are asked for only within Window pieces of the one the reader
//     is at; each peer has at most one request in flight, for a run of at
//     most PerRequest pieces (MaxPerRequest for the only peer, or for a
//     peer that sends deltas).
//   - Within the window a peer is asked for the rarest piece it holds
//     (held by the fewest peers; one at random among equals, so that
//     downloads asking one source at once ask it for different pieces);
//     while every peer holds every piece, the reader's order. The first
//     RandomFirst pieces of a download are chosen at random instead while
//     some peer holds only some pieces, or always, one a request, when
//     the node trades (Config.Trade).
//   - A piece asked of a peer that has not delivered it within StealAfter
//     is asked of a second peer too, with the following pieces asked of
//     the same peer that waited as long, at most a request's worth (one
//     such request at a time, which bounds memory); the first copy is
//     kept. The peer that let it wait is slow from then on: it is asked
//     one piece at a time, the last piece of the window rather than the
//     first, no longer counts as a delta peer, and its piece is asked of
//     another peer at once, before new pieces, when the reader comes to
//     it.
//   - Endgame: once every piece left of the file is asked for, a peer with
//     nothing to ask asks for a piece on its way from another peer sooner:
//     once that peer has sent nothing for EndgameAfter and for twice the
//     time between its last two pieces (a peer that stalls, not one that
//     is steadily slower than EndgameAfter a piece), or StealAfter.
//   - Delta peers (whose info named a base the node holds: an unsigned
//     claim) are preferred: while one that is not slow can be asked, the
//     others are not started; a delta peer that lets a piece wait
//     StealAfter loses that, so a claim never makes a slow peer the only
//     source for longer than StealAfter.
//   - The piece hashes are asked of one peer; when they have not arrived
//     after StealAfter, of one more peer each StealAfter, and the peer that
//     let them wait is slow.
//   - The tail (pieces beyond the signed content) goes to the peer that
//     delivered piece 0 while that peer is asked.
//   - A worker whose peer holds nothing to ask for now ends when a peer
//     not asked holds something: it waits (for the window to move, a
//     have-update or a piece to steal) only while no other peer could be
//     started in its place.
//   - A peer that sent provably bad data is never asked again; one that
//     failed otherwise is left alone for a backoff that doubles with each
//     failure in a row; a piece resets the count.
//   - A download fails when no peer could be asked and no piece arrived for
//     MaxIdleRounds rounds, or at once when every peer known after a lookup
//     sent bad data.
package sched

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/org/rustpatcher-go/internal/backoff"
)

// PeerID names a peer (a libp2p peer ID as a string, or a simulated node).
type PeerID string

// Config is the shape of one download.
type Config struct {
	// Pieces is the number of pieces of the file, the tail included.
	Pieces int64
	// First is the piece the reader starts at (a resumed download).
	First int64
	// Tail says that the last piece is the tail, which the root does not
	// cover: it goes to the peer that delivered piece 0.
	Tail bool
	// TailFor is the peer that delivered piece 0 in an earlier download of
	// the file, if any.
	TailFor PeerID
	// Window is the number of pieces, from the reader's, that may be asked
	// for or held at once.
	Window int64
	// Parallel is the number of peers asked at once.
	Parallel int
	// PerRequest and MaxPerRequest bound the pieces of one request: the
	// first for most peers, the second for the only peer known and for
	// delta peers.
	PerRequest, MaxPerRequest int
	// StealAfter is how long a piece, or the piece hashes, may be on its
	// way from one peer before another is asked for it too.
	StealAfter time.Duration
	// EndgameAfter replaces StealAfter once every piece left of the file
	// is asked for.
	EndgameAfter time.Duration
	// NeedHashes says that the piece hashes must be fetched before pieces.
	NeedHashes bool
	// RandomFirst is the number of pieces chosen at random, rather than
	// rarest first, at the start of a download that knows a peer holding
	// only some pieces (with every peer holding every piece, the reader's
	// order is kept).
	RandomFirst int
	// Trade says that the node serves the pieces it receives while it
	// downloads (internal/p2p's Config.PiecesEarly): its first RandomFirst
	// pieces are chosen at random, and asked one a request, even while
	// every peer known holds every piece. So the downloads that ask one
	// source at once (a seed, as a release starts to spread) take
	// different pieces from it, and each piece leaves the source as early
	// as it can, rather than all of them taking the same first pieces in
	// the reader's order.
	Trade bool
	// MaxIdleRounds bounds the rounds without a peer to ask and without a
	// piece.
	MaxIdleRounds int
	// LookupEvery is the least time between the end of a lookup of
	// providers and the start of the next.
	LookupEvery time.Duration
	// Rand supplies the backoff jitter and the random first pieces.
	Rand *rand.Rand
}

// PeerInfo is what a download knows of a peer when it is added.
type PeerInfo struct {
	// Delta says that the peer claims deltas from a base the node holds.
	Delta bool
	// Has lists the pieces the peer holds; nil means all of them.
	Has []bool
}

// Outcome is why a peer's worker ended.
type Outcome int

const (
	// Finished: nothing was left to ask of the peer.
	Finished Outcome = iota
	// Bad: the peer sent provably bad data; it is never asked again.
	Bad
	// Busy: the peer answered busy; it is left alone briefly.
	Busy
	// Failed: a reset, refused stream, stall, drip, dial failure or not
	// found; the peer is left alone for a while.
	Failed
	// Retry: the peer is to be asked again at once in another mode (it
	// refused packed pieces, or sent a packed piece that failed).
	Retry
)

// ActionKind is what a worker is told to do next.
type ActionKind int

const (
	// Stop: the worker ends (the caller calls Done with Finished).
	Stop ActionKind = iota
	// Hashes: ask the peer for the piece hashes, then call HashesDone.
	Hashes
	// Pieces: ask the peer for the run Action.Pieces; call Received for
	// each piece checked.
	Pieces
	// Wait: wait for a change, or until Action.Until when it is set.
	Wait
)

// Action is a worker's next step.
type Action struct {
	Kind   ActionKind
	Pieces []int64   // Pieces: a run of consecutive pieces
	Steal  bool      // Pieces: a piece on its way from another peer too
	Until  time.Time // Wait: ask again by then at the latest
}

// Plan is what the download's manager is to do now.
type Plan struct {
	// Start lists the peers to start a worker for.
	Start []PeerID
	// Lookup says to look providers up, then call LookupDone.
	Lookup bool
	// Wake is when to call Plan again at the latest (zero: on a change).
	Wake time.Time
	// Done says that every piece is received or the download failed.
	Done bool
	// Fail, when set, says why the download failed.
	Fail string
}

// slot is a piece asked for or received.
type slot struct {
	by   PeerID    // the peer asked for it
	at   time.Time // when it was asked
	dup  PeerID    // a second peer asked for it too
	have bool      // received
}

// peerState is what the download knows of one peer.
type peerState struct {
	id       PeerID
	delta    bool
	has      []bool        // nil: every piece
	worker   bool          // a worker asks it
	bad      bool          // it sent provably bad data
	slow     bool          // it let a piece wait StealAfter
	fails    int           // failures in a row without a piece
	retryAt  time.Time     // not asked before
	hashesAt time.Time     // when it was asked for the piece hashes, while they are
	lastAt   time.Time     // when it last delivered a piece
	gap      time.Duration // the time between its last two pieces
}

// A Scheduler is the state of one download. Its methods are not safe for
// concurrent use: the network code calls them under its download's lock.
type Scheduler struct {
	cfg        Config
	next       int64 // the piece the reader is at
	withFirst  bool  // piece 0 is fetched by this download
	tailFor    PeerID
	stealer    PeerID  // the peer asked for pieces on their way from another, while it is
	pieces     []*slot // by piece, set only within the window
	claimed    int     // pieces set
	holders    []int   // by piece: the usable peers that hold it (rarity)
	peers      map[PeerID]*peerState
	list       []*peerState // the peers in the order to ask them
	deltas     int          // peers that claim deltas
	workers    int
	usable     int // peers that have not sent bad data
	partial    int // peers that hold only some pieces
	received   int
	needHashes bool
	sparseAt   time.Time     // the next lookup for want of peers (sparseLookup)
	sparseWait time.Duration // the wait before it
	looking    bool
	lookedUp   bool
	lookedAt   time.Time // when the last lookup ended
	idle       int       // rounds without a peer to ask or a piece
	seen       int       // received at the last round
	idleUntil  time.Time // the end of the idle round Plan last set
	failed     string
	retryMin   time.Time // what nextRetry found, while retryOK
	retryOK    bool
}

// New returns the scheduler of a download with cfg, with no peers yet.
func New(cfg Config) *Scheduler {
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	return &Scheduler{
		cfg:        cfg,
		next:       cfg.First,
		withFirst:  cfg.First == 0,
		tailFor:    cfg.TailFor,
		pieces:     make([]*slot, max(cfg.Pieces, 0)),
		holders:    make([]int, max(cfg.Pieces, 0)),
		peers:      map[PeerID]*peerState{},
		needHashes: cfg.NeedHashes,
		seen:       -1,
	}
}

// AddPeer adds a peer the download does not know yet, after those it
// knows, and reports whether it was new.
func (s *Scheduler) AddPeer(id PeerID, in PeerInfo) bool {
	if s.peers[id] != nil {
		return false
	}
	p := &peerState{id: id, delta: in.Delta, has: in.Has}
	s.peers[id] = p
	s.list = append(s.list, p)
	s.usable++
	if in.Delta {
		s.deltas++
	}
	if in.Has != nil {
		s.partial++
	}
	s.countHolders(p, 1)
	return true
}

// Have records that peer id holds piece i now (a have-update), and
// reports whether that may change what the download does: the peer is
// usable and the piece is one the download still needs and has not asked
// of two peers. Only then need the caller wake the download's manager and
// workers; a have of a piece received (most of them, late in a download)
// changes nothing.
func (s *Scheduler) Have(id PeerID, i int64) bool {
	p := s.peers[id]
	if p == nil || p.has == nil || i < 0 || i >= int64(len(p.has)) || p.has[i] {
		return false
	}
	p.has[i] = true
	if p.bad || i >= int64(len(s.holders)) {
		return false
	}
	s.holders[i]++
	if i < s.next {
		return false
	}
	sl := s.pieces[i]
	return sl == nil || (!sl.have && sl.dup == "")
}

// countHolders adds d to the holders of every piece peer p holds.
func (s *Scheduler) countHolders(p *peerState, d int) {
	for i := range s.holders {
		if p.holds(int64(i)) {
			s.holders[i] += d
		}
	}
}

// NoDelta records that peer id is no longer asked for deltas (one it sent
// failed).
func (s *Scheduler) NoDelta(id PeerID) {
	if p := s.peers[id]; p != nil && p.delta {
		p.delta = false
		s.deltas--
	}
}

// ReaderAt returns the piece the reader is at.
func (s *Scheduler) ReaderAt() int64 { return s.next }

// Kept returns the number of pieces received and kept.
func (s *Scheduler) Kept() int { return s.received }

// Slow reports whether peer id let a piece wait StealAfter.
func (s *Scheduler) Slow(id PeerID) bool { p := s.peers[id]; return p != nil && p.slow }

// Usable returns the number of peers that have not sent bad data.
func (s *Scheduler) Usable() int { return s.usable }

// Plan returns what the manager is to do at now: the peers to start a
// worker for, whether to look for more peers, and when to plan again.
func (s *Scheduler) Plan(now time.Time) Plan {
	if s.failed != "" {
		return Plan{Done: true, Fail: s.failed}
	}
	if !s.haveWork() {
		return Plan{Done: true}
	}
	var pl Plan
	if s.usable > 0 && s.usable < s.cfg.Parallel {
		// Too few peers to ask Parallel at once: look for more while
		// the workers run, as their peers may be all there is (a seed
		// that serves this download alone while others wait), at
		// most every sparseWait, which doubles each time. (With none
		// usable, the download looks up, or fails, below.)
		pl.Lookup = s.sparseLookup(now)
	}
	if s.received != s.seen {
		s.seen, s.idle = s.received, 0
	} else if !s.idleUntil.IsZero() && !now.Before(s.idleUntil) {
		s.idle++ // a round in which nobody could be asked ended
	}
	s.idleUntil = time.Time{}
	s.markSlow(now)
	pl.Start = s.fill(now)
	pl.Wake = s.nextDeadline(now)
	if s.workers > 0 {
		return pl
	}
	// Nobody is asked, and nobody can be now.
	if s.Usable() == 0 && s.lookedUp && !s.looking {
		s.failed = "every peer that offers it sent bad data or none is left"
		return Plan{Done: true, Fail: s.failed}
	}
	if s.idle > s.cfg.MaxIdleRounds {
		s.failed = fmt.Sprintf("no piece in %d rounds", s.cfg.MaxIdleRounds)
		return Plan{Done: true, Fail: s.failed}
	}
	if !pl.Lookup {
		pl.Lookup = s.startLookup(now)
	}
	s.idleUntil = now.Add(s.retryWait(now, s.idle+1))
	pl.Wake = s.idleUntil
	return pl
}

// maxSparseWait bounds the doubling of sparseWait, in LookupEvery.
const maxSparseWait = 16

// sparseLookup starts a lookup for a download that knows fewer than
// Parallel peers, unless one runs or the last one for that reason started
// less than sparseWait ago; each doubles sparseWait, from LookupEvery up
// to maxSparseWait times it, so that a download that one seed serves alone
// looks up a few times, not every LookupEvery to its end.
func (s *Scheduler) sparseLookup(now time.Time) bool {
	if !s.sparseAt.IsZero() && now.Before(s.sparseAt) {
		return false
	}
	if !s.startLookup(now) {
		return false
	}
	s.sparseWait = min(max(2*s.sparseWait, s.cfg.LookupEvery), maxSparseWait*s.cfg.LookupEvery)
	s.sparseAt = now.Add(s.sparseWait)
	return true
}

// startLookup starts a lookup unless one runs or the last ended less than
// LookupEvery ago.
func (s *Scheduler) startLookup(now time.Time) bool {
	if s.looking || (s.lookedUp && now.Sub(s.lookedAt) < s.cfg.LookupEvery) {
		return false
	}
	s.looking = true
	return true
}

// LookupDone ends the lookup Plan asked for and adds the peers it found
// (AddPeer for each, with its PeerInfo, before the call).
func (s *Scheduler) LookupDone(now time.Time) {
	s.looking, s.lookedUp, s.lookedAt = false, true, now
}

// Fail ends the download (the caller's context ended, or it was closed).
func (s *Scheduler) Fail(why string) {
	if s.failed == "" {
		s.failed = why
	}
}

// haveWork reports whether some piece still has to be asked for or is on
// its way.
func (s *Scheduler) haveWork() bool {
	if s.next+s.cfg.Window < s.cfg.Pieces {
		return true
	}
	for i := s.next; i < s.cfg.Pieces; i++ {
		if sl := s.slotAt(i); sl == nil || !sl.have {
			return true
		}
	}
	return false
}

// slotAt returns the slot of piece i, or nil.
func (s *Scheduler) slotAt(i int64) *slot {
	if i < 0 || i >= int64(len(s.pieces)) {
		return nil
	}
	return s.pieces[i]
}

// windowEnd returns the end of the window.
func (s *Scheduler) windowEnd() int64 { return min(s.cfg.Pieces, s.next+s.cfg.Window) }

// markSlow marks the peers whose pieces or piece hashes waited
// StealAfter as slow.
func (s *Scheduler) markSlow(now time.Time) {
	for i := s.next; i < s.windowEnd(); i++ {
		if sl := s.pieces[i]; sl != nil && !sl.have && now.Sub(sl.at) >= s.cfg.StealAfter {
			if p := s.peers[sl.by]; p != nil {
				p.slow = true
			}
		}
	}
	if s.needHashes {
		for _, p := range s.list {
			if !p.hashesAt.IsZero() && now.Sub(p.hashesAt) >= s.cfg.StealAfter {
				p.slow = true
			}
		}
	}
}

// deltaPreferred reports whether a delta peer that is not slow may be
// asked now or soon: while one may, only delta peers are started. A
// peer that failed twice in a row no longer counts.
func (s *Scheduler) deltaPreferred() bool {
	if s.deltas == 0 {
		return false
	}
	for _, p := range s.list {
		if p.delta && !p.bad && !p.slow && p.fails < 2 {
			return true
		}
	}
	return false
}

// fill marks the peers to start workers for and returns them: up to
// Parallel (one while the piece hashes are not in, and one more for each
// StealAfter they keep waiting), each with something to ask.
func (s *Scheduler) fill(now time.Time) []PeerID {
	limit := s.cfg.Parallel
	if s.needHashes {
		limit = 1
		for _, p := range s.list {
			if p.worker && !p.hashesAt.IsZero() && now.Sub(p.hashesAt) >= s.cfg.StealAfter {
				limit++
			}
		}
		limit = min(limit, s.cfg.Parallel)
	}
	if s.workers >= limit {
		return nil
	}
	var open []int64
	if !s.needHashes {
		open = s.openPieces(now)
		if len(open) == 0 {
			return nil // nobody has anything to ask
		}
	}
	deltas := s.deltaPreferred()
	var start []PeerID
	for _, p := range s.list {
		id := p.id
		if s.workers >= limit {
			break
		}
		if p.worker || p.bad || now.Before(p.retryAt) || (deltas && !p.delta) {
			continue
		}
		if !s.needHashes && !s.canAsk(p, open) {
			continue
		}
		p.worker = true
		s.retryOK = false
		s.workers++
		start = append(start, id)
	}
	return start
}

// openPieces returns the pieces of the window some peer might be asked
// for now: those nobody asked for (claimable), and those on their way
// from a peer that another may be asked for too (stealable, unless a steal
// runs). Which peer may be asked for which is canAsk's.
func (s *Scheduler) openPieces(now time.Time) []int64 {
	var open []int64
	for i := s.next; i < s.windowEnd(); i++ {
		sl := s.pieces[i]
		switch {
		case sl == nil:
			open = append(open, i)
		case s.stealer == "" && !sl.have && sl.dup == "" &&
			(!now.Before(s.stealAt(sl)) || (i == s.next && s.peers[sl.by].slow)):
			open = append(open, i)
		}
	}
	return open
}

// canAsk reports whether peer p could be asked for one of open now: it
// holds it, may be asked for it (the tail), and is not the peer it is on
// its way from. It is anyClaimable(p) or a non-empty stealable run for p,
// over the pieces openPieces found.
func (s *Scheduler) canAsk(p *peerState, open []int64) bool {
	for _, i := range open {
		if sl := s.pieces[i]; sl != nil && sl.by == p.id {
			continue
		}
		if p.holds(i) && s.tailOK(p.id, i) {
			return true
		}
	}
	return false
}

// nextDeadline returns when something changes with time alone: a piece or
// the hashes may be asked of another peer, a skipped peer may be asked.
func (s *Scheduler) nextDeadline(now time.Time) time.Time {
	var t time.Time
	earlier := func(u time.Time) {
		if u.After(now) && (t.IsZero() || u.Before(t)) {
			t = u
		}
	}
	for i := s.next; i < s.windowEnd(); i++ {
		if sl := s.pieces[i]; sl != nil && !sl.have && sl.dup == "" {
			earlier(s.stealAt(sl))
			earlier(sl.at.Add(s.cfg.StealAfter)) // the peer becomes slow
		}
	}
	if s.needHashes {
		for _, p := range s.list {
			if p.worker && !p.hashesAt.IsZero() {
				earlier(p.hashesAt.Add(s.cfg.StealAfter))
			}
		}
	}
	earlier(s.nextRetry(now))
	if s.usable > 0 && s.usable < s.cfg.Parallel && !s.looking {
		earlier(s.sparseAt)
	}
	return t
}

// nextRetry returns the earliest time after now at which a peer left alone
// (not asked, not bad) may be asked again, or zero. The answer is kept
// until a peer's state changes or that time passes: a later one cannot
// come before it by time alone.
func (s *Scheduler) nextRetry(now time.Time) time.Time {
	if s.retryOK && (s.retryMin.IsZero() || s.retryMin.After(now)) {
		return s.retryMin
	}
	var t time.Time
	for _, p := range s.list {
		if !p.worker && !p.bad && p.retryAt.After(now) && (t.IsZero() || p.retryAt.Before(t)) {
			t = p.retryAt
		}
	}
	s.retryMin, s.retryOK = t, true
	return t
}

// retryWait returns how long an idle round lasts: until the next skipped
// peer may be asked again, within a backoff of 50 ms doubling to 500 ms,
// plus as much again at random.
func (s *Scheduler) retryWait(now time.Time, idle int) time.Duration {
	wait := backoff.Policy{Base: 100 * time.Millisecond, Max: 500 * time.Millisecond, Jitter: 1}.Delay(idle, s.cfg.Rand)
	for _, p := range s.list {
		if !p.bad && !p.worker && p.retryAt.After(now) {
			wait = min(wait, max(p.retryAt.Sub(now), time.Millisecond))
		}
	}
	return wait
}

// RetryDelay is how long a peer that failed fails times in a row without
// proving bad is left alone: a busy peer briefly (a slot may free at any
// time), others longer, up to 10 s, with jitter of up to a half.
func RetryDelay(r *rand.Rand, fails int, busy bool) time.Duration {
	b := backoff.Policy{Base: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.5}
	if busy {
		b.Base, b.Max = 50*time.Millisecond, time.Second
	}
	return b.Delay(fails, r)
}

// Next returns what peer id's worker is to do at now, and marks the pieces
// it is to ask for as asked of it.
func (s *Scheduler) Next(id PeerID, now time.Time) Action {
	p := s.peers[id]
	if s.failed != "" || p == nil || !s.haveWork() {
		return Action{Kind: Stop}
	}
	if s.needHashes {
		if p.hashesAt.IsZero() {
			p.hashesAt = now
			return Action{Kind: Hashes}
		}
		return Action{Kind: Wait} // HashesDone from another peer wakes it
	}
	if s.stealer == id {
		s.stealer = "" // its steal ended
	}
	s.markSlow(now)
	run := s.stealable(id, now)
	if len(run) == 0 || run[0] != s.next {
		// Pieces nobody asked for go first, unless the reader waits for
		// the piece to steal.
		if batch := s.claimable(id); len(batch) > 0 {
			for _, i := range batch {
				s.pieces[i] = &slot{by: id, at: now}
				s.claimed++
			}
			return Action{Kind: Pieces, Pieces: batch}
		}
	}
	if len(run) > 0 {
		for _, i := range run {
			sl := s.pieces[i]
			sl.dup = id
			if now.Sub(sl.at) >= s.cfg.StealAfter {
				s.peers[sl.by].slow = true
			}
		}
		s.stealer = id
		return Action{Kind: Pieces, Pieces: run, Steal: true}
	}
	if !s.unclaimed() && !s.inFlight() {
		return Action{Kind: Stop}
	}
	if s.startable(id, now) {
		// The peer holds nothing to ask for now, another peer that is
		// not asked does: this worker gives its place (of Parallel) to
		// it. A worker kept waiting here would hold the place while
		// peers that hold pieces the download needs sit unasked.
		return Action{Kind: Stop}
	}
	// The window is full, the peer holds none of the pieces left to ask
	// for, only the tail is left and waits for the peer of piece 0, or
	// pieces are on their way from others, and no other peer could be
	// started now: wait for a change, or until one may be stolen.
	return Action{Kind: Wait, Until: s.stealDeadline(id, now)}
}

// startable reports whether fill would start a worker for a peer other
// than id if id's worker ended now: one that is not asked, not bad, not
// left alone, holds an open piece and is not passed over for a delta
// peer.
func (s *Scheduler) startable(id PeerID, now time.Time) bool {
	if s.needHashes {
		return false
	}
	var open []int64
	deltas := s.deltaPreferred()
	for _, p := range s.list {
		if p.id == id || p.worker || p.bad || now.Before(p.retryAt) || (deltas && !p.delta) {
			continue
		}
		if open == nil {
			if open = s.openPieces(now); len(open) == 0 {
				return false
			}
		}
		if s.canAsk(p, open) {
			return true
		}
	}
	return false
}

// stealDeadline returns when a piece on its way from another peer than id
// may be asked of id too (zero: none will be by time alone; while a steal
// runs, the worker waits for a change).
func (s *Scheduler) stealDeadline(id PeerID, now time.Time) time.Time {
	var t time.Time
	if s.stealer != "" {
		return t
	}
	for i := s.next; i < s.windowEnd(); i++ {
		sl := s.pieces[i]
		if sl == nil || sl.have || sl.dup != "" {
			continue
		}
		if sl.by == id || !s.holds(id, i) || !s.tailOK(id, i) {
			continue
		}
		if u := s.stealAt(sl); u.After(now) && (t.IsZero() || u.Before(t)) {
			t = u
		}
	}
	return t
}

// holds reports whether peer id holds piece i.
func (s *Scheduler) holds(id PeerID, i int64) bool { return s.peers[id].holds(i) }

// holds reports whether the peer holds piece i.
func (p *peerState) holds(i int64) bool {
	return p.has == nil || (i < int64(len(p.has)) && p.has[i])
}

// unclaimed reports whether some piece is neither received nor asked for.
func (s *Scheduler) unclaimed() bool {
	return int64(s.claimed) < s.cfg.Pieces-s.next
}

// inFlight reports whether some piece is asked for and not received.
func (s *Scheduler) inFlight() bool {
	for i := s.next; i < s.windowEnd(); i++ {
		if sl := s.pieces[i]; sl != nil && !sl.have {
			return true
		}
	}
	return false
}

// rarity returns the number of usable peers that hold piece i.
func (s *Scheduler) rarity(i int64) int { return s.holders[i] }

// claimable returns the run of pieces peer id is to ask for: from the
// rarest piece in the window that nobody asked for and the peer holds (a
// random one among the first RandomFirst; the last one for a slow peer),
// as many following ones as a request of the peer may take.
func (s *Scheduler) claimable(id PeerID) []int64 {
	p := s.peers[id]
	per := int64(s.cfg.PerRequest)
	switch {
	case p.slow:
		per = 1
	case s.Usable() == 1 || p.delta:
		// The only peer, or deltas, which take few bytes: fewer round
		// trips.
		per = int64(s.cfg.MaxPerRequest)
	}
	end := s.windowEnd()
	var cands []int64
	for i := s.next; i < end; i++ {
		if s.pieces[i] == nil && s.holds(id, i) && s.tailOK(id, i) {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	first := cands[0]
	switch {
	case p.slow:
		first = cands[len(cands)-1]
	case s.received < s.cfg.RandomFirst && s.cfg.Trade:
		first = cands[s.cfg.Rand.IntN(len(cands))]
		per = 1
	case s.received < s.cfg.RandomFirst && s.partial > 0:
		first = cands[s.cfg.Rand.IntN(len(cands))]
	case s.partial == 0:
		// Every peer holds every piece: all are equally rare.
	default:
		// The rarest; among equals one at random, so that downloads
		// asking the same source (a seed, at first) ask it for
		// different pieces rather than each for the lowest: each piece
		// leaves the source once as early as it can.
		best, ties := -1, 0
		for _, i := range cands {
			switch r := s.rarity(i); {
			case best < 0 || r < best:
				first, best, ties = i, r, 1
			case r == best:
				ties++
				if s.cfg.Rand.IntN(ties) == 0 {
					first = i
				}
			}
		}
	}
	batch := []int64{first}
	for i := first + 1; i < end && int64(len(batch)) < per; i++ {
		if s.pieces[i] != nil || !s.holds(id, i) || !s.tailOK(id, i) {
			break
		}
		batch = append(batch, i)
	}
	return batch
}

// anyClaimable reports whether claimable would return a run for peer p.
func (s *Scheduler) anyClaimable(p *peerState) bool {
	if int64(s.claimed) >= s.windowEnd()-s.next {
		return false // every piece of the window is asked for
	}
	for i := s.next; i < s.windowEnd(); i++ {
		if s.pieces[i] == nil && p.holds(i) && s.tailOK(p.id, i) {
			return true
		}
	}
	return false
}

// tailOK reports whether peer id may ask for piece i: any piece but the
// tail, which waits until piece 0 is in and then goes to the peer that
// delivered it, while that peer is asked in this download.
func (s *Scheduler) tailOK(id PeerID, i int64) bool {
	if !s.cfg.Tail || i != s.cfg.Pieces-1 || s.tailFor == id {
		return true
	}
	if s.tailFor == "" {
		// Piece 0, asked first, is on its way; a download resumed past
		// it has no peer to wait for.
		return !s.withFirst
	}
	o := s.peers[s.tailFor]
	return o == nil || !o.worker
}

// stealAt returns when the piece of sl may be asked of another peer too:
// StealAfter after it was asked for or, in the endgame, once its peer has
// sent nothing for EndgameAfter and for twice the time between its last
// two pieces, if that is sooner.
func (s *Scheduler) stealAt(sl *slot) time.Time {
	t := sl.at.Add(s.cfg.StealAfter)
	if !s.endgame() {
		return t
	}
	quiet := sl.at
	var gap time.Duration
	if p := s.peers[sl.by]; p != nil {
		if p.lastAt.After(quiet) {
			quiet = p.lastAt
		}
		gap = p.gap
	}
	if u := quiet.Add(max(s.cfg.EndgameAfter, 2*gap)); u.Before(t) {
		return u
	}
	return t
}

// endgame reports whether every piece left of the file is asked for.
func (s *Scheduler) endgame() bool {
	return s.next+s.cfg.Window >= s.cfg.Pieces && !s.unclaimed()
}

// stealable returns the run of pieces for peer id to ask for that another
// peer was asked for and has not delivered: from the first piece in the
// window that may be asked of a second peer (stealAt), the following ones
// asked of the same peer that may be too, at most a request's worth;
// none while another steal runs.
func (s *Scheduler) stealable(id PeerID, now time.Time) []int64 {
	if s.stealer != "" {
		return nil
	}
	p := s.peers[id]
	ok := func(i int64, by PeerID) bool {
		sl := s.pieces[i]
		if sl == nil || sl.have || sl.dup != "" || sl.by == id || (by != "" && sl.by != by) || !p.holds(i) || !s.tailOK(id, i) {
			return false
		}
		// A slow peer's piece the reader has come to is not waited for.
		return !now.Before(s.stealAt(sl)) || (i == s.next && s.peers[sl.by].slow)
	}
	end := s.windowEnd()
	for i := s.next; i < end; i++ {
		if !ok(i, "") {
			continue
		}
		by := s.pieces[i].by
		run := []int64{i}
		for j := i + 1; j < end && len(run) < s.cfg.PerRequest && ok(j, by); j++ {
			run = append(run, j)
		}
		return run
	}
	return nil
}

// HashesDone records that peer id's hashes request ended at now: ok when
// the hashes it sent add up to the signed root (the download keeps them).
// A peer that took StealAfter or more is slow.
func (s *Scheduler) HashesDone(id PeerID, ok bool, now time.Time) {
	if p := s.peers[id]; p != nil {
		if !p.hashesAt.IsZero() && now.Sub(p.hashesAt) >= s.cfg.StealAfter {
			p.slow = true
		}
		p.hashesAt = time.Time{}
	}
	if ok {
		s.needHashes = false
	}
}

// Received records that peer id delivered piece i, checked, and reports
// whether it is kept: false when another peer's copy came first (or the
// reader is past it), and the caller drops it.
func (s *Scheduler) Received(id PeerID, i int64, now time.Time) bool {
	p := s.peers[id]
	if p != nil {
		p.fails = 0
		if !p.lastAt.IsZero() {
			p.gap = now.Sub(p.lastAt)
		}
		p.lastAt = now
	}
	sl := s.slotAt(i)
	if sl != nil && sl.dup == id {
		sl.dup = ""
	}
	if sl == nil || sl.have {
		return false
	}
	sl.have = true
	s.received++
	if i == 0 {
		s.tailFor = id
	}
	return true
}

// Consumed records that the reader took piece Next: the window moves on.
func (s *Scheduler) Consumed() {
	if s.next < s.cfg.Pieces && s.pieces[s.next] != nil {
		s.pieces[s.next] = nil
		s.claimed--
	}
	s.next++
}

// Done records that peer id's worker ended with out, at now. The pieces
// it was asked for and did not deliver go back to be asked of others; a
// piece asked of another peer too stays with that peer.
func (s *Scheduler) Done(id PeerID, out Outcome, now time.Time) {
	p := s.peers[id]
	if p == nil {
		return
	}
	if p.worker {
		p.worker = false
		s.retryOK = false
		s.workers--
	}
	p.hashesAt = time.Time{}
	if s.stealer == id {
		s.stealer = ""
	}
	for i := s.next; i < s.windowEnd(); i++ {
		sl := s.pieces[i]
		switch {
		case sl == nil:
		case sl.dup == id:
			sl.dup = ""
		case sl.by == id && !sl.have && sl.dup != "":
			sl.by, sl.dup, sl.at = sl.dup, "", now
		case sl.by == id && !sl.have:
			s.pieces[i] = nil
			s.claimed--
		}
	}
	switch out {
	case Bad:
		if !p.bad {
			p.bad = true
			s.retryOK = false
			s.usable--
			s.countHolders(p, -1)
		}
	case Busy, Failed:
		p.fails++
		p.retryAt = now.Add(RetryDelay(s.cfg.Rand, p.fails, out == Busy))
		s.retryOK = false
	}
}

// State is a snapshot of a download, for traces and tests.
type State struct {
	// Reader is the piece the reader is at, Kept the pieces received.
	Reader int64
	Kept   int
	// Peers counts the usable peers known, Partial those that hold only
	// some pieces, Workers those asked now, BackedOff those left alone
	// until a later time.
	Peers, Partial, Workers, BackedOff int
	// Claimable counts the peers not asked now that hold a piece of the
	// window nobody asked for.
	Claimable int
	// InFlight counts the pieces asked for and not received.
	InFlight int
}

// State returns a snapshot of the download at now.
func (s *Scheduler) State(now time.Time) State {
	st := State{Reader: s.next, Kept: s.received, Workers: s.workers}
	for _, p := range s.list {
		if p.bad {
			continue
		}
		st.Peers++
		if p.has != nil {
			st.Partial++
		}
		if !p.worker && now.Before(p.retryAt) {
			st.BackedOff++
		}
		if !p.worker && s.anyClaimable(p) {
			st.Claimable++
		}
	}
	for i := s.next; i < s.windowEnd(); i++ {
		if sl := s.pieces[i]; sl != nil && !sl.have {
			st.InFlight++
		}
	}
	return st
}
