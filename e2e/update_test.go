//go:build unix

package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// TestHelloVersion checks the helpers and hello's --version: an unsigned
// build says "unsigned" and a signed copy prints its signed version.
func TestHelloVersion(t *testing.T) {
	key := OwnerKey(t)
	bin := BuildHello(t, key.Public)
	dir := t.TempDir()
	unsigned := filepath.Join(dir, "unsigned")
	CopyFile(t, bin, unsigned)
	signed := filepath.Join(dir, "hello")
	SignedCopy(t, bin, signed, key, "v1.2.3")
	tests := []struct {
		path string
		want string
	}{
		{unsigned, "unsigned"},
		{signed, "1.2.3"},
	}
	for _, tt := range tests {
		p := Start(t, tt.path, "--version")
		l, _ := p.WaitLine(0, 30*time.Second, `.`)
		if got := strings.TrimSpace(l.Text); got != tt.want {
			t.Errorf("%s --version = %q, want %q", tt.path, got, tt.want)
		}
		if err := p.Wait(30 * time.Second); err != nil {
			t.Errorf("%s --version: %v", tt.path, err)
		}
	}
	if v, err := FileVersion(signed, key.Public); err != nil || v != "1.2.3" {
		t.Errorf("FileVersion(%s) = %q, %v; want 1.2.3", signed, v, err)
	}
}

// updateSetup is an installed hello 1.0.0 and a release directory.
type updateSetup struct {
	key    Key
	bin    string // unsigned hello built for key
	exe    string // the installed 1.0.0
	rels   string // the release directory
	oldSum string // SHA-256 of the installed 1.0.0
}

// newUpdateSetup installs hello signed as 1.0.0 in its own directory and
// makes an empty release directory.
func newUpdateSetup(t *testing.T) *updateSetup {
	t.Helper()
	return newUpdateSetupFrom(t, BuildHello(t, OwnerKey(t).Public))
}

