package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/org/rustpatcher-go/internal/backoff"
	"github.com/org/rustpatcher-go/internal/checked"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/internal/selfreplace"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// A pipeline is the update engine behind an Updater. It owns the whole
// sequence of an update, in this order, and all of its state:
//
//  1. verify self: the executable file must verify with the owner key and
//     hold the region the program runs with, else updates are off;
//  2. start sources: the Config's at once, the network in the background;
//  3. poll sources, every Interval and on request;
//  4. choose: the newest release that is signed by the owner, newer than
//     the running (or applied) one and not refused before, and that the
//     owner's rollout statement, if one was seen, allows (see rollouts:
//     it may also move a node down from a yanked version);
//  5. fetch it into a temporary file next to the executable, resuming
//     after a failed read;
//  6. verify hash, size and signature while fetching;
//  7. self-test: run the new file once in self-test mode;
//  8. replace the executable, keeping the previous one as a backup;
//  9. serve the new release to other nodes at once;
//  10. restart into it now, at a set time or not at all, per the Mode.
//
// It runs on one goroutine, run's. Its Updater talks to it only through a
// control: requests one way, the applied release the other.
type pipeline struct {
	// Set by newPipeline, then only read.
	cfg      options           // with defaults
	pub      ed25519.PublicKey // the key the program runs with: its own file verifies with it
	exe      string
	log      *slog.Logger
	selfTest func(ctx context.Context, path string, want region.Info) error
	ctl      *control

	// Used by run's goroutine only.
	sources   []Source
	joining   <-chan netStart // the network being joined, if it is
	network   io.Closer       // the network joined, for the Updater to leave
	netSrc    Source          // the network joined, among sources
	running   region.Info     // the verified running binary
	applied   *region.Info    // the release on disk waiting for a restart
	refused   refusals
	restartAt time.Time // the pending restart in mode At, or zero
	// After failures on this machine's side (an unwritable directory, a
	// full disk), polls wait until resume, longer after each failure in a
	// row, so that the same error is not logged every Interval.
	localFails int
	resume     time.Time
	// unwritable, when set, is why the executable's directory takes no
	// new file: polls stay quiet (see unwritable).
	unwritable *unwritable
	// The state saved next to the executable (see savedState), and when
	// the update on trial counts as healthy.
	state     savedState
	healthyAt time.Time
	trimmed   int // stage of trimAfterPoll
	// verified is the running binary's check, when startTrial already
	// made it.
	verified *selfCheck
	// trusted is the key releases must be signed with: pub, or the key
	// that rotation statements signed by pub (and its successors) moved
	// this target to.
	trusted ed25519.PublicKey
	// ro holds the owner's rollout statement and the node's bucket.
	ro rollouts
	// offered is when the network first offered each version (see
	// fallbackSource).
	offered peerOffers
}

// selfCheck is the outcome of verifySelf.
type selfCheck struct {
	in  region.Info
	id  [sha256.Size]byte
	err error
}

// newPipeline returns the pipeline that keeps the executable at exe up to
// date with releases signed by pub. Config fields left zero take their
// defaults.
func newPipeline(cfg options, pub ed25519.PublicKey, exe string, ctl *control) *pipeline {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.SelfTestTimeout <= 0 {
		cfg.SelfTestTimeout = defaultSelfTestTimeout
	}
	if cfg.HealthyAfter == 0 {
		cfg.HealthyAfter = DefaultHealthyAfter
	}
	if cfg.MaxUnhealthyStarts <= 0 {
		cfg.MaxUnhealthyStarts = defaultMaxUnhealthyStarts
	}
	if cfg.restart == nil {
		cfg.restart = restartProcess
	}
	if cfg.current == nil {
		cfg.current = region.Current
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &pipeline{
		cfg:      cfg,
		pub:      pub,
		exe:      exe,
		log:      log.With("component", "rustpatcher"),
		selfTest: cfg.selfTest,
		ctl:      ctl,
		sources:  append([]Source(nil), cfg.Sources...),
		refused:  newRefusals(),
		trusted:  pub,
	}
	for _, src := range p.sources {
		if l, ok := src.(loggedSource); ok {
			l.setLogger(p.log)
		}
	}
	if p.selfTest == nil {
		p.selfTest = func(ctx context.Context, path string, want region.Info) error {
			return runSelfTest(ctx, path, want, cfg.SelfTestTimeout, p.log)
		}
	}
	return p
}

// run is the pipeline, until ctx is done. It returns the network it
// joined, if any, for the Updater to leave.
func (p *pipeline) run(ctx context.Context) io.Closer {
	// 1. Verify self.
	var running region.Info
	var err error
	if c := p.verified; c != nil {
		running, err = c.in, c.err
	} else {
		running, _, err = verifySelf(ctx, p.exe, p.pub, p.cfg.current)
	}
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("updates are off", "reason", err)
			p.emit(Event{Kind: EventDisabled, Release: running, Err: err})
		}
		return nil
	}
	p.running = running
	p.log.Info("running binary verified, updates are on", "version", running.Version, "executable", p.exe, "mode", p.cfg.Mode.String())
	p.emit(Event{Kind: EventVerified, Release: running})
	if running.Format == region.V0 && !p.cfg.AcceptV0 {
		p.log.Info("this binary is signed in the v0 format (rustpatcher 0.2); only v1 releases will be applied (Config.AcceptV0 takes v0 ones)")
	}
	if p.healthyAt.IsZero() && p.state.New != "" {
		p.log.Info("update on trial", "version", running.Version, "start", p.state.Starts, "of", p.cfg.MaxUnhealthyStarts, "healthy_after", p.cfg.HealthyAfter)
	}
	if removed, err := selfreplace.CleanStale(p.exe, time.Hour); err == nil && len(removed) > 0 {
		p.log.Info("removed temporary files left by an interrupted update", "files", removed)
	}
	// An update would fail here: say so once, clearly, and keep serving.
	if err := p.checkWritable(); errors.Is(err, selfreplace.ErrNotWritable) {
		p.blockUnwritable(err, "")
		p.emit(Event{Kind: EventFailed, Err: err})
	} else if err != nil {
		p.localFailure(err)
		p.log.Error("updates cannot be applied here; the program goes on and serves its own release", "err", err, "next_try", p.resume.Format(time.RFC3339))
		p.emit(Event{Kind: EventFailed, Err: err})
	}

	// 2. Start sources: those of the Config serve the running binary at
	// once; the network starts beside the polling of the others, which
	// must not wait for bootstrapping.
	p.seed(ctx, p.exe, running, [sha256.Size]byte{})
	p.joining = p.joinNetwork(ctx)

	p.loop(ctx)
	if p.joining != nil {
		p.network = (<-p.joining).closer
	}
	return p.network
}

