package p2p

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Limits of the streams of the protocol that the handler holds (see
// docs/PROTOCOL.md, Limits).
const (
	// maxStreams is how many streams of the protocol the handler holds
	// at once. Past it, a new stream takes the place of a stream that has
	// sent no request yet from the peer that holds the most, if that peer
	// holds at least two more than the new stream's peer; otherwise the new
	// stream is refused. The resource manager's hard limit for the service
	// (serviceStreams) is above it, so that the handler sees the streams
	// it has to choose between.
	maxStreams = 256
	// maxStreamsPerIP bounds the streams one IPv4 address or IPv6 /56
	// holds; loopback, and relayed connections (limited anyway), are not
	// counted.
	maxStreamsPerIP = 64
	// requestTimeout is how long a stream may be open without its request:
	// a client writes its request (at most 156 bytes) with the stream's
	// opening, so 3 s covers a slow link's round trips, and a stream that
	// sends nothing holds its place for no longer.
	requestTimeout = 3 * time.Second
)

// admission shares the streams the handler holds fairly among peers and
// IP addresses: at most max in all and perIP from one address; under
// pressure the peers with the fewest streams go first (see maxStreams).
type admission struct {
	max, perIP int

	mu     sync.Mutex
	total  int
	byPeer map[peer.ID]*peerStreams
	byIP   map[netip.Prefix]int

	refused, evicted atomic.Uint64 // for Stats
}

// peerStreams are the streams of one peer in the handler.
type peerStreams struct {
	n       int
	waiting []*admitted // those that sent no request yet, oldest first
}

// admitted is one stream in the handler.
type admitted struct {
	p       peer.ID
	ip      netip.Prefix // not valid when not counted
	reset   func()
	waiting bool // no request read yet
	evicted bool // its place went to another stream
}

func newAdmission(max, perIP int) *admission {
	return &admission{max: max, perIP: perIP, byPeer: map[peer.ID]*peerStreams{}, byIP: map[netip.Prefix]int{}}
}

// streamPrefix returns the address st counts under for maxStreamsPerIP:
// its remote IPv4 address, or IPv6 /56; not valid for loopback, relayed
// or unknown addresses.
func streamPrefix(st network.Stream) netip.Prefix {
	ip, err := manet.ToIP(st.Conn().RemoteMultiaddr())
	if err != nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok || a.Unmap().IsLoopback() {
		return netip.Prefix{}
	}
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 56
	}
	pre, _ := a.Prefix(bits)
	return pre
}

// admit takes a place for a stream of p from ip, which reset ends, and
// returns it, or nil and why when the stream is refused. Under pressure it
// may evict a waiting stream of another peer (see maxStreams). A non-nil
// place must be given back with done.
func (a *admission) admit(p peer.ID, ip netip.Prefix, reset func()) (*admitted, string) {
	a.mu.Lock()
	if ip.IsValid() && a.byIP[ip] >= a.perIP {
		a.mu.Unlock()
		a.refused.Add(1)
		return nil, "too many streams from " + ip.String()
	}
	var victim *admitted
	if a.total >= a.max {
		victim = a.victimLocked(p)
		if victim == nil {
			a.mu.Unlock()
			a.refused.Add(1)
			return nil, "too many streams, none held by a peer with more"
		}
		victim.evicted = true
		a.removeLocked(victim)
	}
	s := &admitted{p: p, ip: ip, reset: reset, waiting: true}
	ps := a.byPeer[p]
	if ps == nil {
		ps = &peerStreams{}
		a.byPeer[p] = ps
	}
	ps.n++
	ps.waiting = append(ps.waiting, s)
	a.total++
	if ip.IsValid() {
		a.byIP[ip]++
	}
	a.mu.Unlock()
	if victim != nil {
		a.evicted.Add(1)
		victim.reset()
	}
	return s, ""
}

// victimLocked returns the oldest waiting stream of the peer that holds
// the most streams, if it holds at least two more than p. a.mu is held.
func (a *admission) victimLocked(p peer.ID) *admitted {
	mine := 0
	if ps := a.byPeer[p]; ps != nil {
		mine = ps.n
	}
	var most *peerStreams
	for _, ps := range a.byPeer {
		if len(ps.waiting) > 0 && (most == nil || ps.n > most.n) {
			most = ps
		}
	}
	if most == nil || most.n < mine+2 {
		return nil
	}
	return most.waiting[0]
}

// removeLocked forgets s. a.mu is held.
func (a *admission) removeLocked(s *admitted) {
	ps := a.byPeer[s.p]
	if s.waiting {
		for i, w := range ps.waiting {
			if w == s {
				ps.waiting = append(ps.waiting[:i], ps.waiting[i+1:]...)
				break
			}
		}
		s.waiting = false
	}
	if ps.n--; ps.n == 0 {
		delete(a.byPeer, s.p)
	}
	a.total--
	if s.ip.IsValid() {
		if a.byIP[s.ip]--; a.byIP[s.ip] <= 0 {
			delete(a.byIP, s.ip)
		}
	}
}

// requested marks s as having sent its request: it is no longer evicted
// for others. It reports false when s was evicted already.
func (a *admission) requested(s *admitted) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.evicted {
		return false
	}
	ps := a.byPeer[s.p]
	for i, w := range ps.waiting {
		if w == s {
			ps.waiting = append(ps.waiting[:i], ps.waiting[i+1:]...)
			break
		}
	}
	s.waiting = false
	return true
}

// wasEvicted reports whether s lost its place to another stream.
func (a *admission) wasEvicted(s *admitted) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return s.evicted
}

// done gives back the place of s.
func (a *admission) done(s *admitted) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !s.evicted {
		a.removeLocked(s)
	}
}

// held returns the number of streams held.
func (a *admission) held() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}
