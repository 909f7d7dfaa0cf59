package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/org/rustpatcher-go/internal/checked"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/selfreplace"
	"github.com/org/rustpatcher-go/region"
)

// rig is an "installed" program and a release directory, with the pipeline's
// test hooks recording what it does.
type rig struct {
	t       *testing.T
	key     regiontest.Key
	exe     string
	rels    string
	running region.Info
	oldData []byte

	mu       sync.Mutex
	events   []Event
	restarts []string // argv[0] of each restart
	started  int      // polls started
	ended    int      // polls ended
	notify   chan struct{}
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{t: t, key: regiontest.NewKey(t), exe: filepath.Join(dir, "app", "prog"), rels: filepath.Join(dir, "rels"), notify: make(chan struct{}, 100)}
	r.running = regiontest.WriteBinary(t, r.exe, 200_000, 1, r.key, "1.0.0")
	if err := os.MkdirAll(r.rels, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.oldData, err = os.ReadFile(r.exe); err != nil {
		t.Fatal(err)
	}
	return r
}

// release writes a release file into the release directory. The file
// appears whole, by a rename, so that a poll never sees it half written.
func (r *rig) release(name string, seed uint64, key regiontest.Key, version string) string {
	tmp := filepath.Join(r.t.TempDir(), name)
	regiontest.WriteBinary(r.t, tmp, 300_000, seed, key, version)
	p := filepath.Join(r.rels, name)
	if err := os.Rename(tmp, p); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// releaseAs is release signed in format f for target.
func (r *rig) releaseAs(name string, seed uint64, key regiontest.Key, version string, f region.Format, target string) string {
	tmp := filepath.Join(r.t.TempDir(), name)
	regiontest.WriteBinary(r.t, tmp, 300_000, seed, key, "")
	if _, err := region.Sign(context.Background(), tmp, key.Private, region.SignOptions{Version: version, Format: f, Target: target}); err != nil {
		r.t.Fatal(err)
	}
	p := filepath.Join(r.rels, name)
	if err := os.Rename(tmp, p); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// config returns a Config with the rig's test hooks: a self-test that
// passes, restarts recorded.
func (r *rig) config() options {
	return options{
		Config: Config{
			PublicKey:  r.key.PublicText,
			Mode:       OnRestart(),
			Interval:   time.Hour, // tests poll with Check
			Sources:    []Source{DirSource(r.rels)},
			Network:    NetworkConfig{Disabled: true},
			Logger:     slog.New(slog.NewTextHandler(testWriter{r.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Executable: r.exe,
			OnEvent: func(e Event) {
				r.mu.Lock()
				r.events = append(r.events, e)
				r.mu.Unlock()
				select {
				case r.notify <- struct{}{}:
				default:
				}
			},
		},
		current: func() (region.Info, error) { return r.running, nil },
		polling: func(start bool) {
			r.mu.Lock()
			if start {
				r.started++
			} else {
				r.ended++
			}
			r.mu.Unlock()
			select {
			case r.notify <- struct{}{}:
			default:
			}
		},
		restart: func(path string, argv, env []string) error {
			r.mu.Lock()
			r.restarts = append(r.restarts, path)
			r.mu.Unlock()
			return nil
		},
		selfTest: func(context.Context, string, region.Info) error { return nil },
	}
}

func (r *rig) spawn(cfg options) *Updater {
	r.t.Helper()
	u, err := spawn(context.Background(), cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { u.Close() })
	return u
}

// waitEvent waits (at most 20 s) for an event of kind matching ok, looking
// at events from index from on, and returns it with its index.
func (r *rig) waitEvent(from int, kind EventKind, ok func(Event) bool) (Event, int) {
	r.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		for i := from; i < len(r.events); i++ {
			if e := r.events[i]; e.Kind == kind && (ok == nil || ok(e)) {
				r.mu.Unlock()
				return e, i
			}
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-deadline:
			r.t.Fatalf("no %v event within 20s; events: %v", kind, r.eventList())
		}
	}
}

// check asks u to poll now and waits until a poll that started after the
// request has ended.
func (r *rig) check(u *Updater) {
	r.t.Helper()
	r.mu.Lock()
	before := r.started
	r.mu.Unlock()
	u.Check()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		done := r.started > before && r.ended == r.started
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-r.notify:
		case <-deadline:
			r.t.Fatalf("no poll ended within 20s of Check; events: %v", r.eventList())
		}
	}
}

func (r *rig) eventList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, e := range r.events {
		s = append(s, e.String())
	}
	return s
}

func (r *rig) countEvents(kind EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// exeUnchanged checks that the executable holds the old bytes and that no
// temporary file is left next to it.
func (r *rig) exeUnchanged() {
	r.t.Helper()
	got, err := os.ReadFile(r.exe)
	if err != nil {
		r.t.Fatal(err)
	}
	if !bytes.Equal(got, r.oldData) {
		r.t.Fatal("the executable changed")
	}
	// A failure after the backup step leaves <exe>.old as a link to the
	// unchanged executable, which is harmless; anything else is a leftover.
	backup := false
	if old, err := os.ReadFile(r.exe + selfreplace.BackupSuffix); err == nil {
		if !bytes.Equal(old, r.oldData) {
			r.t.Fatal("the backup is not the running binary")
		}
		backup = true
	}
	r.noLeftovers(backup)
}

// noLeftovers checks the executable's directory holds only the executable
// (and its backup if backup is set).
func (r *rig) noLeftovers(backup bool) {
	r.t.Helper()
	ents, err := os.ReadDir(filepath.Dir(r.exe))
	if err != nil {
		r.t.Fatal(err)
	}
	want := map[string]bool{filepath.Base(r.exe): true}
	if backup {
		want[filepath.Base(r.exe)+selfreplace.BackupSuffix] = true
		want[filepath.Base(r.exe)+stateSuffix] = true // the update on trial
	}
	var extra []string
	for _, e := range ents {
		if !want[e.Name()] {
			extra = append(extra, e.Name())
		}
	}
	if len(extra) > 0 {
		r.t.Errorf("files left next to the executable: %v", extra)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func TestApplyOnRestart(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	newPath := r.release("prog-2.0.0", 2, r.key, "2.0.0")
	r.release("prog-1.5.0", 3, r.key, "1.5.0")
	seeder := &recordingSeeder{}
	cfg := r.config()
	cfg.Sources = append(cfg.Sources, seeder)
	u := r.spawn(cfg)
	e, _ := r.waitEvent(0, EventApplied, nil)
	if e.Release.Version != "2.0.0" {
		t.Fatalf("applied %s, want the newest, 2.0.0", e.Release.Version)
	}
	want, err := os.ReadFile(newPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(r.exe)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the executable is not the 2.0.0 release")
	}
	old, err := os.ReadFile(r.exe + selfreplace.BackupSuffix)
	if err != nil || !bytes.Equal(old, r.oldData) {
		t.Fatalf("backup %s.old is not the previous binary (%v)", r.exe, err)
	}
	if st, err := os.Stat(r.exe); err != nil || (runtime.GOOS != "windows" && st.Mode().Perm() != 0o755) {
		t.Errorf("mode of the new executable: %v, %v", st.Mode(), err)
	}
	r.noLeftovers(true)
	if in, ok := u.Applied(); !ok || in.Version != "2.0.0" {
		t.Errorf("Applied() = %v, %v", in.Version, ok)
	}
	if n := r.countEvents(EventProgress); n == 0 {
		t.Error("no progress events")
	}
	r.mu.Lock()
	if len(r.restarts) != 0 {
		t.Errorf("mode OnRestart restarted: %v", r.restarts)
	}
	r.mu.Unlock()
	// Seeded with the running binary at start and the new one once applied.
	seeds := seeder.list()
	if len(seeds) != 2 || seeds[0] != "1.0.0" || seeds[1] != "2.0.0" {
		t.Errorf("seeded %v, want [1.0.0 2.0.0]", seeds)
	}
	// Another poll applies nothing: 2.0.0 is now the version to beat. The
	// older 1.5.0 is refused; 2.0.0, just applied, is not news.
	mark := len(r.eventList())
	u.Check()
	r.waitEvent(mark, EventRejected, func(e Event) bool { return errors.Is(e.Err, errNotNewer) && e.Release.Version == "1.5.0" })
	if n := r.countEvents(EventApplied); n != 1 {
		t.Errorf("%d applied events, want 1", n)
	}
	for _, e := range r.eventList() {
		if strings.HasPrefix(e, "rejected 2.0.0") {
			t.Errorf("the version just applied was reported: %s", e)
		}
	}
	if err := u.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := u.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

type recordingSeeder struct {
	mu    sync.Mutex
	seeds []string
}

func (s *recordingSeeder) Releases(context.Context) ([]Release, error) { return nil, nil }
func (s *recordingSeeder) String() string                              { return "recorder" }
func (s *recordingSeeder) Seed(_ context.Context, path string, in region.Info) error {
	if _, err := region.ScanFile(context.Background(), path); err != nil {
		return err
	}
	s.mu.Lock()
	s.seeds = append(s.seeds, in.Version)
	s.mu.Unlock()
	return nil
}
func (s *recordingSeeder) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seeds...)
}

func TestModeNowRestarts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		confirm func(context.Context, region.Info) bool
		want    int
	}{
		{"no hook", nil, 1},
		{"app agrees", func(context.Context, region.Info) bool { return true }, 1},
		{"app declines", func(context.Context, region.Info) bool { return false }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.release("prog-2.0.0", 2, r.key, "2.0.0")
			cfg := r.config()
			cfg.Mode = Now()
			cfg.ConfirmRestart = tt.confirm
			u := r.spawn(cfg)
			r.waitEvent(0, EventApplied, nil)
			if tt.want == 1 {
				r.waitEvent(0, EventRestarting, nil)
			}
			u.Close()
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.restarts) != tt.want || (tt.want == 1 && r.restarts[0] != r.exe) {
				t.Errorf("restarts = %v, want %d of %s", r.restarts, tt.want, r.exe)
			}
		})
	}
}