// loop polls the sources at once, then every Interval and when asked, and
// restarts when asked or when the restart of mode At is due, until ctx is
// done.
func (p *pipeline) loop(ctx context.Context) {
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	var restartAlarm, healthy alarm
	defer restartAlarm.stop()
	defer healthy.stop()
	poll := p.resume.IsZero()
	for {
		if poll {
			p.update(ctx)
			poll = false
			p.trimAfterPoll()
		}
		restartAlarm.set(p.restartAt, time.Now())
		healthy.set(p.healthyAt, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			poll = !time.Now().Before(p.resume)
		case <-p.ctl.check:
			poll = true
		case ns := <-p.joining:
			p.joining = nil
			poll = p.joined(ctx, ns)
		case <-p.ctl.restart:
			if p.applied != nil {
				p.restart(ctx, *p.applied, false)
			}
		case <-restartAlarm.c():
			restartAlarm.fired()
			p.restartIfDue(ctx)
		case <-healthy.c():
			healthy.fired()
			if !p.healthyAt.IsZero() && !time.Now().Before(p.healthyAt) {
				p.confirmHealthy("it ran " + p.cfg.HealthyAfter.String())
			}
		case <-p.ctl.healthy:
			p.confirmHealthy("the program said so")
		}
	}
}

// update is one round of steps 3 to 10.
func (p *pipeline) update(ctx context.Context) {
	if p.cfg.polling != nil {
		p.cfg.polling(true)
		defer p.cfg.polling(false)
	}
	if applied, ok := p.poll(ctx); ok {
		p.localFails, p.resume = 0, time.Time{}
		p.afterApply(ctx, applied)
	}
}

// netStart is the outcome of joining the network.
type netStart struct {
	src    Source
	closer io.Closer
	err    error
}

// joinNetwork starts joining the network in the background, unless it is
// disabled or not built in (nil).
func (p *pipeline) joinNetwork(ctx context.Context) <-chan netStart {
	if !p.cfg.Network.enabled() {
		return nil
	}
	start := func(ctx context.Context) (Source, io.Closer, error) {
		return startNetwork(ctx, p.cfg.Network, p.pub, p.log)
	}
	if p.cfg.network != nil {
		start = p.cfg.network
	}
	c := make(chan netStart, 1)
	go func() {
		src, closer, err := start(ctx)
		c <- netStart{src, closer, err}
	}()
	return c
}

// joined takes the network into use once it is up: it becomes a source
// and serves the running (or applied) binary. It reports whether the
// network became a source.
func (p *pipeline) joined(ctx context.Context, ns netStart) bool {
	p.network = ns.closer
	if ns.err != nil {
		if ctx.Err() == nil {
			p.log.Error("network did not start; using the other sources only", "err", ns.err)
			p.emit(Event{Kind: EventFailed, Err: fmt.Errorf("starting the network: %w", ns.err)})
		}
		return false
	}
	if ns.src == nil || ctx.Err() != nil {
		return false
	}
	p.sources = append(p.sources, ns.src)
	p.log.Debug("network joined", "source", ns.src.String())
	p.netSrc = ns.src
	// The statements followed before (by this build, or by the one it
	// updated from) are passed on to peers that still trust an older key.
	if ts, ok := ns.src.(trustingSource); ok {
		if stmts := p.state.rotations(); len(stmts) > 0 {
			ts.trust(ctx, p.trusted, stmts)
		}
	}
	// So is the rollout statement held; a version it yanks is not
	// served.
	p.serveRollout(ctx, ns.src)
	if !p.ro.yanks(p.current().Version) {
		p.seedOne(ctx, ns.src, p.exe, p.current(), [sha256.Size]byte{})
	}
	return true
}

