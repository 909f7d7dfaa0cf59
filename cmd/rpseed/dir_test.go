package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/rotation"
	targetpkg "github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// fakeServer records what the watcher serves, as a node does: the newest
// release per key and target.
type fakeServer struct {
	names     map[string]string // key -> a short name for the expectations
	served    map[string]string // "target" (first key) or "target name" -> version
	paths     map[string]string // same keys -> path served
	rotations []rotation.Statement
	rollouts  []rollout.Statement // served, in order
	closed    bool                // Serve fails as a closed node's does
}

func newFakeServer(names map[string]ed25519.PublicKey) *fakeServer {
	f := &fakeServer{names: map[string]string{}, served: map[string]string{}, paths: map[string]string{}}
	for n, k := range names {
		f.names[string(k)] = n
	}
	return f
}

// key is "target" for the key named "" and "target name" for the others.
func (f *fakeServer) key(pub ed25519.PublicKey, target string) string {
	if n := f.names[string(pub)]; n != "" {
		return target + " " + n
	}
	return target
}

func (f *fakeServer) Serve(_ context.Context, pub ed25519.PublicKey, target, path string, in region.Info) error {
	if f.closed {
		return p2p.ErrClosed
	}
	k := f.key(pub, target)
	if cur, ok := f.served[k]; ok && region.CompareVersions(cur, in.Version) > 0 {
		return nil
	}
	f.served[k], f.paths[k] = in.Version, path
	return nil
}

func (f *fakeServer) ServeRotations(_ context.Context, stmts []rotation.Statement) error {
	for _, st := range stmts {
		if err := st.Verify(); err != nil {
			return err
		}
		if !slices.ContainsFunc(f.rotations, func(h rotation.Statement) bool { return h.Signature == st.Signature }) {
			f.rotations = append(f.rotations, st)
		}
	}
	return nil
}

func (f *fakeServer) ServeRollout(_ context.Context, st rollout.Statement) error {
	if err := st.Verify(); err != nil {
		return err
	}
	f.rollouts = append(f.rollouts, st)
	return nil
}

func (f *fakeServer) Unserve(pub ed25519.PublicKey, target string, in region.Info) {
	k := f.key(pub, target)
	if f.served[k] == in.Version {
		delete(f.served, k)
		delete(f.paths, k)
	}
}

// elfHeader returns a minimal 64-bit little-endian ELF header for machine.
func elfHeader(machine uint16) []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1                     // 64-bit, little-endian, version 1
	binary.LittleEndian.PutUint16(h[16:], 2)       // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], machine) // e_machine
	binary.LittleEndian.PutUint32(h[20:], 1)       // e_version
	binary.LittleEndian.PutUint16(h[52:], 64)      // e_ehsize
	return h
}

// dropRelease puts a stand-in release signed with key as version, for the
// target its head names (else the running one), into
// dir as name, the way an operator should: written elsewhere, then renamed
// in, so that the watcher never sees it half written. Unless head is nil,
// the file starts with head (an executable header). It returns the region.
func dropRelease(t *testing.T, dir, name string, head []byte, key regiontest.Key, version string) region.Info {
	t.Helper()
	return dropReleaseFor(t, dir, name, head, key, version, "")
}

