package main

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// fakeDeltas records what the watcher asks deltas of: by "target
// version", the bases' file names.
type fakeDeltas map[string][]string

func (f fakeDeltas) MakeDeltas(_ ed25519.PublicKey, target string, in region.Info, bases []string) {
	names := []string{}
	for _, b := range bases {
		names = append(names, filepath.Base(b))
	}
	f[target+" "+in.Version] = names
}

// TestWatcherDeltas checks that the watcher asks for deltas to each
// release it serves from the older releases of the same key and target in
// the directory, newest first, at most maxBases of them.
func TestWatcherDeltas(t *testing.T) {
	t.Parallel()
	keyA, keyB := regiontest.NewKey(t), regiontest.NewKey(t)
	const amd64, arm64 = 62, 183
	dir := t.TempDir()
	srv := newFakeServer(nil)
	w := newWatcher(dir, []owner{{"linux/amd64", keyA.Public}, {"linux/arm64", keyA.Public}, {"linux/arm64", keyB.Public}}, srv, slog.New(slog.NewTextHandler(io.Discard, nil)))
	deltas := fakeDeltas{}
	w.deltas, w.maxBases = deltas, 2
	dropRelease(t, dir, "a-1", elfHeader(amd64), keyA, "1.0.0")
	dropRelease(t, dir, "a-3", elfHeader(amd64), keyA, "3.0.0")
	dropRelease(t, dir, "a-2", elfHeader(amd64), keyA, "2.0.0")
	dropRelease(t, dir, "a-4", elfHeader(amd64), keyA, "4.0.0")
	dropRelease(t, dir, "arm-1", elfHeader(arm64), keyA, "1.0.0") // same key, other target
	dropRelease(t, dir, "b-1", elfHeader(arm64), keyB, "0.9.0")   // other key
	if _, err := w.scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"linux/amd64 4.0.0": {"a-3", "a-2"},
		"linux/arm64 1.0.0": {},
		"linux/arm64 0.9.0": {},
	}
	if len(deltas) != len(want) {
		t.Fatalf("deltas asked: %v, want %v", deltas, want)
	}
	for k, v := range want {
		if !slices.Equal(deltas[k], v) {
			t.Errorf("%s: bases %v, want %v", k, deltas[k], v)
		}
	}
}
