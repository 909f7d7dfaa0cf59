package main

import (
	"bytes"
	"crypto/ed25519"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rollout"
)

// dropRollout writes a statement of key for target into dir as name, with
// stable on 2.0.0 for 25% and the given yanks, issued at issued and fresh
// for an hour.
func dropRollout(t *testing.T, dir, name string, key regiontest.Key, target string, seq uint64, issued time.Time, yanks ...rollout.Yank) rollout.Statement {
	t.Helper()
	st := rollout.Statement{Target: target, Sequence: seq, Issued: issued, Expires: issued.Add(time.Hour),
		Channels: []rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 25}}, Yanks: yanks}
	if err := st.Sign(key.Private); err != nil {
		t.Fatal(err)
	}
	b, _ := st.MarshalText()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestWatcherServesRollouts: the newest fresh statement of each owner in
// the directory is served, and the releases of the versions it yanks are
// not; statements of other keys or targets, expired ones and older ones
// are logged once and not served.
func TestWatcherServesRollouts(t *testing.T) {
	t.Parallel()
	k0, k1, stranger := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	const amd64 = 62
	var logs bytes.Buffer
	dir := t.TempDir()
	srv := newFakeServer(map[string]ed25519.PublicKey{"new": k1.Public})
	w := newWatcher(dir, []owner{{"linux/amd64", k0.Public}}, srv, slog.New(slog.NewTextHandler(&logs, nil)))
	dropRelease(t, dir, "app-1.0.1", elfHeader(amd64), k0, "1.0.1")
	dropRelease(t, dir, "app-2.0.0", elfHeader(amd64), k0, "2.0.0")
	now := time.Now()
	servedSeqs := func() string {
		var s []string
		for _, st := range srv.rollouts {
			s = append(s, st.Target+"#"+string(rune('0'+st.Sequence)))
		}
		return strings.Join(s, " ")
	}

	dropRollout(t, dir, "linux-amd64.rollout", k0, "linux/amd64", 1, now)
	dropRollout(t, dir, "stranger.rollout", stranger, "linux/amd64", 9, now)
	dropRollout(t, dir, "arm64.rollout", k0, "linux/arm64", 9, now)
	dropRollout(t, dir, "expired.rollout", k0, "linux/amd64", 8, now.Add(-2*time.Hour))
	scanWant(t, w, srv, map[string]string{"linux/amd64": "2.0.0"})
	if got := servedSeqs(); got != "linux/amd64#1" {
		t.Fatalf("served statements %q, want linux/amd64#1", got)
	}
	scanWant(t, w, srv, map[string]string{"linux/amd64": "2.0.0"}) // nothing new: nothing served again
	if got := servedSeqs(); got != "linux/amd64#1" {
		t.Errorf("served statements %q after a scan with nothing new", got)
	}
	for _, want := range []string{
		"not serving rollout statement: its key is given with --pub for no such target",
		"not serving rollout statement: rollout statement expired: sequence 8",
		"re-sign it with rpsign rollout --refresh",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, &logs)
		}
	}
	if n := strings.Count(logs.String(), "not serving rollout statement"); n != 3 {
		t.Errorf("%d warnings about statements not served, want 3 (one each):\n%s", n, &logs)
	}

	// A yank of 2.0.0 to 1.0.1: 1.0.1 is served, 2.0.0 no more.
	dropRollout(t, dir, "linux-amd64.rollout", k0, "linux/amd64", 2, now, rollout.Yank{Version: "2.0.0", To: "1.0.1"})
	scanWant(t, w, srv, map[string]string{"linux/amd64": "1.0.1"})
	if got := servedSeqs(); got != "linux/amd64#1 linux/amd64#2" {
		t.Errorf("served statements %q, want #1 then #2", got)
	}
	if !strings.Contains(logs.String(), `msg="not serving file: its version is yanked by the rollout statement" file=app-2.0.0`) {
		t.Errorf("log lacks the yanked file:\n%s", &logs)
	}
	// An older statement put back is not served; the yank stands.
	dropRollout(t, dir, "old.rollout", k0, "linux/amd64", 1, now.Add(time.Minute))
	scanWant(t, w, srv, map[string]string{"linux/amd64": "1.0.1"})
	if !strings.Contains(logs.String(), "rollout statement older than the one held: sequence 1, held 2") {
		t.Errorf("log lacks the refused replay:\n%s", &logs)
	}
	if st, ok := w.rollouts.get(owner{"linux/amd64", k0.Public}); !ok || st.Sequence != 2 {
		t.Errorf("the watcher holds sequence %d, want 2", st.Sequence)
	}

	// After a key rotation, the new key's statement is served too.
	dropRotation(t, dir, "linux-amd64-1", k0, k1, "linux/amd64", 1)
	dropRollout(t, dir, "new.rollout", k1, "linux/amd64", 1, now)
	if _, err := w.scan(t.Context()); err != nil {
		t.Fatal(err)
	}
	if last := srv.rollouts[len(srv.rollouts)-1]; !last.Key.Equal(k1.Public) {
		t.Errorf("the new key's statement is not served: %q", servedSeqs())
	}
}