// dropReleaseFor is dropRelease signing for target, unless it is empty.
func dropReleaseFor(t *testing.T, dir, name string, head []byte, key regiontest.Key, version, target string) region.Info {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), name)
	h := fnv.New64a()
	h.Write([]byte(name))
	regiontest.WriteBinary(t, tmp, 8192, h.Sum64(), key, "")
	if head != nil {
		f, err := os.OpenFile(tmp, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt(head, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if target == "" {
		target = regiontest.Target
		if built, err := targetpkg.Detect(bytes.NewReader(head)); err == nil {
			target = built.String()
		}
	}
	in, err := region.SignFile(context.Background(), tmp, key.Private, version, target)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	return in
}

func TestWatcher(t *testing.T) {
	t.Parallel()
	keyA, keyB, stranger := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	pubA, pubB := keyA.Public, keyB.Public
	const amd64, arm64 = 62, 183
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	t.Run("separate keys", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		srv := newFakeServer(nil)
		w := newWatcher(dir, []owner{{"linux/amd64", pubA}, {"linux/arm64", pubB}}, srv, log)
		dropRelease(t, dir, "a-1", elfHeader(amd64), keyA, "1.0.0")
		dropRelease(t, dir, "a-2", elfHeader(amd64), keyA, "2.0.0")
		dropRelease(t, dir, "b-1", elfHeader(arm64), keyB, "1.5.0")
		dropRelease(t, dir, "x-9", nil, stranger, "9.0.0")
		dropRelease(t, dir, ".hidden", nil, keyA, "7.0.0")
		dropRelease(t, dir, "partial.part", nil, keyA, "8.0.0")
		scanWant(t, w, srv, map[string]string{"linux/amd64": "2.0.0", "linux/arm64": "1.5.0"})
		dropRelease(t, dir, "b-3", elfHeader(arm64), keyB, "3.0.0") // picked up while running
		scanWant(t, w, srv, map[string]string{"linux/amd64": "2.0.0", "linux/arm64": "3.0.0"})
		os.Remove(filepath.Join(dir, "a-2")) // removed: the next newest takes over
		scanWant(t, w, srv, map[string]string{"linux/amd64": "1.0.0", "linux/arm64": "3.0.0"})
		os.Remove(filepath.Join(dir, "a-1"))
		scanWant(t, w, srv, map[string]string{"linux/arm64": "3.0.0"})
	})

	t.Run("shared key", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		srv := newFakeServer(nil)
		w := newWatcher(dir, []owner{{"linux/amd64", pubA}, {"linux/arm64", pubA}}, srv, log)
		dropRelease(t, dir, "amd", elfHeader(amd64), keyA, "2.0.0")
		dropRelease(t, dir, "arm", elfHeader(arm64), keyA, "2.1.0")
		dropReleaseFor(t, dir, "script", []byte("#!/bin/sh\n"), keyA, "9.0.0", "linux/riscv64") // signed for a target A has no --pub for
		if _, err := w.scan(ctx); err != nil {
			t.Fatal(err)
		}
		if srv.served["linux/amd64"] != "2.0.0" || srv.served["linux/arm64"] != "2.1.0" || len(srv.served) != 2 {
			t.Fatalf("served %v", srv.served)
		}
	})
	t.Run("key and target mismatches", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		srv := newFakeServer(nil)
		var logs strings.Builder
		w := newWatcher(dir, []owner{{"linux/amd64", pubA}, {"linux/arm64", pubB}}, srv, slog.New(slog.NewTextHandler(&logs, nil)))
		dropRelease(t, dir, "ok", elfHeader(amd64), keyA, "1.0.0")
		dropRelease(t, dir, "b-for-amd64", elfHeader(amd64), keyB, "2.0.0")                            // B has --pub for arm64 only
		dropReleaseFor(t, dir, "liar", elfHeader(arm64), keyA, "3.0.0", "linux/amd64")                 // header and region disagree
		dropReleaseFor(t, dir, "b-v0-no-header", []byte("#!/bin/sh\n"), keyB, "4.0.0", "darwin/arm64") // signed for a target nobody configured
		scanWant(t, w, srv, map[string]string{"linux/amd64": "1.0.0"})
		for _, want := range []string{
			`level=WARN msg="not serving file" file=b-for-amd64 reason="signed for linux/amd64, and its key is given with --pub only for [linux/arm64]: add --pub linux/amd64=` + region.EncodePublicKey(pubB),
			`level=WARN msg="not serving file" file=liar reason="signed for linux/amd64, but built for linux/arm64 (its header says so)`,
			`level=WARN msg="not serving file" file=b-v0-no-header reason="signed for darwin/arm64, and its key is given with --pub only for [linux/arm64]`,
		} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, &logs)
			}
		}
	})

	t.Run("two owners for one target", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		srv := newFakeServer(map[string]ed25519.PublicKey{"A": pubA, "B": pubB})
		// A signs amd64 and arm64 with one key; B is another app on amd64.
		w := newWatcher(dir, []owner{{"linux/amd64", pubA}, {"linux/arm64", pubA}, {"linux/amd64", pubB}}, srv, log)
		dropRelease(t, dir, "a-amd-1", elfHeader(amd64), keyA, "1.0.0")
		dropRelease(t, dir, "a-amd-2", elfHeader(amd64), keyA, "2.0.0")
		dropRelease(t, dir, "a-arm-3", elfHeader(arm64), keyA, "3.0.0")
		dropRelease(t, dir, "b-5", nil, keyB, "5.0.0") // B has one target: no header needed
		dropRelease(t, dir, "x-9", elfHeader(amd64), stranger, "9.0.0")
		scanWant(t, w, srv, map[string]string{"linux/amd64 A": "2.0.0", "linux/arm64 A": "3.0.0", "linux/amd64 B": "5.0.0"})
		dropRelease(t, dir, "b-6", nil, keyB, "6.0.0")
		scanWant(t, w, srv, map[string]string{"linux/amd64 A": "2.0.0", "linux/arm64 A": "3.0.0", "linux/amd64 B": "6.0.0"})
		os.Remove(filepath.Join(dir, "a-amd-2")) // only A's amd64 release changes
		scanWant(t, w, srv, map[string]string{"linux/amd64 A": "1.0.0", "linux/arm64 A": "3.0.0", "linux/amd64 B": "6.0.0"})
		os.Remove(filepath.Join(dir, "b-5"))
		os.Remove(filepath.Join(dir, "b-6"))
		scanWant(t, w, srv, map[string]string{"linux/amd64 A": "1.0.0", "linux/arm64 A": "3.0.0"})
	})

	t.Run("own key added by --self-update", func(t *testing.T) {
		t.Parallel()
		keyS := regiontest.NewKey(t)
		pubS := keyS.Public
		dir := t.TempDir()
		srv := newFakeServer(map[string]ed25519.PublicKey{"A": pubA, "S": pubS})
		owners, err := parseOwners([]string{"linux/amd64=" + region.EncodePublicKey(pubA)})
		if err != nil {
			t.Fatal(err)
		}
		own := owner{"linux/amd64", pubS} // as parseSelfUpdate makes it on linux/amd64
		owners = withOwner(withOwner(owners, own), own)
		if len(owners) != 2 {
			t.Fatalf("owners %v, want the --pub one and rpseed's own once", owners)
		}
		// The running rpseed 1.0.0, as the self-updater seeds it.
		seeded := &ownRelease{owner: own}
		seeded.remember("/usr/local/bin/rpseed", region.Info{Version: "1.0.0"})
		srv.Serve(ctx, pubS, own.target, "/usr/local/bin/rpseed", region.Info{Version: "1.0.0"})
		w := newWatcher(dir, owners, &ownServer{server: srv, ctx: ctx, own: seeded, log: log}, log)
		dropRelease(t, dir, "hello-2", nil, keyA, "2.0.0")
		dropRelease(t, dir, "rpseed-1.5", nil, keyS, "1.5.0")
		scanWant(t, w, srv, map[string]string{"linux/amd64 A": "2.0.0", "linux/amd64 S": "1.5.0"})
		dropRelease(t, dir, "rpseed-2", nil, keyS, "2.0.0")
		scanWant(t, w, srv, map[string]string{"linux/amd64 A": "2.0.0", "linux/amd64 S": "2.0.0"})
		if p := srv.paths["linux/amd64 S"]; p != filepath.Join(dir, "rpseed-2") {
			t.Errorf("rpseed 2.0.0 served from %s", p)
		}
		// The copies leave the directory: the running binary is served again.
		os.Remove(filepath.Join(dir, "rpseed-1.5"))
		os.Remove(filepath.Join(dir, "rpseed-2"))
		scanWant(t, w, srv, map[string]string{"linux/amd64 A": "2.0.0", "linux/amd64 S": "1.0.0"})
		if p := srv.paths["linux/amd64 S"]; p != "/usr/local/bin/rpseed" {
			t.Errorf("rpseed 1.0.0 served from %s, want the running binary", p)
		}
		// Another app's release leaving does not touch rpseed's.
		os.Remove(filepath.Join(dir, "hello-2"))
		scanWant(t, w, srv, map[string]string{"linux/amd64 S": "1.0.0"})
	})
}

