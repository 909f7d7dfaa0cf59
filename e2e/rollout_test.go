//go:build unix

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/rollout"
)

// rolloutNode is a hello node of the rollout tests.
type rolloutNode struct {
	p      *Proc
	exe    string
	bucket int // -1 until read
}

// rolloutBucket reads the bucket the node logged ("rollout bucket" line).
var bucketLine = regexp.MustCompile(`msg="rollout bucket".* bucket=(\d+)`)

// runs reports the version the node runs: the last "hello V" line.
func (n *rolloutNode) runs() string {
	v := ""
	for _, l := range n.p.Lines() {
		if f := strings.Fields(l.Text); len(f) >= 2 && f[0] == "hello" {
			v = f[1]
		}
	}
	return v
}

// ran reports whether the node ever ran version v.
func (n *rolloutNode) ran(v string) bool {
	for _, l := range n.p.Lines() {
		if strings.HasPrefix(l.Text, "hello "+v+" ") {
			return true
		}
	}
	return false
}

// rpsignRollout runs rpsign rollout for the running target with the key
// file keyFile and args, writing into dir.
func rpsignRollout(t testing.TB, rpsign, keyFile, dir string, args ...string) {
	t.Helper()
	args = append([]string{"rollout", "--key-file", keyFile, "--target", runtime.GOOS + "/" + runtime.GOARCH, "--out", dir}, args...)
	if out, err := exec.Command(rpsign, args...).CombinedOutput(); err != nil {
		t.Fatalf("rpsign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// rolloutListen returns the listen flags of the rollout tests'
// processes: TCP only. Twenty nodes that fetch a 20 MB release at once
// over QUIC on loopback (user-space packets of a kilobyte and a half,
// each encrypted on its own) keep two cores busy for half a minute; over
// TCP, a few seconds. QUIC's part (a restarting node closes its
// connections) is TestRestartLeavesNetwork's (client).
func rolloutListen() []string { return []string{"--listen", "/ip4/127.0.0.1/tcp/0"} }

// rolloutNet is a private loopback network of hello nodes and two seeds:
// the owner's seed, whose directory holds the releases and the rollout
// statements, and a mirror that serves only the release 1.0.1.
type rolloutNet struct {
	t        *testing.T
	key      Key
	rpsign   string
	keyFile  string
	seq      uint64 // of the statement in seedDir
	interval time.Duration
	seedDir  string
	seed     *Proc
	nodes    []*rolloutNode
}

// startRolloutNet starts the seeds and n hello 1.0.1 nodes, with the
// owner's seed holding statement 1 (stable on 1.0.1) and no release, and
// waits until every node holds the statement and logged its bucket.
func startRolloutNet(t *testing.T, n int, interval time.Duration) *rolloutNet {
	key := NewKey(t)
	// hello without its symbol tables (-s -w): 20 MB rather than 28, for
	// twenty nodes to fetch, check, self-test and serve on two cores.
	built := GoBuildAll(t,
		Build{Pkg: helloPkg, LDFlags: "-s -w -X github.com/org/rustpatcher-go/client.linkedPublicKey=" + key.Public},
		Build{Pkg: "github.com/org/rustpatcher-go/cmd/rpseed"},
		Build{Pkg: "github.com/org/rustpatcher-go/cmd/rpsign"})
	bin, rpseed := built[0], built[1]
	target := runtime.GOOS + "/" + runtime.GOARCH
	dir := t.TempDir()
	r := &rolloutNet{t: t, key: key, interval: interval, seedDir: filepath.Join(dir, "seed"),
		rpsign: built[2], keyFile: filepath.Join(dir, "owner.key")}
	if err := os.WriteFile(r.keyFile, []byte(key.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	mirrorDir := filepath.Join(dir, "mirror")
	for _, d := range []string{r.seedDir, mirrorDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	v101 := filepath.Join(mirrorDir, "hello-1.0.1")
	SignedCopy(t, bin, v101, key, "1.0.1")
	SignedCopy(t, bin, filepath.Join(dir, "hello-2.0.0"), key, "2.0.0")
	rpsignRollout(t, r.rpsign, r.keyFile, r.seedDir, "--version", "1.0.1")
	r.seq = 1

	seedArgs := func(d, name string) []string {
		return append([]string{"--dir", d, "--private", "--pub", target + "=" + key.Public,
			"--identity", filepath.Join(dir, name+".key"), "--scan-interval", "1s"}, rolloutListen()...)
	}
	r.seed = Start(t, rpseed, seedArgs(r.seedDir, "seed")...)
	mirror := Start(t, rpseed, seedArgs(mirrorDir, "mirror")...)
	boot := append(listenAddrs(t, r.seed, 0, 1), listenAddrs(t, mirror, 0, 1)...)
	r.seed.WaitLine(0, 30*time.Second, `msg="serving rollout statement".* sequence=1`)

	for i := range n {
		exe := filepath.Join(dir, fmt.Sprintf("node%02d", i), "hello")
		CopyFile(t, v101, exe) // signing is deterministic: the same file
		args := append([]string{"--private", "--dht-server", "--interval", interval.String(), "--healthy-after", "1s"}, rolloutListen()...)
		r.nodes = append(r.nodes, &rolloutNode{p: Start(t, exe, append(args, bootstrapArgs(boot)...)...), exe: exe, bucket: -1})
	}
	for i, nd := range r.nodes {
		nd.p.WaitLine(0, p2pTimeout, `msg="rollout statement taken".* sequence=1 `)
		l, _ := nd.p.WaitLine(0, 10*time.Second, bucketLine.String())
		b, err := strconv.Atoi(bucketLine.FindStringSubmatch(l.Text)[1])
		if err != nil || b < 0 || b >= rollout.Buckets {
			t.Fatalf("node %d: bucket in %q", i, l.Text)
		}
		nd.bucket = b
	}
	return r
}

// publish runs rpsign rollout with args on the owner seed's directory
// and returns when the seed serves the new statement.
func (r *rolloutNet) publish(args ...string) time.Time {
	r.t.Helper()
	from := len(r.seed.Lines())
	rpsignRollout(r.t, r.rpsign, r.keyFile, r.seedDir, args...)
	r.seq++
	r.seed.WaitLine(from, 30*time.Second, `msg="serving rollout statement".* sequence=`+strconv.FormatUint(r.seq, 10)+` `)
	return time.Now()
}

// inShare returns the nodes whose bucket is under percent.
func (r *rolloutNet) inShare(percent int) (in, out []*rolloutNode) {
	for _, n := range r.nodes {
		if n.bucket < percent*rollout.Buckets/100 {
			in = append(in, n)
		} else {
			out = append(out, n)
		}
	}
	return in, out
}

// waitRun waits until every node of ns runs v, at most timeout.
func (r *rolloutNet) waitRun(ns []*rolloutNode, v string, timeout time.Duration) {
	r.t.Helper()
	Eventually(r.t, timeout, fmt.Sprintf("%d nodes run %s", len(ns), v), func() bool {
		for _, n := range ns {
			if n.runs() != v {
				return false
			}
		}
		return true
	})
}

// obeyed waits until every node of ns runs v (at most p2pTimeout), and
// checks that each started running it (printed "hello v") within limit
// of since, when the statement reached the seed. It returns how long the
// last one took.
func (r *rolloutNet) obeyed(ns []*rolloutNode, v string, since time.Time, limit time.Duration) time.Duration {
	r.t.Helper()
	r.waitRun(ns, v, p2pTimeout)
	var last time.Duration
	for _, n := range ns {
		var took time.Duration
		for _, l := range n.p.Lines() {
			if !l.At.Before(since) && strings.HasPrefix(l.Text, "hello "+v+" ") {
				took = l.At.Sub(since)
				break
			}
		}
		last = max(last, took)
		if took > limit {
			r.t.Errorf("%s (bucket %d) ran %s %v after the statement reached the seed (%.1f poll intervals), want within %v",
				n.exe, n.bucket, v, took.Round(time.Millisecond), took.Seconds()/r.interval.Seconds(), limit)
		}
	}
	return last
}

// held waits until every node of ns took the statement of sequence seq
// and, unless it runs 2.0.0, then held 2.0.0 back under it (it logs that
// once per statement), which shows that it polled and decided under the
// statement. It returns how long after since the last one did.
func (r *rolloutNet) held(ns []*rolloutNode, seq uint64, since time.Time) time.Duration {
	r.t.Helper()
	var last time.Duration
	for _, n := range ns {
		l, i := n.p.WaitLine(0, p2pTimeout, `msg="rollout statement taken".* sequence=`+strconv.FormatUint(seq, 10)+` `)
		if n.runs() != "2.0.0" {
			l, _ = n.p.WaitLine(i, p2pTimeout, `msg="release held back by the rollout statement" .*version=2\.0\.0 `)
		}
		last = max(last, l.At.Sub(since))
	}
	return last
}

// stays checks, for d, that no node of ns moves off the version it runs.
func (r *rolloutNet) stays(ns []*rolloutNode, d time.Duration) {
	r.t.Helper()
	was := make([]string, len(ns))
	for i, n := range ns {
		was[i] = n.runs()
	}
	time.Sleep(d)
	for i, n := range ns {
		if v := n.runs(); v != was[i] {
			r.t.Errorf("%s (bucket %d) moved from %s to %s", n.exe, n.bucket, was[i], v)
		}
	}
}

// TestRollout runs the owner's seed, a mirror serving 1.0.1 and 20 hello
// 1.0.1 nodes on a private loopback network, and drives them with the
// statements rpsign rollout writes into the seed's directory: 2.0.0 for
// 25% updates exactly the nodes whose bucket is under 25%; a halt moves
// no other node; resuming keeps the same set; 100% updates the rest
// within two poll intervals of the statement reaching the seed. Then
// 2.0.0 is yanked to 1.0.1, and the owner's seed is stopped as soon as
// one node holds the yank: the others learn it from their peers, and
// every node is back on 1.0.1, fetched from the mirror and each other,
// within two poll intervals of the statement reaching the seed; nothing
// reinstalls 2.0.0.
//
// Where nodes must not move, the test waits until each one logged that
// it held 2.0.0 back under the statement (it polled and decided), and
// after the resume one more poll interval; whether a node outside the
// 25% ever ran 2.0.0 is checked then. The poll interval is the unit of
// the timings, long enough for 15 nodes at once to fetch, self-test and
// restart into a 20 MB hello on a loaded 2-core machine.
// BenchmarkRolloutObey (client) measures the times at 50 nodes.
func TestRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	const interval = 10 * time.Second
	r := startRolloutNet(t, 20, interval)
	in25, out25 := r.inShare(25)
	t.Logf("%d of %d nodes under 25%%", len(in25), len(r.nodes))
	CopyFile(t, filepath.Join(filepath.Dir(r.seedDir), "hello-2.0.0"), filepath.Join(r.seedDir, ".hello-2.0.0.part"))
	if err := os.Rename(filepath.Join(r.seedDir, ".hello-2.0.0.part"), filepath.Join(r.seedDir, "hello-2.0.0")); err != nil {
		t.Fatal(err)
	}
	r.seed.WaitLine(0, 30*time.Second, `msg="serving release".* version=2\.0\.0`)

	// 25%: the nodes under it, and no other.
	at := r.publish("--version", "2.0.0", "--percent", "25")
	took := r.obeyed(in25, "2.0.0", at, p2pTimeout)
	t.Logf("25%%: %d nodes on 2.0.0 %v after the statement reached the seed; the others held it back %v after", len(in25), took.Round(time.Millisecond), r.held(out25, r.seq, at).Round(time.Millisecond))

	// A halt at 25% stops the rollout where it is; resuming keeps the
	// set. Whether a node outside it ever ran 2.0.0, from the 25% on,
	// is checked once, after one more poll under the resumed rollout.
	at = r.publish("--halt")
	t.Logf("halt: every node held it %v after it reached the seed", r.held(r.nodes, r.seq, at).Round(time.Millisecond))
	at = r.publish("--resume")
	t.Logf("resume: every node held it %v after it reached the seed", r.held(r.nodes, r.seq, at).Round(time.Millisecond))
	r.stays(r.nodes, interval)
	for _, n := range r.nodes {
		if want := slices.Contains(in25, n); n.ran("2.0.0") != want {
			t.Errorf("%s (bucket %d): ran 2.0.0 %v, want %v", n.exe, n.bucket, !want, want)
		}
	}

	// 100%: the rest follow, within two poll intervals.
	at = r.publish("--version", "2.0.0", "--percent", "100")
	took = r.obeyed(out25, "2.0.0", at, 2*interval)
	t.Logf("100%%: all nodes on 2.0.0 %v (%.1f poll intervals) after the statement reached the seed", took.Round(time.Millisecond), took.Seconds()/interval.Seconds())

	// The yank: the seed goes as soon as one node holds it.
	var once sync.Once
	firstHolds := make(chan struct{})
	yank := r.seq + 1
	for _, n := range r.nodes {
		go func() {
			if _, _, err := n.p.FindLine(0, p2pTimeout, `msg="rollout statement taken".* sequence=`+strconv.FormatUint(yank, 10)+` `); err == nil {
				once.Do(func() { close(firstHolds) })
			}
		}()
	}
	at = r.publish("--yank", "2.0.0", "--to", "1.0.1")
	select {
	case <-firstHolds:
	case <-time.After(2 * interval):
		t.Fatal("no node took the yank within two poll intervals")
	}
	if err := r.seed.Stop(10 * time.Second); err != nil {
		t.Logf("stopping the seed: %v", err)
	}
	took = r.obeyed(r.nodes, "1.0.1", at, 2*interval)
	t.Logf("yank: all nodes back on 1.0.1 %v (%.1f poll intervals) after the statement reached the seed", took.Round(time.Millisecond), took.Seconds()/interval.Seconds())
	r.stays(r.nodes, interval)
	for _, n := range r.nodes {
		// Once it held the yank, a node neither serves nor announces
		// 2.0.0.
		_, i := n.p.WaitLine(0, 0, `msg="rollout statement taken".* sequence=`+strconv.FormatUint(yank, 10)+` `)
		if l, _, err := n.p.FindLine(i, 0, `msg="serving release".* version=2\.0\.0`); err == nil {
			t.Errorf("%s served 2.0.0 after the yank: %s", n.exe, l.Text)
		}
		if v, err := FileVersion(n.exe, r.key.Public); err != nil || v != "1.0.1" {
			t.Errorf("%s: executable holds %q, %v; want 1.0.1", n.exe, v, err)
		}
		if n.p.Exited() {
			t.Errorf("%s exited", n.exe)
		}
	}
}

// TestRolloutChannelsAndStale: two hello 1.0.0 nodes read one directory
// (no network) holding 2.0.0-rc.1 and a statement, written by rpsign
// rollout, that puts channel beta on 2.0.0-rc.1 and stable on 1.0.0 (and
// is then made fresh for a few seconds only): the node started with --channel beta runs the
// pre-release, the one on the default channel stays on 1.0.0. Once the
// statement expired and no fresh one came, each node warns once that it
// cannot confirm it runs the newest release, and keeps running.
func TestRolloutChannelsAndStale(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	t.Parallel()
	key := OwnerKey(t)
	bin := BuildHello(t, key.Public)
	rpsign := GoBuild(t, "github.com/org/rustpatcher-go/cmd/rpsign", "")
	dir := t.TempDir()
	rels := filepath.Join(dir, "releases")
	keyFile := filepath.Join(dir, "owner.key")
	if err := os.WriteFile(keyFile, []byte(key.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	SignedCopy(t, bin, filepath.Join(rels, "hello-2.0.0-rc.1"), key, "2.0.0-rc.1")
	rpsignRollout(t, rpsign, keyFile, rels, "--version", "1.0.0")
	rpsignRollout(t, rpsign, keyFile, rels, "--channel", "beta", "--version", "2.0.0-rc.1")
	// rpsign makes statements fresh for a minute at least; this one is
	// re-signed with the library, with an expiry seconds away, to see
	// the warning soon.
	const fresh = 8 * time.Second
	path := filepath.Join(rels, runtime.GOOS+"-"+runtime.GOARCH+rollout.FileSuffix)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := rollout.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	st.Sequence++
	st.Issued, st.Expires = time.Now().Add(-time.Minute), time.Now().Add(fresh)
	if err := st.Sign(key.Private); err != nil {
		t.Fatal(err)
	}
	b, _ = st.MarshalText()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	written := time.Now()

	start := func(name string, args ...string) *Proc {
		exe := filepath.Join(dir, name, "hello")
		SignedCopy(t, bin, exe, key, "1.0.0")
		return Start(t, exe, append([]string{"--source", rels, "--interval", "1s"}, args...)...)
	}
	beta, stable := start("beta", "--channel", "beta"), start("stable")
	beta.WaitLine(0, 30*time.Second, `^hello 2\.0\.0-rc\.1 `)
	const warning = `level=WARN msg="cannot confirm this is the newest release; a network may be hiding updates"`
	for _, p := range []*Proc{beta, stable} {
		p.WaitLine(0, time.Until(written.Add(fresh+30*time.Second)), warning)
	}
	time.Sleep(3 * time.Second) // three more polls
	for name, p := range map[string]*Proc{"beta": beta, "stable": stable} {
		n := 0
		for _, l := range p.Lines() {
			if regexp.MustCompile(warning).MatchString(l.Text) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d stale warnings, want 1", name, n)
		}
		if p.Exited() {
			t.Errorf("%s exited", name)
		}
	}
	if _, _, err := stable.FindLine(0, 0, `^hello 2\.0\.0`); err == nil {
		t.Error("the node on channel stable ran the pre-release")
	}
}
