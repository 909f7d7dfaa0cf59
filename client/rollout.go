package client

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/region"
)

// DefaultChannel is the channel of a Config that names none.
const DefaultChannel = rollout.DefaultChannel

// checkChannel checks Config.Channel.
func (cfg Config) checkChannel() error {
	if cfg.Channel == "" {
		return nil
	}
	if err := rollout.CheckChannel(cfg.Channel); err != nil {
		return fmt.Errorf("client: Config.Channel: %w", err)
	}
	return nil
}

// Reasons of releases that the owner's rollout statement holds back, and
// of EventStale.
var (
	// errYanked means the owner's rollout statement yanked the version: no
	// node installs it.
	errYanked = errors.New("version yanked by the owner's rollout statement")
	// errRolloutHold means the owner's rollout statement does not give
	// this node the version (yet): the node's channel is on an older one,
	// its rollout is halted, or the node's bucket is not in the share of
	// nodes the rollout has reached. Such a release is looked at again at
	// every poll, as the statement changes.
	errRolloutHold = errors.New("held back by the owner's rollout statement")
	// errStale is the reason of EventStale.
	errStale = errors.New("cannot confirm this is the newest release; a network may be hiding updates")
)

// rolloutRecord is what the engine keeps about rollouts in the state file
// next to the executable (see savedState), so that a restart keeps the node's
// bucket and its replay protection.
type rolloutRecord struct {
	// Bucket is the node's rollout bucket, drawn once in [0,
	// rollout.Buckets); nil until drawn. It never leaves the machine.
	Bucket *int `json:"rollout_bucket,omitempty"`
	// Rollout is the statement held, in its text form.
	Rollout string `json:"rollout,omitempty"`
	// RolledBackFrom is the version the engine last rolled back from, for
	// the peers it asks (see rollouts.report).
	RolledBackFrom string `json:"rolled_back_from,omitempty"`
}

// rolloutSource is a Source that also offers rollout statements, such as
// a directory (files named *.rollout) and the network.
type rolloutSource interface {
	rollouts(ctx context.Context) ([]rollout.Statement, error)
}

// rolloutServer is a Source that passes the statement a node holds on to
// other nodes, and stops serving the versions it yanks, such as the
// network. It is also told what the node runs, for the owner's fleet view.
type rolloutServer interface {
	serveRollout(ctx context.Context, st rollout.Statement)
	report(running, rolledBackFrom string)
}

// rollouts is the pipeline's part in the owner's rollout statements (see
// internal/rollout): it owns the node's channel and bucket and the
// statement the node holds, decides what a release offered may do under
// it, and notices when no fresh statement comes any more.
//
// Before the first statement for this target is seen, it allows what the
// engine allowed without rollouts: the newest signed release.
type rollouts struct {
	started bool
	channel string
	bucket  int // -1 until drawn
	held    *rollout.Statement
	// stale is set once the held statement expired with no fresh one
	// after it; it is reported once.
	stale bool
	// noted remembers what was logged (refused statements, holds), so
	// that each is logged once.
	noted map[string]bool
}

// startRollouts takes in the state kept, on the first call.
func (p *pipeline) startRollouts() {
	r := &p.ro
	if r.started {
		return
	}
	r.started = true
	r.channel = cmp.Or(p.cfg.Channel, rollout.DefaultChannel)
	r.noted = map[string]bool{}
	rec := p.state.rolloutRecord
	if rec.Rollout != "" {
		st, err := rollout.Parse([]byte(rec.Rollout))
		if err == nil {
			err = st.Verify()
		}
		if err != nil {
			p.log.Warn("the rollout statement kept in the update state does not verify; waiting for a new one", "state", statePath(p.exe), "err", err)
		} else {
			r.held = &st
		}
	}
	if rec.Bucket != nil && *rec.Bucket >= 0 && *rec.Bucket < rollout.Buckets {
		r.bucket = *rec.Bucket
		p.log.Info("rollout bucket", "channel", r.channel, "bucket", r.bucket)
		return
	}
	r.bucket = -1
	if r.held != nil {
		p.drawBucket()
	}
}

// drawBucket draws the node's bucket, once for its life: when it first
// holds a statement (before, it needs none, and the state file is not
// written for it).
func (p *pipeline) drawBucket() {
	b := rand.IntN(rollout.Buckets)
	p.ro.bucket = b
	p.state.Bucket = &b
	p.saveState()
	p.log.Info("rollout bucket", "channel", p.ro.channel, "bucket", b, "drawn", true)
}

