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
// to do, keeps running, and then stays quiet but for what changes: once
// that the newer release 2.0.0 cannot be applied (it fetches nothing), and
// once, when the directory becomes writable, that updates are applied
// again, before it applies 2.0.0. As
// root the test runs hello as the user nobody (root may write anywhere);
// otherwise it makes the directory read-only.
func TestUnwritableDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real process")
	}
	t.Parallel()
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
	// Eight intervals later: still that one error, and one warning that
	// 2.0.0 cannot be applied; nothing fetched, and the program runs.
	time.Sleep(8 * 500 * time.Millisecond)
	if _, _, err := p.FindLine(i+1, 10*time.Millisecond, `level=ERROR`); err == nil {
		t.Errorf("the error was repeated:\n%s", p.Output())
	}
	var warns []string
	for _, l := range p.Lines()[i+1:] {
		if strings.Contains(l.Text, "level=WARN") {
			warns = append(warns, l.Text)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "a newer release is available but cannot be applied here") || !strings.Contains(warns[0], "version=2.0.0") {
		t.Errorf("want one warning that 2.0.0 cannot be applied, got %q", warns)
	}
	if _, _, err := p.FindLine(0, 10*time.Millisecond, `update found`); err == nil {
		t.Errorf("a release was fetched while the directory was unwritable:\n%s", p.Output())
	}
	if p.Exited() {
		t.Fatal("hello exited")
	}
	if v, err := FileVersion(exe, key.Public); err != nil || v != "1.0.0" {
		t.Errorf("executable is %q, %v; want the unchanged 1.0.0", v, err)
	}
	// The directory becomes writable: said once, and 2.0.0 is applied.
	if err := os.Chmod(filepath.Dir(exe), 0o777); err != nil {
		t.Fatal(err)
	}
	p.WaitLine(i+1, 30*time.Second, `takes new files again; updates are applied again`)
	p.WaitLine(i+1, 30*time.Second, `^hello 2\.0\.0`)
}
