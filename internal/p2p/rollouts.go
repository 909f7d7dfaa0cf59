package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Bounds of what a node keeps for rollouts.
const (
	// maxServedRollouts bounds the owner keys and targets whose rollout
	// statement a node serves.
	maxServedRollouts = 64
	// maxWithdrawn bounds the versions withdrawn per owner key and target.
	maxWithdrawn = 256
)

// ErrWithdrawn means a release was not served because its version was
// withdrawn (see Node.Withdraw).
var ErrWithdrawn = errors.New("version withdrawn")

// ServeRollout serves the rollout statement st: a peer that asks, under
// the protocol of st.Key, for st.Target gets it (and, with its request,
// reports what it runs: see Config.OnReport). The node keeps one statement
// per key and target, the one with the highest sequence: a statement with
// a higher sequence replaces the one served, and serving the same one
// again does nothing. ServeRollout refuses, naming the target and key, a
// statement that does not verify (rollout.ErrMalformed,
// rollout.ErrBadSignature), one older than the one served
// (rollout.ErrReplay), one of the same sequence with other content
// (rollout.ErrConflict) and one that has expired (rollout.ErrExpired); a
// statement served that expires later is no longer sent. At most 64 keys
// and targets are served.
//
// The node announces the channel of st.Key and st.Target, so that nodes
// that look for releases find it even when it serves none, and withdraws
// every version the statement yanks (see Withdraw).
func (n *Node) ServeRollout(ctx context.Context, st rollout.Statement) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	n.serveMu.Lock()
	defer n.serveMu.Unlock()
	added, err := n.server.putRollout(st, time.Now())
	if err != nil {
		return fmt.Errorf("serving the rollout statement of %s by %s: %w", st.Target, region.EncodePublicKey(st.Key), err)
	}
	if !added {
		return nil
	}
	n.ann.add(ChannelCID(st.Key, st.Target), "rollout "+st.Target)
	n.log.Info("serving rollout statement", "target", st.Target, "key", region.EncodePublicKey(st.Key), "sequence", st.Sequence, "expires", st.Expires)
	var yanked []string
	for _, y := range st.Yanks {
		yanked = append(yanked, y.Version)
	}
	n.withdrawLocked(st.Key, st.Target, yanked)
	return nil
}

// putRollout serves st in place of the statement of its key and target
// unless that one is st or newer; added reports whether it did.
func (s *server) putRollout(st rollout.Statement, now time.Time) (added bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	k := ownerKey(st.Key, st.Target)
	held, ok := s.rollouts[k]
	var hp *rollout.Statement
	if ok {
		hp = &held
	}
	newer, err := rollout.Check(hp, st, st.Key, st.Target, now)
	if err != nil || !newer {
		return false, err
	}
	if !ok && len(s.rollouts) >= maxServedRollouts {
		return false, fmt.Errorf("already %d rollout statements served", maxServedRollouts)
	}
	if s.rollouts == nil {
		s.rollouts = map[string]rollout.Statement{}
	}
	s.rollouts[k] = st
	s.handleProtocol(st.Key)
	return true, nil
}

// rolloutOf returns the statement served for target under pub, unless
// there is none or it has expired at now.
func (s *server) rolloutOf(pub ed25519.PublicKey, target string, now time.Time) (rollout.Statement, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.rollouts[ownerKey(pub, target)]
	if !ok || st.Expired(now) {
		return rollout.Statement{}, false
	}
	return st, true
}

// keepsChannel reports whether the node serves statements that keep the
// channel of pub and target announced when it serves no release of it.
func (s *server) keepsChannel(pub ed25519.PublicKey, target string) bool {
	if len(s.rotationsFrom(pub, target)) > 0 {
		return true
	}
	_, ok := s.rolloutOf(pub, target, time.Now())
	return ok
}

// Withdraw stops serving and announcing the releases of target signed by
// pub whose version is one of versions, as for a yanked release: running
// uploads finish, and Serve refuses those versions afterwards, with
// ErrWithdrawn, for as long as the node runs. ServeRollout withdraws the
// versions a statement yanks by itself. At most 256 versions are kept per
// key and target; more are ignored, with a warning.
func (n *Node) Withdraw(pub ed25519.PublicKey, target string, versions ...string) {
	n.serveMu.Lock()
	defer n.serveMu.Unlock()
	n.withdrawLocked(pub, target, versions)
}

// withdrawLocked is Withdraw with n.serveMu held.
func (n *Node) withdrawLocked(pub ed25519.PublicKey, target string, versions []string) {
	gone, full := n.server.withdraw(pub, target, versions)
	gone = append(gone, n.server.takePartials(pub, target, versions)...) // see partial.go
	if full {
		n.log.Warn("too many withdrawn versions; some are still served", "target", target, "limit", maxWithdrawn)
	}
	for _, sv := range gone {
		n.ann.remove(ReleaseCID(pub, target, sv.id))
	}
	if len(gone) > 0 && n.server.newestOf(pub, target) == nil && !n.server.keepsChannel(pub, target) {
		n.ann.remove(ChannelCID(pub, target))
	}
	for _, sv := range gone {
		sv.release()
		n.log.Info("no longer serving withdrawn release", "target", target, "version", sv.info.Version)
	}
}

