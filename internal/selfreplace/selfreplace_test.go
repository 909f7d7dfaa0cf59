//go:build unix

package selfreplace

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	oldContent = bytes.Repeat([]byte("old binary "), 50000)
	newContent = bytes.Repeat([]byte("NEW BINARY!"), 70000)
)

// setup writes an "executable" with oldContent and mode 0751.
func setup(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(exe, oldContent, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(exe, 0o751); err != nil {
		t.Fatal(err)
	}
	return exe
}

// replace runs a whole replacement of exe with content.
func replace(r *Replacer, content []byte) error {
	p, err := r.Begin()
	if err != nil {
		return err
	}
	if _, err := io.Copy(p, bytes.NewReader(content)); err != nil {
		p.Abort()
		return err
	}
	if err := p.Finish(); err != nil {
		p.Abort()
		return err
	}
	return p.Commit()
}

// leftovers lists files in exe's directory other than exe and its backup.
func leftovers(t *testing.T, exe string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Dir(exe))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); n != filepath.Base(exe) && n != filepath.Base(exe)+BackupSuffix {
			out = append(out, n)
		}
	}
	return out
}

func mustContent(t *testing.T, path string, want []byte, what string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %s has %d bytes, not the expected %d-byte contents", what, path, len(got), len(want))
	}
}

func TestReplace(t *testing.T) {
	exe := setup(t)
	if err := os.WriteFile(exe+BackupSuffix, []byte("older backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	var steps []Step
	r := &Replacer{Path: exe, Hook: func(s Step) error { steps = append(steps, s); return nil }}
	if err := replace(r, newContent); err != nil {
		t.Fatal(err)
	}
	mustContent(t, exe, newContent, "executable")
	mustContent(t, exe+BackupSuffix, oldContent, "backup")
	st, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o751 {
		t.Errorf("mode after replace = %04o, want 0751", st.Mode().Perm())
	}
	if l := leftovers(t, exe); len(l) != 0 {
		t.Errorf("files left behind: %v", l)
	}
	want := []Step{StepCreated, StepWritten, StepSynced, StepBackedUp, StepRenamed, StepDirSynced}
	if fmt.Sprint(steps) != fmt.Sprint(want) {
		t.Errorf("steps = %v, want %v", steps, want)
	}
}

// faultFS wraps OS and fails selected calls.
type faultFS struct {
	OS
	writeLimit int64 // fail writes past this many bytes with ENOSPC (0: never)
	syncErr    error
	linkErr    error
	renameErr  func(oldname, newname string) error
	createErr  error
}

func (f *faultFS) CreateTemp(dir, pattern string) (File, error) {
	if f.createErr != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, pattern), Err: f.createErr}
	}
	file, err := f.OS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) Link(oldname, newname string) error {
	if f.linkErr != nil {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: f.linkErr}
	}
	return f.OS.Link(oldname, newname)
}

func (f *faultFS) Rename(oldname, newname string) error {
	if f.renameErr != nil {
		if err := f.renameErr(oldname, newname); err != nil {
			return err
		}
	}
	return f.OS.Rename(oldname, newname)
}

type faultFile struct {
	File
	fs *faultFS
	n  int64
}

