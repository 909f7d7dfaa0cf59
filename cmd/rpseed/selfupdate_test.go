package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/client"
	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// startRun runs rpseed in this process with args and the linked key until
// the returned stop is called, and returns its listen addresses and its
// log.
func startRun(t *testing.T, args []string, linked string) (addrs []string, log *regiontest.Buffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	log = &regiontest.Buffer{}
	cfg := t.TempDir() // for the default --identity
	env := func(k string) string {
		if k == "XDG_CONFIG_HOME" {
			return cfg
		}
		return ""
	}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, env, linked, pw, log, nil)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening: "); ok {
			addrs = append(addrs, a)
			if len(addrs) == 2 {
				break
			}
		}
	}
	go io.Copy(io.Discard, pr)
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return errors.New("rpseed did not stop within 20s")
		}
	})
	if len(addrs) != 2 {
		cancel()
		t.Fatalf("rpseed printed %d listen addresses: %v\n%s", len(addrs), <-done, log)
	}
	t.Cleanup(func() { stop() })
	return addrs, log, stop
}

// TestRunSelfUpdateUnsignedKeepsSeeding runs rpseed with --self-update now
// from a binary that cannot verify itself (the unsigned test binary): updates
// are off, which is said at WARN, and rpseed serves its directory as ever.
func TestRunSelfUpdateUnsignedKeepsSeeding(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub, ownPub := key.Public, regiontest.NewKey(t).Public
	dir := t.TempDir()
	dropRelease(t, dir, "app-2.0.0", nil, key, "2.0.0")
	here := runtime.GOOS + "/" + runtime.GOARCH
	addrs, log, stop := startRun(t, []string{"--dir", dir, "--private", "--pub", here + "=" + region.EncodePublicKey(pub),
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1",
		"--self-update", "now", "--log-level", "warn"}, region.EncodePublicKey(ownPub))

	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(log.String(), "rpseed does not update itself in this run; it goes on seeding") {
		if time.Now().After(deadline) {
			t.Fatalf("no WARN line saying self-update is off within 20s; log:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"level=WARN msg=\"updates are off\"", "not signed"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := p2p.New(ctx, p2p.Config{Private: true, DHTServer: true, Bootstrap: addrs, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rels, err := c.Source(pub, here).Releases(ctx)
	if err != nil || len(rels) != 1 || rels[0].Info().Version != "2.0.0" {
		t.Fatalf("seed offers %v, %v; want the app's 2.0.0", rels, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("rpseed stopped with %v", err)
	}
}

// TestP2PSourceAdapter checks the adapter the self-updater uses: a seed
// with no peer yet offers nothing (no failure), Seed serves the binary to
// the network and is remembered, and the directory source keeps only
// rpseed's own releases.
func TestP2PSourceAdapter(t *testing.T) {
	t.Parallel()
	ownKey, appKey := regiontest.NewKey(t), regiontest.NewKey(t)
	ownPub := ownKey.Public
	here := runtime.GOOS + "/" + runtime.GOARCH
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := newTestLogger()
	seed, err := p2p.New(ctx, p2p.Config{Private: true, DHTServer: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	own := &ownRelease{owner: owner{here, ownPub}}
	var src client.Source = &p2pSource{src: seed.Source(ownPub, here), own: own, log: quiet}
	if rels, err := src.Releases(ctx); err != nil || len(rels) != 0 {
		t.Fatalf("a seed without peers: Releases = %v, %v; want none and no error", rels, err)
	}

	dir := t.TempDir()
	in := dropRelease(t, dir, "rpseed-1.0.0", nil, ownKey, "1.0.0")
	dropRelease(t, dir, "app-2.0.0", nil, appKey, "2.0.0")
	seeder, ok := src.(client.Seeder)
	if !ok {
		t.Fatal("the adapter is not a client.Seeder")
	}
	path := filepath.Join(dir, "rpseed-1.0.0")
	if err := seeder.Seed(ctx, path, in); err != nil {
		t.Fatal(err)
	}
	if p, got, ok := own.seeded(); !ok || p != path || got != in {
		t.Errorf("seeded() = %s, %v, %v; want %s 1.0.0", p, got.Version, ok, path)
	}

	peer, err := p2p.New(ctx, p2p.Config{Private: true, DHTServer: true, Bootstrap: seed.Addrs(), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	rels, err := (&p2pSource{src: peer.Source(ownPub, here), own: &ownRelease{}, log: quiet}).Releases(ctx)
	if err != nil || len(rels) != 1 || rels[0].Info() != in {
		t.Fatalf("a peer of the seed: Releases = %v, %v; want rpseed 1.0.0", rels, err)
	}

	dirRels, err := ownFiles{src: client.DirSource(dir), pub: ownPub}.Releases(ctx)
	if err != nil || len(dirRels) != 1 || dirRels[0].Info() != in {
		t.Errorf("own files: %v, %v; want rpseed-1.0.0 alone", dirRels, err)
	}
	os.Remove(path)
}

// newTestLogger returns a logger that discards everything.
func newTestLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestSelfEventsLeaveBeforeRestart checks what rpseed does around its own
// restart: the node is closed when the engine says it restarts, and if the
// exec then fails rpseed stops with an error naming the version (its node
// is gone); a failure before any restart stops nothing.
func TestSelfEventsLeaveBeforeRestart(t *testing.T) {
	in := region.Info{Version: "2.0.0"}
	tests := []struct {
		name   string
		events []client.EventKind
		closed bool
		stop   bool
	}{
		{"failure without restart", []client.EventKind{client.EventFailed}, false, false},
		{"restart", []client.EventKind{client.EventRestarting}, true, false},
		{"restart that failed", []client.EventKind{client.EventRestarting, client.EventFailed}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			closed := 0
			ctx, stop := context.WithCancelCause(context.Background())
			defer stop(nil)
			ev := &selfEvents{leave: func() error { closed++; return nil }, stop: stop, log: slog.New(slog.DiscardHandler)}
			for _, k := range tt.events {
				ev.handle(client.Event{Kind: k, Release: in, Err: errors.New("exec: permission denied")})
			}
			if got := closed > 0; got != tt.closed {
				t.Errorf("node closed: %v, want %v", got, tt.closed)
			}
			if got := ctx.Err() != nil; got != tt.stop {
				t.Fatalf("rpseed stopped: %v, want %v", got, tt.stop)
			}
			if tt.stop {
				if err := context.Cause(ctx); !strings.Contains(err.Error(), "2.0.0") || !strings.Contains(err.Error(), "permission denied") {
					t.Errorf("stopped with %q, want the version and the exec's error", err)
				}
			}
		})
	}
}