// 3. Poll sources and 4. choose.

// poll asks every source for releases and applies the newest acceptable
// one, falling back to the next newest when one fails. It returns the
// release applied, if any.
func (p *pipeline) poll(ctx context.Context) (region.Info, bool) {
	cands := p.offers(ctx)
	// Newest first; among equal versions peers before fallbacks (see
	// fallbackSource), else keep the sources' order.
	sort.SliceStable(cands, func(i, j int) bool {
		if c := region.CompareVersions(cands[i].in.Version, cands[j].in.Version); c != 0 {
			return c > 0
		}
		return !isFallback(cands[i]) && isFallback(cands[j])
	})
	if p.stillUnwritable(cands) {
		return region.Info{}, false
	}
	alone := p.alone()
	for _, c := range cands {
		if ctx.Err() != nil {
			return region.Info{}, false
		}
		if p.acceptable(c.in) != nil {
			continue // a newer one was applied in this poll
		}
		switch fallbackReady(c, alone, p.offered[c.in.Version]) {
		case readyNotYet:
			p.log.Debug("waiting for a peer to offer the update", "version", c.in.Version, "source", c.name())
			continue // no peer offers it yet: wait for one a while
		case readyAlone:
			p.log.Info("no peer to ask: taking the update from the fallback source now", "version", c.in.Version, "source", c.name())
		case readyDue:
			p.log.Info("the wait for a peer to offer the update is over: taking it from the fallback source", "version", c.in.Version, "source", c.name())
		}
		if p.refused.selfTestFailedRecently(c.rel.FileID(), time.Now()) {
			continue // another copy of it failed its self-test in this poll
		}
		p.log.Info("update found", "version", c.in.Version, "source", c.name(), "size", c.in.ContentLen())
		p.emit(Event{Kind: EventFound, Release: c.in, Source: c.name()})
		err := p.apply(ctx, c)
		if err == nil {
			return c.in, true
		}
		if ctx.Err() != nil || !p.failed(c, err) {
			return region.Info{}, false
		}
	}
	return region.Info{}, false
}

// alone reports whether the network is on and up but the node has no peer
// at all (see peerCounter), or the network failed to start: then no peer
// can offer a release, and a fallback source need not wait for one. While
// the network is being joined it reports false.
func (p *pipeline) alone() bool {
	if !p.cfg.Network.enabled() || p.joining != nil {
		return false
	}
	for _, src := range p.sources {
		if pc, ok := src.(peerCounter); ok && pc.hasPeers() {
			return false
		}
	}
	return true
}

// offers returns the releases the sources offer that may be applied,
// reporting each one refused, once. It first takes in the key rotation
// statements the sources offer, then the rollout statements.
func (p *pipeline) offers(ctx context.Context) []candidate {
	p.followRotations(ctx)
	p.takeRollouts(ctx)
	var cands []candidate
	for _, src := range p.sources {
		if ctx.Err() != nil {
			return nil
		}
		rels, err := offersOf(ctx, src)
		if err != nil {
			p.log.Warn("source failed", "source", src.String(), "err", err)
			p.emit(Event{Kind: EventFailed, Source: src.String(), Err: fmt.Errorf("source %s: %w", src, err)})
		}
		for _, r := range rels {
			c := candidate{src: src, rel: r.Release, in: r.Info(), piecesVerified: r.piecesVerified}
			if err := p.acceptable(c.in); err != nil {
				if errors.Is(err, errNotNewer) && region.CompareVersions(c.in.Version, p.current().Version) == 0 {
					continue // the version running, or just applied: nothing to say
				}
				if p.ro.mayAllow(err) {
					// Not remembered as refused: a rollout statement
					// may allow it later (a yank moves a node down).
					p.reportHold(c, err)
					continue
				}
				if p.refused.rejectFor(c, err, p.trusted) {
					p.log.Info("release rejected", "version", c.in.Version, "source", c.name(), "reason", err)
					p.emit(Event{Kind: EventRejected, Release: c.in, Source: c.name(), Err: err})
				}
				continue
			}
			if src == p.netSrc {
				// Even when this copy is refused for now: the network
				// has the version (see fallbackSource).
				p.offered.saw(c.in.Version, time.Now())
			}
			if !p.refused.rejected(c) && !p.refused.selfTestFailedRecently(c.rel.FileID(), time.Now()) {
				cands = append(cands, c)
			}
		}
	}
	return cands
}

// current returns the version the next update must beat: the applied one
// if any, else the running one.
func (p *pipeline) current() region.Info {
	if p.applied != nil {
		return *p.applied
	}
	return p.running
}

// maxLocalBackoff bounds the wait after failures on this machine's side.
const maxLocalBackoff = time.Hour

// localFailure counts a failure on this machine's side and sets when the
// next poll may run: two Intervals after the first, doubling up to
// maxLocalBackoff.
func (p *pipeline) localFailure(err error) {
	p.localFails++
	wait := backoff.Policy{Base: 2 * p.cfg.Interval, Max: maxLocalBackoff}
	p.resume = time.Now().Add(wait.Delay(p.localFails, nil))
}

