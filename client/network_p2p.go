//go:build !rustpatcher_nop2p

package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/org/rustpatcher-go/internal/checked"
	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/p2phost"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/region"
)

// enabled reports whether the network is to be joined.
func (nc NetworkConfig) enabled() bool { return !nc.Disabled }

// check reports a configuration that can never work: a private network
// with no peer to join through, or addresses that do not parse.
func (nc NetworkConfig) check() error {
	if nc.Disabled {
		return nil
	}
	if nc.Private && len(nc.Bootstrap) == 0 {
		return fmt.Errorf("client: %w: Network.Private needs Network.Bootstrap peers (such as an rpseed's listening: addresses): a private network has no other way in", ErrNetworkConfig)
	}
	quic := nc.QUIC != nil
	if quic && nc.QUIC.Constructor() == nil {
		return fmt.Errorf("client: %w: Network.QUIC is an empty QUICTransport: set it to quic.Transport() of package github.com/org/rustpatcher-go/client/quic", ErrNetworkConfig)
	}
	// Without QUIC, a peer must have an address that is not QUIC.
	tcp := map[peer.ID]bool{}
	var order []peer.ID
	for _, b := range nc.Bootstrap {
		ai, err := peer.AddrInfoFromString(b)
		if err != nil {
			return fmt.Errorf("client: %w: bootstrap peer %q: %v (want a multiaddr ending in /p2p/<peer id>, as rpseed prints on its listening: lines)", ErrNetworkConfig, b, err)
		}
		if _, ok := tcp[ai.ID]; !ok {
			order = append(order, ai.ID)
		}
		tcp[ai.ID] = tcp[ai.ID] || slices.ContainsFunc(ai.Addrs, func(a ma.Multiaddr) bool { return !p2phost.IsQUIC(a) })
	}
	for _, id := range order {
		if !quic && !tcp[id] {
			return fmt.Errorf("client: %w: bootstrap peer %s is given by QUIC addresses only, and this node has TCP alone: add the peer's /tcp/ address (rpseed prints one listening: line for each), or set Network.QUIC to quic.Transport() of package github.com/org/rustpatcher-go/client/quic", ErrNetworkConfig, id)
		}
	}
	for _, l := range nc.ListenAddrs {
		a, err := ma.NewMultiaddr(l)
		if err != nil {
			return fmt.Errorf("client: %w: listen address %q: %v (want a multiaddr such as /ip4/0.0.0.0/tcp/4001)", ErrNetworkConfig, l, err)
		}
		if !quic && p2phost.IsQUIC(a) {
			return fmt.Errorf("client: %w: listen address %q is QUIC, and this node has TCP alone: listen on TCP (such as /ip4/0.0.0.0/tcp/4001), or set Network.QUIC to quic.Transport() of package github.com/org/rustpatcher-go/client/quic", ErrNetworkConfig, l)
		}
	}
	return nil
}

