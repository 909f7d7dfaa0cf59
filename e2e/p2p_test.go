//go:build unix

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// p2pTimeout bounds each wait for a node to update over the network.
const p2pTimeout = 2 * time.Minute

// loopback returns the listen flags of the hello nodes in the p2p tests:
// TCP, an app's transport unless it asks for QUIC (one listening: line).
func loopback() []string {
	return []string{"--listen", "/ip4/127.0.0.1/tcp/0"}
}

// seedLoopback returns the listen flags of rpseed and of the hostile peers
// in the p2p tests: QUIC and TCP, as rpseed listens by default (two
// listening: lines).
func seedLoopback() []string {
	return []string{"--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--listen", "/ip4/127.0.0.1/tcp/0"}
}

// listenAddrs waits for a process's "listening: " lines printed after line
// index from and returns the addresses (n of them: one per listen address).
func listenAddrs(t *testing.T, p *Proc, from, n int) []string {
	t.Helper()
	var addrs []string
	for len(addrs) < n {
		l, i := p.WaitLine(from, 30*time.Second, `^listening: /`)
		addrs = append(addrs, strings.TrimPrefix(l.Text, "listening: "))
		from = i + 1
	}
	return addrs
}

// rssKiB reads a process's resident set size from /proc; ok is false where
// there is no /proc.
func rssKiB(pid int) (kib float64, ok bool) { return statusKiB(pid, "VmRSS:") }

