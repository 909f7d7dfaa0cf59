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
	"strings"
	"time"

	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/releasedir"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// server is what the directory watcher serves releases, key rotation
// statements and rollout statements with; *p2p.Node implements it.
type server interface {
	Serve(ctx context.Context, pub ed25519.PublicKey, target, path string, in region.Info) error
	Unserve(pub ed25519.PublicKey, target string, in region.Info)
	ServeRotations(ctx context.Context, stmts []rotation.Statement) error
	ServeRollout(ctx context.Context, st rollout.Statement) error
}

// deltaMaker makes the compressed pieces of a served release and its
// deltas from older files; *p2p.Node implements it.
type deltaMaker interface {
	MakeDeltas(pub ed25519.PublicKey, target string, in region.Info, bases []string)
}

// An owner is one owner key whose releases rpseed serves for one target. A
// target may have several owners (a seed may serve several apps), and an
// owner key may sign several targets.
type owner struct {
	target string // GOOS/GOARCH
	pub    ed25519.PublicKey
}

// id is the map key of the owner: key and target.
func (o owner) id() string { return string(o.pub) + "\x00" + o.target }

// String names the owner in logs and errors as TARGET=KEY.
func (o owner) String() string { return o.target + "=" + region.EncodePublicKey(o.pub) }

// fileState is what the watcher made of one file in the directory.
type fileState struct {
	owner   *owner // nil when the file is not a release of any configured owner
	info    region.Info
	skipErr error
}

// watcher serves the newest verified release of each owner (key and target)
// found in a directory, rescanning it for new, changed and removed files.
// It also serves the key rotation statements in the directory that move a
// configured owner's target to a new key, and from then on serves that
// key's releases too (see followRotations), and the newest rollout
// statement of each owner, whose yanked versions it no longer serves (see
// followRollouts).
type watcher struct {
	dir        *releasedir.Dir
	configured []owner // given with --pub (and rpseed's own)
	owners     []owner // configured, and the keys statements moved them to
	srv        server
	log        *slog.Logger

	rotationErr string          // the last error reading statements, logged once
	unfollowed  map[string]bool // statements logged as moving no owner, by signature

	rollouts         *servedRollouts
	rolloutErr       string          // the last error reading rollout statements, logged once
	unservedRollouts map[string]bool // rollout statements logged as not served, by signature
	yankedFiles      map[string]bool // files logged as yanked, by name

	files  map[string]*fileState // by file name, for the files listed last
	served map[string]servedFile // by owner.id

	// deltas, if set, is told after each scan to make deltas to each
	// release served from the maxBases newest older releases of its owner
	// in the directory.
	deltas   deltaMaker
	maxBases int

	// pubFrom names where the keys came from in messages: --pub or
	// RPSEED_PUB.
	pubFrom string
	// secretPub is set when a file showed that a key given as a public
	// key is a secret key: rpseed refuses to start on it.
	secretPub *secretPubError
}

// secretPubError means a value given as an owner public key is a secret
// key: a file in the directory verifies with the public key derived from
// it. rpsign verify refuses the same mistake.
type secretPubError struct {
	from, target, file, derived string
}

func (e *secretPubError) Error() string {
	return fmt.Sprintf("%s %s holds a secret key (the owner key of public key %s, which %s is signed with), not a public key. Keep it secret, and pass the public key instead: %s %s=%s (rpsign pub prints it)",
		e.from, e.target, e.derived, e.file, e.from, e.target, e.derived)
}

type servedFile struct {
	name  string
	owner owner
	info  region.Info
}

func newWatcher(dir string, owners []owner, srv server, log *slog.Logger) *watcher {
	return &watcher{
		dir: releasedir.New(dir), configured: owners, owners: owners, srv: srv, log: log,
		unfollowed: map[string]bool{}, files: map[string]*fileState{}, served: map[string]servedFile{},
		rollouts: &servedRollouts{}, unservedRollouts: map[string]bool{}, yankedFiles: map[string]bool{},
		pubFrom: "--pub",
	}
}