func TestRestartMethod(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	cfg := r.config()
	u := r.spawn(cfg)
	r.waitEvent(0, EventVerified, nil)
	if err := u.Restart(); !errors.Is(err, ErrNothingApplied) {
		t.Fatalf("Restart before any update = %v, want ErrNothingApplied", err)
	}
	r.release("prog-2.0.0", 2, r.key, "2.0.0")
	u.Check()
	r.waitEvent(0, EventApplied, nil)
	if err := u.Restart(); err != nil {
		t.Fatal(err)
	}
	r.waitEvent(0, EventRestarting, nil)
}

// TestModeAtRestartsWhenDue checks, on synctest's clock, that mode At
// schedules the restart for the next time the wall clock reads its time of
// day, and restarts then, not a second before, across the hours in
// between (the alarm wakes the loop at most a minute ahead). TestNextAt
// has the days when the clocks change.
func TestModeAtRestartsWhenDue(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(time.Until(time.Date(2026, 5, 1, 7, 0, 0, 0, time.Local)))
		r := newRig(t)
		r.release("prog-2.0.0", 2, r.key, "2.0.0")
		cfg := r.config()
		cfg.Mode = At(9, 30)
		var restarted []time.Time
		cfg.restart = func(string, []string, []string) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			restarted = append(restarted, time.Now())
			return nil
		}
		r.spawn(cfg)
		synctest.Wait()
		e, _ := r.waitEvent(0, EventRestartScheduled, nil)
		want := time.Date(2026, 5, 1, 9, 30, 0, 0, time.Local)
		if !e.At.Equal(want) {
			t.Fatalf("restart scheduled at %v, want %v", e.At, want)
		}
		time.Sleep(time.Until(want) - time.Second)
		synctest.Wait()
		r.mu.Lock()
		if len(restarted) != 0 {
			t.Errorf("restarted at %v, before the scheduled %v", restarted, want)
		}
		r.mu.Unlock()
		time.Sleep(time.Second)
		synctest.Wait()
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(restarted) != 1 || !restarted[0].Equal(want) {
			t.Errorf("restarted at %v, want once at %v", restarted, want)
		}
	})
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(r *rig)
		cfg     func(cfg *options)
		kind    EventKind
		wantErr error
	}{
		{"other key", func(r *rig) { r.release("p", 2, regiontest.NewKey(r.t), "2.0.0") }, nil, EventRejected, region.ErrBadSignature},
		{"older version", func(r *rig) { r.release("p", 2, r.key, "0.9.0") }, nil, EventRejected, errNotNewer},
		{"pre-release not allowed", func(r *rig) { r.release("p", 2, r.key, "2.0.0-rc.1") }, nil, EventRejected, errPrerelease},
		{"other target", func(r *rig) { r.releaseAs("p", 2, r.key, "2.0.0", region.V1, "plan9/arm") }, nil, EventRejected, errWrongTarget},
		{"v0 without opting in", func(r *rig) { r.releaseAs("p", 2, r.key, "2.0.0", region.V0, "") }, nil, EventRejected, errV0},
		{"older pre-release", func(r *rig) { r.release("p", 2, r.key, "1.0.0-rc.1") }, func(c *options) { c.AllowPrerelease = true }, EventRejected, errNotNewer},
		{"flipped byte", func(r *rig) {
			p := r.release("p", 2, r.key, "2.0.0")
			regiontest.FlipByte(r.t, p, 1000)
		}, nil, EventFailed, region.ErrHashMismatch},
		{"truncated", func(r *rig) {
			p := r.release("p", 2, r.key, "2.0.0")
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-10)
		}, nil, EventFailed, checked.ErrSize},
		{"appended bytes", func(r *rig) {
			p := r.release("p", 2, r.key, "2.0.0")
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("tail"))
			f.Close()
		}, nil, EventFailed, region.ErrSizeMismatch},
		{"a tail after a file with no code signature (v0: its headers tell)", func(r *rig) {
			p := r.releaseAs("p", 2, r.key, "2.0.0", region.V0, "")
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.Write(make([]byte, 4096))
			f.Close()
		}, func(c *options) { c.AcceptV0 = true }, EventFailed, checked.ErrSize},
		{"self-test fails", func(r *rig) { r.release("p", 2, r.key, "2.0.0") }, func(c *options) {
			c.selfTest = func(context.Context, string, region.Info) error {
				return fmt.Errorf("%w: exec format error", ErrSelfTest)
			}
		}, EventFailed, ErrSelfTest},
		{"disk full", func(r *rig) { r.release("p", 2, r.key, "2.0.0") }, func(c *options) {
			c.fs = &faultFS{writeLimit: 100_000}
		}, EventFailed, syscall.ENOSPC},
		{"rename fails", func(r *rig) { r.release("p", 2, r.key, "2.0.0") }, func(c *options) {
			c.fs = &faultFS{renameOverErr: syscall.EXDEV}
		}, EventFailed, syscall.EXDEV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			tt.setup(r)
			cfg := r.config()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			u := r.spawn(cfg)
			e, _ := r.waitEvent(0, tt.kind, func(e Event) bool { return e.Release.Version != "" })
			if !errors.Is(e.Err, tt.wantErr) {
				t.Errorf("%v event error = %v, want %v", tt.kind, e.Err, tt.wantErr)
			}
			if !strings.Contains(e.Source, r.rels) {
				t.Errorf("event source %q does not name the release file", e.Source)
			}
			u.Close()
			r.exeUnchanged()
			if n := r.countEvents(EventApplied); n != 0 {
				t.Errorf("%d applied events", n)
			}
		})
	}
}