// takeRollouts asks the sources for rollout statements and takes the
// newest that rollout.Check accepts against the one held, for the trusted
// key and this target: it is kept in the state, and passed on to peers.
// Each statement refused is logged once. Then it reports, once, a held
// statement that expired with no fresh one after it.
func (p *pipeline) takeRollouts(ctx context.Context) {
	p.startRollouts()
	r := &p.ro
	now := time.Now()
	var got []rollout.Statement
	for _, src := range p.sources {
		rs, ok := src.(rolloutSource)
		if !ok {
			continue
		}
		sts, err := rs.rollouts(ctx)
		if err != nil {
			p.log.Debug("reading rollout statements", "source", src.String(), "err", err)
		}
		got = append(got, sts...)
	}
	// Newest first: the first one accepted is taken, and the older ones
	// are then refused as replays.
	// sort.SliceStable, not slices.SortStableFunc: a generic sort of a struct
	// links its own copy of the sort (docs/BENCHMARKS.md, Cost of embedding).
	sort.SliceStable(got, func(i, j int) bool { return got[i].Sequence > got[j].Sequence })
	taken := false
	for _, st := range got {
		newer, err := rollout.Check(r.held, st, p.trusted, runningTarget, now)
		if err != nil {
			p.refuseRollout(st, err)
			continue
		}
		if newer {
			r.held = &st
			taken = true
		}
	}
	if taken {
		b, _ := r.held.MarshalText()
		p.state.Rollout = string(b)
		if r.bucket < 0 {
			p.drawBucket() // saves the statement too
		} else {
			p.saveState()
		}
		p.log.Info("rollout statement taken", "target", r.held.Target, "sequence", r.held.Sequence, "expires", r.held.Expires.Format(time.RFC3339), "statement", summary(*r.held))
	}
	for _, src := range p.sources {
		p.serveRollout(ctx, src)
	}
	switch {
	case r.held == nil:
	case r.held.Expired(now) && !r.stale:
		r.stale = true
		err := fmt.Errorf("%w: the newest rollout statement seen (sequence %d) expired at %s", errStale, r.held.Sequence, r.held.Expires.Format(time.RFC3339))
		p.log.Warn(errStale.Error(), "sequence", r.held.Sequence, "expired", r.held.Expires.Format(time.RFC3339), "running", p.current().Version)
		p.emit(Event{Kind: EventStale, Release: p.current(), Err: err})
	case !r.held.Expired(now) && r.stale:
		r.stale = false
		p.log.Info("a fresh rollout statement came", "sequence", r.held.Sequence, "expires", r.held.Expires.Format(time.RFC3339))
	}
}

// serveRollout passes the statement held on to src if it serves them,
// and tells it what to report about this node.
func (p *pipeline) serveRollout(ctx context.Context, src Source) {
	s, ok := src.(rolloutServer)
	if !ok {
		return
	}
	if p.ro.held != nil {
		s.serveRollout(ctx, *p.ro.held)
	}
	s.report(p.running.Version, p.state.RolledBackFrom)
}

// refuseRollout logs a refused statement, once per statement.
func (p *pipeline) refuseRollout(st rollout.Statement, err error) {
	if !p.ro.note("refused\x00" + hex.EncodeToString(st.Signature[:])) {
		return
	}
	attrs := []any{"target", st.Target, "sequence", st.Sequence, "key", region.EncodePublicKey(st.Key), "reason", err}
	switch {
	case errors.Is(err, rollout.ErrReplay), errors.Is(err, rollout.ErrExpired):
		// Also what a peer that did not hear of the newest one yet
		// serves: worth a line, not an alarm.
		p.log.Info("rollout statement refused", attrs...)
	default:
		p.log.Warn("rollout statement refused", attrs...)
	}
}

// keepYankTarget decides, at the start where the update on trial is due
// to be rolled back, whether it stays instead: when the version before it
// is yanked by the rollout statement kept in the state, as when a yank
// moved the node down to this version. Putting that version back would
// install a version the owner yanked, which no node does; so the update
// stays, its trial ends and the failure is reported (an ERROR line and
// EventFailed). The node goes on updating to what the next statements
// give it. It reports whether the update stays; running is the update,
// which did not become healthy in starts starts.
func (p *pipeline) keepYankTarget(running region.Info, starts int) bool {
	if p.state.Rollout == "" {
		return false
	}
	st, err := rollout.Parse([]byte(p.state.Rollout))
	if err == nil {
		err = st.Verify()
	}
	if err != nil || !st.Yanked(p.state.Previous) {
		return false
	}
	bad, previous := p.state.Version, p.state.Previous
	p.state.healthy()
	p.saveState()
	err = fmt.Errorf("%s did not become healthy in %d starts (each crashed, was killed or exited without Updater.Close before it ran %v), and the version before it, %s, is yanked by the owner's rollout statement (sequence %d): %s stays, as no node installs a yanked version; a new statement or release moves it on",
		bad, starts, p.cfg.HealthyAfter, previous, st.Sequence, bad)
	p.log.Error("update did not become healthy; not rolling back to a yanked version", "version", bad, "previous", previous, "starts", starts, "sequence", st.Sequence, "reason", err)
	p.emit(Event{Kind: EventFailed, Release: running, Err: err})
	return true
}

