package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/manifest"
	"github.com/org/rustpatcher-go/internal/mirror"
	"github.com/org/rustpatcher-go/internal/mirror/mirrortest"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// mirrorRig is a rig whose releases come from an HTTPS mirror: a TLS test
// server serving a directory that ghrelease lays out as rpsign publish
// --out does, through a handler the test may change.
type mirrorRig struct {
	*rig
	dir string
	srv *httptest.Server
	src *httpSource

	mu       sync.Mutex
	requests []string // "PATH RANGE -> STATUS"
	serve    http.Handler
	active   int           // requests being answered
	answered chan struct{} // a request was answered
}

func newMirrorRig(t *testing.T) *mirrorRig {
	m := &mirrorRig{rig: newRig(t), dir: t.TempDir(), answered: make(chan struct{}, 1)}
	files := http.FileServer(http.Dir(m.dir))
	m.serve = files
	m.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.active++
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			m.active--
			m.mu.Unlock()
			select {
			case m.answered <- struct{}{}:
			default:
			}
		}()
		m.mu.Lock()
		h := m.serve
		m.mu.Unlock()
		rw := &statusWriter{ResponseWriter: w, status: 200}
		h.ServeHTTP(rw, r)
		m.mu.Lock()
		m.requests = append(m.requests, fmt.Sprintf("%s %s -> %d", r.URL.Path, r.Header.Get("Range"), rw.status))
		m.mu.Unlock()
	}))
	t.Cleanup(m.srv.Close)
	s, err := MirrorSource(m.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	m.src = s.(*httpSource)
	m.src.f.TLS = m.srv.Client().Transport.(*http.Transport).TLSClientConfig // trusts the test server's certificate
	// Short enough for the stall tests to end quickly, long enough for a
	// loaded machine under -race.
	m.src.f.IdleTimeout = 2 * time.Second
	return m
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Flush()               { w.ResponseWriter.(http.Flusher).Flush() }

// publish signs a release of size bytes and lays it out in the mirror.
func (m *mirrorRig) publish(version string, size int64, seed uint64) string {
	return m.publishWith(m.key, version, size, seed)
}

// publishWith is publish signing with key, with the statement files stmts.
func (m *mirrorRig) publishWith(key regiontest.Key, version string, size int64, seed uint64, stmts ...string) string {
	m.t.Helper()
	return m.publishPacked(key, version, size, seed, nil, stmts...)
}

// publishPacked is publishWith with the packs packs asks for.
func (m *mirrorRig) publishPacked(key regiontest.Key, version string, size int64, seed uint64, packs *ghrelease.Packs, stmts ...string) string {
	m.t.Helper()
	bin := filepath.Join(m.t.TempDir(), "prog_"+target.Current().OS+"_"+target.Current().Arch)
	in := regiontest.WriteBinary(m.t, bin, size, seed, key, version)
	files := []ghrelease.Signed{{Path: bin, Target: target.Current(), Info: in, PublicKey: key.Public}}
	assets, err := ghrelease.Layout(context.Background(), files, stmts, packs)
	if err != nil {
		m.t.Fatal(err)
	}
	if err := ghrelease.WriteDir(m.dir, assets); err != nil {
		m.t.Fatal(err)
	}
	return filepath.Join(m.dir, filepath.Base(bin))
}

// handlersDone waits until the mirror answered every request it received,
// so that requestList holds them all.
func (m *mirrorRig) handlersDone() {
	deadline := time.After(20 * time.Second)
	for {
		m.mu.Lock()
		n := m.active
		m.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-m.answered:
		case <-deadline:
			m.t.Fatalf("the mirror still answers %d requests after 20s: %v", n, m.requestList())
		}
	}
}

func (m *mirrorRig) config() options {
	cfg := m.rig.config()
	cfg.Sources = []Source{m.src}
	return cfg
}

// fakeClock makes the source read a clock that only the returned function
// moves on.
func (m *mirrorRig) fakeClock() (advance func(time.Duration)) {
	var mu sync.Mutex
	now := time.Now()
	m.src.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	return func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
}