// TestRetryPolicy checks that a bad release is tried once and reported once,
// while a failure on this machine's side (disk full) is retried.
func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	p := r.release("p", 2, r.key, "2.0.0")
	regiontest.FlipByte(t, p, 1000)
	ffs := &faultFS{}
	cfg := r.config()
	cfg.fs = ffs
	u := r.spawn(cfg)
	r.waitEvent(0, EventFailed, nil)
	// A good release from another file now fails because the disk is full,
	// and is retried (and applied) once there is space again.
	ffs.setWriteLimit(50_000)
	r.release("q", 3, r.key, "2.0.0")
	u.Check()
	_, i := r.waitEvent(0, EventFailed, func(e Event) bool { return errors.Is(e.Err, syscall.ENOSPC) })
	ffs.setWriteLimit(0)
	u.Check()
	r.waitEvent(i, EventApplied, nil)
	hashFails := 0
	for _, e := range r.eventList() {
		if strings.Contains(e, "do not match the signed hash") {
			hashFails++
		}
	}
	if hashFails != 1 {
		t.Errorf("the damaged release was reported %d times, want once: %v", hashFails, r.eventList())
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(r *rig, cfg *options)
		wantErr error
	}{
		{"unsigned build", func(r *rig, cfg *options) {
			cfg.current = func() (region.Info, error) { return region.Info{}, nil }
		}, region.ErrUnsigned},
		{"file changed on disk", func(r *rig, cfg *options) {
			regiontest.FlipByte(r.t, r.exe, 500)
		}, ErrFileMismatch},
		{"file is another version", func(r *rig, cfg *options) {
			regiontest.WriteBinary(r.t, r.exe, 1000, 9, r.key, "1.0.1")
		}, ErrFileMismatch},
		{"signed by another key", func(r *rig, cfg *options) {
			cfg.PublicKey = regiontest.NewKey(r.t).PublicText
		}, region.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.release("p", 2, r.key, "2.0.0")
			cfg := r.config()
			tt.mutate(r, &cfg)
			u := r.spawn(cfg)
			e, _ := r.waitEvent(0, EventDisabled, nil)
			if !errors.Is(e.Err, tt.wantErr) {
				t.Errorf("disabled because %v, want %v", e.Err, tt.wantErr)
			}
			u.Check()
			u.Close()
			if n := r.countEvents(EventDisabled); n != 1 {
				t.Errorf("%d disabled events, want exactly one", n)
			}
			if n := r.countEvents(EventFound) + r.countEvents(EventApplied); n != 0 {
				t.Errorf("a disabled engine went on to update: %v", r.eventList())
			}
		})
	}
}

