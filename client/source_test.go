package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/region"
)

func TestDirSource(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	writeBinary(t, filepath.Join(dir, "a-2.0.0"), 5000, 1, k, "2.0.0")
	writeBinary(t, filepath.Join(dir, "b-3.0.0"), 5000, 2, k, "3.0.0")
	writeBinary(t, filepath.Join(dir, ".hidden"), 5000, 3, k, "9.0.0")
	writeBinary(t, filepath.Join(dir, "unsigned"), 5000, 4, k, "")
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("no region here"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeBinary(t, filepath.Join(dir, "sub", "c"), 5000, 5, k, "4.0.0")

	src := DirSource(dir)
	if got := src.String(); got != "dir:"+dir {
		t.Errorf("String() = %q", got)
	}
	list := func() []string {
		t.Helper()
		rels, err := src.Releases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rels {
			out = append(out, filepath.Base(r.(interface{ String() string }).String())+"="+r.Info().Version)
		}
		sort.Strings(out)
		return out
	}
	want := "[a-2.0.0=2.0.0 b-3.0.0=3.0.0]"
	if got := list(); strings.Join(got, " ") != strings.Trim(want, "[]") {
		t.Fatalf("releases = %v, want %v", got, want)
	}
	// A file re-signed in place is scanned again (its size stays, its
	// modification time changes).
	p := filepath.Join(dir, "a-2.0.0")
	if _, err := region.SignFile(context.Background(), p, k.priv, "2.5.0", runtime.GOOS+"/"+runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(list(), " "); got != "a-2.0.0=2.5.0 b-3.0.0=3.0.0" {
		t.Fatalf("after re-signing: %v", got)
	}
	// Removed files disappear.
	if err := os.Remove(filepath.Join(dir, "b-3.0.0")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(list(), " "); got != "a-2.0.0=2.5.0" {
		t.Fatalf("after removing: %v", got)
	}

	// Open streams the whole file from any offset.
	rels, _ := src.Releases(context.Background())
	whole, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1, 2600, int64(len(whole))} {
		rc, err := rels[0].Open(context.Background(), off)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(b, whole[off:]) {
			t.Errorf("Open(%d): %d bytes, %v", off, len(b), err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := rels[0].Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := rc.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v", err)
	}
	rc.Close()
}

func TestDirSourceSingleFileAndErrors(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "only")
	writeBinary(t, p, 5000, 1, k, "2.0.0")
	rels, err := DirSource(p).Releases(context.Background())
	if err != nil || len(rels) != 1 || rels[0].Info().Version != "2.0.0" {
		t.Fatalf("single file source: %v, %v", rels, err)
	}
	if _, err := DirSource(filepath.Join(dir, "missing")).Releases(context.Background()); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestSourceFromURL(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String() of the source
		wantErr string
	}{
		{"/srv/releases", "dir:/srv/releases", ""},
		{"relative/dir", "dir:relative/dir", ""},
		{"file:///srv/releases", "dir:/srv/releases", ""},
		{"file://localhost/srv/r", "dir:/srv/r", ""},
		{"file:rel/dir", "dir:rel/dir", ""},
		{"file://otherhost/srv", "", "another host"},
		{"https://example.com/x", "", "unsupported scheme"},
		{"file://", "", "no path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := SourceFromURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SourceFromURL(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.String() != tt.want {
				t.Errorf("SourceFromURL(%q) = %s, want %s", tt.in, s, tt.want)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"now", "now", ""},
		{"NOW", "now", ""},
		{"onrestart", "onrestart", ""},
		{"at=03:30", "at=03:30", ""},
		{"at=0:00", "at=00:00", ""},
		{"at=23:59", "at=23:59", ""},
		{"at=24:00", "", "hour must be 0 to 23"},
		{"at=12:60", "", "minute 0 to 59"},
		{"at=12", "", "want at=HH:MM"},
		{"at=1:5", "", "want at=HH:MM"},
		{"later", "", "want now, onrestart or at=HH:MM"},
	}
	for _, tt := range tests {
		m, err := ParseMode(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseMode(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || m.String() != tt.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %s", tt.in, m, err, tt.want)
		}
	}
	var zero Mode
	if zero.String() != "now" {
		t.Errorf("zero Mode is %v, want now", zero)
	}
}

// flakyRelease serves data but fails every read after chunk bytes from
// each Open, and may append extra bytes.
type flakyRelease struct {
	data   []byte
	chunk  int
	opens  int
	failAt int // Open fails on this (1-based) call; 0 = never
}

func (f *flakyRelease) Info() region.Info { return region.Info{} }

func (f *flakyRelease) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	f.opens++
	if f.opens == f.failAt {
		return nil, errors.New("peer went away")
	}
	return io.NopCloser(&flakyReader{b: f.data[off:], left: f.chunk}), nil
}

type flakyReader struct {
	b    []byte
	left int
}

func (r *flakyReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if r.left == 0 {
		return 0, errors.New("connection reset")
	}
	n := copy(p[:min(len(p), r.left)], r.b)
	r.b, r.left = r.b[n:], r.left-n
	return n, nil
}

func TestReleaseReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	tests := []struct {
		name    string
		rel     *flakyRelease
		limit   int64
		wantErr error
		errText string
	}{
		{"resumes after each failure", &flakyRelease{data: data, chunk: 7_000}, int64(len(data)), nil, ""},
		{"resumes after a failed open", &flakyRelease{data: data, chunk: 30_000, failAt: 2}, int64(len(data)), nil, ""},
		{"too long", &flakyRelease{data: data, chunk: len(data)}, int64(len(data) - 1), ErrTooLong, ""},
		{"truncated", &flakyRelease{data: data, chunk: len(data)}, int64(len(data) + 1), ErrTruncated, "ends after 100000 of 100001 bytes"},
		{"no progress at all", &flakyRelease{data: data, chunk: 0}, int64(len(data)), nil, "connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := &releaseReader{ctx: context.Background(), rel: tt.rel, limit: tt.limit}
			defer rr.close()
			got, err := io.ReadAll(rr)
			if tt.wantErr == nil && tt.errText == "" {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read %d bytes, %v; want all %d", len(got), err, len(data))
				}
				return
			}
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("error = %v, want %v %q", err, tt.wantErr, tt.errText)
			}
		})
	}
}

func TestSelfTestMainUnsigned(t *testing.T) {
	// The test binary is an unsigned build: its self-test must fail.
	k := newKey(t)
	pub, _ := region.ParsePublicKey(k.pub)
	var out bytes.Buffer
	if code := selfTestMain(pub, nil, &out); code != 1 {
		t.Errorf("self-test of an unsigned binary exited %d, want 1", code)
	}
	if !strings.Contains(out.String(), selfTestPrefix+"failed") || !strings.Contains(out.String(), "not signed") {
		t.Errorf("self-test said %q", out.String())
	}
	out.Reset()
	if code := selfTestMain(nil, ErrNoKey, &out); code != 1 || !strings.Contains(out.String(), "no public key") {
		t.Errorf("self-test without key: %d %q", code, out.String())
	}
}
