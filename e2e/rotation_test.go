//go:build unix

package e2e

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/rotation"
)

// TestRotationOverNetwork: the owner moves the target from key K0 to K1
// with a statement made by rpsign rotate and put, with hello 2.0.0 built
// and signed for K1, into the directory of an rpseed started with K0
// alone. The seed also holds 3.0.0 signed with the retired K0. A hello
// 1.0.0 built for K0 learns the statement from the seed, follows it, and
// runs 2.0.0, never 3.0.0. Then, with the seed stopped, a second 1.0.0
// node whose only peer is the updated first node learns the statement
// from it and updates from it too: the first node, now running a build
// for K1, keeps serving the statement it followed, and statements travel
// peer to peer like releases.
func TestRotationOverNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	t.Parallel()
	k0, k1 := NewKey(t), NewKey(t)
	target := runtime.GOOS + "/" + runtime.GOARCH
	helloK0, helloK1 := BuildHello(t, k0.Public), BuildHello(t, k1.Public)
	rpseed := GoBuild(t, "github.com/org/rustpatcher-go/cmd/rpseed", "")
	rpsign := GoBuild(t, "github.com/org/rustpatcher-go/cmd/rpsign", "")
	dir := t.TempDir()
	seedDir := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	release := filepath.Join(seedDir, "hello-2.0.0")
	SignedCopy(t, helloK1, release, k1, "2.0.0")
	SignedCopy(t, helloK0, filepath.Join(seedDir, "hello-3.0.0"), k0, "3.0.0")
	oldKey := filepath.Join(dir, "k0.key")
	if err := os.WriteFile(oldKey, []byte(k0.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	stmt := filepath.Join(seedDir, "linux-amd64-1.rotation")
	if out, err := exec.Command(rpsign, "rotate", stmt, "--key-file", oldKey, "--to", k1.Public, "--target", target).CombinedOutput(); err != nil {
		t.Fatalf("rpsign rotate: %v\n%s", err, out)
	}

	seed := Start(t, rpseed, append([]string{"--dir", seedDir, "--private", "--identity", filepath.Join(dir, "seed.key"), "--pub", target + "=" + k0.Public}, seedLoopback()...)...)
	seedAddrs := listenAddrs(t, seed, 0, 2)
	seed.WaitLine(0, 30*time.Second, `msg="serving key rotation"`)
	seed.WaitLine(0, 30*time.Second, `msg="serving release".* version=2\.0\.0`)
	seed.WaitLine(0, 30*time.Second, `msg="serving release".* version=3\.0\.0`)

	const interval = 3 * time.Second
	start := func(name string, boot []string) (*Proc, string) {
		exe := filepath.Join(dir, name, "hello")
		SignedCopy(t, helloK0, exe, k0, "1.0.0")
		args := append([]string{"--private", "--dht-server", "--interval", interval.String(), "--identity", filepath.Join(dir, name+".key")}, loopback()...)
		return Start(t, exe, append(args, bootstrapArgs(boot)...)...), exe
	}
	checkRotated := func(node *Proc, exe string) int {
		t.Helper()
		node.WaitLine(0, p2pTimeout, `msg="owner key rotated.*to=`+k1.Public)
		_, i := node.WaitLine(0, p2pTimeout, `^hello 2\.0\.0`)
		if !sameBytes(t, exe, release) {
			t.Error("the node's executable differs from the seed's 2.0.0")
		}
		if _, _, err := node.FindLine(0, 0, `version=3\.0\.0`); err == nil {
			t.Error("the node considered 3.0.0, signed with the retired key, after the rotation")
		}
		return i
	}
	first, exe1 := start("first", seedAddrs)
	i := checkRotated(first, exe1)
	firstAddrs := listenAddrs(t, first, i, 1) // printed again by 2.0.0

	// With the seed gone, the first node is the only one that has the
	// statement and 2.0.0.
	if err := seed.Stop(10 * time.Second); err != nil {
		t.Logf("stopping the seed: %v", err)
	}
	second, exe2 := start("second", firstAddrs)
	checkRotated(second, exe2)
}

// TestRotationNoWayBack: a release directory holds, beside hello 2.0.0
// built and signed for key B and 3.0.0 signed with key X, three valid
// statements: A→B (1), B→A (2) and A→X (3), as whoever held the retired
// A and B could sign them. A hello 1.0.0 built for A follows A→B and runs
// 2.0.0; neither it nor the build for B it restarts into ever returns to
// A, so A→X is never followed and 3.0.0 is refused, not applied
// (docs/FORMAT.md, "Following a chain").
func TestRotationNoWayBack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hello for two keys")
	}
	t.Parallel()
	a, b, x := NewKey(t), NewKey(t), NewKey(t)
	target := runtime.GOOS + "/" + runtime.GOARCH
	helloA, helloB := BuildHello(t, a.Public), BuildHello(t, b.Public)
	dir := t.TempDir()
	rels := filepath.Join(dir, "releases")
	release := filepath.Join(rels, "hello-2.0.0")
	SignedCopy(t, helloB, release, b, "2.0.0")
	SignedCopy(t, helloB, filepath.Join(rels, "hello-3.0.0"), x, "3.0.0")
	for i, st := range []struct {
		from, to Key
	}{{a, b}, {b, a}, {a, x}} {
		s, err := rotation.New(st.from.Private, st.to.Private.Public().(ed25519.PublicKey), target, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		text, _ := s.MarshalText()
		if err := os.WriteFile(filepath.Join(rels, fmt.Sprintf("step-%d%s", i+1, rotation.FileSuffix)), text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "app", "hello")
	SignedCopy(t, helloA, exe, a, "1.0.0")
	p := Start(t, exe, "--source", rels, "--interval", "1s")
	p.WaitLine(0, 30*time.Second, `msg="owner key rotated.*to=`+b.Public)
	_, i := p.WaitLine(0, 30*time.Second, `^hello 2\.0\.0`)
	if !sameBytes(t, exe, release) {
		t.Error("the executable differs from the directory's 2.0.0")
	}
	// The build for B polls the same statements and refuses 3.0.0: a
	// release signed with a key it does not trust.
	p.WaitLine(i, 30*time.Second, `msg="release rejected".* version=3\.0\.0`)
	for _, re := range []string{`msg="owner key rotated.*to=(` + a.Public + `|` + x.Public + `)`, `msg="update found".* version=3\.0\.0`, `^hello 3\.0\.0`} {
		if l, _, err := p.FindLine(0, 0, re); err == nil {
			t.Errorf("the chain went back to a key it left: %s", l.Text)
		}
	}
	if v, err := FileVersion(exe, b.Public); err != nil || v != "2.0.0" {
		t.Errorf("the executable verifies with B as %q (%v), want 2.0.0", v, err)
	}
}

// TestRotationAfterRelease: hello 2.0.0, built and signed for key B, is in
// the release directory before any statement: hello 1.0.0, built for A,
// refuses it (not signed by A). Then the owner's A→B statement appears
// beside it; at the next poll the app follows it and applies the 2.0.0
// it refused before, without the file being touched or the app restarted:
// a refusal for the key alone lasts only as long as that key is trusted.
func TestRotationAfterRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hello for two keys")
	}
	t.Parallel()
	a, b := NewKey(t), NewKey(t)
	helloA, helloB := BuildHello(t, a.Public), BuildHello(t, b.Public)
	dir := t.TempDir()
	rels := filepath.Join(dir, "releases")
	release := filepath.Join(rels, "hello-2.0.0")
	SignedCopy(t, helloB, release, b, "2.0.0")
	exe := filepath.Join(dir, "app", "hello")
	SignedCopy(t, helloA, exe, a, "1.0.0")
	p := Start(t, exe, "--source", rels, "--interval", "1s")
	_, i := p.WaitLine(0, 30*time.Second, `msg="release rejected".* version=2\.0\.0.*signature does not verify`)

	s, err := rotation.New(a.Private, b.Private.Public().(ed25519.PublicKey), runtime.GOOS+"/"+runtime.GOARCH, 1)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := s.MarshalText()
	tmp := filepath.Join(dir, "a-b"+rotation.FileSuffix)
	if err := os.WriteFile(tmp, text, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(rels, filepath.Base(tmp))); err != nil {
		t.Fatal(err)
	}
	p.WaitLine(i, 30*time.Second, `msg="owner key rotated.*to=`+b.Public)
	p.WaitLine(i, 30*time.Second, `^hello 2\.0\.0`)
	if !sameBytes(t, exe, release) {
		t.Error("the executable differs from the directory's 2.0.0")
	}
}
