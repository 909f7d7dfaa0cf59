package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/org/rustpatcher-go/client"
	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/region"
)

// selfUpdateOff is the --self-update value that leaves rpseed's own binary
// alone.
const selfUpdateOff = "off"

// selfUpdate is rpseed's own update setting, from --self-update and the key
// linked into the build.
type selfUpdate struct {
	on   bool
	mode client.Mode
	key  string // the linked key, z-base-32
	own  owner  // rpseed's own key and the running target
}

// String returns the mode, or "off".
func (su selfUpdate) String() string {
	if !su.on {
		return selfUpdateOff
	}
	return su.mode.String()
}

// parseSelfUpdate reads the --self-update value (off, now, onrestart or
// at=HH:MM) and, unless it is off, the owner key linked into this rpseed
// build (client.LinkedPublicKey in the real program).
func parseSelfUpdate(value, linked string) (selfUpdate, error) {
	v := strings.TrimSpace(value)
	if v == "" || strings.EqualFold(v, selfUpdateOff) {
		return selfUpdate{}, nil
	}
	mode, err := client.ParseMode(v)
	if err != nil {
		return selfUpdate{}, fmt.Errorf("--self-update (RPSEED_SELF_UPDATE): %w, or off (the default)", err)
	}
	if linked == "" {
		return selfUpdate{}, fmt.Errorf("--self-update %s: this rpseed was built without an owner key, so it cannot tell its own releases; "+
			"build it with -ldflags \"-X %s=<key>\" (the public key rpsign gen or rpsign pub prints, one key per target), sign it with that key (rpsign sign), "+
			"or run it with --self-update off", mode, client.LinkedKeyFlag)
	}
	if linked == client.TestVectorPublicKey {
		return selfUpdate{}, fmt.Errorf("--self-update %s: the owner key linked into this rpseed is the test-vector key of docs/FORMAT.md, whose secret anyone can read (%w); "+
			"rebuild it with your own key (rpsign gen), or run it with --self-update off", mode, client.ErrPublishedKey)
	}
	pub, err := region.ParsePublicKey(linked)
	if err != nil {
		return selfUpdate{}, fmt.Errorf("--self-update %s: the owner key linked into this rpseed with -X %s, %q: %w; rebuild it with the 52-character key rpsign pub prints, or run it with --self-update off",
			mode, client.LinkedKeyFlag, linked, err)
	}
	return selfUpdate{
		on:   true,
		mode: mode,
		key:  linked,
		own:  owner{target: runtime.GOOS + "/" + runtime.GOARCH, pub: pub},
	}, nil
}

// startSelfUpdate runs the update engine of rpseed's own binary inside
// rpseed, on rpseed's own node: its sources are the node's source of
// rpseed releases and the release directory, and as a Seeder it serves the
// running binary once it verified itself and each rpseed release it
// applies. A binary that does not verify with the linked key runs without
// updates (logged at WARN), and rpseed goes on seeding.
func startSelfUpdate(ctx context.Context, su selfUpdate, node *p2p.Node, own *ownRelease, dir string, every time.Duration, stop context.CancelCauseFunc, log *slog.Logger) (*client.Updater, error) {
	ev := &selfEvents{leave: node.Close, stop: stop, log: log}
	u, err := client.Spawn(ctx, client.Config{
		PublicKey: su.key,
		Mode:      su.mode,
		Interval:  every,
		Sources: []client.Source{
			ownFiles{src: client.DirSource(dir), pub: su.own.pub},
			&p2pSource{src: node.Source(su.own.pub, su.own.target), own: own, log: log},
		},
		Network: client.NetworkConfig{Disabled: true}, // rpseed's node is the network
		Logger:  log,
		OnEvent: ev.handle,
	})
	if err != nil {
		return nil, fmt.Errorf("--self-update: %w", err)
	}
	return u, nil
}

// leaveTimeout bounds how long rpseed waits for its node to close before
// it restarts into an update.
const leaveTimeout = 3 * time.Second

// selfEvents acts on the events of rpseed's own update engine. Before the
// engine execs an update, rpseed closes its node, so that its peers see
// their connections close at once: a QUIC connection to a process that
// exec'd is silently gone, and a peer's next request on it would wait out
// its timeouts. The engine is not told (it runs with the network
// disabled), so if the exec then fails, rpseed has no network left and
// stops with an error, for its supervisor to start it again (into the
// update, which is in place).
type selfEvents struct {
	leave func() error            // closes the node
	stop  context.CancelCauseFunc // stops rpseed
	log   *slog.Logger
	left  bool // the node was closed for a restart
}

