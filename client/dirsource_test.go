package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

func TestDirSource(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	dir := t.TempDir()
	regiontest.WriteBinary(t, filepath.Join(dir, "a-2.0.0"), 5000, 1, k, "2.0.0")
	regiontest.WriteBinary(t, filepath.Join(dir, "b-3.0.0"), 5000, 2, k, "3.0.0")
	regiontest.WriteBinary(t, filepath.Join(dir, ".hidden"), 5000, 3, k, "9.0.0")
	regiontest.WriteBinary(t, filepath.Join(dir, "copying.tmp"), 5000, 6, k, "9.0.0")
	regiontest.WriteBinary(t, filepath.Join(dir, "download.part"), 5000, 7, k, "9.0.0")
	regiontest.WriteBinary(t, filepath.Join(dir, "unsigned"), 5000, 4, k, "")
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("no region here"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	regiontest.WriteBinary(t, filepath.Join(dir, "sub", "c"), 5000, 5, k, "4.0.0")

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
	if _, err := region.SignFile(context.Background(), p, k.Private, "2.5.0", regiontest.Target); err != nil {
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
	t.Parallel()
	k := regiontest.NewKey(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "only")
	regiontest.WriteBinary(t, p, 5000, 1, k, "2.0.0")
	rels, err := DirSource(p).Releases(context.Background())
	if err != nil || len(rels) != 1 || rels[0].Info().Version != "2.0.0" {
		t.Fatalf("single file source: %v, %v", rels, err)
	}
	if _, err := DirSource(filepath.Join(dir, "missing")).Releases(context.Background()); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestSourceFromURL(t *testing.T) {
	t.Parallel()
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
			t.Parallel()
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
			if tt.want = filepath.FromSlash(tt.want); s.String() != tt.want {
				t.Errorf("SourceFromURL(%q) = %s, want %s", tt.in, s, tt.want)
			}
		})
	}
}

// TestDirSourceHugeFile: a file longer than any release can be (a sparse
// 1 TiB one) is logged once, by name, never read, and the release beside
// it is offered.
func TestDirSourceHugeFile(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	dir := t.TempDir()
	regiontest.WriteBinary(t, filepath.Join(dir, "a-2.0.0"), 5000, 1, k, "2.0.0")
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 1<<40); err != nil {
		t.Skipf("no sparse 1 TiB file here: %v", err)
	}
	var logs bytes.Buffer
	src := DirSource(dir)
	src.(loggedSource).setLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	for range 2 {
		rels, err := src.Releases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(rels) != 1 || rels[0].Info().Version != "2.0.0" {
			t.Fatalf("Releases = %v, want 2.0.0 alone", rels)
		}
	}
	if n := strings.Count(logs.String(), "file="+huge); n != 1 {
		t.Errorf("the huge file was logged %d times, want once:\n%s", n, logs.String())
	}
}
