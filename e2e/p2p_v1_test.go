//go:build unix

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// peerID returns the peer ID at the end of a listen address.
func peerID(t *testing.T, addr string) string {
	t.Helper()
	_, id, ok := strings.Cut(addr, "/p2p/")
	if !ok {
		t.Fatalf("address %q has no /p2p/ part", addr)
	}
	return id
}

// struckPeers returns the peers a node logged strikes for, with the
// number of strike lines of each.
func struckPeers(p *Proc) map[string]int {
	rx := regexp.MustCompile(`msg="peer misbehaved".* peer=(\S+)`)
	out := map[string]int{}
	for _, l := range p.Lines() {
		if m := rx.FindStringSubmatch(l.Text); m != nil {
			out[m[1]]++
		}
	}
	return out
}

// hostileSwarm is an rpseed serving hello 2.0.0 and hostile peers next to
// it, all on loopback.
type hostileSwarm struct {
	key       Key
	hello     string // the hello build, unsigned
	old       string // hello 1.0.0, the bytes startNode's nodes run
	release   string // the seed's 2.0.0
	seedID    string
	seedAddrs []string
	liarIDs   map[string]bool
	liarAddrs []string
	liars     []*Proc
}

// startHostileSwarm starts the seed with 2.0.0, then one hostile peer per
// element of roles (see startLiars).
func startHostileSwarm(t *testing.T, roles [][]string) *hostileSwarm {
	sw := newHostileSwarm(t)
	sw.startLiars(t, roles)
	return sw
}

// newHostileSwarm starts the seed with 2.0.0, and no hostile peer yet.
func newHostileSwarm(t *testing.T) *hostileSwarm {
	key := NewKey(t)
	sw := &hostileSwarm{key: key, hello: BuildHello(t, key.Public), liarIDs: map[string]bool{}}
	rpseed := GoBuild(t, "github.com/org/rustpatcher-go/cmd/rpseed", "")
	target := runtime.GOOS + "/" + runtime.GOARCH
	dir := t.TempDir()
	seedDir := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sw.release = filepath.Join(seedDir, "hello-2.0.0")
	SignedCopy(t, sw.hello, sw.release, key, "2.0.0")
	sw.old = filepath.Join(dir, "hello-1.0.0")
	SignedCopy(t, sw.hello, sw.old, key, "1.0.0")
	seed := Start(t, rpseed, append([]string{"--dir", seedDir, "--private", "--pub", target + "=" + key.Public,
		"--identity", filepath.Join(dir, "seed.key")}, seedLoopback()...)...)
	sw.seedAddrs = listenAddrs(t, seed, 0, 2)
	sw.seedID = peerID(t, sw.seedAddrs[0])
	seed.WaitLine(0, 30*time.Second, `msg="serving release".* version=2\.0\.0`)
	return sw
}

// startLiars starts one hostile peer per element of roles (each a list of
// hostile's flags, see addLiar).
func (sw *hostileSwarm) startLiars(t *testing.T, roles [][]string) {
	for _, role := range roles {
		sw.addLiar(t, role...)
	}
}

// addLiar starts a hostile peer with the flags args (where "{old}" stands
// for the path of the 1.0.0 that the nodes run), offering the seed's 2.0.0
// unless args says --real otherwise, bootstrapped to the seed.
func (sw *hostileSwarm) addLiar(t *testing.T, args ...string) *Proc {
	hostile := GoBuild(t, "github.com/org/rustpatcher-go/e2e/internal/hostile", "")
	target := runtime.GOOS + "/" + runtime.GOARCH
	args = slices.Clone(args)
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "{old}", sw.old)
	}
	args = append(append([]string{"--pub", sw.key.Public, "--target", target, "--real", sw.release}, args...), seedLoopback()...)
	p := Start(t, hostile, append(args, bootstrapArgs(sw.seedAddrs)...)...)
	addrs := listenAddrs(t, p, 0, 2)
	sw.liarIDs[peerID(t, addrs[0])] = true
	sw.liarAddrs = append(sw.liarAddrs, addrs...)
	sw.liars = append(sw.liars, p)
	return p
}

// startNode starts a hello 1.0.0 node that polls every interval,
// bootstrapped to the hostile peers first, then the seed.
func (sw *hostileSwarm) startNode(t *testing.T, interval time.Duration) (*Proc, string) {
	return sw.startNodeWith(t, interval, sw.liarAddrs, sw.seedAddrs)
}

// startNodeWith starts a hello 1.0.0 node that polls every interval,
// bootstrapped to the peers at boot, in order.
func (sw *hostileSwarm) startNodeWith(t *testing.T, interval time.Duration, boot ...[]string) (*Proc, string) {
	exe := filepath.Join(t.TempDir(), "node", "hello")
	SignedCopy(t, sw.hello, exe, sw.key, "1.0.0")
	if !sameBytes(t, exe, sw.old) {
		t.Fatal("two signed copies of hello 1.0.0 differ")
	}
	args := append([]string{"--private", "--dht-server", "--interval", interval.String()}, loopback()...)
	args = append(args, bootstrapArgs(boot...)...)
	return Start(t, exe, args...), exe
}

