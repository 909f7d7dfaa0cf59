//go:build unix

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUnwritableDirectory runs hello from a directory its user cannot write
// to, as a program installed in /usr/local/bin and run by a service user
// is: it says once, at start, that updates cannot be applied there and what
// to do, keeps running, and does not repeat the error every interval. As
// root the test runs hello as the user nobody (root may write anywhere);
// otherwise it makes the directory read-only.
func TestUnwritableDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real process")
	}
	key := OwnerKey(t)
	bin := BuildHello(t, key.Public)
	// Directories the other user can traverse and read.
	dir, err := os.MkdirTemp("", "rustpatcher-e2e-unwritable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "bin"), 0o755); os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "bin", "hello")
	SignedCopy(t, bin, exe, key, "1.0.0")
	rels := filepath.Join(dir, "releases")
	SignedCopy(t, bin, filepath.Join(rels, "hello-2.0.0"), key, "2.0.0")
	opt := StartOptions{}
	if os.Geteuid() == 0 {
		opt.Credential = &syscall.Credential{Uid: 65534, Gid: 65534} // nobody
	} else if err := os.Chmod(filepath.Dir(exe), 0o555); err != nil {
		t.Fatal(err)
	}
	p := StartWith(t, opt, exe, "--source", rels, "--interval", "500ms")
	p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0`)
	l, i := p.WaitLine(0, 30*time.Second, `updates cannot be applied here`)
	for _, want := range []string{"is not writable", "make the directory writable by the user the program runs as"} {
		if !strings.Contains(l.Text, want) {
			t.Errorf("the error does not say %q: %s", want, l.Text)
		}
	}
	// One interval later: no second error (the first retry waits two
	// intervals, the next four), and the program still runs.
	time.Sleep(500 * time.Millisecond)
	if _, _, err := p.FindLine(i+1, 10*time.Millisecond, `level=ERROR`); err == nil {
		t.Errorf("the error was repeated within one interval:\n%s", p.Output())
	}
	if p.Exited() {
		t.Fatal("hello exited")
	}
	if v, err := FileVersion(exe, key.Public); err != nil || v != "1.0.0" {
		t.Errorf("executable is %q, %v; want the unchanged 1.0.0", v, err)
	}
}
