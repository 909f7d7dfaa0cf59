package p2p

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Strike weights, and how strikes count. Only provably bad data gets a
// strike: a reset or refused stream, a busy or not-found answer, a stall
// or a drip gets none (the download skips the peer for a while instead).
const (
	// strikeMalformed is the weight of a malformed answer: bytes that
	// break the frame format, or a frame that ends early.
	strikeMalformed = 2
	// strikeForged is the weight of a forged info, a list of piece hashes
	// or a piece that does not match the signed root, or bytes the update
	// engine refused that nobody could check on arrival (see
	// Release.Reject).
	strikeForged = 3
	// maxStrikes is where a peer is no longer asked while others are left.
	maxStrikes = 6
	// strikeMemory is how long after its last strike a peer's strikes are
	// forgotten.
	strikeMemory = 10 * time.Minute
	// maxStruckPeers bounds the peers remembered, and so the memory of
	// strikes.
	maxStruckPeers = 4096
)

// strikes remembers misbehaviour per peer: peers with more strikes are
// asked last, and peers with maxStrikes or more are not asked at all while
// others are left.
type strikes struct {
	mu     sync.Mutex
	byPeer map[peer.ID]*strikeRecord

	given atomic.Uint64 // strikes given, for Stats
}

// strikeRecord is the strikes of one peer.
type strikeRecord struct {
	n    int
	last time.Time
}

func newStrikes() *strikes {
	return &strikes{byPeer: map[peer.ID]*strikeRecord{}}
}

// add gives p weight more strikes and returns p's total.
func (s *strikes) add(p peer.ID, weight int) int {
	s.given.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byPeer) >= maxStruckPeers {
		s.makeRoom()
	}
	r := s.byPeer[p]
	if r == nil || time.Since(r.last) > strikeMemory {
		r = &strikeRecord{}
		s.byPeer[p] = r
	}
	r.n += weight
	r.last = time.Now()
	return r.n
}

// makeRoom forgets old strikes, or else the peer struck longest ago: many
// peers misbehave, or one with many identities. s.mu is held.
func (s *strikes) makeRoom() {
	var oldest peer.ID
	for q, r := range s.byPeer {
		if time.Since(r.last) > strikeMemory {
			delete(s.byPeer, q)
		} else if oldest == "" || r.last.Before(s.byPeer[oldest].last) {
			oldest = q
		}
	}
	if len(s.byPeer) >= maxStruckPeers {
		delete(s.byPeer, oldest)
	}
}

// of returns p's current strikes.
func (s *strikes) of(p peer.ID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.byPeer[p]
	if r == nil || time.Since(r.last) > strikeMemory {
		return 0
	}
	return r.n
}

// strike records misbehaviour of p with weight strikeMalformed or
// strikeForged, and logs it with its reason.
func (n *Node) strike(p peer.ID, weight int, reason error) {
	total := n.strikes.add(p, weight)
	n.log.Warn("peer misbehaved", "peer", p, "strikes", total, "err", reason)
}