// acceptable reports why a release offered must not be applied, or nil:
// before a byte of it is fetched, from its signed region alone.
func (p *pipeline) acceptable(in region.Info) error {
	if err := in.VerifySignature(p.trusted); err != nil {
		if !p.trusted.Equal(p.pub) && in.VerifySignature(p.pub) == nil {
			return fmt.Errorf("%w: signed with %s, which this target moved away from to %s", ErrRotatedKey, region.EncodePublicKey(p.pub), region.EncodePublicKey(p.trusted))
		}
		return err
	}
	switch {
	case in.Format == region.V0 && !p.cfg.AcceptV0:
		return fmt.Errorf("%w (set Config.AcceptV0 to take them)", errV0)
	case in.Format == region.V1 && in.Target != runningTarget:
		return fmt.Errorf("%w: signed for %s, this is %s", errWrongTarget, in.Target, runningTarget)
	}
	cur := p.current()
	if p.ro.held != nil {
		// The owner's rollout statement rules, downgrades included.
		return p.ro.allows(in.Version, cur.Version, time.Now())
	}
	if region.CompareVersions(in.Version, cur.Version) <= 0 {
		return fmt.Errorf("%w: %s is not above %s", errNotNewer, in.Version, cur.Version)
	}
	if region.IsPrerelease(in.Version) && !p.cfg.AllowPrerelease {
		return fmt.Errorf("%w: %s", errPrerelease, in.Version)
	}
	return nil
}

// failed reports a release that could not be applied and remembers it.
// It reports whether the next candidate is worth trying in this poll: not
// after a failure on this machine's side.
func (p *pipeline) failed(c candidate, err error) bool {
	p.emit(Event{Kind: EventFailed, Release: c.in, Source: c.name(), Err: err})
	var le *localError
	if errors.As(err, &le) && p.unwritableAfter(c) {
		return false
	}
	if errors.As(err, &le) {
		// Our side failed (disk full, permissions): the release may be
		// fine, and the others would fail the same way, so try again
		// later, and later after each failure in a row.
		p.localFailure(err)
		p.log.Error("update failed on this machine's side; the executable is unchanged", "version", c.in.Version, "source", c.name(), "err", err, "next_try", p.resume.Format(time.RFC3339))
		return false
	}
	var bad *badFile
	if errors.As(err, &bad) {
		// The bytes verified but failed the self-test: this file is bad
		// here whichever source offers it, for a while.
		p.refused.failSelfTest(bad.id, time.Now())
	} else {
		p.refused.reject(c)
	}
	if r, ok := c.rel.(Rejecter); ok {
		r.Reject(err)
	}
	p.log.Warn("release refused; the executable is unchanged", "version", c.in.Version, "source", c.name(), "reason", err)
	return true
}

// 5. Fetch, 6. verify, 7. self-test, 8. replace and 9. serve.

// apply fetches, verifies, self-tests and installs one release, then
// serves it. On error the temporary file is gone and the executable
// unchanged.
func (p *pipeline) apply(ctx context.Context, c candidate) error {
	r := &selfreplace.Replacer{Path: p.exe, FS: p.cfg.fs, Hook: p.cfg.step}
	tmp, err := r.Begin()
	if err != nil {
		return &localError{err}
	}
	defer tmp.Abort() // no-op after a successful Commit
	start := time.Now()
	got, id, err := p.fetch(ctx, c, tmp)
	if err != nil {
		return err
	}
	p.log.Info("update downloaded and verified", "version", got.Version, "source", c.name(), "bytes", c.rel.Size(), "took", time.Since(start).Round(time.Millisecond))
	if err := tmp.Finish(); err != nil {
		return &localError{err}
	}
	if p.refused.rolledBack[id] {
		return fmt.Errorf("%w: %s is a file that was rolled back here", ErrRolledBack, c.name())
	}
	if p.refused.selfTestFailedRecently(id, time.Now()) {
		return fmt.Errorf("%w: %s is a file that failed it here less than %v ago", ErrSelfTest, c.name(), selfTestRetry)
	}
	// The executable header must name this machine's target: the only
	// check a v0 release gets, a second one for v1.
	if t, err := target.DetectFile(tmp.Name()); err == nil && t.String() != runningTarget {
		return fmt.Errorf("%w: %s is a %s executable, this is %s", errWrongTarget, c.name(), t, runningTarget)
	}
	if err := p.selfTest(ctx, tmp.Name(), got); err != nil {
		return &badFile{id: id, err: err}
	}
	if err := tmp.Commit(); err != nil {
		if !tmp.Committed() {
			return &localError{err}
		}
		// The new binary is in place; only the directory sync failed.
		p.log.Warn("update in place but it may not survive a power loss", "err", err)
	}
	// On trial from its first start: see savedState.
	previous := p.current().Version
	p.applied = &got
	p.ctl.setApplied(got)
	if p.cfg.HealthyAfter >= 0 {
		p.state.begin(id, got.Version, previous)
		if err := p.state.save(p.exe); err != nil {
			p.log.Warn("the update cannot be rolled back automatically", "err", err)
		}
	}
	p.log.Info("update applied", "version", got.Version, "executable", p.exe, "previous", p.exe+selfreplace.BackupSuffix)
	// Serve the new release at once, before any restart.
	p.seed(ctx, p.exe, got, id)
	p.emit(Event{Kind: EventApplied, Release: got, Source: c.name(), FileID: id})
	return nil
}

