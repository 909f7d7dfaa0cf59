// Package p2phost assembles the libp2p host that every rustpatcher node
// runs (internal/p2p adds the DHT and the rustpatcher protocol on top): TCP,
// and QUIC when the caller passes package hostquic's constructor (Config.QUIC),
// TLS with batched records (coalesce.go), yamux with larger frames and
// windows, TCP dialled first on private networks (dial.go), identify,
// ping, hole punching, AutoNAT (client and service), the relay transport,
// AutoRelay with static relays and, on request, the relay service; the
// resource manager with libp2p's default limits, libp2p's service limits
// and an application service's own; the connection manager; and the node's
// identity file (identity.go).
//
// The host is put together from go-libp2p's parts rather than with
// libp2p.New, whose root package links every transport and security
// protocol go-libp2p offers (hostbuild.go says why). That means copying
// what libp2p.New would do, and the copies can drift when go-libp2p
// changes.
//
// # Upgrading go-libp2p
//
// After go get github.com/libp2p/go-libp2p@<new version>:
//
//  1. Run go test ./internal/p2phost. The drift tests compare every value
//     copied from go-libp2p with what go-libp2p itself produces:
//     TestServiceLimitsMatchLibp2p (servicelimits.go against
//     libp2p.SetDefaultServiceLimits), TestQUICKeysMatchLibp2p (package hostquic: the HKDF
//     info strings of the QUIC stateless reset and token keys, against
//     config.PrivKeyToStatelessResetKey and PrivKeyToTokenGeneratorKey),
//     TestHostMatchesLibp2pNew (the transport wiring against a host
//     libp2p.New builds from the same parts: the transport of each kind
//     of address, the protocols offered, TLS and yamux negotiated over
//     TCP, QUIC). A failure names the value; copy the
//     new one, and say in the commit what go-libp2p changed.
//  2. Read the diff of go-libp2p's config/config.go (Config.NewNode,
//     addTransports, addAutoNAT) and config/quic.go between the two
//     versions, for new parts libp2p.New adds to a host or new options of
//     the parts this package builds (basichost.HostOpts, swarm, upgrader,
//     quicreuse, autonat, autorelay): buildHost, newSwarm,
//     hostquic's New and addAutoNAT follow NewNode. No test can see
//     the options of the AutoNAT service's dialer swarm (addAutoNAT),
//     which libp2p.New keeps inside: compare them by reading.
//  3. Check that the root package github.com/libp2p/go-libp2p is still
//     linked only by tests: go list -deps ./client | grep -x
//     github.com/libp2p/go-libp2p must print nothing.
//  4. Run internal/p2p's and e2e's network tests (TestNATTraversal for
//     AutoNAT, the relay and hole punching), and compare the embedding
//     size and transfer benchmarks in docs/BENCHMARKS.md.
package p2phost
