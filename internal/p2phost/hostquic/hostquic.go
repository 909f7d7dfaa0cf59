// Package hostquic makes the QUIC transport of a host that internal/p2phost
// assembles (p2phost.Config.QUIC). rpseed imports it; an app links it only
// through package client/quic, when it asks for QUIC, so that an app on TCP
// alone does not carry quic-go (1.6 MB of its stripped binary;
// docs/BENCHMARKS.md, Cost of embedding).
package hostquic

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/transport"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"golang.org/x/crypto/hkdf"
)

// New returns the QUIC transport of a swarm of key, whose connections the
// resource manager rm counts, and its connection manager, which the caller
// closes after the swarm. reg, if not nil, receives the QUIC metrics. Its
// signature is p2phost.QUIC's.
func New(key crypto.PrivKey, rm network.ResourceManager, reg prometheus.Registerer) (transport.Transport, io.Closer, error) {
	qcm, err := newConnManager(key, rm, reg)
	if err != nil {
		return nil, nil, fmt.Errorf("QUIC connection manager: %w", err)
	}
	t, err := libp2pquic.NewTransport(key, qcm, nil, nil, rm)
	if err != nil {
		qcm.Close()
		return nil, nil, fmt.Errorf("QUIC transport: %w", err)
	}
	return t, qcm, nil
}

// newConnManager returns the QUIC connection manager of a host of key:
// its stateless reset and token keys derive from key (as with libp2p.New,
// so that they survive restarts with the same identity), and every inbound
// connection is counted by the resource manager before its handshake.
func newConnManager(key crypto.PrivKey, rm network.ResourceManager, reg prometheus.Registerer) (*quicreuse.ConnManager, error) {
	reset, token, err := quicKeys(key)
	if err != nil {
		return nil, err
	}
	opts := []quicreuse.Option{
		quicreuse.ConnContext(func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
			// Let the resource manager decide even without an address.
			addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
			if err != nil {
				addr = nil
			}
			scope, err := rm.OpenConnection(network.DirInbound, false, addr)
			if err != nil {
				return ctx, err
			}
			ctx = network.WithConnManagementScope(ctx, scope)
			context.AfterFunc(ctx, scope.Done)
			return ctx, nil
		}),
		quicreuse.VerifySourceAddress(func(addr net.Addr) bool { return rm.VerifySourceAddress(addr) }),
	}
	if reg != nil {
		opts = append(opts, quicreuse.EnableMetrics(reg))
	}
	return quicreuse.NewConnManager(reset, token, opts...)
}

// The HKDF info strings that derive a host's QUIC keys from its identity,
// as go-libp2p's config.PrivKeyToStatelessResetKey and
// PrivKeyToTokenGeneratorKey derive them (TestQUICKeysMatchLibp2p).
const (
	quicResetKeyInfo = "libp2p quic stateless reset key"
	quicTokenKeyInfo = "libp2p quic token generator key"
)

// quicKeys derives the QUIC stateless reset and token generator keys of
// the host of key with HKDF-SHA256 over its raw bytes.
func quicKeys(key crypto.PrivKey) (reset quic.StatelessResetKey, token quic.TokenGeneratorKey, err error) {
	raw, err := key.Raw()
	if err != nil {
		return reset, token, err
	}
	if _, err := io.ReadFull(hkdf.New(sha256.New, raw, nil, []byte(quicResetKeyInfo)), reset[:]); err != nil {
		return reset, token, err
	}
	if _, err := io.ReadFull(hkdf.New(sha256.New, raw, nil, []byte(quicTokenKeyInfo)), token[:]); err != nil {
		return reset, token, err
	}
	return reset, token, nil
}