// faultFS injects file-system failures into the engine.
type faultFS struct {
	selfreplace.OS
	mu            sync.Mutex
	writeLimit    int64 // writes past this many bytes fail with ENOSPC; 0 = never
	createErr     error
	renameOverErr error // the rename over the executable fails with this
}

func (f *faultFS) setWriteLimit(n int64) {
	f.mu.Lock()
	f.writeLimit = n
	f.mu.Unlock()
}

func (f *faultFS) setCreateErr(err error) {
	f.mu.Lock()
	f.createErr = err
	f.mu.Unlock()
}

func (f *faultFS) CreateTemp(dir, pattern string) (selfreplace.File, error) {
	f.mu.Lock()
	createErr := f.createErr
	f.mu.Unlock()
	if createErr != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, pattern), Err: createErr}
	}
	file, err := f.OS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	limit := f.writeLimit
	f.mu.Unlock()
	if limit == 0 {
		limit = math.MaxInt64
	}
	return &limitedFile{File: file, left: limit}, nil
}

func (f *faultFS) Rename(oldname, newname string) error {
	if f.renameOverErr != nil && !strings.HasSuffix(newname, selfreplace.BackupSuffix) {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: f.renameOverErr}
	}
	return f.OS.Rename(oldname, newname)
}

type limitedFile struct {
	selfreplace.File
	left int64
}