func (m *mirrorRig) handle(h http.Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.serve = h
}

// answerBinary makes the mirror answer requests for the binary at bin
// with answer, given the file's bytes, and serve the other files as they
// are.
func (m *mirrorRig) answerBinary(bin string, answer func(w http.ResponseWriter, r *http.Request, b []byte)) {
	files := http.FileServer(http.Dir(m.dir))
	m.handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/"+filepath.Base(bin) {
			files.ServeHTTP(w, r)
			return
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		answer(w, r, b)
	}))
}

// binaryGets counts the requests for a release's binary.
func (m *mirrorRig) binaryGets() int {
	n := 0
	for _, r := range m.requestList() {
		if strings.HasPrefix(r, "/prog_") && !strings.Contains(r, ".pieces") {
			n++
		}
	}
	return n
}

func (m *mirrorRig) requestList() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.requests...)
}

// TestMirrorSourceUpdates: a release of several pieces is applied from an
// HTTPS mirror, its pieces checked as they arrive; a poll of an unchanged
// mirror is answered 304.
func TestMirrorSourceUpdates(t *testing.T) {
	t.Parallel()
	m := newMirrorRig(t)
	bin := m.publish("2.0.0", 2*region.PieceSize+300_000, 2)
	u := m.spawn(m.config())
	e, i := m.waitEvent(0, EventApplied, nil)
	if e.Release.Version != "2.0.0" || !strings.HasSuffix(e.Source, filepath.Base(bin)) {
		t.Errorf("applied %s from %s", e.Release.Version, e.Source)
	}
	want, _ := os.ReadFile(bin)
	got, _ := os.ReadFile(m.exe)
	if string(got) != string(want) {
		t.Error("the executable is not the mirror's binary")
	}
	// The polls after (a manifest fetched less than minRefresh ago is
	// used as it is): the manifest has not changed.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(strings.Join(m.requestList(), "\n"), ".json  -> 304") {
		if time.Now().After(deadline) {
			t.Fatalf("no conditional poll answered 304: %v", m.requestList())
		}
		m.check(u)
	}
	if n := m.countEvents(EventApplied); n != 1 || i < 0 {
		t.Errorf("%d applied events", n)
	}
}

// TestMirrorSourceResumes: a connection cut in the middle of a piece is
// resumed with a Range request from the start of that piece.
func TestMirrorSourceResumes(t *testing.T) {
	t.Parallel()
	m := newMirrorRig(t)
	bin := m.publish("2.0.0", 3*region.PieceSize, 2)
	var once sync.Once
	m.answerBinary(bin, func(w http.ResponseWriter, r *http.Request, b []byte) {
		cut := false
		once.Do(func() { cut = true })
		if !cut {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
			return
		}
		// Headers as for the whole file, then half of it.
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b[:region.PieceSize+region.PieceSize/2])
		panic(http.ErrAbortHandler)
	})
	m.spawn(m.config())
	m.waitEvent(0, EventApplied, nil)
	want := fmt.Sprintf("/%s bytes=%d- -> 206", filepath.Base(bin), region.PieceSize)
	if !strings.Contains(strings.Join(m.requestList(), "\n"), want) {
		t.Errorf("no request %q: %v", want, m.requestList())
	}
}

