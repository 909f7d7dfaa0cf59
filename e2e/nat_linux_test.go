//go:build linux

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/org/rustpatcher-go/internal/testtools"
)

// The addresses of the NAT test network. They exist only inside the test's
// network namespaces, which have no route out.
//
// The public segment is not in 198.18.0.0/15 (benchmarking) or 203.0.113.0/24
// (documentation): libp2p counts those ranges as unroutable
// (manet.IsPublicAddr is false), so its AutoNAT service would refuse to dial
// a node back there (and no node would learn that it is behind a NAT and
// reserve a relay slot), and a node whose observed address is not public
// never starts hole punching (it has nothing to tell its peer to dial).
// 192.0.0.64/26 is part of the IETF protocol assignments block 192.0.0.0/24,
// which is never forwarded on the internet (RFC 6890), and libp2p takes it
// for a public range.
const (
	natPublicBits = 26
	natSeedIP     = "192.0.0.65"
	natLANBits    = 24
)

// natSite is one private LAN: a router between the public segment and the
// LAN, doing masquerade, and one node on the LAN.
type natSite struct {
	name     string // "A" or "B"
	router   string // namespace of the router
	node     string // namespace of the node
	publicIP string // the router's address on the public segment
	gateway  string // the router's address on the LAN
	nodeIP   string // the node's address on the LAN
}

// natNet is the test's network: a public segment (a bridge in namespace
// pub) with the seed's namespace and two NAT routers on it, and behind each
// router a LAN with one node, whose only way out is its router.
type natNet struct {
	ip    string // the ip command (iproute2)
	nft   string // the nft command (nftables)
	pub   string // namespace holding the public segment's bridge
	seed  string // namespace of the seed, on the public segment
	sites [2]natSite
}

// natNSPrefix starts the name of every namespace the NAT test makes;
// the creating process's pid follows, so that namespaces left behind by a
// killed run can be told apart and removed (see natNet.sweep).
const natNSPrefix = "rpnat-"

// natCmdTimeout bounds one ip or nft command.
const natCmdTimeout = 30 * time.Second

// natEnv is the environment variable that asks for the NAT test: it builds
// transient fixtures as root (network namespaces, veth pairs, a bridge,
// nftables rules inside the namespaces) and runs only when this is 1, as
// .ci/run sets it.
const natEnv = "RP_NETNS_TESTS"

