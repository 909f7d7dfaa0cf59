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
// that only such a source offers once the source's wait for a peer is
// over (due), at once when a peer's copy of that version failed in the
// same poll, and at once when the node has no peer at all to ask (see
// peerCounter). So the server sends a release to the first nodes of a
// network, and the network spreads it; a node that no peer can reach
// (behind a firewall that lets only HTTPS out) does not wait for nothing.
type fallbackSource interface {
	// fallback reports whether the source is one now (see preferPeers).
	fallback() bool
	// due reports whether a release that no peer offers may be taken
	// from the source now.
	due(in region.Info) bool
}

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

// fallbackReady reports whether the candidate c may be tried now, in a
// poll that tried (and failed with) the versions in tried, by a node that
// has no peer at all if alone: always unless it comes from a
// fallbackSource whose wait is not over, no peer's copy of the version
// failed and the node has peers.
func fallbackReady(c candidate, tried map[string]bool, alone bool) bool {
	f, ok := c.src.(fallbackSource)
	if !ok || !f.fallback() {
		return true
	}
	return alone || tried[c.in.Version] || f.due(c.in)
}

// peerWaits is when each release found on a fallback source may be taken
// from it, by version and hash: at a random time within the wait after
// it was first seen. Its zero value waits for nothing.
type peerWaits struct {
	wait time.Duration
	at   map[string]time.Time
}

func (w *peerWaits) due(in region.Info, now time.Time) bool {
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
	return !now.Before(at)
}