// statusKiB returns the field (such as "RssAnon:", the resident memory
// that is not the pages of files) of /proc/PID/status, in KiB.
func statusKiB(pid int, field string) (kib float64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// maxNodeRSS bounds a hello node's memory after the run with hostile peers,
// well above what a node measures (docs/BENCHMARKS.md); the release is
// about 30 MB and is never held in memory.
const maxNodeRSS = 150 << 10 // KiB

// bootstrapArgs turns addresses into repeated --bootstrap flags.
func bootstrapArgs(addrs ...[]string) []string {
	var args []string
	for _, as := range addrs {
		for _, a := range as {
			args = append(args, "--bootstrap", a)
		}
	}
	return args
}

// hostileCounts reads the last "hostile: ROLE info=N fetch=N flood=N" line.
func hostileCounts(t *testing.T, p *Proc) (info, fetch, flood int) {
	t.Helper()
	rx := regexp.MustCompile(`^hostile: \w+ info=(\d+) fetch=(\d+) flood=(\d+)$`)
	for _, l := range p.Lines() {
		if m := rx.FindStringSubmatch(l.Text); m != nil {
			info, _ = strconv.Atoi(m[1])
			fetch, _ = strconv.Atoi(m[2])
			flood, _ = strconv.Atoi(m[3])
		}
	}
	return
}

// TestP2PUpdate runs a private network of real processes on loopback: an
// rpseed serving hello 2.0.0 (after a probe phase in which only a hostile
// peer offers it, and a node must refuse its bytes), five hello 1.0.0 nodes
// that must all update
// and restart into 2.0.0, then (with the seed stopped) a late 1.0.0 node that
// must update from the updated peers. Two hostile peers are in the network
// throughout: one answers every info request with a forged or malformed
// release, the other offers the real release (its region, length and file
// ID) but answers piece hashes with garbage every other time and pieces only
// with wrong bytes (a garbage status, garbage or changed pieces, the pieces
// of a moved-region copy, truncated or reset answers, stalls, drips, too
// many bytes), and floods its peers with requests. Every node must end with
// exactly the seed's bytes.
func TestP2PUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	key := NewKey(t)
	bin := BuildHello(t, key.Public)
	rpseed := GoBuild(t, "github.com/org/rustpatcher-go/cmd/rpseed", "")
	hostile := GoBuild(t, "github.com/org/rustpatcher-go/e2e/internal/hostile", "")
	target := runtime.GOOS + "/" + runtime.GOARCH
	dir := t.TempDir()

	// The seed starts empty and gets 2.0.0 only after the probe phase below.
	seedDir := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	release := filepath.Join(dir, "hello-2.0.0")
	SignedCopy(t, bin, release, key, "2.0.0")
	older := filepath.Join(dir, "hello-0.5.0")
	SignedCopy(t, bin, older, key, "0.5.0")

	seed := Start(t, rpseed, append([]string{"--dir", seedDir, "--private", "--pub", target + "=" + key.Public,
		"--identity", filepath.Join(t.TempDir(), "seed.key"), "--scan-interval", "1s"}, seedLoopback()...)...)
	seedAddrs := listenAddrs(t, seed, 0, 2)

	liarInfo := Start(t, hostile, append([]string{"--role", "info", "--pub", key.Public, "--target", target,
		"--older", older}, append(seedLoopback(), bootstrapArgs(seedAddrs)...)...)...)
	liarFetch := Start(t, hostile, append([]string{"--role", "fetch", "--pub", key.Public, "--target", target,
		"--real", release}, append(seedLoopback(), bootstrapArgs(seedAddrs)...)...)...)
	liarAddrs := append(listenAddrs(t, liarInfo, 0, 2), listenAddrs(t, liarFetch, 0, 2)...)

	startNode := func(name string, boot ...[]string) (*Proc, string) {
		exe := filepath.Join(dir, name, "hello")
		SignedCopy(t, bin, exe, key, "1.0.0")
		args := append([]string{"--private", "--dht-server", "--interval", "2s"}, loopback()...)
		args = append(args, bootstrapArgs(boot...)...)
		args = append(args, "first", "second arg")
		return Start(t, exe, args...), exe
	}
	type node struct {
		p   *Proc
		exe string
	}
	var nodes []node

	// Probe phase: while the fetch liar is the only peer offering 2.0.0, a
	// node must ask it for bytes (so the liar is exercised whatever the
	// order of peers later) and refuse all it sends.
	probe, probeExe := startNode("node0", liarAddrs, seedAddrs)
	probeSum := FileSum(t, probeExe)
	liarFetch.WaitLine(0, p2pTimeout, `^hostile: fetch info=\d+ fetch=[1-9]`)
	if FileSum(t, probeExe) != probeSum {
		t.Fatal("a node replaced its executable while only the fetch liar offered 2.0.0")
	}
	if _, _, err := probe.FindLine(0, 0, `^hello 2\.0\.0`); err == nil {
		t.Fatal("a node ran 2.0.0 while only the fetch liar offered it")
	}
	nodes = append(nodes, node{probe, probeExe})
	// Now the seed gets the real release (renamed in whole, as an operator
	// would), and the rest of the nodes start.
	staged := filepath.Join(dir, "staged-2.0.0")
	CopyFile(t, release, staged)
	if err := os.Rename(staged, filepath.Join(seedDir, "hello-2.0.0")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 5; i++ {
		// The liars come first so that they are asked first.
		p, exe := startNode("node"+strconv.Itoa(i), liarAddrs, seedAddrs)
		nodes = append(nodes, node{p, exe})
	}
	for _, n := range nodes {
		n.p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=first second arg$`)
	}
	var updatedAddrs [][]string
	for _, n := range nodes {
		_, i := n.p.WaitLine(0, p2pTimeout, `^hello 2\.0\.0 args=first second arg$`)
		updatedAddrs = append(updatedAddrs, listenAddrs(t, n.p, i+1, 1))
	}
	for i, n := range nodes {
		if v, err := FileVersion(n.exe, key.Public); err != nil || v != "2.0.0" {
			t.Errorf("node %d: executable is %q, %v; want a verified 2.0.0", i, v, err)
		}
		if !sameBytes(t, n.exe, release) {
			t.Errorf("node %d: executable differs from the seed's 2.0.0", i)
		}
	}

	// Stop the seed: the late node can only get 2.0.0 from updated peers
	// (or from the liars, which must not work).
	seed.Signal(syscall.SIGTERM)
	if err := seed.Wait(30 * time.Second); err != nil {
		t.Errorf("rpseed exited with %v after SIGTERM", err)
	}
	late, lateExe := startNode("late", liarAddrs, updatedAddrs[0], updatedAddrs[1])
	late.WaitLine(0, p2pTimeout, `^hello 2\.0\.0 args=first second arg$`)
	if !sameBytes(t, lateExe, release) {
		t.Error("late node: executable differs from the seed's 2.0.0")
	}

	for _, n := range append(nodes, node{late, lateExe}) {
		if n.p.Exited() {
			t.Errorf("%s exited:\n%s", n.exe, n.p.Output())
			continue
		}
		if rss, ok := rssKiB(n.p.Pid()); ok {
			t.Logf("%s: %.0f MiB resident at the end", n.exe, rss/1024)
			if rss > maxNodeRSS {
				t.Errorf("%s uses %.0f MiB of memory, more than %d MiB", n.exe, rss/1024, maxNodeRSS>>10)
			}
		}
	}
	for _, l := range []*Proc{liarInfo, liarFetch} {
		if l.Exited() {
			t.Fatalf("hostile peer died:\n%s", l.Output())
		}
		l.Signal(syscall.SIGINT)
		l.Wait(30 * time.Second)
	}
	info, _, _ := hostileCounts(t, liarInfo)
	if info == 0 {
		t.Error("the info liar was never asked: the test did not exercise it")
	}
	finfo, fetch, flood := hostileCounts(t, liarFetch)
	t.Logf("info liar answered %d info requests; fetch liar answered %d info and %d fetch requests and sent %d flood requests", info, finfo, fetch, flood)
	if finfo == 0 || fetch == 0 || flood == 0 {
		t.Error("the fetch liar was never asked for info or bytes, or never flooded: the test did not exercise it")
	}
}