// fetch streams the release into w, reporting progress, and verifies it
// on the way: the content must have the signed digest and length, only an
// OS code signature may follow it, the region must be the one offered, and
// the file the one offered when the source named it. A length that the
// region, or the file's headers as soon as they are in, rule out fails at
// once with checked.ErrSize. It returns the region
// and the file's ID. A write error is a localError.
func (p *pipeline) fetch(ctx context.Context, c candidate, w io.Writer) (region.Info, [sha256.Size]byte, error) {
	var none [sha256.Size]byte
	total, content := c.rel.Size(), c.in.ContentLen()
	if err := c.in.CheckFileSize(total); err != nil {
		return region.Info{}, none, fmt.Errorf("%w: %s offers a file of %d bytes for %d bytes of signed content: %w", checked.ErrSize, c.name(), total, content, err)
	}
	// A release whose download writes the file itself (fileOpener)
	// writes it into the temporary file: the bytes are read through
	// only, to check them, not written twice.
	var into *os.File
	if o, ok := w.(interface{ OSFile() *os.File }); ok {
		if _, ok := c.rel.(fileOpener); ok {
			if into = o.OSFile(); into != nil {
				w = io.Discard
			}
		}
	}
	pw := &progressWriter{w: w, total: total, emit: func(done int64) {
		p.emit(Event{Kind: EventProgress, Release: c.in, Source: c.name(), Done: done, Total: total})
	}}
	rr := &releaseReader{ctx: ctx, rel: c.rel, into: into, limit: total, checkHeader: func(h []byte) error {
		if err := c.in.CheckHeader(h, total); err != nil {
			return fmt.Errorf("%w: %s offers a file of %d bytes, which its headers rule out: %w", checked.ErrSize, c.name(), total, err)
		}
		return nil
	}}
	defer rr.close()
	// A release whose source vouches that it checked every piece against
	// the signed root as it arrived is not hashed again: the scan only
	// locates the region and reads what surrounds the content. Any other
	// is hashed whole.
	vouched := c.in.Format == region.V1 && c.piecesVerified
	var s *region.Scanned
	var err error
	if vouched {
		s, err = region.ScanLayout(ctx, io.TeeReader(rr, pw))
	} else {
		s, err = region.ScanAs(ctx, io.TeeReader(rr, pw), c.in.Format)
	}
	if pw.err != nil {
		return region.Info{}, none, &localError{pw.err}
	}
	if errors.Is(err, checked.ErrWrite) {
		return region.Info{}, none, &localError{err}
	}
	if err != nil {
		return region.Info{}, none, fmt.Errorf("downloading %s: %w", c.name(), err)
	}
	var got region.Info
	if vouched {
		// c.in's signature was checked before the download (acceptable).
		got, err = c.in, s.MatchesLayout(c.in)
	} else {
		got, err = s.Verify(p.trusted)
	}
	if err != nil {
		return region.Info{}, none, fmt.Errorf("verifying %s: %w", c.name(), err)
	}
	if got != c.in {
		return region.Info{}, none, fmt.Errorf("%w: %s holds version %s", errRegionMismatch, c.name(), got.Version)
	}
	if want := c.rel.FileID(); want != none && s.FileID != want {
		return region.Info{}, none, fmt.Errorf("%w: %s delivered file %x, offered %x", checked.ErrOtherFile, c.name(), s.FileID[:8], want[:8])
	}
	return got, s.FileID, nil
}

// seed hands a verified binary to every source that serves releases;
// downloaded is its file ID when the engine wrote it from a download and
// verified it as it wrote it, zero otherwise.
func (p *pipeline) seed(ctx context.Context, path string, in region.Info, downloaded [sha256.Size]byte) {
	for _, src := range p.sources {
		p.seedOne(ctx, src, path, in, downloaded)
	}
}

// seedOne hands a verified binary to src if it serves releases or
// decodes deltas from them (downloaded as seed says). The network serves
// a binary it downloaded itself without reading it again
// (downloadSeeder).
func (p *pipeline) seedOne(ctx context.Context, src Source, path string, in region.Info, downloaded [sha256.Size]byte) {
	if b, ok := src.(baseTaker); ok {
		if err := b.takeBase(ctx, path, in); err != nil {
			p.log.Warn("cannot keep the binary as a base for deltas", "source", src.String(), "version", in.Version, "err", err)
		}
	}
	s, ok := src.(Seeder)
	if !ok {
		return
	}
	var err error
	if d, ok := src.(downloadSeeder); ok && downloaded != ([sha256.Size]byte{}) {
		err = d.seedDownloaded(ctx, path, in, downloaded)
	} else {
		err = s.Seed(ctx, path, in)
	}
	if err != nil {
		p.log.Warn("seeding failed", "source", src.String(), "version", in.Version, "err", err)
	}
}

// 10. Restart per Mode.