func (f *limitedFile) Write(b []byte) (int, error) {
	if int64(len(b)) > f.left {
		n, _ := f.File.Write(b[:f.left])
		f.left = 0
		return n, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	n, err := f.File.Write(b)
	f.left -= int64(n)
	return n, err
}

// TestDirReleaseCompletedLater: a release file still being copied into the
// directory (truncated) is refused, and taken once the copy is complete.
func TestDirReleaseCompletedLater(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	full := filepath.Join(t.TempDir(), "full")
	regiontest.WriteBinary(t, full, 300_000, 2, r.key, "2.0.0")
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(r.rels, "prog-2.0.0")
	if err := os.WriteFile(p, data[:len(data)-1000], 0o755); err != nil {
		t.Fatal(err)
	}
	u := r.spawn(r.config())
	_, i := r.waitEvent(0, EventFailed, func(e Event) bool { return errors.Is(e.Err, checked.ErrSize) })
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	u.Check()
	r.waitEvent(i, EventApplied, nil)
}

// TestSelfTestFailureRememberedByRelease checks that a release whose bytes
// verify but whose self-test fails is not downloaded again from another
// source in the same or later polls, and is tried again after selfTestRetry.
func TestSelfTestFailureRememberedByRelease(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		p := r.release("p", 2, r.key, "2.0.0")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// The same release under another name, and an older good one.
		if err := os.WriteFile(filepath.Join(r.rels, "q"), b, 0o755); err != nil {
			t.Fatal(err)
		}
		r.release("s", 3, r.key, "1.5.0")

		var (
			mu       sync.Mutex
			selfTest = map[string]int{}
		)
		tested := func() int {
			mu.Lock()
			defer mu.Unlock()
			return selfTest["2.0.0"]
		}
		cfg := r.config()
		cfg.Interval = 24 * time.Hour // only Check polls in this test
		cfg.selfTest = func(_ context.Context, _ string, in region.Info) error {
			mu.Lock()
			defer mu.Unlock()
			selfTest[in.Version]++
			if in.Version == "2.0.0" {
				return fmt.Errorf("%w: exec format error", ErrSelfTest)
			}
			return nil
		}
		u := r.spawn(cfg)
		// The first poll tries 2.0.0 once, skips its copy, and applies 1.5.0.
		_, i := r.waitEvent(0, EventApplied, func(e Event) bool { return e.Release.Version == "1.5.0" })
		if got := tested(); got != 1 {
			t.Errorf("2.0.0 self-tested %d times in the first poll, want 1", got)
		}
		// Until selfTestRetry has passed it is not tried again...
		time.Sleep(selfTestRetry - time.Minute)
		u.Check()
		synctest.Wait()
		if got := tested(); got != 1 {
			t.Errorf("2.0.0 self-tested %d times before the retry delay, want 1", got)
		}
		// ...then it is (once more, not once per copy).
		time.Sleep(2 * time.Minute)
		u.Check()
		r.waitEvent(i, EventFailed, func(e Event) bool { return errors.Is(e.Err, ErrSelfTest) })
		synctest.Wait()
		if got := tested(); got != 2 {
			t.Errorf("2.0.0 self-tested %d times after the retry delay, want 2", got)
		}
	})
}