// startNetwork joins the peer-to-peer network and returns it as a Source
// (which is also a Seeder) for releases signed by pub for the running
// target, or nil when the network is disabled.
func startNetwork(ctx context.Context, nc NetworkConfig, pub []byte, log *slog.Logger) (Source, io.Closer, error) {
	if nc.Disabled {
		return nil, nil, nil
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if log == nil {
		log = slog.Default()
	}
	var q p2p.QUIC
	if nc.QUIC != nil {
		q = nc.QUIC.Constructor()
	}
	var id crypto.PrivKey
	if nc.IdentityFile != "" {
		k, err := p2p.LoadIdentity(nc.IdentityFile)
		if err != nil {
			return nil, nil, err
		}
		id = k
	}
	n, err := p2p.New(ctx, p2p.Config{
		Identity:           id,
		Private:            nc.Private,
		Bootstrap:          nc.Bootstrap,
		ListenAddrs:        nc.ListenAddrs,
		QUIC:               q,
		DHTServer:          nc.DHTServer,
		UploadSlots:        nc.UploadSlots,
		UploadSlotsPerPeer: nc.UploadSlotsPerPeer,
		UploadRate:         nc.UploadRate,
		IdleTimeout:        nc.IdleTimeout,
		// Each piece is passed on as soon as it is checked, before the
		// whole file is in: a release spreads piece by piece.
		PiecesEarly: true,
		Logger:      log,
	})
	if err != nil {
		return nil, nil, err
	}
	if nc.OnListen != nil {
		for _, a := range n.Addrs() {
			nc.OnListen(a)
		}
	}
	target := runtime.GOOS + "/" + runtime.GOARCH
	own := ed25519.PublicKey(pub)
	return &networkSource{node: n, target: target, own: own, log: log, s: n.Source(own, target)}, n, nil
}

// networkSource adapts the p2p source to the Source and Seeder interfaces.
// It looks for releases signed by the key the program trusts: its own, or
// the one a key rotation moved its target to (see trust).
type networkSource struct {
	node   *p2p.Node
	target string
	own    ed25519.PublicKey // the key the program was built with
	log    *slog.Logger

	mu sync.Mutex
	s  *p2p.Source // of the key trusted now
}

func (n *networkSource) source() *p2p.Source {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.s
}

// Releases returns the releases peers offer, each a Release and a
// Rejecter (p2p strikes the peers that delivered refused bytes).
func (n *networkSource) Releases(ctx context.Context) ([]Release, error) {
	rs, err := n.source().Releases(ctx)
	out := make([]Release, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out, err
}

// offers is Releases, vouching for the pieces of the releases whose
// readers check each piece against the signed root (v1 ones).
func (n *networkSource) offers(ctx context.Context) ([]offer, error) {
	rs, err := n.source().Releases(ctx)
	out := make([]offer, len(rs))
	for i, r := range rs {
		out[i] = offer{Release: r, piecesVerified: r.PiecesChecked(checked.PieceCheck{})}
	}
	return out, err
}

func (n *networkSource) String() string { return n.source().String() }

// hasPeers reports whether the node is connected to any peer.
func (n *networkSource) hasPeers() bool {
	return len(n.node.Host().Network().Peers()) > 0
}

// Seed serves a binary signed by the trusted key, or by the program's own
// key (the running binary, after a rotation).
func (n *networkSource) Seed(ctx context.Context, path string, in region.Info) error {
	if in.VerifySignature(n.own) == nil {
		return n.node.Serve(ctx, n.own, n.target, path, in)
	}
	return n.source().Seed(ctx, path, in)
}

// seedDownloaded is Seed for a binary the engine wrote from a download
// and verified as it wrote it, whose file ID is id: when this node
// downloaded that file itself, it is served without being read again
// (p2p.Node.ServeDownloaded).
func (n *networkSource) seedDownloaded(ctx context.Context, path string, in region.Info, id [sha256.Size]byte) error {
	if in.VerifySignature(n.own) == nil {
		return n.node.ServeDownloaded(ctx, n.own, n.target, path, in, id)
	}
	return n.source().SeedDownloaded(ctx, path, in, id)
}

// rotations asks peers for the statements that move the target on from
// the key trusted now, for at most statementAsk.
func (n *networkSource) rotations(ctx context.Context) ([]rotation.Statement, error) {
	ctx, cancel := context.WithTimeout(ctx, statementAsk)
	defer cancel()
	return n.source().Rotations(ctx)
}

// trust switches to releases signed by key, which chain moved the target
// to, and serves chain to the peers that still trust an older key.
func (n *networkSource) trust(ctx context.Context, key ed25519.PublicKey, chain []rotation.Statement) {
	n.mu.Lock()
	n.s = n.node.Source(key, n.target)
	n.mu.Unlock()
	if err := n.node.ServeRotations(ctx, chain); err != nil {
		n.log.Warn("serving the key rotation statements followed", "err", err)
	}
}