// dropRotation writes the statement moving target from old to next into
// dir as name.rotation.
func dropRotation(t *testing.T, dir, name string, old, next regiontest.Key, target string, seq uint64) rotation.Statement {
	t.Helper()
	st, err := rotation.New(old.Private, next.Public, target, seq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := st.MarshalText()
	if err := os.WriteFile(filepath.Join(dir, name+rotation.FileSuffix), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestWatcherFollowsRotations: a statement in the directory that moves a
// configured owner's target to a new key is served, and so are the new
// key's releases, without --pub for it; a statement for a key rpseed does
// not serve is not.
func TestWatcherFollowsRotations(t *testing.T) {
	t.Parallel()
	k0, k1, k2, stranger := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	const amd64 = 62
	var logs bytes.Buffer
	dir := t.TempDir()
	srv := newFakeServer(map[string]ed25519.PublicKey{"new": k1.Public, "newer": k2.Public})
	w := newWatcher(dir, []owner{{"linux/amd64", k0.Public}}, srv, slog.New(slog.NewTextHandler(&logs, nil)))
	dropRelease(t, dir, "app-1", elfHeader(amd64), k0, "1.0.0")
	dropRelease(t, dir, "app-2", elfHeader(amd64), k1, "2.0.0")
	scanWant(t, w, srv, map[string]string{"linux/amd64": "1.0.0"})

	st := dropRotation(t, dir, "linux-amd64-1", k0, k1, "linux/amd64", 1)
	dropRotation(t, dir, "stranger", stranger, k2, "linux/amd64", 1)
	dropRotation(t, dir, "other-target", k0, k2, "linux/arm64", 1)
	scanWant(t, w, srv, map[string]string{"linux/amd64": "1.0.0", "linux/amd64 new": "2.0.0"})
	if len(srv.rotations) != 1 || srv.rotations[0].Signature != st.Signature {
		t.Errorf("serves %d statements, want the one from the configured key", len(srv.rotations))
	}
	for _, want := range []string{"key rotation: serving releases signed by the new key", "not serving key rotation statement"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "not serving key rotation statement"); n != 2 {
		t.Errorf("%d warnings about unfollowed statements, want 2 (one each)", n)
	}
	scanWant(t, w, srv, map[string]string{"linux/amd64": "1.0.0", "linux/amd64 new": "2.0.0"})
	if n := strings.Count(logs.String(), "not serving key rotation statement"); n != 2 {
		t.Errorf("warnings repeated at every scan: %d", n)
	}

	// A chain: the second statement is followed through the first.
	dropRotation(t, dir, "linux-amd64-2", k1, k2, "linux/amd64", 2)
	dropRelease(t, dir, "app-3", elfHeader(amd64), k2, "3.0.0")
	scanWant(t, w, srv, map[string]string{"linux/amd64": "1.0.0", "linux/amd64 new": "2.0.0", "linux/amd64 newer": "3.0.0"})
	if len(srv.rotations) != 2 {
		t.Errorf("serves %d statements, want the chain of 2", len(srv.rotations))
	}

	// Statements removed: the new keys' releases are no longer served.
	os.Remove(filepath.Join(dir, "linux-amd64-1"+rotation.FileSuffix))
	scanWant(t, w, srv, map[string]string{"linux/amd64": "1.0.0"})
}

// TestWatcherNodeClosed scans while the node is closed, as when rpseed
// restarts into its own update (its node closes before the exec) while a
// scan serves a new file: the scan stops without an error logged against
// the file, and a later scan on an open node serves it.
func TestWatcherNodeClosed(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	dir := t.TempDir()
	srv := newFakeServer(nil)
	w := newWatcher(dir, []owner{{"linux/amd64", key.Public}}, srv, log)
	dropRelease(t, dir, "a-1", elfHeader(62), key, "1.0.0")
	srv.closed = true
	if _, err := w.scan(context.Background()); !errors.Is(err, p2p.ErrClosed) {
		t.Fatalf("scan on a closed node: %v, want %v", err, p2p.ErrClosed)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("scan on a closed node logged an error:\n%s", logs.String())
	}
	srv.closed = false
	scanWant(t, w, srv, map[string]string{"linux/amd64": "1.0.0"})
}

// scanWant scans once and checks what srv serves.
func scanWant(t *testing.T, w *watcher, srv *fakeServer, want map[string]string) {
	t.Helper()
	if _, err := w.scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(srv.served) != len(want) {
		t.Fatalf("served %v, want %v", srv.served, want)
	}
	for k, v := range want {
		if srv.served[k] != v {
			t.Fatalf("served %v, want %v", srv.served, want)
		}
	}
}