// followRotations reads the key rotation statements in the directory and
// serves those that move a configured owner's target on to another key
// (a chain, see rotation.Follow); the releases of each key a chain moves
// through are served from then on, with no --pub for it. A statement that
// moves no configured owner is logged once and not served: apps trust no
// key rpseed does not serve.
func (w *watcher) followRotations(ctx context.Context) {
	stmts, err := w.dir.Rotations(ctx)
	if msg := fmt.Sprint(err); err != nil && msg != w.rotationErr {
		w.log.Warn("reading key rotation statements", "err", err)
		w.rotationErr = msg
	} else if err == nil {
		w.rotationErr = ""
	}
	owners := slices.Clone(w.configured)
	var serve []rotation.Statement
	followed := map[[ed25519.SignatureSize]byte]bool{}
	for _, o := range w.configured {
		_, chain := rotation.Follow(o.pub, o.target, stmts)
		for _, st := range chain {
			if !followed[st.Signature] {
				followed[st.Signature] = true
				serve = append(serve, st)
			}
			owners = withOwner(owners, owner{target: st.Target, pub: st.To})
		}
	}
	for _, st := range stmts {
		if k := string(st.Signature[:]); !followed[st.Signature] && !w.unfollowed[k] {
			w.unfollowed[k] = true
			w.log.Warn("not serving key rotation statement: it moves no key given with --pub, or does not verify", "target", st.Target, "from", region.EncodePublicKey(st.From), "to", region.EncodePublicKey(st.To), "sequence", st.Sequence)
		}
	}
	if len(serve) > 0 {
		if err := w.srv.ServeRotations(ctx, serve); err != nil && !stopping(ctx, err) {
			w.log.Error("cannot serve key rotation statements", "err", err)
		}
	}
	same := func(a, b owner) bool { return a.id() == b.id() }
	if !slices.EqualFunc(owners, w.owners, same) {
		for _, o := range owners {
			if !slices.ContainsFunc(w.owners, func(h owner) bool { return same(h, o) }) {
				w.log.Info("key rotation: serving releases signed by the new key", "target", o.target, "owner", region.EncodePublicKey(o.pub))
			}
		}
		w.owners = owners
		w.files = map[string]*fileState{} // identify every file again
	}
}

// scan looks at the directory once and serves what changed. It returns the
// number of releases served.
func (w *watcher) scan(ctx context.Context) (int, error) {
	w.followRotations(ctx)
	w.followRollouts(ctx, time.Now())
	entries, err := w.dir.List(ctx)
	if err != nil {
		return len(w.served), fmt.Errorf("reading %s: %w", w.dir.Path(), err)
	}
	files := make(map[string]*fileState, len(entries))
	for _, e := range entries {
		st := w.files[e.Name]
		if st == nil || e.Changed {
			st = w.identify(e)
			if st.skipErr != nil {
				w.log.Warn("not serving file", "file", e.Name, "reason", st.skipErr)
			}
		}
		files[e.Name] = st
	}
	w.files = files

	// The newest release per owner wins.
	// Entries come in name order, which breaks ties between equal
	// versions.
	best := map[string]servedFile{}
	for _, e := range entries {
		st := files[e.Name]
		if st.owner == nil {
			continue
		}
		id := st.owner.id()
		if w.rollouts.yanked(*st.owner, st.info.Version) {
			if !w.yankedFiles[e.Name] {
				w.yankedFiles[e.Name] = true
				w.log.Warn("not serving file: its version is yanked by the rollout statement", "file", e.Name, "target", st.owner.target, "version", st.info.Version)
			}
			continue
		}
		if cur, ok := best[id]; !ok || region.CompareVersions(st.info.Version, cur.info.Version) > 0 {
			best[id] = servedFile{name: e.Name, owner: *st.owner, info: st.info}
		}
	}
	for id, sf := range w.served {
		if b, ok := best[id]; !ok || b.info != sf.info {
			w.srv.Unserve(sf.owner.pub, sf.owner.target, sf.info)
			delete(w.served, id)
		}
	}
	ids := make([]string, 0, len(best))
	for id := range best {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return strings.Compare(best[a].owner.String(), best[b].owner.String()) })
	for _, id := range ids {
		b := best[id]
		if _, ok := w.served[id]; ok {
			continue
		}
		if err := w.srv.Serve(ctx, b.owner.pub, b.owner.target, filepath.Join(w.dir.Path(), b.name), b.info); err != nil {
			if stopping(ctx, err) {
				return len(w.served), err
			}
			w.log.Error("cannot serve release", "file", b.name, "target", b.owner.target, "owner", region.EncodePublicKey(b.owner.pub), "err", err)
			delete(w.files, b.name) // look again next time
			continue
		}
		w.served[id] = b
		w.log.Info("release found", "file", b.name, "target", b.owner.target, "owner", region.EncodePublicKey(b.owner.pub), "version", b.info.Version)
	}
	w.makeDeltas()
	return len(w.served), nil
}

// makeDeltas tells w.deltas, for each release served, the older releases
// of its owner and target in the directory, newest first, at most
// w.maxBases: the node makes (once) the deltas from each to the release.
func (w *watcher) makeDeltas() {
	if w.deltas == nil {
		return
	}
	for id, sf := range w.served {
		var older []servedFile
		for name, st := range w.files {
			if st.owner != nil && st.owner.id() == id && region.CompareVersions(st.info.Version, sf.info.Version) < 0 {
				older = append(older, servedFile{name: name, info: st.info})
			}
		}
		slices.SortFunc(older, func(a, b servedFile) int {
			if c := region.CompareVersions(b.info.Version, a.info.Version); c != 0 {
				return c
			}
			return strings.Compare(a.name, b.name)
		})
		bases := []string{}
		for _, o := range older[:min(len(older), w.maxBases)] {
			bases = append(bases, filepath.Join(w.dir.Path(), o.name))
		}
		w.deltas.MakeDeltas(sf.owner.pub, sf.owner.target, sf.info, bases)
	}
}