// yanks reports whether the statement held yanks version v.
func (r *rollouts) yanks(v string) bool { return r.held != nil && r.held.Yanked(v) }

// note remembers k and reports whether it is new.
func (r *rollouts) note(k string) bool {
	if r.noted[k] {
		return false
	}
	if len(r.noted) >= maxRemembered {
		clear(r.noted)
	}
	r.noted[k] = true
	return true
}

// allows reports why the statement held, which must be set, forbids
// moving from version cur to version v, or nil. A node moves only as the statement's Decide says: up
// to the version its channel is on, if its bucket is in the rollout and
// the rollout is not halted; down only from a yanked version to the one
// the yank names; never to a yanked version; to a pre-release only when
// its channel is on one.
func (r *rollouts) allows(v, cur string, now time.Time) error {
	s := r.held
	c := region.CompareVersions(v, cur)
	if c == 0 {
		return fmt.Errorf("%w: %s is not above %s", errNotNewer, v, cur)
	}
	if s.Yanked(v) {
		return fmt.Errorf("%w: %s (statement %d)", errYanked, v, s.Sequence)
	}
	d := s.Decide(r.channel, r.bucket, cur, now)
	switch {
	case d.Downgrade && region.CompareVersions(v, d.Version) == 0:
		return nil
	case d.Downgrade:
		return fmt.Errorf("%w: %s; the statement moves this node to %s only", errRolloutHold, d.Why, d.Version)
	case c < 0:
		return fmt.Errorf("%w: %s is not above %s", errNotNewer, v, cur)
	case d.Version == "":
		return fmt.Errorf("%w: %s", errRolloutHold, d.Why)
	case region.CompareVersions(v, d.Version) > 0:
		return fmt.Errorf("%w: %s is above %s, the version channel %s is on", errRolloutHold, v, d.Version, r.channel)
	case region.IsPrerelease(v) && !region.IsPrerelease(d.Version):
		return fmt.Errorf("%w: %s, and channel %s is on a release (%s)", errPrerelease, v, r.channel, d.Version)
	}
	return nil
}

// mayAllow reports whether a release refused for err may be allowed by
// a later rollout statement: one not newer than the running version (a
// yank may move the node down to it), and, under a statement, one it
// holds back.
func (r *rollouts) mayAllow(err error) bool {
	return errors.Is(err, errNotNewer) || errors.Is(err, errRolloutHold) || errors.Is(err, errYanked) ||
		r.held != nil && errors.Is(err, errPrerelease)
}

// reportHold reports an offer that mayAllow refused, once per offer and
// statement.
func (p *pipeline) reportHold(c candidate, err error) {
	var seq uint64
	if p.ro.held != nil {
		seq = p.ro.held.Sequence
	}
	if !p.ro.note(fmt.Sprintf("hold\x00%s\x00%d", c.key(), seq)) {
		return
	}
	msg := "release rejected"
	if !errors.Is(err, errNotNewer) {
		msg = "release held back by the rollout statement"
	}
	p.log.Info(msg, "version", c.in.Version, "source", c.name(), "reason", err)
	p.emit(Event{Kind: EventRejected, Release: c.in, Source: c.name(), Err: err})
}

// summary describes a statement in one line for logs.
func summary(s rollout.Statement) string {
	var b []byte
	for _, c := range s.Channels {
		b = fmt.Appendf(b, "%s=%s@%d%%", c.Name, c.Version, c.Percent)
		if c.Ramp > 0 {
			b = fmt.Appendf(b, "+ramp(%s from %s)", c.Ramp, c.Start.Format(time.RFC3339))
		}
		if c.Halted {
			b = append(b, ",halted"...)
		}
		b = append(b, ' ')
	}
	for _, y := range s.Yanks {
		b = fmt.Appendf(b, "yank %s->%s ", y.Version, y.To)
	}
	if len(b) > 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}
