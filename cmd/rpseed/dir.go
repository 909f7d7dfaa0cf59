package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// server is what the directory watcher serves releases with; *p2p.Node
// implements it.
type server interface {
	Serve(ctx context.Context, pub ed25519.PublicKey, target, path string, in region.Info) error
	Unserve(pub ed25519.PublicKey, target string, in region.Info)
}

// fileState is what the watcher knows of one file in the directory.
type fileState struct {
	size    int64
	mtime   time.Time
	target  string // "" when the file is not a release of any configured target
	info    region.Info
	skipErr error
}

// watcher serves the newest verified release of each target found in a
// directory, rescanning it for new, changed and removed files.
type watcher struct {
	dir  string
	keys map[string]ed25519.PublicKey // by target
	srv  server
	log  *slog.Logger

	files  map[string]*fileState // by file name
	served map[string]servedFile // by target
}

type servedFile struct {
	name string
	info region.Info
}

func newWatcher(dir string, keys map[string]ed25519.PublicKey, srv server, log *slog.Logger) *watcher {
	return &watcher{dir: dir, keys: keys, srv: srv, log: log, files: map[string]*fileState{}, served: map[string]servedFile{}}
}

// skipName reports whether a file name is never a release: hidden files
// (the identity key) and partial downloads.
func skipName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".part")
}

// scan looks at the directory once and serves what changed. It returns the
// number of releases served.
func (w *watcher) scan(ctx context.Context) (int, error) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return len(w.served), fmt.Errorf("reading %s: %w", w.dir, err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if skipName(name) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		seen[name] = true
		if st := w.files[name]; st != nil && st.size == fi.Size() && st.mtime.Equal(fi.ModTime()) {
			continue
		}
		st := &fileState{size: fi.Size(), mtime: fi.ModTime()}
		st.target, st.info, st.skipErr = w.identify(filepath.Join(w.dir, name))
		w.files[name] = st
		if st.skipErr != nil {
			w.log.Warn("not serving file", "file", name, "reason", st.skipErr)
		}
	}
	for name := range w.files {
		if !seen[name] {
			delete(w.files, name)
		}
	}

	// The newest release per target wins.
	best := map[string]servedFile{}
	names := make([]string, 0, len(w.files))
	for name := range w.files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		st := w.files[name]
		if st.target == "" {
			continue
		}
		if cur, ok := best[st.target]; !ok || region.CompareVersions(st.info.Version, cur.info.Version) > 0 {
			best[st.target] = servedFile{name: name, info: st.info}
		}
	}
	for target, sf := range w.served {
		if b, ok := best[target]; !ok || b.info != sf.info {
			w.srv.Unserve(w.keys[target], target, sf.info)
			delete(w.served, target)
		}
	}
	targets := make([]string, 0, len(best))
	for t := range best {
		targets = append(targets, t)
	}
	slices.Sort(targets)
	for _, target := range targets {
		b := best[target]
		if _, ok := w.served[target]; ok {
			continue
		}
		if err := w.srv.Serve(ctx, w.keys[target], target, filepath.Join(w.dir, b.name), b.info); err != nil {
			w.log.Error("cannot serve release", "file", b.name, "target", target, "err", err)
			delete(w.files, b.name) // look again next time
			continue
		}
		w.served[target] = b
		w.log.Info("release found", "file", b.name, "target", target, "version", b.info.Version)
	}
	return len(w.served), nil
}

// identify verifies the file at path with every configured key and returns
// its target and region.
func (w *watcher) identify(path string) (string, region.Info, error) {
	sc, err := region.ScanFile(path)
	if err != nil {
		return "", region.Info{}, err
	}
	var matches []string
	var info region.Info
	var lastErr error
	for tg, pub := range w.keys {
		in, err := sc.Verify(pub)
		if err != nil {
			lastErr = err
			continue
		}
		info = in
		matches = append(matches, tg)
	}
	switch len(matches) {
	case 0:
		return "", region.Info{}, fmt.Errorf("verifies with none of the configured keys (%w)", lastErr)
	case 1:
		return matches[0], info, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", region.Info{}, err
	}
	defer f.Close()
	t, err := target.Detect(f)
	if err != nil {
		return "", region.Info{}, fmt.Errorf("signed with a key shared by %v, and its target cannot be told: %w", matches, err)
	}
	if !slices.Contains(matches, t.String()) {
		return "", region.Info{}, fmt.Errorf("built for %s, but signed with the key of %v", t, matches)
	}
	return t.String(), info, nil
}

// watch scans the directory every interval until ctx is done.
func (w *watcher) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := w.scan(ctx); err != nil && !errors.Is(err, context.Canceled) {
				w.log.Error("scanning the release directory", "err", err)
			}
		}
	}
}