// newNATNet builds the NAT test network and removes it when the test ends,
// whether it passes or not (and first removes what a killed run left). It
// skips the test where the machine cannot run it: not root, no ip or nft
// (scripts/test-deps.sh installs them), or no network namespaces. The
// nftables rules live in the namespaces and go with them.
func newNATNet(t *testing.T) *natNet {
	t.Helper()
	n, prefix := newNetns(t)
	n.pub = n.addNS(t, prefix+"pub")
	n.seed = n.addNS(t, prefix+"seed")
	n.sites = [2]natSite{
		{name: "A", router: n.addNS(t, prefix+"ra"), node: n.addNS(t, prefix+"a"),
			publicIP: "192.0.0.66", gateway: "10.1.0.1", nodeIP: "10.1.0.2"},
		{name: "B", router: n.addNS(t, prefix+"rb"), node: n.addNS(t, prefix+"b"),
			publicIP: "192.0.0.67", gateway: "10.2.0.1", nodeIP: "10.2.0.2"},
	}

	// The public segment: a bridge, and the seed's port on it.
	n.run(t, "-n", n.pub, "link", "add", "br0", "type", "bridge")
	n.run(t, "-n", n.pub, "link", "set", "br0", "up")
	n.plug(t, n.seed, "eth0", natSeedIP)
	for i := range n.sites {
		s := &n.sites[i]
		n.plug(t, s.router, "wan", s.publicIP)
		// The LAN: the router's "lan" and the node's "eth0".
		n.run(t, "-n", s.router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", s.node)
		n.addr(t, s.router, "lan", s.gateway, natLANBits)
		n.addr(t, s.node, "eth0", s.nodeIP, natLANBits)
		n.run(t, "-n", s.node, "route", "add", "default", "via", s.gateway)
		n.exec(t, s.router, nil, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
		n.exec(t, s.router, strings.NewReader(natRules), n.nft, "-f", "-")
	}
	return n
}

// natRules is each router's nftables ruleset: masquerade what leaves
// through "wan", forward from the LAN out and only the answers back in, and
// drop unsolicited packets to the router itself, as home routers do.
//
// Hole punching needs an endpoint-independent mapping: both nodes send to
// the public address and port that the seed observed for the other, at the
// same time, so that each router sees the other's packets as answers to its
// node's own. Masquerade without "random" or "fully-random" keeps a flow's
// source port whenever that port is free, so one socket keeps one public
// port whatever it sends to. It is not free when the peer's first punch
// packet arrives before the node's own has left and the router lets it
// create a connection-tracking entry (for a flow to the router itself, which
// answers with a reset or an ICMP error): the node's packet to that peer then
// leaves from another port, and the punch fails (as it does here, every time,
// without the input rule). Dropping or rejecting unsolicited packets in the
// input chain keeps them out of the connection table.
const natRules = `
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" masquerade
	}
}
table ip filter {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "wan" ct state new drop
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan" oifname "wan" accept
	}
}
`

// newNetns returns a natNet with no namespaces yet, after removing those
// an earlier killed run left, and the prefix of the names of this run's
// namespaces. It skips the test where the machine cannot run it: not root,
// or no iproute2 and nftables.
func newNetns(t *testing.T) (*natNet, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testtools.Missing(t, "network namespaces and nftables need root")
	}
	tools := testtools.Commands(t,
		testtools.Package{Name: "iproute2", Command: "ip"},
		testtools.Package{Name: "nftables", Command: "nft"},
	)
	n := &natNet{ip: tools[0], nft: tools[1]}
	n.sweep(t)
	var tag [3]byte
	rand.Read(tag[:])
	return n, fmt.Sprintf("%s%d-%s-", natNSPrefix, os.Getpid(), hex.EncodeToString(tag[:]))
}

// addNS makes the namespace name with its loopback up, and removes it when
// the test ends, after ending what still runs in it.
func (n *natNet) addNS(t *testing.T, name string) string {
	t.Helper()
	if out, err := n.runErr("netns", "add", name); err != nil {
		testtools.Missing(t, fmt.Sprintf("cannot make a network namespace (%v): %s", err, out))
	}
	t.Cleanup(func() { n.removeNS(t, name) })
	n.run(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// removeNS kills the processes left in namespace name (the test's own:
// Start's cleanups have ended the ones it started) and deletes it.
func (n *natNet) removeNS(t *testing.T, name string) {
	out, _ := n.runErr("netns", "pids", name)
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			t.Logf("killing pid %d, left in namespace %s", pid, name)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if out, err := n.runErr("netns", "del", name); err != nil {
		t.Errorf("ip netns del %s: %v: %s", name, err, out)
	}
}

// sweep removes the namespaces that an earlier run of this test left when
// it was killed before its cleanups ran (a go test -timeout): those whose
// creating process is gone.
func (n *natNet) sweep(t *testing.T) {
	out, err := n.runErr("netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], natNSPrefix) {
			continue
		}
		pid, _, _ := strings.Cut(strings.TrimPrefix(f[0], natNSPrefix), "-")
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // its run is still going
		}
		t.Logf("removing namespace %s, left by an earlier run", f[0])
		n.removeNS(t, f[0])
	}
}

// plug connects namespace ns to the public segment's bridge through a veth
// pair, its end named dev with address ip.
func (n *natNet) plug(t *testing.T, ns, dev, ip string) {
	t.Helper()
	port := "p-" + ns[strings.LastIndex(ns, "-")+1:]
	n.run(t, "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", port, "netns", n.pub)
	n.run(t, "-n", n.pub, "link", "set", port, "master", "br0", "up")
	n.addr(t, ns, dev, ip, natPublicBits)
}

// addr gives dev in ns the address ip/bits and brings it up.
func (n *natNet) addr(t *testing.T, ns, dev, ip string, bits int) {
	t.Helper()
	n.run(t, "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", ip, bits), "dev", dev)
	n.run(t, "-n", ns, "link", "set", dev, "up")
}

