package client

import (
	"errors"
	"time"

	"github.com/org/rustpatcher-go/internal/quicopt"
)

// NetworkConfig configures the peer-to-peer network that Spawn joins.
// The zero value joins the public network (the Amino DHT with its default
// bootstrap peers) with no extra bootstrap peers.
//
// A program built with the tag rustpatcher_nop2p has no peer-to-peer
// network (and no libp2p in its binary): there the zero value means no
// network, and Spawn refuses any setting but Disabled and OnListen with
// ErrNetworkConfig.
type NetworkConfig struct {
	// Disabled turns the network off: only Config.Sources are used.
	Disabled bool
	// Private joins a private network instead of the public one: the DHT
	// uses its own protocol prefix and bootstraps only from Bootstrap (for
	// air-gapped fleets, and tests).
	Private bool
	// Bootstrap lists peers to join through, as multiaddrs ending in
	// /p2p/<peer id> (an rpseed prints them on its "listening:" lines).
	// They are also asked for releases directly.
	Bootstrap []string
	// ListenAddrs are the multiaddrs to listen on; empty means TCP (and
	// QUIC, with QUIC set) on every interface, IPv4 and IPv6, on ports the
	// system picks. Pin them to open a firewall, for example
	// "/ip4/0.0.0.0/tcp/4001" (and "/ip4/0.0.0.0/udp/4001/quic-v1"), or to
	// one interface. Peers reach a node only through what it listens on.
	ListenAddrs []string
	// QUIC adds QUIC (UDP) to TCP: set it to quic.Transport() of package
	// github.com/org/rustpatcher-go/client/quic. Without it the node dials
	// and listens over TCP alone, and the app does not link quic-go (about
	// 1.6 MB of a stripped binary); a QUIC listen address, or a bootstrap
	// peer given by QUIC addresses alone, is then refused.
	QUIC *QUICTransport
	// DHTServer runs the DHT in server mode even when the node cannot
	// tell whether it is reachable (loopback tests, LANs).
	DHTServer bool
	// UploadSlots and UploadSlotsPerPeer bound the uploads the app serves
	// to its peers, in total and per peer; zero means 2 and 1 (a few
	// uploads at full speed spread a release fastest).
	UploadSlots, UploadSlotsPerPeer int
	// UploadRate caps the app's upload bandwidth in bytes per second;
	// zero means no cap.
	UploadRate int
	// IdleTimeout bounds each read and write of a transfer; a peer that
	// stalls longer is dropped for another. Zero means 10 seconds.
	IdleTimeout time.Duration
	// IdentityFile, if set, is a file holding the node's libp2p key,
	// created (mode 0600) when missing, so that the node keeps its peer ID
	// across restarts and updates and the provider records it published
	// stay valid. Empty means a new identity at every start.
	IdentityFile string
	// OnListen, if set, is called once the network is up with each listen
	// address, as a full multiaddr ending in /p2p/<peer id>.
	OnListen func(addr string)
}

// QUICTransport is QUIC for NetworkConfig.QUIC; package client/quic makes
// it.
type QUICTransport = quicopt.Transport

// ErrNetworkConfig means a NetworkConfig can never work.
var ErrNetworkConfig = errors.New("bad network configuration")