// TestAcceptV0 checks that a v0 release (rustpatcher 0.2's format) is
// applied when the Config opts in.
func TestAcceptV0(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.releaseAs("p", 2, r.key, "2.0.0", region.V0, "")
	cfg := r.config()
	cfg.AcceptV0 = true
	r.spawn(cfg)
	e, _ := r.waitEvent(0, EventApplied, nil)
	if e.Release.Format != region.V0 || e.Release.Version != "2.0.0" {
		t.Errorf("applied %+v, want the v0 2.0.0", e.Release)
	}
	if e.FileID == ([32]byte{}) {
		t.Error("the applied event names no file")
	}
}

// TestUnwritableDirectory checks that an executable whose directory takes
// no new file is reported once at start, with what to do; that polls then
// stay quiet (no fetch, no error at every poll) but for a newer release,
// said once each; and that a directory writable again is said once and the
// newest release applied.
func TestUnwritableDirectory(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		r.release("p", 2, r.key, "2.0.0")
		cfg := r.config()
		ffs := &faultFS{createErr: syscall.EACCES}
		cfg.fs = ffs
		var logs regiontest.Buffer
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		src := &countingSource{Source: DirSource(r.rels)}
		cfg.Sources = []Source{src}
		u := r.spawn(cfg)
		e, _ := r.waitEvent(0, EventFailed, nil)
		if !errors.Is(e.Err, selfreplace.ErrNotWritable) || !strings.Contains(e.Err.Error(), "make the directory writable") {
			t.Errorf("failed event: %v, want ErrNotWritable saying what to do", e.Err)
		}
		// The first poll finds 2.0.0: said once.
		_, i := r.waitEvent(0, EventFailed, func(e Event) bool { return e.Release.Version == "2.0.0" })
		// Polls go on, quietly.
		polls := func(n int) {
			t.Helper()
			for range n {
				want := src.polls() + 1
				u.Check()
				synctest.Wait()
				if got := src.polls(); got != want {
					t.Fatalf("polled %d times, want %d", got, want)
				}
			}
		}
		polls(4)
		if n := r.countEvents(EventFailed); n != 2 {
			t.Errorf("%d failed events after 5 polls, want 2 (the start, 2.0.0 found): %v", n, r.eventList())
		}
		if n := r.countEvents(EventFound); n != 0 {
			t.Errorf("fetched %d times while the directory was unwritable", n)
		}
		// A newer release: said once.
		r.release("q", 3, r.key, "2.0.1")
		u.Check()
		_, i = r.waitEvent(i+1, EventFailed, func(e Event) bool { return e.Release.Version == "2.0.1" })
		polls(3)
		if n := r.countEvents(EventFailed); n != 3 {
			t.Errorf("%d failed events, want 3: %v", n, r.eventList())
		}
		got := logs.String()
		if n := strings.Count(got, "level=ERROR"); n != 1 {
			t.Errorf("%d ERROR lines, want 1:\n%s", n, got)
		}
		if n := strings.Count(got, "level=WARN"); n != 2 {
			t.Errorf("%d WARN lines, want 2 (2.0.0 and 2.0.1 cannot be applied):\n%s", n, got)
		}
		// Writable again: said once, and the newest release applied.
		ffs.setCreateErr(nil)
		u.Check()
		e, _ = r.waitEvent(i+1, EventApplied, nil)
		if e.Release.Version != "2.0.1" {
			t.Errorf("applied %s, want 2.0.1", e.Release.Version)
		}
		if got := logs.String(); strings.Count(got, "takes new files again") != 1 {
			t.Errorf("the directory writable again is not said once:\n%s", got)
		}
	})
}