// checkUpdate waits for the node to find 2.0.0, then for it to run 2.0.0
// within limit, and checks its bytes and who it struck: some hostile
// peers, never the seed, nobody else.
func (sw *hostileSwarm) checkUpdate(t *testing.T, node *Proc, exe string, limit time.Duration) {
	t.Helper()
	_, i := node.WaitLine(0, p2pTimeout, `msg="update found".* version=2\.0\.0`)
	found := time.Now()
	node.WaitLine(i, limit, `^hello 2\.0\.0`)
	t.Logf("the node ran 2.0.0 %v after it found it (limit %v)", time.Since(found).Round(time.Millisecond), limit)
	if !sameBytes(t, exe, sw.release) {
		t.Error("the node's executable differs from the seed's 2.0.0")
	}
	struck := struckPeers(node)
	t.Logf("strikes logged per peer: %v", struck)
	if struck[sw.seedID] > 0 {
		t.Errorf("the honest seed got %d strikes", struck[sw.seedID])
	}
	hostile := 0
	for p := range struck {
		switch {
		case sw.liarIDs[p]:
			hostile++
		case p != sw.seedID:
			t.Errorf("peer %s, neither hostile nor the seed, got strikes", p)
		}
	}
	if hostile == 0 {
		t.Error("no hostile peer got a strike: the test did not exercise them")
	}
	for _, l := range sw.liars {
		if l.Exited() {
			t.Errorf("a hostile peer died:\n%s", l.Output())
		}
	}
}

// TestP2PMovedRegionCopies runs 8 hostile peers that serve a copy of the
// release with its region moved (the same signed region, other bytes) next
// to an honest rpseed: half of them offer the real file ID and hashes, so
// that they are asked for pieces beside the seed, and half the copy's own
// file ID. A hello 1.0.0 node must run 2.0.0 within one poll interval of
// finding it, and only hostile peers get strikes.
func TestP2PMovedRegionCopies(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	var roles [][]string
	for i := range 8 {
		claim := "real"
		if i%2 == 1 {
			claim = "own"
		}
		roles = append(roles, []string{"--role", "moved", "--claim", claim})
	}
	sw := startHostileSwarm(t, roles)
	const interval = 8 * time.Second
	node, exe := sw.startNode(t, interval)
	sw.checkUpdate(t, node, exe, interval)
}

// TestP2PGarbagePieces runs hostile peers that offer the real release and
// answer every pieces request with 1 MiB of garbage and a close, the attack
// that made protocol v0 blame the honest seed: they get the strikes, the
// seed none, and the node runs 2.0.0 within two poll intervals.
func TestP2PGarbagePieces(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	var roles [][]string
	for range 4 {
		roles = append(roles, []string{"--role", "garbage"})
	}
	sw := startHostileSwarm(t, roles)
	const interval = 4 * time.Second
	node, exe := sw.startNode(t, interval)
	sw.checkUpdate(t, node, exe, 2*interval)
}

// TestP2PImpossibleTail runs, next to the honest seed of 2.0.0, a hostile
// peer that offers a genuine 3.0.0 with a tail of zeros as long as the
// format allows any tail to be, after an ELF file, which may have none,
// and would serve that file. The node must refuse the offer from its
// length alone: a strike for the liar, not a byte asked of it (no hashes,
// no pieces request) in this or the next polls, the update to 2.0.0 from
// the seed within two poll intervals, and 3.0.0 never a candidate.
func TestP2PImpossibleTail(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	if runtime.GOOS == "darwin" {
		t.Skip("hello for darwin may carry a code signature")
	}
	sw := startHostileSwarm(t, nil)
	newer := filepath.Join(t.TempDir(), "hello-3.0.0")
	SignedCopy(t, sw.hello, newer, sw.key, "3.0.0")
	liar := sw.addLiar(t, "--role", "tail", "--real", newer)
	const interval = 2 * time.Second
	node, exe := sw.startNode(t, interval)
	sw.checkUpdate(t, node, exe, 2*interval)
	node.WaitLine(0, 0, `msg="peer misbehaved".*offered \S+ release \\"3\.0\.0\\": .*bytes follow the signed content of a release for `)
	// The node, now 2.0.0, polls on, and the liar's offer is still newer;
	// once struck out, the liar is asked only if nobody else answers.
	time.Sleep(3 * interval)
	if _, _, err := node.FindLine(0, 0, `version=3\.0\.0`); err == nil {
		t.Error("the node took the liar's 3.0.0 as a candidate")
	}
	if _, fetch, _ := hostileCounts(t, liar); fetch != 0 {
		t.Errorf("the node sent the liar %d hashes or pieces requests for an offer it must refuse", fetch)
	}
}