// run runs ip with args and fails the test if it fails.
func (n *natNet) run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := n.runErr(args...); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// runErr runs ip with args and returns its output.
func (n *natNet) runErr(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), natCmdTimeout)
	defer cancel()
	return exec.CommandContext(ctx, n.ip, args...).CombinedOutput()
}

// exec runs the command args in namespace ns with stdin, and fails the test
// if it fails.
func (n *natNet) exec(t *testing.T, ns string, stdin *strings.Reader, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.ip, append([]string{"netns", "exec", ns}, args...)...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in %s: %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
}

// start runs the binary bin with args in namespace ns (ip netns exec execs
// it, so the Proc's pid is the program's), with env added.
func (n *natNet) start(t *testing.T, role, ns string, env []string, bin string, args ...string) *Proc {
	t.Helper()
	p := StartWith(t, StartOptions{Env: env}, n.ip, append([]string{"netns", "exec", ns, bin}, args...)...)
	t.Logf("%s is %s, in namespace %s", p.name, role, ns)
	return p
}

// natNodeEnv turns on libp2p's own debug logs of AutoNAT, AutoRelay and
// hole punching in a node, for the test's log (they are not asserted on).
var natNodeEnv = []string{
	"GOLOG_LOG_LEVEL=error,autonat=debug,autorelay=debug,p2p-holepunch=debug",
	"GOLOG_LOG_ADD_SOURCE=0",
}

// A natTransport is the transports a run of the network listens on.
type natTransport struct {
	name string
	// seed and node are the listen addresses of the seed and of the
	// nodes.
	seed, node []string
	// marker is in the multiaddr of a direct connection over it; empty
	// for any.
	marker string
	// quic: the nodes are hello built with -tags hello_quic, which asks
	// for QUIC (client/quic); otherwise they run on TCP alone, as apps do
	// by default.
	quic bool
}

var (
	// natDefault is what rpseed and apps listen on by default: QUIC and
	// TCP for the seed, TCP for the nodes.
	natDefault = natTransport{name: "defaults",
		seed: []string{"/ip4/" + natSeedIP + "/udp/4001/quic-v1", "/ip4/" + natSeedIP + "/tcp/4001"},
		node: []string{"/ip4/0.0.0.0/tcp/0"}}
	natQUIC = natTransport{name: "QUIC", marker: "/quic-v1", quic: true,
		seed: []string{"/ip4/" + natSeedIP + "/udp/4001/quic-v1"},
		node: []string{"/ip4/0.0.0.0/udp/0/quic-v1"}}
	natTCP = natTransport{name: "TCP", marker: "/tcp/",
		seed: []string{"/ip4/" + natSeedIP + "/tcp/4001"},
		node: []string{"/ip4/0.0.0.0/tcp/0"}}
)

// listenArgs turns addrs into repeated --listen flags.
func listenArgs(addrs []string) []string {
	var args []string
	for _, a := range addrs {
		args = append(args, "--listen", a)
	}
	return args
}

// startSeed runs rpseed on the public segment, listening on its public
// address over tr, with the relay service, serving dir. It returns the
// seed and its addresses.
func (n *natNet) startSeed(t *testing.T, rpseed, dir, pub string, tr natTransport) (*Proc, []string) {
	t.Helper()
	target := runtime.GOOS + "/" + runtime.GOARCH
	args := []string{"--private", "--relay", "--dir", dir, "--pub", target + "=" + pub,
		"--identity", filepath.Join(filepath.Dir(dir), "seed.key"), "--scan-interval", "1s"}
	p := n.start(t, "the seed", n.seed, nil, rpseed, append(args, listenArgs(tr.seed)...)...)
	return p, listenAddrs(t, p, 0, len(tr.seed))
}