func (f *faultFile) Write(b []byte) (int, error) {
	if f.fs.writeLimit > 0 && f.n+int64(len(b)) > f.fs.writeLimit {
		n, _ := f.File.Write(b[:f.fs.writeLimit-f.n])
		f.n += int64(n)
		return n, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	n, err := f.File.Write(b)
	f.n += int64(n)
	return n, err
}

func (f *faultFile) Sync() error {
	if f.fs.syncErr != nil {
		return f.fs.syncErr
	}
	return f.File.Sync()
}

func TestReplaceFaults(t *testing.T) {
	failAt := func(step Step) func(Step) error {
		return func(s Step) error {
			if s == step {
				return errors.New("injected")
			}
			return nil
		}
	}
	tests := []struct {
		name      string
		fs        *faultFS
		hook      func(Step) error
		wantErr   string // substring; "" means success
		wantErrIs error
		wantNew   bool // the executable holds the new contents afterwards
	}{
		{name: "disk full", fs: &faultFS{writeLimit: 100000}, wantErr: "no space left", wantErrIs: syscall.ENOSPC},
		{name: "permission denied creating temp", fs: &faultFS{createErr: syscall.EACCES}, wantErr: "creating a temporary file", wantErrIs: syscall.EACCES},
		{name: "sync fails", fs: &faultFS{syncErr: syscall.EIO}, wantErr: "syncing", wantErrIs: syscall.EIO},
		{name: "rename over executable fails", fs: &faultFS{renameErr: func(o, n string) error {
			if !strings.HasSuffix(n, BackupSuffix) {
				return &os.LinkError{Op: "rename", Old: o, New: n, Err: syscall.EPERM}
			}
			return nil
		}}, wantErr: "renaming", wantErrIs: syscall.EPERM},
		{name: "backup rename fails", fs: &faultFS{renameErr: func(o, n string) error {
			if strings.HasSuffix(n, BackupSuffix) {
				return &os.LinkError{Op: "rename", Old: o, New: n, Err: syscall.EROFS}
			}
			return nil
		}}, wantErr: "keeping the previous binary", wantErrIs: syscall.EROFS},
		{name: "no hard links: backup is copied", fs: &faultFS{linkErr: syscall.EPERM}, wantNew: true},
		{name: "stop after created", hook: failAt(StepCreated), wantErr: "injected"},
		{name: "stop after written", hook: failAt(StepWritten), wantErr: "injected"},
		{name: "stop after synced", hook: failAt(StepSynced), wantErr: "injected"},
		{name: "stop after backed up", hook: failAt(StepBackedUp), wantErr: "injected"},
		{name: "stop after renamed", hook: failAt(StepRenamed), wantErr: "injected", wantNew: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exe := setup(t)
			r := &Replacer{Path: exe, Hook: tt.hook}
			if tt.fs != nil {
				r.FS = tt.fs
			}
			err := replace(r, newContent)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("replace: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("replace error = %v, want one containing %q", err, tt.wantErr)
			case tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs):
				t.Fatalf("replace error = %v, want errors.Is %v", err, tt.wantErrIs)
			}
			if tt.wantNew {
				mustContent(t, exe, newContent, "executable")
				mustContent(t, exe+BackupSuffix, oldContent, "backup")
			} else {
				mustContent(t, exe, oldContent, "executable")
			}
			if l := leftovers(t, exe); len(l) != 0 {
				t.Errorf("files left behind: %v", l)
			}
			// A later replacement on a sound file system works and
			// leaves nothing behind either.
			if err := replace(&Replacer{Path: exe}, newContent); err != nil {
				t.Fatalf("replace after the failure: %v", err)
			}
			mustContent(t, exe, newContent, "executable after a second replace")
			if l := leftovers(t, exe); len(l) != 0 {
				t.Errorf("files left behind by the second replace: %v", l)
			}
		})
	}
}

// crashEnv makes the test binary act as a process that replaces the file
// named by crashExeEnv and SIGKILLs itself at the given point.
const (
	crashEnv    = "SELFREPLACE_TEST_CRASH_AT"
	crashExeEnv = "SELFREPLACE_TEST_EXE"
)

// midWrite is a crash point in the middle of writing the new contents.
const midWrite = 0