// afterApply acts on a freshly applied release according to the Mode.
func (p *pipeline) afterApply(ctx context.Context, applied region.Info) {
	switch p.cfg.Mode.kind {
	case modeNow:
		p.emit(Event{Kind: EventRestartScheduled, Release: applied, At: time.Now()})
		p.restart(ctx, applied, true)
	case modeAt:
		p.restartAt = nextAt(time.Now(), p.cfg.Mode.hour, p.cfg.Mode.minute)
		p.log.Info("restart scheduled", "version", applied.Version, "at", p.restartAt.Format(time.RFC3339))
		p.emit(Event{Kind: EventRestartScheduled, Release: applied, At: p.restartAt})
	default:
		p.log.Info("update applied; it runs at the next start", "version", applied.Version)
	}
}

// restartIfDue restarts into the applied release, asking the app, once
// the restart time of mode At has come.
func (p *pipeline) restartIfDue(ctx context.Context) {
	if p.restartAt.IsZero() || time.Now().Before(p.restartAt) {
		return
	}
	p.restartAt = time.Time{}
	if p.applied != nil {
		p.restart(ctx, *p.applied, true)
	}
}

// restart execs the applied binary, after asking the app if confirm is
// set. It returns only if the app declined or the restart failed (or a
// test hook returned).
func (p *pipeline) restart(ctx context.Context, in region.Info, confirm bool) {
	if confirm && p.cfg.ConfirmRestart != nil && !p.cfg.ConfirmRestart(ctx, in) {
		p.log.Info("restart declined by the app; the update runs at the next start", "version", in.Version)
		return
	}
	p.log.Info("restarting into the update", "version", in.Version, "executable", p.exe)
	p.emit(Event{Kind: EventRestarting, Release: in})
	left := p.leaveNetwork()
	if err := p.cfg.restart(p.exe, os.Args, os.Environ()); err != nil {
		p.log.Error("restart failed; the update runs at the next start", "version", in.Version, "err", err)
		p.emit(Event{Kind: EventFailed, Release: in, Err: fmt.Errorf("restarting: %w", err)})
	}
	if left {
		p.joining = p.joinNetwork(ctx) // still running: back to the network
	}
}

func (p *pipeline) emit(e Event) {
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(e)
	}
}

// A control is all that an Updater and its pipeline share: the Updater's
// requests, each held until the pipeline takes it (asking again before
// then is the same request), and the release the pipeline applied.
type control struct {
	check   chan struct{} // poll now
	restart chan struct{} // restart into the applied release now
	healthy chan struct{} // the running update is healthy

	mu      sync.Mutex
	applied *region.Info
}

func newControl() *control {
	return &control{check: make(chan struct{}, 1), restart: make(chan struct{}, 1), healthy: make(chan struct{}, 1)}
}

// request sends a request on c unless one is pending.
func request(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// setApplied publishes the release now on disk.
func (c *control) setApplied(in region.Info) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied = &in
}

// appliedRelease returns the release on disk waiting for a restart, if any.
func (c *control) appliedRelease() (region.Info, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied == nil {
		return region.Info{}, false
	}
	return *c.applied, true
}

// alarm wakes the loop for the pending restart of mode At: at most a
// minute ahead, so that the wall clock is read again and a clock change or
// a suspended machine does not shift the restart.
type alarm struct{ t *time.Timer }

// set arms the alarm for at, unless it is armed or at is zero.
func (a *alarm) set(at, now time.Time) {
	if at.IsZero() || a.t != nil {
		return
	}
	a.t = time.NewTimer(max(min(at.Sub(now), time.Minute), 0))
}

// c returns the channel the alarm fires on; nil (never) when unarmed.
func (a *alarm) c() <-chan time.Time {
	if a.t == nil {
		return nil
	}
	return a.t.C
}

// fired disarms the alarm after it fired.
func (a *alarm) fired() { a.t = nil }

func (a *alarm) stop() {
	if a.t != nil {
		a.t.Stop()
	}
}

// candidate is a release offered by a source.
type candidate struct {
	src Source
	rel Release
	in  region.Info
	// piecesVerified: the source vouches for every piece (see offer).
	piecesVerified bool
}

// name identifies the candidate's bytes as offered by its source, for logs
// and for remembering failures: two sources (or two files) may offer the
// same region with different bytes.
func (c candidate) name() string {
	if s, ok := c.rel.(fmt.Stringer); ok {
		return s.String()
	}
	return c.src.String()
}

// identifier is implemented by releases whose bytes may change under the
// same name, such as a file being copied into a directory: identity
// changes with them, so a release refused while incomplete is tried again.
type identifier interface{ identity() string }

// key names the offer: source, file (or its identity), and the file's ID,
// or the region's digest when the source did not name the file.
func (c candidate) key() string {
	h := c.rel.FileID()
	if h == ([sha256.Size]byte{}) {
		b, _ := c.in.Marshal()
		h = sha256.Sum256(b[:])
	}
	id := c.name()
	if i, ok := c.rel.(identifier); ok {
		id = i.identity()
	}
	return c.src.String() + "\x00" + id + "\x00" + hex.EncodeToString(h[:])
}