// startNode runs the hello at exe on site s's LAN, listening over tr,
// bootstrapped by the seed, and returns it and its peer ID once it runs.
func (n *natNet) startNode(t *testing.T, s natSite, exe string, seedAddrs []string, tr natTransport) (*Proc, string) {
	t.Helper()
	args := append([]string{"--private", "--interval", "2s", "--log-level", "debug"}, listenArgs(tr.node)...)
	args = append(append(args, bootstrapArgs(seedAddrs)...), "nat")
	p := n.start(t, "node "+s.name, s.node, natNodeEnv, exe, args...)
	return p, peerOf(t, listenAddrs(t, p, 0, 1))
}

// A natRequest is one request a node sent to a peer, from its debug log:
// the kind (info, hashes, pieces) and the remote address of the connection
// it went over.
type natRequest struct {
	peer, kind, conn string
	limited          bool
}

// relayed reports whether the request went through a relay.
func (r natRequest) relayed() bool {
	return r.limited || strings.Contains(r.conn, "/p2p-circuit")
}

var requestLine = regexp.MustCompile(`msg="request sent".* peer=(\S+) kind=(\S+) conn=(\S+) limited=(\S+)`)

// natRequests returns the requests p logged.
func natRequests(p *Proc) []natRequest {
	var out []natRequest
	for _, l := range p.Lines() {
		if m := requestLine.FindStringSubmatch(l.Text); m != nil {
			out = append(out, natRequest{peer: m[1], kind: m[2], conn: m[3], limited: m[4] == "true"})
		}
	}
	return out
}