// handle is the engine's OnEvent. The engine calls it from one goroutine.
func (ev *selfEvents) handle(e client.Event) {
	switch e.Kind {
	case client.EventDisabled:
		ev.log.Warn("rpseed does not update itself in this run; it goes on seeding", "reason", e.Err,
			"hint", "sign rpseed with the key linked into it (rpsign sign), or run it with --self-update off")
	case client.EventRestarting:
		ev.left = true
		done := make(chan error, 1)
		go func() { done <- ev.leave() }()
		select {
		case err := <-done:
			if err != nil {
				ev.log.Debug("closing the node before the restart", "err", err)
			}
		case <-time.After(leaveTimeout):
			ev.log.Debug("the node did not close in time before the restart", "timeout", leaveTimeout)
		}
	case client.EventFailed:
		if ev.left {
			// The exec did not happen: the node is closed.
			ev.stop(fmt.Errorf("restarting into rpseed %s failed after rpseed left the network: %w; rpseed stops so that its supervisor starts it again (the update is in place)", e.Release.Version, e.Err))
		}
	}
}

// p2pSource adapts the node's source of rpseed's own releases to
// client.Source and client.Seeder (client.Release is satisfied by
// *p2p.Release).
type p2pSource struct {
	src *p2p.Source
	own *ownRelease // remembers what was seeded
	log *slog.Logger
}

// Releases asks the network for rpseed releases. A seed that knows no peer
// to ask yet (often the only seed of its network) has no releases to offer,
// which is no failure.
func (s *p2pSource) Releases(ctx context.Context) ([]client.Release, error) {
	rs, err := s.src.Releases(ctx)
	if errors.Is(err, p2p.ErrNoPeers) {
		s.log.Debug("no peer to ask for rpseed releases yet", "source", s.src.String())
		return nil, nil
	}
	out := make([]client.Release, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out, err
}

// String names the source in logs.
func (s *p2pSource) String() string { return "rpseed " + s.src.String() }

// Seed serves the verified rpseed binary at path and remembers it.
func (s *p2pSource) Seed(ctx context.Context, path string, in region.Info) error {
	if err := s.src.Seed(ctx, path, in); err != nil {
		return err
	}
	s.own.remember(path, in)
	return nil
}

// ownFiles is a directory source narrowed to the releases signed with
// rpseed's own key, so that the apps' releases in the same directory are not
// reported as rejected rpseed releases. It passes the directory's releases
// through unchanged.
type ownFiles struct {
	src client.Source
	pub ed25519.PublicKey
}

// Releases returns the directory's releases whose region verifies with
// rpseed's key (the engine checks them again, with every byte).
func (f ownFiles) Releases(ctx context.Context) ([]client.Release, error) {
	rs, err := f.src.Releases(ctx)
	out := rs[:0]
	for _, r := range rs {
		if in := r.Info(); in.VerifySignature(f.pub) == nil {
			out = append(out, r)
		}
	}
	return out, err
}

// String names the source in logs.
func (f ownFiles) String() string { return f.src.String() }

// ownRelease remembers the newest rpseed release the self-updater seeded
// (the running binary, or one applied since), so that it can be served again
// when the directory watcher stops serving a copy of the same owner from the
// directory: the node serves one release per owner and forgets it on Unserve.
type ownRelease struct {
	owner owner

	mu   sync.Mutex
	path string
	info region.Info
}

// remember records the release at path unless a newer one was seeded.
func (o *ownRelease) remember(path string, in region.Info) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.path == "" || region.CompareVersions(in.Version, o.info.Version) > 0 {
		o.path, o.info = path, in
	}
}

// seeded returns the release remembered, if any.
func (o *ownRelease) seeded() (string, region.Info, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.path, o.info, o.path != ""
}

// ownServer is the server the directory watcher uses while rpseed updates
// itself: when the watcher stops serving a release of rpseed's own owner (its
// file left the directory or a newer one replaces it), the release the
// self-updater seeded is served again. The node keeps the newer of the two.
type ownServer struct {
	server
	ctx context.Context // for serving again; Unserve has none
	own *ownRelease
	log *slog.Logger
}

// Unserve stops serving a release and serves rpseed's own binary again if
// the release was of rpseed's owner.
func (s *ownServer) Unserve(pub ed25519.PublicKey, target string, in region.Info) {
	s.server.Unserve(pub, target, in)
	if !pub.Equal(s.own.owner.pub) || target != s.own.owner.target {
		return
	}
	path, info, ok := s.own.seeded()
	if !ok || s.ctx.Err() != nil {
		return
	}
	if err := s.server.Serve(s.ctx, pub, target, path, info); err != nil {
		s.log.Warn("cannot serve rpseed's own binary again", "path", path, "version", info.Version, "err", err)
	}
}