// withdraw records versions as withdrawn for pub and target and removes
// the releases of those versions served, which it returns (not released
// yet); full reports that some versions were not recorded.
func (s *server) withdraw(pub ed25519.PublicKey, target string, versions []string) (gone []*served, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ownerKey(pub, target)
	if s.withdrawn == nil {
		s.withdrawn = map[string]map[string]bool{}
	}
	w := s.withdrawn[k]
	if w == nil {
		w = map[string]bool{}
		s.withdrawn[k] = w
	}
	for _, v := range versions {
		if c, err := region.ParseVersion(v); err == nil {
			v = c
		}
		if !w[v] && len(w) >= maxWithdrawn {
			full = true
			continue
		}
		w[v] = true
	}
	for id, sv := range s.byID {
		if sv.pub.Equal(pub) && sv.target == target && s.isWithdrawn(pub, target, sv.info.Version) {
			delete(s.byID, id)
			if s.newest[k] == sv {
				delete(s.newest, k)
			}
			gone = append(gone, sv)
		}
	}
	return gone, full
}

// withdrawnVersion reports whether version was withdrawn for pub and
// target.
func (s *server) withdrawnVersion(pub ed25519.PublicKey, target, version string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isWithdrawn(pub, target, version)
}

// isWithdrawn reports whether version was withdrawn for pub and target.
// s.mu is held.
func (s *server) isWithdrawn(pub ed25519.PublicKey, target, version string) bool {
	if c, err := region.ParseVersion(version); err == nil {
		version = c
	}
	return s.withdrawn[ownerKey(pub, target)][version]
}

// SetReport sets what the node's rollout requests report about it: the
// version it runs and the version it last rolled back from (see
// wire.Report). Nodes that never call it report nothing.
func (n *Node) SetReport(r wire.Report) error {
	if err := r.Check(); err != nil {
		return fmt.Errorf("rollout report: %w", err)
	}
	n.report.Store(&r)
	return nil
}

// reportOf returns what the node's rollout requests report.
func (n *Node) reportOf() wire.Report {
	if r := n.report.Load(); r != nil {
		return *r
	}
	return wire.Report{}
}

// Rollouts asks the bootstrap peers, the connected peers that speak the
// owner's protocol and the DHT's providers of the channel of the source's
// key and target (every node that serves a release or a statement of it)
// for their rollout statement of the target, all at once, and
// returns the distinct statements that verify, signed by the source's key,
// for its target, highest sequence first. It does not check expiry,
// sequence or replay: the caller holds the statement it accepted (see
// rollout.Check). A peer that sends a statement that does not verify, or
// one for another target or signed by another key, gets a strike; a peer
// of an older release refuses the request, which counts as no statement.
// Each request reports what SetReport set.
func (s *Source) Rollouts(ctx context.Context) ([]rollout.Statement, error) {
	if err := s.n.checkOpen(); err != nil {
		return nil, err
	}
	got := askPeers(ctx, s, "rollout", true, s.askRollouts)
	var out []rollout.Statement
	for _, st := range got {
		if !slices.ContainsFunc(out, st.Equal) {
			out = append(out, st)
		}
	}
	// sort.SliceStable, not slices.SortStableFunc: a generic sort of a struct
	// links its own copy of the sort (docs/BENCHMARKS.md, Cost of embedding).
	sort.SliceStable(out, func(i, j int) bool { return out[i].Sequence > out[j].Sequence })
	return out, ctx.Err()
}

// askRollouts asks ai for its statement of the source's target, and checks
// each one it sends.
func (s *Source) askRollouts(ctx context.Context, ai peer.AddrInfo) ([]rollout.Statement, error) {
	st, err := s.n.request(ctx, s.pub, ai, &wire.Request{Kind: wire.KindRollout, Target: s.target, Report: s.n.reportOf()})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	// The stream's deadline is the idle timeout: ctx ending (the
	// caller's bound, or a grace after other answers) ends the read.
	defer context.AfterFunc(ctx, func() { st.Reset() })()
	cr := &countingReader{r: st}
	got, err := wire.ReadRollouts(cr)
	if err != nil {
		if errors.Is(err, wire.ErrMalformed) && ctx.Err() == nil && cr.n > 0 {
			s.n.strike(ai.ID, strikeMalformed, fmt.Errorf("rollout answer: %w", err))
		}
		return nil, fmt.Errorf("peer %s: %w", ai.ID, err)
	}
	for _, r := range got {
		switch {
		case r.Target != s.target:
			err = fmt.Errorf("a rollout statement for %s, asked for %s", r.Target, s.target)
		case !r.Key.Equal(s.pub):
			err = fmt.Errorf("a rollout statement of %s signed by %s, not by the owner key %s", r.Target, region.EncodePublicKey(r.Key), region.EncodePublicKey(s.pub))
		default:
			if verr := r.Verify(); verr != nil {
				err = fmt.Errorf("rollout statement of %s, sequence %d: %w", r.Target, r.Sequence, verr)
			}
		}
		if err != nil {
			s.n.strike(ai.ID, strikeForged, err)
			return nil, fmt.Errorf("peer %s: %w", ai.ID, err)
		}
	}
	return got, nil
}

// serveRollout answers a rollout request: the statement served for the
// target under pub, if any and not expired, after passing the peer's
// report on to Config.OnReport.
func (s *server) serveRollout(st network.Stream, remote peer.ID, pub ed25519.PublicKey, req *wire.Request) {
	if s.onReport != nil {
		s.onReport(remote, pub, req.Target, req.Report)
	}
	var out []rollout.Statement
	if r, ok := s.rolloutOf(pub, req.Target, time.Now()); ok {
		out = append(out, r)
	}
	wire.WriteRollouts(st, out)
}

// countingReader counts the bytes read through it: a statement answer
// that ends before its first byte is a peer going away (its node closing,
// as before a restart), not a malformed answer, and earns no strike.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
