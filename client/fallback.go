package client

import (
	"math/rand/v2"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// DefaultPeerWait is Config.PeerWait's default. A network of N nodes that
// poll every Interval takes a release over HTTPS about 1 + N x (Interval +
// the time the release takes to spread) / PeerWait times: with the
// defaults, 3 times for 20 nodes.
const DefaultPeerWait = 10 * time.Minute

// A fallbackSource is a Source to take a release from only when no peer
// offers it: an HTTPS source of a program with the network on. Among
// releases of one version the engine tries its peers' first; it takes one
// from such a source once the source's wait for a peer is over (due), and
// at once when the node has no peer at all to ask (see peerCounter). So
// the server sends a release to the first nodes of a network, and the
// network spreads it; a node that no peer can reach (behind a firewall
// that lets only HTTPS out) does not wait for nothing.
//
// A peer's copy that failed does not end the wait: such failures come to
// many nodes at once (the first node that has a release is asked by all
// the others, and answers most of them "busy", or a loaded machine is
// slow to answer), and each would take its own copy from the server,
// which is what the wait is for. The node asks its peers again at its next
// poll. Once a peer offered a version, the source waits for it at least
// PeerGrace (or its whole wait, if shorter) after that first offer, even
// when its own wait ended sooner: a release the network has spreads
// from peer to peer within seconds, and a node whose draw falls in those
// seconds would otherwise take a copy the server need not send. Past
// that, the node takes the release from the source, so peers that offer
// a release but never deliver it (unreachable, or lying) delay it a
// bounded time.
type fallbackSource interface {
	// fallback reports whether the source is one now (see preferPeers).
	fallback() bool
	// due reports whether the release in may be taken from the source
	// now, when peers first offered its version at peerSince (zero if
	// none has).
	due(in region.Info, peerSince time.Time) bool
}

// PeerGrace is the longest a fallback source waits for peers to deliver a
// version they offer, counted from the first offer (see fallbackSource).
const PeerGrace = 2 * time.Minute

// A peerPreferrer is a Source that can be told to give way to the
// network.
type peerPreferrer interface {
	// preferPeers makes the source a fallbackSource that waits up to
	// wait, a random part of it, for a peer to offer each release.
	preferPeers(wait time.Duration)
}

// preferPeers makes the sources of cfg that can give way to the network
// do so, when the network is on.
func preferPeers(cfg Config) {
	if !cfg.Network.enabled() || cfg.PeerWait < 0 {
		return
	}
	wait := cfg.PeerWait
	if wait == 0 {
		wait = DefaultPeerWait
	}
	for _, s := range cfg.Sources {
		if p, ok := s.(peerPreferrer); ok {
			p.preferPeers(wait)
		}
	}
}

// A peerCounter is a network source that can tell whether the node has
// any peer: a node connected to none, after it dialled its bootstrap peers
// and asked the network for releases, has nobody a release could come
// from.
type peerCounter interface {
	// hasPeers reports whether the node is connected to a peer.
	hasPeers() bool
}

// isFallback reports whether c comes from a fallbackSource.
func isFallback(c candidate) bool {
	f, ok := c.src.(fallbackSource)
	return ok && f.fallback()
}

// Why a candidate may be tried now (see fallbackReady).
const (
	readyNotFallback = iota // it does not come from a fallbackSource
	readyNotYet             // it does, and its wait is not over
	readyAlone              // it does, and the node has no peer at all
	readyDue                // it does, and its wait for a peer is over
)

// fallbackReady reports whether the candidate c may be tried now, by a
// node that has no peer at all if alone and whose peers first offered c's
// version at peerSince (zero if none did), and why: always unless it comes
// from a fallbackSource whose wait is not over and the node has peers.
func fallbackReady(c candidate, alone bool, peerSince time.Time) int {
	f, ok := c.src.(fallbackSource)
	switch {
	case !ok || !f.fallback():
		return readyNotFallback
	case alone:
		return readyAlone
	case f.due(c.in, peerSince):
		return readyDue
	}
	return readyNotYet
}

// peerOffers is when the network first offered each version, for
// fallbackReady. Its zero value has seen none.
type peerOffers map[string]time.Time

// saw records that the network offers the version at now, unless it did
// before.
func (o *peerOffers) saw(version string, now time.Time) {
	if _, ok := (*o)[version]; ok {
		return
	}
	if *o == nil || len(*o) >= maxRemembered {
		*o = peerOffers{}
	}
	(*o)[version] = now
}

// peerWaits is when each release found on a fallback source may be taken
// from it, by version and hash: at a random time within the wait after
// it was first seen. Its zero value waits for nothing.
type peerWaits struct {
	wait time.Duration
	at   map[string]time.Time
}

// due reports whether the release in may be taken now, when peers first
// offered its version at peerSince (zero if none did).
func (w *peerWaits) due(in region.Info, peerSince, now time.Time) bool {
	if w.wait <= 0 {
		return true
	}
	k := in.Version + "\x00" + string(in.Hash[:])
	at, ok := w.at[k]
	if !ok {
		if w.at == nil || len(w.at) >= maxRemembered {
			w.at = map[string]time.Time{}
		}
		at = now.Add(rand.N(w.wait))
		w.at[k] = at
	}
	if !peerSince.IsZero() {
		// Drawn when first seen all the same: the grace does not
		// delay the draw, it only holds the release while it runs.
		at = later(at, peerSince.Add(min(w.wait, PeerGrace)))
	}
	return !now.Before(at)
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
