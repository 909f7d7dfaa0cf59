package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// maxServedRotations bounds the key rotation statements a node serves.
const maxServedRotations = 64

// ServeRotations serves key rotation statements: a peer that asks under
// the protocol of a statement's old key for its target gets the chain of
// statements that moves the target on from that key (see
// rotation.Follow), and the node announces the channel of the old key and
// target, so that apps still trusting it find the statements. Each
// statement must verify; ServeRotations refuses the call, naming the
// statement, when one does not. Statements already served are not served
// twice; at most 64 are kept.
func (n *Node) ServeRotations(ctx context.Context, stmts []rotation.Statement) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	for _, st := range stmts {
		if err := st.Verify(); err != nil {
			return fmt.Errorf("serving the key rotation of %s from %s: %w", st.Target, region.EncodePublicKey(st.From), err)
		}
	}
	n.serveMu.Lock()
	defer n.serveMu.Unlock()
	added, err := n.server.putRotations(stmts)
	if err != nil {
		return err
	}
	for _, st := range added {
		n.ann.add(ChannelCID(st.From, st.Target), "key rotation "+st.Target)
		n.log.Info("serving key rotation", "target", st.Target, "from", region.EncodePublicKey(st.From), "to", region.EncodePublicKey(st.To), "sequence", st.Sequence)
	}
	return nil
}

// putRotations adds the statements not served yet and returns them.
func (s *server) putRotations(stmts []rotation.Statement) ([]rotation.Statement, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	var added []rotation.Statement
	for _, st := range stmts {
		dup := false
		for _, have := range s.rotations {
			if have.Signature == st.Signature && have.From.Equal(st.From) {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		if len(s.rotations) >= maxServedRotations {
			return added, fmt.Errorf("serving the key rotation of %s from %s: already %d statements served", st.Target, region.EncodePublicKey(st.From), maxServedRotations)
		}
		s.rotations = append(s.rotations, st)
		s.handleProtocol(st.From)
		added = append(added, st)
	}
	return added, nil
}

// rotationsFrom returns the chain of statements served that moves target
// on from pub.
func (s *server) rotationsFrom(pub ed25519.PublicKey, target string) []rotation.Statement {
	s.mu.Lock()
	all := s.rotations
	s.mu.Unlock()
	_, chain := rotation.Follow(pub, target, all)
	return chain
}

// Rotations asks the bootstrap peers and the connected peers that speak
// the owner's protocol for the key rotation statements that move the
// source's target on from its key, and returns those that verify, for the
// target: the caller follows them (rotation.Follow). A peer that sends a
// statement that does not verify, or one for another target, gets a
// strike. Peers found by a DHT lookup become connected peers in Releases,
// so a poll that calls Releases makes the next Rotations ask them too.
func (s *Source) Rotations(ctx context.Context) ([]rotation.Statement, error) {
	if err := s.n.checkOpen(); err != nil {
		return nil, err
	}
	return askPeers(ctx, s, "rotations", false, s.askRotations), ctx.Err()
}

// statementGrace is how long, once one peer answered a statement request
// (see askPeers), the others still get: statements are small and a peer
// that is there answers at once, so a peer that is slower is most likely
// gone (its connection dropped without a word, its timeouts not run out
// yet), and what it holds the next poll asks for again.
const statementGrace = 2 * time.Second

// askPeers asks the bootstrap peers and the connected peers that speak
// the owner's protocol, and with lookup set the DHT's providers of the
// source's channel as they are found too (see candidates), at most
// maxCandidates of them and none with too many strikes, each as soon as
// it is known (the requests and answers are small), with ask, and returns
// all they answered. Once one peer answered, the others, and the lookup,
// get statementGrace more, so that a peer that is gone does not hold up
// the caller until ctx ends. what names the request in logs.
func askPeers[T any](ctx context.Context, s *Source, what string, lookup bool, ask func(context.Context, peer.AddrInfo) ([]T, error)) []T {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cands := make(chan peer.AddrInfo, maxCandidates)
	key := cid.Undef
	if lookup {
		key = ChannelCID(s.pub, s.target)
	}
	go s.n.candidates(ctx, s.pub, key, s.n.cfg.LookupTimeout, cands)
	var (
		mu    sync.Mutex
		out   []T
		wg    sync.WaitGroup
		grace sync.Once
	)
	seen := map[peer.ID]bool{s.n.h.ID(): true}
	for ai := range cands {
		if seen[ai.ID] || len(seen) > maxCandidates || s.n.strikes.of(ai.ID) >= maxStrikes {
			continue
		}
		seen[ai.ID] = true
		wg.Go(func() {
			got, err := ask(ctx, ai)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, wire.ErrNotFound) {
					s.n.log.Debug(what+" request failed", "peer", ai.ID, "err", err)
				}
				return
			}
			grace.Do(func() { time.AfterFunc(statementGrace, cancel) })
			mu.Lock()
			out = append(out, got...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// askRotations asks ai for the statements that move the source's target
// on from its key, and checks each.
func (s *Source) askRotations(ctx context.Context, ai peer.AddrInfo) ([]rotation.Statement, error) {
	st, err := s.n.request(ctx, s.pub, ai, &wire.Request{Kind: wire.KindRotations, Target: s.target})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	// The stream's deadline is the idle timeout: ctx ending (the
	// caller's bound, or a grace after other answers) ends the read.
	defer context.AfterFunc(ctx, func() { st.Reset() })()
	cr := &countingReader{r: st}
	got, err := wire.ReadRotations(cr)
	if err != nil {
		if errors.Is(err, wire.ErrMalformed) && ctx.Err() == nil && cr.n > 0 {
			s.n.strike(ai.ID, strikeMalformed, fmt.Errorf("rotations answer: %w", err))
		}
		return nil, fmt.Errorf("peer %s: %w", ai.ID, err)
	}
	for _, r := range got {
		if r.Target != s.target {
			err = fmt.Errorf("a key rotation statement for %s, asked for %s", r.Target, s.target)
		} else if verr := r.Verify(); verr != nil {
			err = fmt.Errorf("key rotation statement from %s: %w", region.EncodePublicKey(r.From), verr)
		}
		if err != nil {
			s.n.strike(ai.ID, strikeForged, err)
			return nil, fmt.Errorf("peer %s: %w", ai.ID, err)
		}
	}
	return got, nil
}

// serveRotations answers a rotations request.
func (s *server) serveRotations(st network.Stream, pub ed25519.PublicKey, req *wire.Request) {
	wire.WriteRotations(st, s.rotationsFrom(pub, req.Target))
}
