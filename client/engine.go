package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/org/rustpatcher-go/internal/selfreplace"
	"github.com/org/rustpatcher-go/region"
)

// maxRemembered bounds the engine's memory of releases it already rejected
// or failed to apply; past it the memory starts afresh (and each rejection
// is logged once more).
const maxRemembered = 4096

// engine holds the state of the poll loop. It is used by one goroutine.
type engine struct {
	u       *Updater
	sources []Source
	// rejected remembers releases refused for what they are (version,
	// signature, bad bytes), so each is reported once and never retried.
	rejected map[string]bool
	// selfTestFailed remembers, by release ID, when a release whose bytes
	// verified failed its self-test on this machine. Such a release is bad
	// here whichever peer or file offers it, so it is not downloaded again
	// until selfTestRetry has passed (a hang under load may be transient).
	selfTestFailed map[[sha256.Size]byte]time.Time
	// restartAt is the pending restart time in mode At, or zero.
	restartAt time.Time
}

// selfTestRetry is how long a release that failed its self-test is left
// alone before it is tried again.
const selfTestRetry = time.Hour

func newEngine(u *Updater, sources []Source) *engine {
	return &engine{u: u, sources: sources, rejected: map[string]bool{}, selfTestFailed: map[[sha256.Size]byte]time.Time{}}
}