// TestMirrorSourceRefuses: a damaged binary fails its piece check and
// leaves the executable alone, and is fetched again once it may have been
// fixed; a mirror that drips or sends endless bytes is dropped.
func TestMirrorSourceRefuses(t *testing.T) {
	t.Parallel()
	t.Run("damaged then fixed", func(t *testing.T) {
		t.Parallel()
		m := newMirrorRig(t)
		advance := m.fakeClock()
		bin := m.publish("2.0.0", 2*region.PieceSize, 2)
		good, _ := os.ReadFile(bin)
		regiontest.FlipByte(t, bin, 1000)
		u := m.spawn(m.config())
		_, i := m.waitEvent(0, EventFailed, func(e Event) bool { return errors.Is(e.Err, region.ErrBadPiece) })
		m.exeUnchanged()
		// Fixed, but not fetched again before its retry time.
		os.WriteFile(bin, good, 0o644)
		advance(2 * minRefresh)
		m.check(u)
		if n := m.countEvents(EventApplied); n != 0 {
			t.Fatalf("applied before the retry time")
		}
		advance(httpRetryMin)
		u.Check()
		m.waitEvent(i, EventApplied, nil)
	})
	t.Run("damaged, server without validators", func(t *testing.T) {
		t.Parallel()
		m := newMirrorRig(t)
		advance := m.fakeClock()
		bin := m.publish("2.0.0", region.PieceSize+1000, 2)
		regiontest.FlipByte(t, bin, 1000)
		m.handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := os.ReadFile(filepath.Join(m.dir, filepath.Base(r.URL.Path)))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Write(b) // no ETag, no Last-Modified: every poll is a 200
		}))
		u := m.spawn(m.config())
		m.waitEvent(0, EventFailed, func(e Event) bool { return errors.Is(e.Err, region.ErrBadPiece) })
		m.handlersDone() // the last try's request is logged when its handler ends
		first := m.binaryGets()
		for range 2 { // 4 s, within httpRetryMin
			if 4*minRefresh >= httpRetryMin {
				t.Fatal("the test needs polls within httpRetryMin")
			}
			advance(2 * minRefresh)
			m.check(u)
		}
		m.handlersDone()
		if n := m.binaryGets(); n != first {
			t.Errorf("the damaged binary was fetched %d more times before its retry time: %v\n%v", n-first, m.requestList(), m.eventList())
		}
		// Fixed: taken at its retry time, though every poll was a 200.
		regiontest.FlipByte(t, bin, 1000)
		advance(httpRetryMin)
		u.Check()
		m.waitEvent(0, EventApplied, nil)
	})
	t.Run("drip", func(t *testing.T) {
		t.Parallel()
		m := newMirrorRig(t)
		m.src.f.IdleTimeout = 300 * time.Millisecond // each try stalls for it
		bin := m.publish("2.0.0", region.PieceSize, 2)
		m.answerBinary(bin, func(w http.ResponseWriter, r *http.Request, b []byte) {
			mirrortest.Drip(w, r, b, 1, 10*time.Millisecond)
		})
		m.spawn(m.config())
		m.waitEvent(0, EventFailed, func(e Event) bool { return errors.Is(e.Err, mirror.ErrStalled) })
		m.exeUnchanged()
	})
	t.Run("endless", func(t *testing.T) {
		t.Parallel()
		m := newMirrorRig(t)
		bin := m.publish("2.0.0", region.PieceSize+5000, 2)
		m.answerBinary(bin, func(w http.ResponseWriter, r *http.Request, b []byte) {
			mirrortest.Endless(w, r, b)
		})
		m.spawn(m.config())
		m.waitEvent(0, EventFailed, func(e Event) bool { return errors.Is(e.Err, errTooLong) })
		m.exeUnchanged()
	})
}