func TestMain(m *testing.M) {
	if at := os.Getenv(crashEnv); at != "" {
		crashChild(at, os.Getenv(crashExeEnv))
		fmt.Fprintln(os.Stderr, "crash child: did not crash")
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func crashChild(at, exe string) {
	n, err := strconv.Atoi(at)
	if err != nil {
		os.Exit(4)
	}
	kill := func() { syscall.Kill(os.Getpid(), syscall.SIGKILL); time.Sleep(time.Minute) }
	r := &Replacer{Path: exe, Hook: func(s Step) error {
		if int(s) == n {
			kill()
		}
		return nil
	}}
	p, err := r.Begin()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(5)
	}
	half := len(newContent) / 2
	p.Write(newContent[:half])
	if n == midWrite {
		kill()
	}
	p.Write(newContent[half:])
	if err := p.Finish(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(6)
	}
	if err := p.Commit(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(7)
	}
}

// TestCrashBetweenSteps kills a real process (SIGKILL, no clean-up) at every
// point of a replacement and checks that the executable is then complete:
// the old contents before the rename, the new ones from the rename on.
func TestCrashBetweenSteps(t *testing.T) {
	points := []Step{midWrite, StepCreated, StepWritten, StepSynced, StepBackedUp, StepRenamed, StepDirSynced}
	for _, at := range points {
		name := "mid-write"
		if at != midWrite {
			name = "after-" + at.String()
		}
		t.Run(name, func(t *testing.T) {
			exe := setup(t)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashEnv+"="+strconv.Itoa(int(at)), crashExeEnv+"="+exe)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
			}
			if at >= StepRenamed {
				mustContent(t, exe, newContent, "executable after crash")
			} else {
				mustContent(t, exe, oldContent, "executable after crash")
			}
			// A later replacement still works and clears stale files.
			if err := replace(&Replacer{Path: exe}, newContent); err != nil {
				t.Fatalf("replace after crash: %v", err)
			}
			mustContent(t, exe, newContent, "executable after second replace")
			removed, err := CleanStale(exe, 0)
			if err != nil {
				t.Fatal(err)
			}
			if l := leftovers(t, exe); len(l) != 0 {
				t.Errorf("files left behind after CleanStale (removed %v): %v", removed, l)
			}
		})
	}
}

func TestCleanStaleKeepsYoungFiles(t *testing.T) {
	exe := setup(t)
	young := filepath.Join(filepath.Dir(exe), "."+filepath.Base(exe)+tempMarker+"123")
	if err := os.WriteFile(young, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	removed, err := CleanStale(exe, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		t.Errorf("removed %v, want nothing younger than an hour", removed)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young temp file: %v", err)
	}
	if err := os.Chtimes(young, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	removed, err = CleanStale(exe, time.Hour)
	if err != nil || len(removed) != 1 || removed[0] != young {
		t.Errorf("CleanStale = %v, %v; want [%s]", removed, err, young)
	}
}

// TestNewFileRunnableByItsOwner checks that the new file, which belongs to
// the user doing the update, can be read and run by that user even when
// the old one gave its owner (another user) no rights: the program ran
// through its group or other permissions.
func TestNewFileRunnableByItsOwner(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(exe, []byte("old"), 0o070); err != nil {
		t.Fatal(err)
	}
	os.Chmod(exe, 0o075)
	r := &Replacer{Path: exe}
	p, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := p.Finish(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o575 {
		t.Errorf("new file mode %04o, want 0575 (the old 0075 and owner read and execute)", got)
	}
	p.Abort()
}

// TestOSFileWrittenAt replaces the executable with contents written at
// offsets through OSFile, as a download that writes the file itself does:
// Finish and Commit put exactly those bytes in place. OSFile is nil after
// Finish, and for a file system other than the OS's.
func TestOSFileWrittenAt(t *testing.T) {
	exe := setup(t)
	p, err := (&Replacer{Path: exe}).Begin()
	if err != nil {
		t.Fatal(err)
	}
	f := p.OSFile()
	if f == nil {
		t.Fatal("OSFile = nil with the OS's file system")
	}
	want := []byte("second half, then the first: written at offsets")
	half := int64(len(want) / 2)
	if _, err := f.WriteAt(want[half:], half); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(want[:half], 0); err != nil {
		t.Fatal(err)
	}
	if err := p.Finish(); err != nil {
		t.Fatal(err)
	}
	if p.OSFile() != nil {
		t.Error("OSFile after Finish is not nil")
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	mustContent(t, exe, want, "after Commit")

	other, err := (&Replacer{Path: exe, FS: wrappedFS{OS{}}}).Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Abort()
	if other.OSFile() != nil {
		t.Error("OSFile with another file system is not nil")
	}
}

// wrappedFS is the OS's file system whose files are not *os.File.
type wrappedFS struct{ OS }

type wrappedFile struct{ *os.File }

func (w wrappedFS) CreateTemp(dir, pattern string) (File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return wrappedFile{f}, nil
}
