//go:build unix

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// rpseedPkg is the import path of the seed node.
const rpseedPkg = "github.com/org/rustpatcher-go/cmd/rpseed"

// freePorts returns two distinct free TCP ports and a free UDP port on
// 127.0.0.1, for a process that must listen on the same ports again after a
// restart. (Another process could take one before it is used; on a test
// machine that is rare.)
func freePorts(t *testing.T) (tcp1, tcp2, udp int) {
	t.Helper()
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // held until all are chosen, so they differ
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	return ports[0], ports[1], u.LocalAddr().(*net.UDPAddr).Port
}

// peerOf returns the peer ID that ends the multiaddrs, which must all name
// the same one.
func peerOf(t *testing.T, addrs []string) string {
	t.Helper()
	var id string
	for _, a := range addrs {
		i := strings.LastIndex(a, "/p2p/")
		if i < 0 {
			t.Fatalf("address %s has no /p2p/<id>", a)
		}
		if id != "" && a[i+5:] != id {
			t.Fatalf("addresses %v name different peers", addrs)
		}
		id = a[i+5:]
	}
	return id
}

// procArgs returns the command line of process pid from /proc, or nil where
// there is no /proc.
func procArgs(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// healthPeer reads the peer ID from an rpseed's /healthz.
func healthPeer(t *testing.T, metricsAddr string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + metricsAddr + "/healthz")
	if err != nil {
		t.Fatalf("rpseed /healthz: %v", err)
	}
	defer resp.Body.Close()
	var h struct {
		PeerID string `json:"peer_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("rpseed /healthz: %v", err)
	}
	return h.PeerID
}

// TestRpseedSelfUpdate runs an rpseed 1.0.0 with --self-update now on a
// private loopback network, serving hello 2.0.0 to a hello 1.0.0 node. Then a
// signed rpseed 2.0.0 is renamed into the seed's directory: the seed must
// serve it, apply it to its own executable and restart into it (same pid,
// same arguments, same listen addresses and peer ID, metrics on the same
// port) and go on serving: a hello 1.0.0 node started only then updates from
// it, and a second rpseed 1.0.0 that knows only the first one updates itself
// to 2.0.0 over the network.
func TestRpseedSelfUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	t.Parallel() // waits on rpseed's restarts more than on the CPU
	began := time.Now()
	seedKey, appKey := NewKey(t), NewKey(t)
	rpseed := GoBuild(t, rpseedPkg, "-X github.com/org/rustpatcher-go/client.linkedPublicKey="+seedKey.Public)
	hello := BuildHello(t, appKey.Public)
	t.Logf("built rpseed and hello in %v", time.Since(began).Round(time.Millisecond))
	target := runtime.GOOS + "/" + runtime.GOARCH
	dir := t.TempDir()

	seedDir := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	seedExe := filepath.Join(dir, "bin", "rpseed")
	SignedCopy(t, rpseed, seedExe, seedKey, "1.0.0")
	rpseed2 := filepath.Join(dir, "release", "rpseed-2.0.0")
	SignedCopy(t, rpseed, rpseed2, seedKey, "2.0.0")
	hello2 := filepath.Join(seedDir, "hello-2.0.0")
	SignedCopy(t, hello, hello2, appKey, "2.0.0")

	tcpPort, metricsPort, udpPort := freePorts(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", metricsPort)
	args := []string{"--self-update", "now", "--self-update-interval", "1s", "--private",
		"--dir", seedDir, "--pub", target + "=" + appKey.Public, "--identity", filepath.Join(dir, "seed.key"),
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", udpPort), "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", tcpPort),
		"--metrics-addr", metricsAddr, "--scan-interval", "500ms"}
	seed := Start(t, seedExe, args...)
	addrs1 := listenAddrs(t, seed, 0, 2)
	id1 := peerOf(t, addrs1)
	seed.WaitLine(0, 30*time.Second, `running binary verified, updates are on.*version=1\.0\.0`)
	if got := procArgs(seed.Pid()); got != nil && !slices.Equal(got[1:], args) {
		t.Fatalf("rpseed runs with %q, want %q", got[1:], args)
	}

	startHello := func(name string, boot []string) (*Proc, string) {
		exe := filepath.Join(dir, name, "hello")
		SignedCopy(t, hello, exe, appKey, "1.0.0")
		a := append([]string{"--private", "--dht-server", "--interval", "1s"}, loopback()...)
		a = append(a, bootstrapArgs(boot)...)
		return Start(t, exe, a...), exe
	}
	checkHello := func(p *Proc, exe string) {
		t.Helper()
		p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0`)
		p.WaitLine(0, p2pTimeout, `^hello 2\.0\.0`)
		if !sameBytes(t, exe, hello2) {
			t.Errorf("%s differs from the seed's hello 2.0.0", exe)
		}
	}
	node1, exe1 := startHello("node1", addrs1)
	checkHello(node1, exe1)
	t.Logf("hello node 1 updated from rpseed 1.0.0 at %v", time.Since(began).Round(time.Millisecond))

	// The new rpseed arrives in the directory as an operator (or --github)
	// puts it there: written under a hidden name, then renamed.
	mark := len(seed.Lines())
	staged := filepath.Join(seedDir, ".rpseed-2.0.0.tmp")
	CopyFile(t, rpseed2, staged)
	if err := os.Rename(staged, filepath.Join(seedDir, "rpseed-2.0.0")); err != nil {
		t.Fatal(err)
	}
	seed.WaitLine(mark, 30*time.Second, `release found.*file=rpseed-2\.0\.0.*version=2\.0\.0`)
	seed.WaitLine(mark, 30*time.Second, `serving release.*version=2\.0\.0.*rpseed-2\.0\.0`)
	seed.WaitLine(mark, p2pTimeout, `update applied.*version=2\.0\.0`)
	_, restartAt := seed.WaitLine(mark, 30*time.Second, `restarting into the update.*version=2\.0\.0`)
	seed.WaitLine(restartAt, 30*time.Second, `rpseed running.*version=2\.0\.0`)
	addrs2 := listenAddrs(t, seed, restartAt, 2)
	t.Logf("rpseed restarted into 2.0.0 at %v", time.Since(began).Round(time.Millisecond))
	if seed.Exited() {
		t.Fatalf("rpseed exited instead of restarting in place:\n%s", seed.Output())
	}
	if id2 := peerOf(t, addrs2); id2 != id1 {
		t.Errorf("peer ID changed across the restart: %s, then %s", id1, id2)
	}
	slices.Sort(addrs1)
	slices.Sort(addrs2)
	if !slices.Equal(addrs1, addrs2) {
		t.Errorf("listen addresses changed across the restart: %v, then %v", addrs1, addrs2)
	}
	if got := procArgs(seed.Pid()); got != nil && !slices.Equal(got[1:], args) {
		t.Errorf("after the restart, pid %d runs with %q, want %q", seed.Pid(), got[1:], args)
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", seed.Pid())); err == nil && exe != seedExe {
		t.Errorf("after the restart, pid %d runs %s, want %s", seed.Pid(), exe, seedExe)
	}
	if p := healthPeer(t, metricsAddr); p != id1 {
		t.Errorf("/healthz after the restart names peer %s, want %s", p, id1)
	}
	if v, err := FileVersion(seedExe, seedKey.Public); err != nil || v != "2.0.0" {
		t.Errorf("the seed's executable is %q, %v; want a verified rpseed 2.0.0", v, err)
	}
	if !sameBytes(t, seedExe, rpseed2) {
		t.Error("the seed's executable differs from the signed rpseed 2.0.0")
	}
	if v, err := FileVersion(seedExe+".old", seedKey.Public); err != nil || v != "1.0.0" {
		t.Errorf("the previous executable kept for rollback is %q, %v; want rpseed 1.0.0", v, err)
	}

	// The restarted seed goes on serving: a node started only now updates
	// from it.
	node2, exe2 := startHello("node2", addrs2)
	checkHello(node2, exe2)
	t.Logf("hello node 2 updated from rpseed 2.0.0 at %v", time.Since(began).Round(time.Millisecond))

	// And it serves its own release: a second seed that knows only the
	// first fetches rpseed 2.0.0 over the network and restarts into it.
	otherExe := filepath.Join(dir, "bin2", "rpseed")
	SignedCopy(t, rpseed, otherExe, seedKey, "1.0.0")
	otherDir := filepath.Join(dir, "seed2")
	if err := os.MkdirAll(otherDir, 0o755); err != nil {
		t.Fatal(err)
	}
	other := Start(t, otherExe, append([]string{"--self-update", "now", "--self-update-interval", "1s", "--private",
		"--dir", otherDir, "--pub", target + "=" + appKey.Public, "--identity", filepath.Join(dir, "seed2.key")}, append(seedLoopback(), bootstrapArgs(addrs2)...)...)...)
	other.WaitLine(0, p2pTimeout, `update found.*version=2\.0\.0.*source="p2p `)
	_, i := other.WaitLine(0, p2pTimeout, `restarting into the update.*version=2\.0\.0`)
	other.WaitLine(i, 30*time.Second, `rpseed running.*version=2\.0\.0`)
	if !sameBytes(t, otherExe, rpseed2) {
		t.Error("the second seed's executable differs from the signed rpseed 2.0.0")
	}
	t.Logf("second rpseed updated itself over the network at %v", time.Since(began).Round(time.Millisecond))

	for _, p := range []*Proc{seed, other} {
		if err := p.Stop(30 * time.Second); err != nil {
			t.Errorf("rpseed exited with %v after SIGINT", err)
		}
	}
	for _, p := range []*Proc{seed, other} {
		for _, l := range p.Lines() {
			if strings.Contains(l.Text, "level=ERROR") {
				t.Errorf("rpseed logged an error: %s", l.Text)
			}
		}
	}
}

// TestRpseedSelfUpdateNoLinkedKey starts an rpseed built without a linked
// owner key with --self-update now: it must refuse to start, before it
// listens, and say how to build it and how to run without self-updates.
func TestRpseedSelfUpdateNoLinkedKey(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	rpseed := GoBuild(t, rpseedPkg, "")
	p := Start(t, rpseed, append([]string{"--self-update", "now", "--private", "--dir", t.TempDir(), "--identity", filepath.Join(t.TempDir(), "seed.key"),
		"--pub", runtime.GOOS + "/" + runtime.GOARCH + "=" + NewKey(t).Public}, seedLoopback()...)...)
	err := p.Wait(30 * time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("rpseed exited with %v, want status 1\n%s", err, p.Output())
	}
	out := p.Output()
	for _, want := range []string{"built without an owner key", `-ldflags "-X github.com/org/rustpatcher-go/client.linkedPublicKey=<key>"`, "--self-update off"} {
		if !strings.Contains(out, want) {
			t.Errorf("rpseed's error does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "listening:") {
		t.Errorf("rpseed listened before refusing to start:\n%s", out)
	}
}
