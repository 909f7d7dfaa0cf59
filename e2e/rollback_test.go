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

// TestRollbackAfterCrash runs hello 1.0.0 under a supervisor loop (as
// systemd's Restart=always would): it updates itself to a 2.0.0 that passes
// its self-test but crashes five seconds after every start (or at once).
// At its third start 2.0.0 is rolled back: the node ends on 1.0.0, with
// 2.0.0 still offered, and stays there.
func TestRollbackAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes for half a minute")
	}
	t.Parallel() // it waits for crashes, one process at a time
	for _, after := range []string{"5s", "0s"} {
		t.Run("crash after "+after, func(t *testing.T) {
			t.Parallel()
			testRollback(t, after)
		})
	}
}

func testRollback(t *testing.T, crashAfter string) {
	key := NewKey(t)
	hello := BuildHello(t, key.Public)
	crashy := GoBuild(t, "github.com/org/rustpatcher-go/e2e/internal/crashy",
		"-X main.crashAfter="+crashAfter+" -X github.com/org/rustpatcher-go/client.linkedPublicKey="+key.Public)
	dir := t.TempDir()
	exe := filepath.Join(dir, "app", "hello")
	SignedCopy(t, hello, exe, key, "1.0.0")
	oldSum := FileSum(t, exe)
	rels := filepath.Join(dir, "releases")
	SignedCopy(t, crashy, filepath.Join(rels, "app-2.0.0"), key, "2.0.0")
	args := []string{"--mode", "now", "--source", rels, "--interval", "1s", "--healthy-after", "20s", "a", "b"}

	// The supervisor: start the executable again whenever it exits, at
	// most five times.
	var runs []*Proc
	starts := 0
	for starts < 5 {
		p := Start(t, exe, args...)
		runs = append(runs, p)
		starts++
		// Until it exits, or has run 1.0.0 for six intervals after the
		// rollback.
		if _, _, err := p.FindLine(0, 60*time.Second, `update rolled back`); err == nil {
			p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=a b$`)
			time.Sleep(6 * time.Second)
			if p.Exited() {
				t.Fatalf("1.0.0 exited after the rollback:\n%s", p.Output())
			}
			break
		}
		p.Wait(30 * time.Second)
	}
	last := runs[len(runs)-1]
	if starts > 3 {
		t.Errorf("the supervisor started the program %d times, want at most 3", starts)
	}
	if got := FileSum(t, exe); got != oldSum {
		v, err := FileVersion(exe, key.Public)
		t.Fatalf("executable is %q (%v), want the original 1.0.0", v, err)
	}
	// 2.0.0 is still offered, and never taken again.
	if _, _, err := last.FindLine(0, 0, `update found.*version=2\.0\.0`); err == nil {
		if _, i, _ := last.FindLine(0, 0, `hello 1\.0\.0`); i >= 0 {
			if _, _, err := last.FindLine(i, 0, `update found.*version=2\.0\.0`); err == nil {
				t.Errorf("1.0.0 fetched 2.0.0 again after the rollback:\n%s", last.Output())
			}
		}
	}
	if _, err := os.Stat(filepath.Join(rels, "app-2.0.0")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runs[0].FindLine(0, 0, `^crashy 2\.0\.0 args=a b$`); err != nil {
		t.Errorf("2.0.0 never ran: %v\n%s", err, runs[0].Output())
	}
}

// TestRollbackNotOnStop is a person testing an update by hand: hello 1.0.0
// updates itself to 2.0.0, which is then stopped and started again, each
// time well within its trial (--healthy-after 1m). Stopped with SIGTERM or
// SIGINT (hello cancels its context and closes the engine), no start counts
// and 2.0.0 stays however often it is restarted. Killed with SIGKILL, each
// start counts, and the third start of 2.0.0 rolls it back to 1.0.0.
func TestRollbackNotOnStop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	t.Parallel()
	key := NewKey(t)
	hello := BuildHello(t, key.Public)
	for _, tt := range []struct {
		name     string
		sig      syscall.Signal
		rollback bool
	}{
		{"SIGTERM", syscall.SIGTERM, false},
		{"SIGINT", syscall.SIGINT, false},
		{"SIGKILL", syscall.SIGKILL, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			exe := filepath.Join(dir, "app", "hello")
			SignedCopy(t, hello, exe, key, "1.0.0")
			oldSum := FileSum(t, exe)
			rels := filepath.Join(dir, "releases")
			SignedCopy(t, hello, filepath.Join(rels, "hello-2.0.0"), key, "2.0.0")
			args := []string{"--mode", "now", "--source", rels, "--interval", "1s", "--healthy-after", "1m"}

			// The first start updates and restarts into 2.0.0: its first
			// start on trial.
			p := Start(t, exe, args...)
			p.WaitLine(0, 60*time.Second, `^hello 2\.0\.0 args=$`)
			for start := 2; ; start++ {
				p.Signal(tt.sig)
				err := p.Wait(30 * time.Second)
				if tt.sig != syscall.SIGKILL && err != nil {
					t.Fatalf("hello stopped by %v: %v, want status 0\n%s", tt.sig, err, p.Output())
				}
				if start > 4 {
					break
				}
				p = Start(t, exe, args...)
				if l, _ := p.WaitLine(0, 30*time.Second, `update rolled back|^hello 2\.0\.0 args=$`); strings.Contains(l.Text, "rolled back") {
					if !tt.rollback || start != 3 {
						t.Fatalf("start %d of 2.0.0 rolled it back:\n%s", start, p.Output())
					}
					p.WaitLine(0, 30*time.Second, `ForgetRolledBack`)
					p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=$`)
					p.Stop(30 * time.Second)
					break
				}
				if tt.rollback && start == 3 {
					t.Fatalf("start %d of 2.0.0 after two killed ones did not roll it back:\n%s", start, p.Output())
				}
			}
			v, err := FileVersion(exe, key.Public)
			switch {
			case tt.rollback && FileSum(t, exe) != oldSum:
				t.Errorf("executable is %q (%v), want the original 1.0.0", v, err)
			case !tt.rollback && (err != nil || v != "2.0.0"):
				t.Errorf("executable is %q (%v), want 2.0.0 after stops by %v", v, err, tt.sig)
			}
		})
	}
}