// countingSource counts the polls of a source.
type countingSource struct {
	Source
	mu sync.Mutex
	n  int
}

func (s *countingSource) Releases(ctx context.Context) ([]Release, error) {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return s.Source.Releases(ctx)
}

func (s *countingSource) polls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestSameVersionIsQuiet checks that the running version, offered back by
// a source, is not reported as rejected, while an older one is.
func TestSameVersionIsQuiet(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.release("same", 2, r.key, "1.0.0")
	r.release("older", 3, r.key, "0.9.0")
	r.spawn(r.config())
	r.waitEvent(0, EventRejected, func(e Event) bool { return e.Release.Version == "0.9.0" })
	for _, e := range r.eventList() {
		if strings.HasPrefix(e, "rejected 1.0.0") {
			t.Errorf("the running version was reported: %s", e)
		}
	}
}

// TestImpossibleTailNotRead: a release whose headers rule out its length
// (a tail of zeros after a file that can have no code signature) is
// refused with checked.ErrSize as soon as its headers are read, not after reading
// it to its end, and not fetched again at the next poll.
func TestImpossibleTailNotRead(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	tmp := filepath.Join(t.TempDir(), "p")
	regiontest.WriteBinary(t, tmp, 8<<20, 2, r.key, "")
	in, err := region.Sign(context.Background(), tmp, r.key.Private, region.SignOptions{Version: "2.0.0", Format: region.V0})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(tmp, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, region.MaxTail(in.ContentLen())))
	f.Close()
	if err := os.Rename(tmp, filepath.Join(r.rels, "p")); err != nil {
		t.Fatal(err)
	}
	cfg := r.config()
	cfg.AcceptV0 = true
	u := r.spawn(cfg)
	e, i := r.waitEvent(0, EventFailed, func(e Event) bool { return e.Release.Version == "2.0.0" })
	if !errors.Is(e.Err, checked.ErrSize) {
		t.Fatalf("failed with %v, want checked.ErrSize", e.Err)
	}
	r.mu.Lock()
	for _, e := range r.events {
		if e.Kind == EventProgress && e.Done > 1<<20 {
			t.Errorf("read %d of %d bytes before refusing it", e.Done, e.Total)
		}
	}
	r.mu.Unlock()
	// The next poll applies another release and leaves this one alone.
	r.release("q", 3, r.key, "1.5.0")
	u.Check()
	r.waitEvent(i, EventApplied, func(e Event) bool { return e.Release.Version == "1.5.0" })
	if n := countFound(r, "2.0.0"); n != 1 {
		t.Errorf("2.0.0 was found %d times, want once", n)
	}
}

// countFound counts the EventFound events of version.
func countFound(r *rig, version string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == EventFound && e.Release.Version == version {
			n++
		}
	}
	return n
}