// maxRemembered bounds each memory of refusals; past it the memory starts
// afresh (and each rejection is logged once more).
const maxRemembered = 4096

// selfTestRetry is how long a release that failed its self-test is left
// alone before it is tried again.
const selfTestRetry = time.Hour

// refusals is the pipeline's memory of the releases it refused, so that
// each is reported once and not fetched again.
type refusals struct {
	// byOffer remembers offers refused for what they are (version,
	// signature, bad bytes), by candidate.key: never retried. Offers
	// refused only for their key are remembered with the key trusted
	// then (see rejectFor).
	byOffer map[string]bool
	// selfTest remembers, by file ID (the exact bytes), when a file that
	// verified failed its self-test on this machine. Such a file is bad
	// here whichever peer or directory offers it, so it is not fetched
	// again until selfTestRetry has passed (a hang under load may be
	// transient). Another file of the same release (a different OS code
	// signature) is still tried.
	selfTest map[[sha256.Size]byte]time.Time
	// rolledBack holds, by file ID, the updates rolled back here: never
	// applied again (see savedState).
	rolledBack map[[sha256.Size]byte]bool
}

func newRefusals() refusals {
	return refusals{byOffer: map[string]bool{}, selfTest: map[[sha256.Size]byte]time.Time{}, rolledBack: map[[sha256.Size]byte]bool{}}
}

// reject remembers an offer as refused and reports whether it was new.
func (r refusals) reject(c candidate) bool { return r.remember(c.key()) }

// rejectFor is reject for an offer refused, before a byte of it was
// fetched, for err while trusted was the key trusted. An offer refused only
// because it is not signed by that key is remembered with the key, not for
// good: once a rotation moves the trust to another key, it is judged
// again (and reported again if refused again), so that a release that
// arrived before its rotation statement is applied.
func (r refusals) rejectFor(c candidate, err error, trusted ed25519.PublicKey) bool {
	k := c.key()
	if errors.Is(err, region.ErrBadSignature) || errors.Is(err, ErrRotatedKey) {
		k += "\x00untrusted by " + hex.EncodeToString(trusted)
	}
	return r.remember(k)
}

// remember adds k to the offers refused and reports whether it was new.
func (r refusals) remember(k string) bool {
	if r.byOffer[k] {
		return false
	}
	if len(r.byOffer) >= maxRemembered {
		clear(r.byOffer)
	}
	r.byOffer[k] = true
	return true
}

// rejected reports whether the offer was refused before.
func (r refusals) rejected(c candidate) bool { return r.byOffer[c.key()] }

// failSelfTest remembers that the file id failed its self-test at now.
func (r refusals) failSelfTest(id [sha256.Size]byte, now time.Time) {
	if len(r.selfTest) >= maxRemembered {
		clear(r.selfTest)
	}
	r.selfTest[id] = now
}

// selfTestFailedRecently reports whether the file id failed its self-test
// here less than selfTestRetry before now, from any source. A zero id (a
// file not named yet) never did.
func (r refusals) selfTestFailedRecently(id [sha256.Size]byte, now time.Time) bool {
	if id == ([sha256.Size]byte{}) {
		return false
	}
	if r.rolledBack[id] {
		return true
	}
	t, ok := r.selfTest[id]
	return ok && now.Sub(t) < selfTestRetry
}

// badFile marks a failed self-test of a file whose bytes verified: the
// file, by ID, is bad on this machine.
type badFile struct {
	id  [sha256.Size]byte
	err error
}

func (e *badFile) Error() string { return e.err.Error() }
func (e *badFile) Unwrap() error { return e.err }

// runningTarget is this program's GOOS/GOARCH.
const runningTarget = runtime.GOOS + "/" + runtime.GOARCH