// candidate is a release offered by a source.
type candidate struct {
	src Source
	rel Release
	in  region.Info
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

// id names the release itself, whoever offers it: SHA-256 of its region.
func (c candidate) id() [sha256.Size]byte {
	b, _ := c.in.Marshal()
	return sha256.Sum256(b[:])
}

func (c candidate) key() string {
	h := c.id()
	id := c.name()
	if i, ok := c.rel.(identifier); ok {
		id = i.identity()
	}
	return c.src.String() + "\x00" + id + "\x00" + hex.EncodeToString(h[:])
}

// current returns the version the next update must beat: the applied one
// if any, else the running one.
func (e *engine) current() region.Info {
	u := e.u
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.applied != nil {
		return *u.applied
	}
	return u.running
}

// remember records a release as refused and reports whether it was new.
func (e *engine) remember(c candidate) bool {
	k := c.key()
	if e.rejected[k] {
		return false
	}
	if len(e.rejected) >= maxRemembered {
		clear(e.rejected)
	}
	e.rejected[k] = true
	return true
}

// acceptable reports why a release offered must not be applied, or nil.
func (e *engine) acceptable(in region.Info) error {
	if err := in.VerifySignature(e.u.pub); err != nil {
		return err
	}
	cur := e.current()
	if region.CompareVersions(in.Version, cur.Version) <= 0 {
		return fmt.Errorf("%w: %s is not above %s", ErrNotNewer, in.Version, cur.Version)
	}
	if region.IsPrerelease(in.Version) && !e.u.cfg.AllowPrerelease {
		return fmt.Errorf("%w: %s", ErrPrerelease, in.Version)
	}
	return nil
}

// poll asks every source for releases and applies the newest acceptable
// one. It returns the region of the release applied, or nil.
func (e *engine) poll(ctx context.Context) *region.Info {
	u := e.u
	var cands []candidate
	for _, src := range e.sources {
		if ctx.Err() != nil {
			return nil
		}
		rels, err := src.Releases(ctx)
		if err != nil {
			u.log.Warn("source failed", "source", src.String(), "err", err)
			u.emit(Event{Kind: EventFailed, Source: src.String(), Err: fmt.Errorf("source %s: %w", src, err)})
		}
		for _, r := range rels {
			c := candidate{src: src, rel: r, in: r.Info()}
			if err := e.acceptable(c.in); err != nil {
				if e.remember(c) {
					u.log.Info("release rejected", "version", c.in.Version, "source", c.name(), "reason", err)
					u.emit(Event{Kind: EventRejected, Release: c.in, Source: c.name(), Err: err})
				}
				continue
			}
			if !e.rejected[c.key()] && !e.selfTestFailedRecently(c) {
				cands = append(cands, c)
			}
		}
	}
	// Newest first; among equal versions keep the sources' order.
	sort.SliceStable(cands, func(i, j int) bool {
		return region.CompareVersions(cands[i].in.Version, cands[j].in.Version) > 0
	})
	for _, c := range cands {
		if ctx.Err() != nil {
			return nil
		}
		if err := e.acceptable(c.in); err != nil {
			continue // a newer one was applied in this poll
		}
		if e.selfTestFailedRecently(c) {
			continue // another copy of it failed its self-test in this poll
		}
		u.log.Info("update found", "version", c.in.Version, "source", c.name(), "size", c.in.Size+region.Size)
		u.emit(Event{Kind: EventFound, Release: c.in, Source: c.name()})
		err := e.apply(ctx, c)
		if err == nil {
			in := c.in
			return &in
		}
		if ctx.Err() != nil {
			return nil
		}
		u.emit(Event{Kind: EventFailed, Release: c.in, Source: c.name(), Err: err})
		var le *localError
		if errors.As(err, &le) {
			// Our side failed (disk full, permissions): the release
			// may be fine, and the others would fail the same way, so
			// try again at the next poll.
			u.log.Error("update failed; the executable is unchanged, will retry", "version", c.in.Version, "source", c.name(), "err", err)
			return nil
		}
		if errors.Is(err, ErrSelfTest) {
			// Remembered by release, for a while, rather than by source.
			if len(e.selfTestFailed) >= maxRemembered {
				clear(e.selfTestFailed)
			}
			e.selfTestFailed[c.id()] = u.cfg.now()
		} else {
			e.remember(c)
		}
		u.log.Warn("release refused; the executable is unchanged", "version", c.in.Version, "source", c.name(), "reason", err)
	}
	return nil
}

// selfTestFailedRecently reports whether c's release failed its self-test
// here less than selfTestRetry ago, from any source.
func (e *engine) selfTestFailedRecently(c candidate) bool {
	t, ok := e.selfTestFailed[c.id()]
	return ok && e.u.cfg.now().Sub(t) < selfTestRetry
}

// localError marks a failure on this machine's side (disk full, no
// permission) rather than of the release.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// apply downloads, verifies, self-tests and installs one release. On error
// the temporary file is gone and the executable unchanged.
func (e *engine) apply(ctx context.Context, c candidate) error {
	u := e.u
	r := &selfreplace.Replacer{Path: u.exe, FS: u.cfg.fs, Hook: u.cfg.step}
	p, err := r.Begin()
	if err != nil {
		return &localError{err}
	}
	defer p.Abort() // no-op after a successful Commit
	total := int64(c.in.Size) + region.Size
	w := &progressWriter{w: p, total: total, emit: func(done int64) {
		u.emit(Event{Kind: EventProgress, Release: c.in, Source: c.name(), Done: done, Total: total})
	}}
	rr := &releaseReader{ctx: ctx, rel: c.rel, limit: total}
	defer rr.close()
	s, err := region.Scan(ctx, io.TeeReader(rr, w))
	if w.err != nil {
		return &localError{w.err}
	}
	if err != nil {
		return fmt.Errorf("downloading %s: %w", c.name(), err)
	}
	got, err := s.Verify(u.pub)
	if err != nil {
		return fmt.Errorf("verifying %s: %w", c.name(), err)
	}
	if got != c.in {
		return fmt.Errorf("%w: %s holds version %s", ErrRegionMismatch, c.name(), got.Version)
	}
	if err := p.Finish(); err != nil {
		return &localError{err}
	}
	if err := u.cfg.selfTest(ctx, p.Name(), got); err != nil {
		return err
	}
	if err := p.Commit(); err != nil {
		if !p.Committed() {
			return &localError{err}
		}
		// The new binary is in place; only the directory sync failed.
		u.log.Warn("update in place but it may not survive a power loss", "err", err)
	}
	u.mu.Lock()
	u.applied = &got
	u.mu.Unlock()
	u.log.Info("update applied", "version", got.Version, "executable", u.exe, "previous", u.exe+selfreplace.BackupSuffix)
	// Serve the new release at once, before any restart.
	e.seed(ctx, u.exe, got)
	u.emit(Event{Kind: EventApplied, Release: got, Source: c.name()})
	return nil
}

// seed hands a verified binary to every source that serves releases.
func (e *engine) seed(ctx context.Context, path string, in region.Info) {
	for _, src := range e.sources {
		e.seedOne(ctx, src, path, in)
	}
}

// seedOne hands a verified binary to src if it serves releases.
func (e *engine) seedOne(ctx context.Context, src Source, path string, in region.Info) {
	s, ok := src.(Seeder)
	if !ok {
		return
	}
	if err := s.Seed(ctx, path, in); err != nil {
		e.u.log.Warn("seeding failed", "source", src.String(), "version", in.Version, "err", err)
	}
}

// restart execs the applied binary, after asking the app if confirm is set.
func (e *engine) restart(ctx context.Context, in region.Info, confirm bool) {
	u := e.u
	if confirm && u.cfg.ConfirmRestart != nil && !u.cfg.ConfirmRestart(ctx, in) {
		u.log.Info("restart declined by the app; the update runs at the next start", "version", in.Version)
		return
	}
	u.log.Info("restarting into the update", "version", in.Version, "executable", u.exe)
	u.emit(Event{Kind: EventRestarting, Release: in})
	err := u.cfg.restart(u.exe, os.Args, os.Environ())
	// Only reached if the restart failed (or a test hook returned).
	if err != nil {
		u.log.Error("restart failed; the update runs at the next start", "version", in.Version, "err", err)
		u.emit(Event{Kind: EventFailed, Release: in, Err: fmt.Errorf("restarting: %w", err)})
	}
}

// progressWriter writes to the temporary file, remembers a write error (so
// apply can tell a full disk from a bad release) and reports progress in
// steps of about 5%.
type progressWriter struct {
	w     io.Writer
	total int64
	done  int64
	last  int64
	err   error
	emit  func(done int64)
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.done += int64(n)
	if err != nil {
		pw.err = err
		return n, err
	}
	if pw.done == pw.total || pw.done-pw.last >= pw.total/20 {
		pw.last = pw.done
		pw.emit(pw.done)
	}
	return n, nil
}

// Retry policy for reading a release.
const (
	maxReadFailures = 4                      // consecutive failures without progress
	retryBackoff    = 100 * time.Millisecond // times the number of failures
)

// releaseReader reads exactly limit bytes of a release, reopening it at the
// offset reached when a read fails, and refuses a release that goes on past
// limit.
type releaseReader struct {
	ctx      context.Context
	rel      Release
	limit    int64
	off      int64
	rc       io.ReadCloser
	failures int
	lastErr  error
}

func (r *releaseReader) Read(b []byte) (int, error) {
	for {
		if err := r.ctx.Err(); err != nil {
			r.close()
			return 0, err
		}
		if r.rc == nil {
			rc, err := r.rel.Open(r.ctx, r.off)
			if err != nil {
				if ferr := r.fail(err); ferr != nil {
					return 0, ferr
				}
				continue
			}
			r.rc = rc
		}
		if r.off == r.limit {
			// Everything signed is here; make sure nothing follows.
			var one [1]byte
			n, _ := io.ReadFull(r.rc, one[:])
			r.close()
			if n > 0 {
				return 0, fmt.Errorf("%w (%d bytes)", ErrTooLong, r.limit-region.Size)
			}
			return 0, io.EOF
		}
		if int64(len(b)) > r.limit-r.off {
			b = b[:r.limit-r.off]
		}
		n, err := r.rc.Read(b)
		r.off += int64(n)
		if n > 0 {
			r.failures = 0
		}
		if err == nil {
			return n, nil
		}
		r.close()
		if n > 0 {
			return n, nil // reopen at the new offset on the next call
		}
		if ferr := r.fail(err); ferr != nil {
			return 0, ferr
		}
	}
}

// fail counts a failure without progress and waits before the next try; it
// returns an error once there were too many.
func (r *releaseReader) fail(err error) error {
	r.failures++
	r.lastErr = err
	if r.failures >= maxReadFailures {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: it ends after %d of %d bytes", ErrTruncated, r.off, r.limit)
		}
		return fmt.Errorf("reading at byte %d of %d, %d tries: %w", r.off, r.limit, r.failures, err)
	}
	t := time.NewTimer(time.Duration(r.failures) * retryBackoff)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *releaseReader) close() {
	if r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
}