// newUpdateSetupFrom is newUpdateSetup with bin, a build of hello that
// links OwnerKey.
func newUpdateSetupFrom(t *testing.T, bin string) *updateSetup {
	t.Helper()
	s := &updateSetup{key: OwnerKey(t), bin: bin}
	dir := t.TempDir()
	s.exe = filepath.Join(dir, "app", "hello")
	SignedCopy(t, s.bin, s.exe, s.key, "1.0.0")
	s.oldSum = FileSum(t, s.exe)
	s.rels = filepath.Join(dir, "releases")
	if err := os.MkdirAll(s.rels, 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

// release puts hello signed with key as version into the release
// directory and returns its path.
func (s *updateSetup) release(t *testing.T, key Key, version string) string {
	t.Helper()
	p := filepath.Join(s.rels, "hello-"+version)
	SignedCopy(t, s.bin, p, key, version)
	return p
}

// start runs the installed hello with the update flags and args a b, and
// waits for its 1.0.0 banner.
func (s *updateSetup) start(t *testing.T, mode string) *Proc {
	t.Helper()
	p := Start(t, s.exe, "--mode", mode, "--source", s.rels, "--interval", "1s", "a", "b")
	p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=a b$`)
	return p
}

// waitFileVersion waits until the installed file verifies as version.
func (s *updateSetup) waitFileVersion(t *testing.T, version string, timeout time.Duration) {
	t.Helper()
	w := &versionWatch{path: s.exe, pub: s.key.Public}
	Eventually(t, timeout, "the executable verifies as "+version, func() bool {
		v, err := w.version()
		return err == nil && v == version
	})
}

// checkBackup checks that the previous binary was kept next to the
// executable.
func (s *updateSetup) checkBackup(t *testing.T) {
	t.Helper()
	if got := FileSum(t, s.exe+".old"); got != s.oldSum {
		t.Errorf("%s.old is not the previous 1.0.0 binary", s.exe)
	}
}

func TestUpdateNow(t *testing.T) {
	s := newUpdateSetup(t)
	s.release(t, s.key, "2.0.0")
	p := s.start(t, "now")
	_, i := p.WaitLine(0, 30*time.Second, `^hello 2\.0\.0 args=a b$`)
	if i < 0 {
		t.Fatal("no 2.0.0 banner")
	}
	s.waitFileVersion(t, "2.0.0", 5*time.Second)
	s.checkBackup(t)
	if p.Exited() {
		t.Fatal("the process exited instead of restarting in place")
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("stopping 2.0.0: %v", err)
	}
}

func TestUpdateOnRestart(t *testing.T) {
	t.Parallel()
	s := newUpdateSetup(t)
	s.release(t, s.key, "2.0.0")
	p := s.start(t, "onrestart")
	s.waitFileVersion(t, "2.0.0", 30*time.Second)
	s.checkBackup(t)
	// The file is replaced; the process must go on running 1.0.0. Give it
	// three more polls to do something wrong.
	mark := len(p.Lines())
	if l, _, err := p.FindLine(mark, 3500*time.Millisecond, `^hello 2\.0\.0`); err == nil {
		t.Fatalf("mode onrestart restarted by itself: %q", l.Text)
	}
	if p.Exited() {
		t.Fatal("hello exited after applying the update")
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("stopping 1.0.0: %v", err)
	}
	// The next start runs 2.0.0.
	p2 := Start(t, s.exe, "--mode", "onrestart", "--source", s.rels, "--interval", "1s", "a", "b")
	p2.WaitLine(0, 30*time.Second, `^hello 2\.0\.0 args=a b$`)
	p2.Stop(10 * time.Second)
}

// TestUpdateAt schedules the restart for the next whole minute at least 20
// seconds away, so it waits 20 to 80 seconds.
func TestUpdateAt(t *testing.T) {
	if testing.Short() {
		t.Skip("waits up to 80 seconds for a wall-clock minute")
	}
	t.Parallel() // it waits, one process polling a directory
	s := newUpdateSetup(t)
	s.release(t, s.key, "2.0.0")
	now := time.Now()
	at := now.Truncate(time.Minute).Add(time.Minute)
	if at.Sub(now) < 20*time.Second {
		at = at.Add(time.Minute)
	}
	mode := fmt.Sprintf("at=%02d:%02d", at.Hour(), at.Minute())
	t.Logf("mode %s, %v from now", mode, at.Sub(now).Round(time.Second))
	p := s.start(t, mode)
	s.waitFileVersion(t, "2.0.0", 15*time.Second)
	s.checkBackup(t)
	p.WaitLine(0, 5*time.Second, `restart scheduled`)
	_, i := p.WaitLine(0, time.Until(at)+30*time.Second, `^hello 2\.0\.0 args=a b$`)
	if got := time.Now(); got.Before(at) {
		t.Fatalf("restarted at %v, before the scheduled %v", got, at)
	}
	// Everything hello printed before the restart came from 1.0.0.
	for _, l := range p.Lines()[:i] {
		if strings.HasPrefix(l.Text, "hello 2.0.0") {
			t.Fatalf("2.0.0 ran before %v", at)
		}
	}
	p.Stop(10 * time.Second)
}

// TestUpdateRefused offers releases that must not be applied, each alone,
// and checks for a logged reason and an unchanged executable.
func TestUpdateRefused(t *testing.T) {
	tests := []struct {
		name   string
		make   func(t *testing.T, s *updateSetup)
		reason string // regexp of the logged reason
	}{
		{
			name: "other key",
			make: func(t *testing.T, s *updateSetup) {
				s.release(t, NewKey(t), "2.0.0")
			},
			reason: `signature does not verify`,
		},
		{
			name: "truncated",
			make: func(t *testing.T, s *updateSetup) {
				p := s.release(t, s.key, "2.0.0")
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(p, st.Size()-4096); err != nil {
					t.Fatal(err)
				}
				// Still a release: the region is well inside the file.
				if _, err := region.ScanFile(context.Background(), p); err != nil {
					t.Fatalf("truncated release lost its region: %v", err)
				}
			},
			reason: `does not fit the signed content`,
		},
		{
			name: "flipped byte",
			make: func(t *testing.T, s *updateSetup) {
				p := s.release(t, s.key, "2.0.0")
				flipByte(t, p)
			},
			reason: `do not match the signed hash`,
		},
		{
			name: "1.0.0 re-signed as 0.9.0",
			make: func(t *testing.T, s *updateSetup) {
				p := filepath.Join(s.rels, "hello-0.9.0")
				CopyFile(t, s.exe, p)
				if _, err := region.SignFile(context.Background(), p, s.key.Private, "0.9.0", runtime.GOOS+"/"+runtime.GOARCH); err != nil {
					t.Fatal(err)
				}
			},
			reason: `not newer than the running version: 0\.9\.0 is not above 1\.0\.0`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case waits out two polls after its refusal; they wait
			// side by side.
			t.Parallel()
			s := newUpdateSetup(t)
			tt.make(t, s)
			p := s.start(t, "now")
			re := `release (rejected|refused).*reason="?[^"]*` + tt.reason
			l, _ := p.WaitLine(0, 30*time.Second, re)
			if !regexp.MustCompile(`hello-`).MatchString(l.Text) {
				t.Errorf("the reason does not name the file: %q", l.Text)
			}
			// Two more polls must not change anything either.
			if l, _, err := p.FindLine(0, 2500*time.Millisecond, `^hello 2\.0\.0|update applied|restarting`); err == nil {
				t.Fatalf("a refused release was applied: %q", l.Text)
			}
			if p.Exited() {
				t.Fatal("hello exited after refusing a release")
			}
			if got := FileSum(t, s.exe); got != s.oldSum {
				t.Fatal("the executable changed")
			}
			ents, err := os.ReadDir(filepath.Dir(s.exe))
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("files next to the executable: %v, want only hello", names)
			}
			p.Stop(10 * time.Second)
		})
	}
}

// flipByte inverts one byte of the file at path, outside its region.
func flipByte(t *testing.T, path string) {
	t.Helper()
	sc, err := region.ScanFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := sc.FileSize / 3
	if off >= sc.Offset && off < sc.Offset+region.Size {
		off = sc.Offset + region.Size + 1
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// padBinary copies src to dst with extra pseudo-random bytes appended (the
// region is found anywhere, so the copy can be signed and runs as before).
func padBinary(b testing.TB, src, dst string, extra int64) {
	b.Helper()
	CopyFile(b, src, dst)
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{7}), extra); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSelfTest runs hello in self-test mode, which is the
// self-verification every start does (find the region, hash the whole file,
// check the signature), as a real process, and reports its peak RSS.
func BenchmarkSelfTest(b *testing.B) {
	key := OwnerKey(b)
	bin := BuildHello(b, key.Public)
	for _, extra := range []int64{0, 100 << 20} {
		dir := b.TempDir()
		exe := filepath.Join(dir, "hello")
		padBinary(b, bin, exe, extra)
		if _, err := region.SignFile(context.Background(), exe, key.Private, "1.0.0", runtime.GOOS+"/"+runtime.GOARCH); err != nil {
			b.Fatal(err)
		}
		st, err := os.Stat(exe)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dMB", st.Size()>>20), func(b *testing.B) {
			var maxRSS int64
			b.SetBytes(st.Size())
			for b.Loop() {
				cmd := exec.Command(exe)
				cmd.Env = append(os.Environ(), "RUSTPATCHER_SELFTEST=1")
				if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok 1.0.0") {
					b.Fatalf("self-test: %v: %s", err, out)
				}
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					maxRSS = max(maxRSS, int64(ru.Maxrss)) // KiB on Linux
				}
			}
			b.ReportMetric(float64(maxRSS)/1024, "peak-RSS-MiB")
		})
	}
}

// BenchmarkUpdate100MB runs hello 1.0.0 padded to over 100 MB with a 2.0.0
// of the same size in its --source directory, and measures from the "update
// found" log line to "update applied": download from the directory while
// hashing, verify, the self-test run of the new 100 MB binary, fsync,
// backup, rename and directory sync.
func BenchmarkUpdate100MB(b *testing.B) {
	key := OwnerKey(b)
	bin := BuildHello(b, key.Public)
	dir := b.TempDir()
	padded := filepath.Join(dir, "padded")
	padBinary(b, bin, padded, 100<<20)
	rels := filepath.Join(dir, "releases")
	SignedCopy(b, padded, filepath.Join(rels, "hello-2.0.0"), key, "2.0.0")
	exe := filepath.Join(dir, "app", "hello")
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		SignedCopy(b, padded, exe, key, "1.0.0")
		os.Remove(exe + ".old")
		b.StartTimer()
		p := Start(b, exe, "--mode", "onrestart", "--source", rels, "--interval", "1h")
		_, i := p.WaitLine(0, 60*time.Second, `msg="update found"`)
		start := time.Now()
		p.WaitLine(i, 60*time.Second, `msg="update applied"`)
		total += time.Since(start)
		b.StopTimer()
		p.Stop(10 * time.Second)
		if v, err := FileVersion(exe, key.Public); err != nil || v != "2.0.0" {
			b.Fatalf("after the update: %q, %v", v, err)
		}
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-found-to-applied")
}

// TestUpdateThroughSymlink runs hello through a symbolic link, as a
// program installed in /opt and linked from /usr/local/bin is: the update
// replaces the link's target, with its mode, and leaves the link alone.
func TestUpdateThroughSymlink(t *testing.T) {
	s := newUpdateSetup(t)
	if err := os.Chmod(s.exe, 0o750); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "bin", "hello")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(s.exe, link); err != nil {
		t.Fatal(err)
	}
	s.release(t, s.key, "2.0.0")
	p := Start(t, link, "--mode", "now", "--source", s.rels, "--interval", "1s", "a", "b")
	p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=a b$`)
	p.WaitLine(0, 60*time.Second, `^hello 2\.0\.0 args=a b$`)
	s.waitFileVersion(t, "2.0.0", 10*time.Second)
	if dst, err := os.Readlink(link); err != nil || dst != s.exe {
		t.Errorf("the link now points to %q (%v), want %s", dst, err, s.exe)
	}
	if st, err := os.Stat(s.exe); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("the target's mode after the update: %v, %v; want 0750", st.Mode(), err)
	}
	s.checkBackup(t)
}