// localError marks a failure on this machine's side (disk full, no
// permission) rather than of the release.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// startTrial runs in Spawn, before the program goes on: it takes in the
// files rolled back before, and if an update is on trial (see savedState) and
// the running binary is it, counts this start before returning, so that a
// program that crashes at once still counts. At the start after
// MaxUnhealthyStarts unhealthy ones it puts the previous binary back and
// restarts into it; it returns only if that restart failed. The running
// binary's check it makes is kept for run.
func (p *pipeline) startTrial(ctx context.Context) {
	t, err := loadState(p.exe)
	if err != nil {
		p.log.Warn("reading the update state; starting afresh", "err", err)
	}
	p.state = t
	for _, bad := range t.rolledBack() {
		p.refused.rolledBack[bad] = true
	}
	if key, chain := rotation.Follow(p.pub, runningTarget, t.rotations()); len(chain) > 0 {
		p.trusted = key
	}
	if p.cfg.HealthyAfter < 0 || t.New == "" {
		return
	}
	running, id, err := verifySelf(ctx, p.exe, p.pub, p.cfg.current)
	p.verified = &selfCheck{running, id, err}
	if err != nil || !t.onTrial(id) {
		// Another binary runs than the one on trial (replaced by hand),
		// or this one does not verify: there is nothing to judge.
		p.state.healthy()
		p.saveState()
		return
	}
	p.state.Starts++
	if p.state.Starts <= p.cfg.MaxUnhealthyStarts {
		p.saveState()
		p.healthyAt = time.Now().Add(p.cfg.HealthyAfter)
		return
	}
	// Rolled back at this start: the update never became healthy.
	bad, previous, starts := p.state.Version, p.state.Previous, p.state.Starts-1
	if p.keepYankTarget(running, starts) {
		return
	}
	old := p.exe + selfreplace.BackupSuffix
	prev, err := region.VerifyFile(ctx, old, p.pub)
	if err != nil && !p.trusted.Equal(p.pub) {
		prev, err = region.VerifyFile(ctx, old, p.trusted)
	}
	if err == nil && prev.Version != previous {
		err = fmt.Errorf("%s holds version %s, not %s", old, prev.Version, previous)
	}
	if err == nil {
		err = selfreplace.Restore(p.exe, p.cfg.fs)
	}
	if err != nil {
		p.log.Error("version did not become healthy, and the previous one cannot be put back", "version", bad, "starts", starts, "err", err)
		p.emit(Event{Kind: EventFailed, Release: running, Err: fmt.Errorf("rolling back %s: %w", bad, err)})
		return
	}
	p.state.rollBack()
	p.saveState()
	p.refused.rolledBack[id] = true
	err = fmt.Errorf("%w: %s did not become healthy in %d starts (each crashed, was killed or exited without Updater.Close before it ran %v); back to %s, and this file of %s is not applied again (%s)", ErrRolledBack, bad, starts, p.cfg.HealthyAfter, previous, bad, rolledBackHint(p.exe))
	p.log.Error("update rolled back", "version", bad, "previous", previous, "starts", starts, "reason", err)
	p.emit(Event{Kind: EventRolledBack, Release: running, FileID: id, Err: err})
	p.log.Info("restarting into the previous version", "version", previous, "executable", p.exe)
	if err := p.cfg.restart(p.exe, os.Args, os.Environ()); err != nil {
		p.log.Error("restart into the previous version failed; it runs at the next start", "err", err)
		p.emit(Event{Kind: EventFailed, Err: fmt.Errorf("restarting: %w", err)})
	}
	// The previous binary is in place but this process runs the bad one
	// (the restart failed, or a test hook returned): no updates from it.
	p.verified = &selfCheck{running, id, fmt.Errorf("%w: this process still runs %s", ErrRolledBack, bad)}
}

// confirmHealthy ends the trial of the running update: it stays.
func (p *pipeline) confirmHealthy(why string) {
	if p.healthyAt.IsZero() {
		return
	}
	v := p.running.Version
	p.healthyAt = time.Time{}
	// A newer update applied meanwhile is on trial now: it stays so.
	if p.verified != nil && p.state.onTrial(p.verified.id) {
		p.state.healthy()
		p.saveState()
	}
	p.log.Info("update is healthy", "version", v, "because", why)
	p.emit(Event{Kind: EventHealthy, Release: p.running})
}

func (p *pipeline) saveState() {
	if err := p.state.save(p.exe); err != nil {
		p.log.Warn("saving the update state", "err", err)
	}
}

// rotationSource is a Source that also offers key rotation statements,
// such as a directory (files named *.rotation) and the network.
type rotationSource interface {
	rotations(ctx context.Context) ([]rotation.Statement, error)
}

// trustingSource is a Source that looks for releases signed by one key,
// such as the network, and must be told when a chain of key rotation
// statements moves the trusted key (it may pass the chain on).
type trustingSource interface {
	trust(ctx context.Context, key ed25519.PublicKey, chain []rotation.Statement)
}

// followRotations takes in the key rotation statements the sources offer:
// when, with those kept from before, a valid chain of them moves this
// target from the program's own key to another, that key is trusted from
// then on, and the old one no more. The chain is kept next to the
// executable, so that a restart keeps trusting the new key.
func (p *pipeline) followRotations(ctx context.Context) {
	// The chain followed before is kept as it is and only extended: a
	// statement by a key the chain already left is ignored (see
	// rotation.Extend), and a chain that led here from the key of the
	// build this one updated from keeps that key left (rotation.Resume).
	origin, kept := rotation.Resume(p.pub, runningTarget, p.state.rotations())
	var stmts []rotation.Statement
	for _, src := range p.sources {
		rs, ok := src.(rotationSource)
		if !ok {
			continue
		}
		got, err := rs.rotations(ctx)
		if err != nil {
			p.log.Debug("reading key rotation statements", "source", src.String(), "err", err)
		}
		stmts = append(stmts, got...)
	}
	key, chain := rotation.Extend(origin, runningTarget, kept, stmts)
	if key.Equal(p.trusted) {
		return
	}
	from := p.trusted
	p.trusted = key
	p.state.setRotations(chain)
	p.saveState()
	p.log.Warn("owner key rotated: releases must now be signed with the new key", "target", runningTarget, "from", region.EncodePublicKey(from), "to", region.EncodePublicKey(key), "statements", len(chain))
	p.emit(Event{Kind: EventKeyRotated, Key: region.EncodePublicKey(key)})
	for _, src := range p.sources {
		if ts, ok := src.(trustingSource); ok {
			ts.trust(ctx, key, chain)
		}
	}
}