// reportPaths logs how many requests node sent to each peer over each
// connection, by kind, naming peers with names.
func reportPaths(t *testing.T, node string, reqs []natRequest, names map[string]string) {
	t.Helper()
	count := map[string]int{}
	var order []string
	for _, r := range reqs {
		path := "direct"
		if r.relayed() {
			path = "RELAYED"
		}
		name := names[r.peer]
		if name == "" {
			name = r.peer
		}
		k := fmt.Sprintf("%s requests to %s over a %s connection to %s", r.kind, name, path, r.conn)
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	for _, k := range order {
		t.Logf("node %s: %d %s", node, count[k], k)
	}
}

// carriesRelease reports whether a request of kind is answered with
// bytes of the release: raw pieces, or packed ones (compressed, deltas).
func carriesRelease(kind string) bool { return kind == "pieces" || kind == "packed" }

// checkNoRelayedBytes fails the test for every request that went through
// a relay but info, rotations and rollout, whose answers are small (a
// limited relayed connection carries them).
func checkNoRelayedBytes(t *testing.T, node string, reqs []natRequest) {
	t.Helper()
	for _, r := range reqs {
		if r.kind != "info" && r.kind != "rotations" && r.kind != "rollout" && r.relayed() {
			t.Errorf("node %s: a %s request went through the relay: %+v", node, r.kind, r)
		}
	}
}

// checkNoStrikes fails the test when a node struck a peer: every peer in
// the network is honest.
func checkNoStrikes(t *testing.T, node string, p *Proc) {
	t.Helper()
	if l, _, err := p.FindLine(0, 0, `msg="peer misbehaved"`); err == nil {
		t.Errorf("node %s struck an honest peer: %s", node, l.Text)
	}
}

// connIP returns the IP address a connection's remote multiaddr starts
// with, or "" for a relayed one.
func connIP(conn string) string {
	a, err := ma.NewMultiaddr(conn)
	if err != nil {
		return ""
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return ""
	}
	return ip.String()
}

// TestNATTraversal runs hello nodes behind NAT routers made with network
// namespaces and nftables masquerade. The public segment (a bridge in its
// own namespace) holds an rpseed with --relay --private, listening on its
// public address, and two routers; behind each router is a private LAN
// (10.1.0.0/24, 10.2.0.0/24) with one hello node, whose only way out is its
// router, which masquerades what the node sends and lets in only the
// answers (see natRules):
//
//	               public segment 192.0.0.64/26 (bridge)
//	seed 192.0.0.65 --+-- 192.0.0.66 router A -- 10.1.0.0/24 -- node A 10.1.0.2
//	                  +-- 192.0.0.67 router B -- 10.2.0.0/24 -- node B 10.2.0.2
//
// FromSeed: the seed serves hello 2.0.0, and both nodes (1.0.0) update to it
// and restart into it. Their release bytes come over the connections they
// dialled out to the seed.
//
// HolePunchQUIC and HolePunchTCP: the seed serves no release. Node A runs
// 2.0.0 from the start and serves it; node B runs 1.0.0 and must update
// from A, whom it can reach only through A's NAT. Each node learns from
// the seed's AutoNAT service that it is behind a NAT (the seed cannot dial
// it back) and reserves a slot on the seed's relay (AutoRelay, the seed
// being its bootstrap peer). The nodes find each other as providers in the
// DHT and first connect through a circuit the seed relays; hole punching
// (DCUtR) then makes a direct connection between the two routers' public
// ports, over QUIC (UDP) in one subtest and TCP (simultaneous open) in the
// other. Release bytes never flow through the relay, which is limited (2
// minutes, 128 KiB): only info requests may use a relayed connection, and
// the test checks that B's pieces requests all went over a direct
// connection to router A's public address.
//
// Every node logs at debug level the remote address of the connection each
// of its requests used (internal/p2p: "request sent"); the test reports
// them and asserts on them. libp2p's own logs of AutoNAT, AutoRelay and
// hole punching are in the test's log too.
//
// What it took for hole punching to work here (docs/PROTOCOL.md, "NAT
// traversal"): addresses that libp2p takes for public ones (see natSeedIP);
// a relay that runs although no peer can confirm that the seed is public
// (the nodes behind NATs have no public address to be asked from, so
// libp2p never started it: rpseed --relay now declares the seed public);
// release bytes kept off the relay (only info requests may use a relayed
// connection: the relay cut a pieces answer at its limit, and the download
// struck the honest peer for a short answer); and routers that keep
// unsolicited packets out of their connection table (see natRules).
func TestNATTraversal(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test in network namespaces")
	}
	if os.Getenv(natEnv) != "1" {
		t.Skip("skipping: makes network namespaces and nftables rules as root; set " + natEnv + "=1 to run it (.ci/run does)")
	}
	t.Parallel() // waits for AutoNAT; the only test with namespaces
	seedIP, _ := ma.NewMultiaddr("/ip4/" + natSeedIP + "/tcp/4001")
	if !manet.IsPublicAddr(seedIP) {
		t.Fatalf("libp2p no longer takes %s for a public address: hole punching cannot start; move the test's public segment to a range it does", natSeedIP)
	}
	key := OwnerKey(t)
	bin := BuildHello(t, key.Public)
	binQUIC := BuildHelloQUIC(t, key.Public)
	rpseed := GoBuild(t, rpseedPkg, "")

	t.Run("FromSeed", func(t *testing.T) {
		began := time.Now()
		n := newNATNet(t)
		dir := t.TempDir()
		seedDir := filepath.Join(dir, "seed")
		release := filepath.Join(seedDir, "hello-2.0.0")
		SignedCopy(t, bin, release, key, "2.0.0")
		seed, seedAddrs := n.startSeed(t, rpseed, seedDir, key.Public, natDefault)
		names := map[string]string{peerOf(t, seedAddrs): "the seed"}

		var nodes [2]*Proc
		var exes [2]string
		for i, s := range n.sites {
			exes[i] = filepath.Join(dir, s.name, "hello")
			SignedCopy(t, bin, exes[i], key, "1.0.0")
			var id string
			nodes[i], id = n.startNode(t, s, exes[i], seedAddrs, natDefault)
			names[id] = "node " + s.name
		}
		for _, p := range nodes {
			_, at := p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=nat$`)
			p.WaitLine(at, 3*time.Minute, `^hello 2\.0\.0 args=nat$`)
		}
		t.Logf("both nodes run 2.0.0 %v after the network was made", time.Since(began).Round(100*time.Millisecond))
		for i, p := range nodes {
			s := n.sites[i]
			if !sameBytes(t, exes[i], release) {
				t.Errorf("node %s: executable differs from the seed's 2.0.0", s.name)
			}
			reqs := natRequests(p)
			reportPaths(t, s.name, reqs, names)
			if !slices.ContainsFunc(reqs, func(r natRequest) bool { return carriesRelease(r.kind) }) {
				t.Errorf("node %s logged no pieces request", s.name)
			}
			checkNoRelayedBytes(t, s.name, reqs)
			checkNoStrikes(t, s.name, p)
		}
		if seed.Exited() {
			t.Errorf("the seed exited:\n%s", seed.Output())
		}
	})

	for _, tr := range []natTransport{natQUIC, natTCP} {
		t.Run("HolePunch"+tr.name, func(t *testing.T) {
			exe := bin
			if tr.quic {
				exe = binQUIC
			}
			holePunch(t, exe, rpseed, key, tr)
		})
	}
}

// holePunch runs TestNATTraversal's hole punching scenario over tr.
func holePunch(t *testing.T, bin, rpseed string, key Key, tr natTransport) {
	began := time.Now()
	n := newNATNet(t)
	dir := t.TempDir()
	seedDir := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	seed, seedAddrs := n.startSeed(t, rpseed, seedDir, key.Public, tr)
	names := map[string]string{peerOf(t, seedAddrs): "the seed"}

	a, b := n.sites[0], n.sites[1]
	exeA := filepath.Join(dir, "A", "hello")
	SignedCopy(t, bin, exeA, key, "2.0.0")
	nodeA, idA := n.startNode(t, a, exeA, seedAddrs, tr)
	names[idA] = "node A"
	nodeA.WaitLine(0, 30*time.Second, `^hello 2\.0\.0 args=nat$`)

	exeB := filepath.Join(dir, "B", "hello")
	SignedCopy(t, bin, exeB, key, "1.0.0")
	nodeB, idB := n.startNode(t, b, exeB, seedAddrs, tr)
	names[idB] = "node B"
	_, at := nodeB.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=nat$`)
	nodeB.WaitLine(at, 3*time.Minute, `^hello 2\.0\.0 args=nat$`)
	t.Logf("node B runs 2.0.0 %v after the network was made", time.Since(began).Round(100*time.Millisecond))
	if !sameBytes(t, exeB, exeA) {
		t.Error("node B's executable differs from node A's 2.0.0")
	}

	reqsA, reqsB := natRequests(nodeA), natRequests(nodeB)
	reportPaths(t, "A", reqsA, names)
	reportPaths(t, "B", reqsB, names)
	checkNoRelayedBytes(t, "A", reqsA)
	checkNoRelayedBytes(t, "B", reqsB)
	checkNoStrikes(t, "A", nodeA)
	checkNoStrikes(t, "B", nodeB)

	// The nodes first met through the relay: nothing else leads from one
	// LAN to the other.
	relayed := func(to string) func(natRequest) bool {
		return func(r natRequest) bool { return r.peer == to && r.relayed() }
	}
	if !slices.ContainsFunc(reqsA, relayed(idB)) && !slices.ContainsFunc(reqsB, relayed(idA)) {
		t.Error("no request between the nodes went through the relay: how did they meet?")
	}
	// B's release bytes came from A, directly from router A's public
	// address: hole punching made that connection.
	pieces := 0
	for _, r := range reqsB {
		if !carriesRelease(r.kind) {
			continue
		}
		pieces++
		switch {
		case r.peer != idA:
			t.Errorf("node B: pieces requested of %s, not node A: %+v", names[r.peer], r)
		case connIP(r.conn) != a.publicIP || !strings.Contains(r.conn, tr.marker):
			t.Errorf("node B: pieces requested of node A over %s, not a direct %s connection to router A's public address %s", r.conn, tr.name, a.publicIP)
		}
	}
	if pieces == 0 {
		t.Error("node B logged no pieces request")
	}
	for _, p := range []*Proc{nodeA, nodeB} {
		if _, _, err := p.FindLine(0, 0, `msg="hole punch successful"`); err == nil {
			t.Logf("%s: libp2p logged a successful hole punch", p.name)
		}
	}
	if seed.Exited() {
		t.Errorf("the seed exited:\n%s", seed.Output())
	}
}