// identify verifies the listed file with every configured key and says
// which owner it is a release of.
func (w *watcher) identify(e releasedir.Entry) *fileState {
	o, in, err := w.ownerOf(e)
	return &fileState{owner: o, info: in, skipErr: err}
}

// ownerOf returns the owner the listed file is a release of, and its
// region.
func (w *watcher) ownerOf(e releasedir.Entry) (*owner, region.Info, error) {
	if e.Err != nil {
		return nil, region.Info{}, e.Err
	}
	var matches []owner
	var info region.Info
	var lastErr error
	verified := map[string]bool{} // by key: several owners may share one
	for _, o := range w.owners {
		ok, tried := verified[string(o.pub)]
		if !tried {
			in, err := e.Verify(o.pub)
			if err != nil {
				lastErr = err
			} else {
				info = in
			}
			ok = err == nil
			verified[string(o.pub)] = ok
		}
		if ok {
			matches = append(matches, o)
		}
	}
	if len(matches) == 0 {
		if err := w.secretInstead(e); err != nil {
			return nil, region.Info{}, err
		}
		return nil, region.Info{}, fmt.Errorf("verifies with none of the configured keys (%w)", lastErr)
	}
	t, err := fileTarget(e.Path, info)
	if err != nil {
		if errors.Is(err, target.ErrUnknownFormat) && len(matches) == 1 && info.Target == "" {
			// A v0 release names no target: one owner, so its target.
			return &matches[0], info, nil
		}
		if errors.Is(err, target.ErrUnknownFormat) {
			return nil, region.Info{}, fmt.Errorf("signed with a key shared by %v, and its target cannot be told: %w", ownerTargets(matches), err)
		}
		return nil, region.Info{}, err
	}
	for i, m := range matches {
		if m.target == t.String() {
			return &matches[i], info, nil
		}
	}
	how := "built for"
	if info.Target != "" {
		how = "signed for"
	}
	return nil, region.Info{}, fmt.Errorf("%s %s, and its key is given with --pub only for %v: add --pub %s=%s to serve it, or remove the file",
		how, t, ownerTargets(matches), t, region.EncodePublicKey(matches[0].pub))
}

// secretInstead returns a secretPubError when the file verifies with the
// public key of a configured key taken as a secret key (its seed), and
// remembers it.
func (w *watcher) secretInstead(e releasedir.Entry) error {
	for _, o := range w.configured {
		derived := ed25519.NewKeyFromSeed(o.pub).Public().(ed25519.PublicKey)
		if _, err := e.Verify(derived); err == nil {
			err := &secretPubError{from: w.pubFrom, target: o.target, file: e.Name, derived: region.EncodePublicKey(derived)}
			w.secretPub = err
			return err
		}
	}
	return nil
}

// ownerTargets lists the owners' targets.
func ownerTargets(owners []owner) []string {
	targets := make([]string, len(owners))
	for i, o := range owners {
		targets[i] = o.target
	}
	return targets
}

// fileTarget returns the target of the release at path: the one its region
// is signed for (format v1), which must agree with its executable header
// when that names one, or else the one its header names. An error wraps
// target.ErrUnknownFormat when neither tells.
func fileTarget(path string, in region.Info) (target.Target, error) {
	f, err := os.Open(path)
	if err != nil {
		return target.Target{}, err
	}
	defer f.Close()
	built, derr := target.Detect(f)
	if in.Target == "" {
		return built, derr
	}
	signed, err := target.Parse(in.Target)
	if err != nil {
		return target.Target{}, fmt.Errorf("signed for %q: %w", in.Target, err)
	}
	if derr == nil && built != signed {
		return target.Target{}, fmt.Errorf("signed for %s, but built for %s (its header says so): every node would refuse it; sign the %s build for %s", signed, built, built, built)
	}
	return signed, nil
}

// stopping reports whether err, from the node, says that rpseed is
// stopping, or restarting into its own update (its node closes first):
// nothing is wrong with the file or statement then, and no error is logged.
func stopping(ctx context.Context, err error) bool {
	return errors.Is(err, p2p.ErrClosed) || ctx.Err() != nil
}

// watch scans the directory every interval until ctx is done.
func (w *watcher) watch(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func(time.Time) {
		if _, err := w.scan(ctx); err != nil && !stopping(ctx, err) {
			w.log.Error("scanning the release directory", "err", err)
		}
	})
}