// TestGitHubSource reads the latest release of a repository through its
// download links from ghreleasetest, a local server that speaks GitHub's
// shapes (GitHub cannot be reached from tests): a pre-release is not the
// latest, and every file comes from the release the manifest's link led
// to.
func TestGitHubSource(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	gh := ghreleasetest.NewServer(t)
	add := func(tag, version string, seed uint64) {
		bin := filepath.Join(t.TempDir(), "prog_"+target.Current().OS+"_"+target.Current().Arch)
		in := regiontest.WriteBinary(t, bin, region.PieceSize+1000, seed, r.key, version)
		assets, err := ghrelease.Layout(context.Background(), []ghrelease.Signed{{Path: bin, Target: target.Current(), Info: in, PublicKey: r.key.Public}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		gh.AddRelease("org/app", tag)
		for _, a := range assets {
			b := a.Data
			if a.Path != "" {
				b, _ = os.ReadFile(a.Path)
			}
			gh.AddAsset("org/app", tag, a.Name, b)
		}
	}
	add("v2.0.0", "2.0.0", 2)
	add("v3.0.0-rc.1", "3.0.0-rc.1", 3)
	gh.MarkPrerelease("org/app", "v3.0.0-rc.1")
	src, err := SourceFromURL("github:org/app?base=" + gh.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.config()
	cfg.Sources = []Source{src}
	r.spawn(cfg)
	e, _ := r.waitEvent(0, EventApplied, nil)
	if e.Release.Version != "2.0.0" || !strings.Contains(e.Source, "/org/app/releases/download/v2.0.0/") {
		t.Errorf("applied %s from %s", e.Release.Version, e.Source)
	}
	reqs := strings.Join(gh.Requests(), "\n")
	for _, want := range []string{
		"GET /org/app/releases/latest/download/" + manifest.Name(target.Current()),
		"GET /org/app/releases/download/v2.0.0/prog_" + target.Current().OS + "_" + target.Current().Arch + ".pieces",
	} {
		if !strings.Contains(reqs, want) {
			t.Errorf("no request %q: %s", want, reqs)
		}
	}
	if strings.Contains(reqs, "/repos/") {
		t.Errorf("the REST API was used: %s", reqs)
	}
}

// TestMirrorKeyRotation: the key rotation statements a mirror's manifest
// names are followed, and the release signed with the new key applied.
func TestMirrorKeyRotation(t *testing.T) {
	t.Parallel()
	m := newMirrorRig(t)
	next := regiontest.NewKey(t)
	m.writeRotation("rotate", m.key, next, 1)
	m.publishWith(next, "2.0.0", 300_000, 2, filepath.Join(m.rels, "rotate"+rotationSuffix))
	m.spawn(m.config())
	e, _ := m.waitEvent(0, EventKeyRotated, nil)
	if e.Key != next.PublicText {
		t.Errorf("rotated to %s, want %s", e.Key, next.PublicText)
	}
	m.waitEvent(0, EventApplied, func(e Event) bool { return e.Release.Version == "2.0.0" })
}

// TestMirrorGivesWayToPeers: with the network on, a release that another
// source (here a directory, standing in for the peers) offers is taken
// from it and not downloaded from the mirror; one that only the mirror
// offers is taken once the wait for a peer is over; and when the other
// copy fails, the mirror's is still taken only once the wait is over (a
// failure that comes to many nodes at once, such as a busy peer, must not
// send each of them to the server).
func TestMirrorGivesWayToPeers(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*mirrorRig, func(time.Duration)) {
		m := newMirrorRig(t)
		advance := m.fakeClock()
		m.src.preferPeers(time.Hour)
		return m, advance
	}
	t.Run("peer has it", func(t *testing.T) {
		t.Parallel()
		m, _ := setup(t)
		m.publish("2.0.0", 300_000, 2)
		m.release("p", 2, m.key, "2.0.0")
		cfg := m.config()
		cfg.Sources = []Source{m.src, DirSource(m.rels)}
		m.spawn(cfg)
		e, _ := m.waitEvent(0, EventApplied, nil)
		if !strings.HasPrefix(e.Source, m.rels) || m.binaryGets() != 0 {
			t.Errorf("applied from %s; %d requests for the mirror's binary", e.Source, m.binaryGets())
		}
	})
	t.Run("only the mirror", func(t *testing.T) {
		t.Parallel()
		m, advance := setup(t)
		m.publish("2.0.0", 300_000, 2)
		u := m.spawn(m.config())
		m.waitEvent(0, EventVerified, nil)
		advance(2 * minRefresh)
		m.check(u)
		m.handlersDone()
		if n := m.countEvents(EventFound); n != 0 || m.binaryGets() != 0 {
			t.Fatalf("taken from the mirror before the wait was over: %v", m.eventList())
		}
		advance(time.Hour)
		u.Check()
		m.waitEvent(0, EventApplied, nil)
	})
	t.Run("peer copy fails", func(t *testing.T) {
		t.Parallel()
		m, advance := setup(t)
		m.publish("2.0.0", 300_000, 2)
		regiontest.FlipByte(t, m.release("p", 2, m.key, "2.0.0"), 1000)
		cfg := m.config()
		cfg.Sources = []Source{DirSource(m.rels), m.src}
		logs := newLogLines(t)
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
		u := m.spawn(cfg)
		m.waitEvent(0, EventFailed, nil)
		advance(2 * minRefresh)
		u.Check()
		time.Sleep(300 * time.Millisecond)
		if n := m.countEvents(EventApplied); n != 0 || m.binaryGets() != 0 {
			t.Fatalf("taken from the mirror before the wait was over: %v", m.eventList())
		}
		advance(time.Hour)
		u.Check()
		logs.wait(0, "the wait for a peer to offer the update is over")
		e, _ := m.waitEvent(0, EventApplied, nil)
		if !strings.HasPrefix(e.Source, "https://") || m.countEvents(EventFailed) != 1 {
			t.Errorf("applied from %s; events %v", e.Source, m.eventList())
		}
	})
}

// TestMirrorSourcePacks: a release whose manifest names packs is taken as
// the delta from the running binary when there is one, else compressed
// when that is smaller than the binary, else the binary; a damaged pack is left for the binary, and the release is applied all the
// same, its pieces checked as they are decoded.
func TestMirrorSourcePacks(t *testing.T) {
	t.Parallel()
	const size = 2*region.PieceSize + 300_000
	for _, tt := range []struct {
		name    string
		runSeed uint64 // the running binary's content; 2 is the release's
		damage  string // suffix of the pack to damage
		want    string // suffix of the file the release is read from
	}{
		{"delta", 2, "", ".delta"},
		// Random content: its pack compressed alone is no smaller, and
		// is left for the binary (e2e TestMirrorPacks takes a real
		// program's compressed pieces).
		{"no delta, no smaller compressed", 3, "", "_" + target.Current().Arch},
		{"damaged delta", 2, ".delta", "_" + target.Current().Arch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMirrorRig(t)
			m.running = regiontest.WriteBinary(t, m.exe, size, tt.runSeed, m.key, "1.0.0")
			var err error
			if m.oldData, err = os.ReadFile(m.exe); err != nil {
				t.Fatal(err)
			}
			base := filepath.Join(t.TempDir(), "prog")
			regiontest.WriteBinary(t, base, size, 2, m.key, "1.0.0")
			bin := m.publishPacked(m.key, "2.0.0", size, 2, &ghrelease.Packs{Dir: t.TempDir(), Compress: true, Bases: []string{base}})
			if tt.damage != "" {
				names, _ := filepath.Glob(filepath.Join(m.dir, "*"+tt.damage))
				if len(names) != 1 {
					t.Fatalf("packs %v", names)
				}
				b, _ := os.ReadFile(names[0])
				b[len(b)-10] ^= 0xff
				if err := os.WriteFile(names[0], b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			u := m.spawn(m.config())
			if e, _ := m.waitEvent(0, EventApplied, nil); e.Release.Version != "2.0.0" {
				t.Fatalf("applied %s", e.Release.Version)
			}
			want, _ := os.ReadFile(bin)
			got, _ := os.ReadFile(m.exe)
			if string(got) != string(want) {
				t.Fatal("the executable is not the release's binary")
			}
			m.check(u)
			m.handlersDone()
			var from []string
			for _, r := range m.requestList() {
				path, _, _ := strings.Cut(r, " ")
				if strings.HasPrefix(path, "/prog_") && !strings.HasSuffix(path, ".pieces") && !strings.HasSuffix(path, ".json") {
					from = append(from, path)
				}
			}
			if len(from) == 0 || !strings.HasSuffix(from[len(from)-1], tt.want) {
				t.Errorf("the release was read from %v, want the last from *%s", from, tt.want)
			}
			if tt.damage == "" && len(from) != 1 {
				t.Errorf("the release was read from %v, want one file", from)
			}
			if tt.damage != "" && (len(from) != 2 || !strings.HasSuffix(from[0], tt.damage)) {
				t.Errorf("the release was read from %v, want the damaged pack once, then the binary", from)
			}
		})
	}
}
