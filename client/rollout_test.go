package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/region"
)

// t0 is when the clock starts in the rollout tests that move it (see
// fromT0).
var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// fromT0 runs f in a synctest bubble whose clock starts at t0, for the
// tests that move the clock (rolloutRig.advance).
func fromT0(t *testing.T, f func(t *testing.T)) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(time.Until(t0))
		f(t)
	})
}

// rolloutRig is a rig with a log to read, polls to wait for and a bucket
// set before the start.
type rolloutRig struct {
	*rig
	polls chan struct{} // a receive per poll that reached the directory

	mu  sync.Mutex
	log bytes.Buffer
}

func newRolloutRig(t *testing.T, bucket int) *rolloutRig {
	r := &rolloutRig{rig: newRig(t), polls: make(chan struct{}, 100)}
	if bucket >= 0 {
		b, _ := json.Marshal(map[string]int{"rollout_bucket": bucket})
		if err := os.WriteFile(r.exe+stateSuffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *rolloutRig) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.Log(strings.TrimSuffix(string(b), "\n"))
	return r.log.Write(b)
}

// logged returns the lines logged so far that contain all of subs.
func (r *rolloutRig) logged(subs ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range strings.Split(r.log.String(), "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok && l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (r *rolloutRig) clock() time.Time { return time.Now() }

// advance moves the clock on by d, the engine's timers with it: only in a
// synctest bubble (see fromT0).
func (r *rolloutRig) advance(d time.Duration) { time.Sleep(d) }

// polledDir is the rig's directory source, telling each poll.
type polledDir struct {
	*dirSource
	polls chan<- struct{}
}

func (d polledDir) Releases(ctx context.Context) ([]Release, error) {
	select {
	case d.polls <- struct{}{}:
	default:
	}
	return d.dirSource.Releases(ctx)
}

func (r *rolloutRig) config(channel string) options {
	cfg := r.rig.config()
	cfg.Channel = channel
	cfg.Sources = []Source{polledDir{DirSource(r.rels).(*dirSource), r.polls}}
	cfg.Logger = slog.New(slog.NewTextHandler(r, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

// poll makes the engine poll and waits until that poll is over: the next
// one has started.
func (r *rolloutRig) poll(u *Updater) {
	r.t.Helper()
	for range 2 {
		for len(r.polls) > 0 {
			<-r.polls
		}
		u.Check()
		select {
		case <-r.polls:
		case <-time.After(20 * time.Second):
			r.t.Fatal("no poll within 20s")
		}
	}
}

// statement makes a statement for this target signed by key, issued at
// the rig's clock, expiring a week later.
func (r *rolloutRig) statement(key regiontest.Key, seq uint64, edit func(*rollout.Statement)) rollout.Statement {
	r.t.Helper()
	s := rollout.Statement{Target: runningTarget, Sequence: seq, Issued: r.clock(), Expires: r.clock().Add(7 * 24 * time.Hour)}
	if edit != nil {
		edit(&s)
	}
	if err := s.Sign(key.Private); err != nil {
		r.t.Fatal(err)
	}
	return s
}

// publish puts s in the release directory as the target's statement,
// replacing the one there, as rpsign rollout does.
func (r *rolloutRig) publish(s rollout.Statement) {
	r.t.Helper()
	b, _ := s.MarshalText()
	tmp := filepath.Join(r.t.TempDir(), "s")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.rels, "target"+rollout.FileSuffix)); err != nil {
		r.t.Fatal(err)
	}
}

// stable returns an edit that puts channel stable on v for percent.
func stable(v string, percent int, halted bool) func(*rollout.Statement) {
	return func(s *rollout.Statement) {
		s.Channels = []rollout.Channel{{Name: "stable", Version: v, Percent: percent, Halted: halted}}
	}
}

// appliedVersions lists the versions of the EventApplied events.
func (r *rig) appliedVersions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var vs []string
	for _, e := range r.events {
		if e.Kind == EventApplied {
			vs = append(vs, e.Release.Version)
		}
	}
	return vs
}

func (r *rig) wantApplied(want ...string) {
	r.t.Helper()
	if got := r.appliedVersions(); strings.Join(got, " ") != strings.Join(want, " ") {
		r.t.Fatalf("applied %q, want %q; events: %v", got, want, r.eventList())
	}
}

// TestRolloutStaged: a 25% rollout reaches a node whose bucket is under
// 25% of the buckets and not one above; raising the percentage adds the
// second one. The node takes the newest release up to the channel's
// version, not above.
func TestRolloutStaged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		bucket int
		at25   bool
	}{
		{"in", 2499, true},
		{"out", 2500, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRolloutRig(t, tc.bucket)
			r.release("a-1.5.0", 2, r.key, "1.5.0")
			r.release("b-2.0.0", 3, r.key, "2.0.0")
			r.release("c-3.0.0", 4, r.key, "3.0.0")
			r.publish(r.statement(r.key, 1, stable("2.0.0", 25, false)))
			u := r.spawn(r.config(""))
			r.poll(u)
			if tc.at25 {
				r.wantApplied("2.0.0")
			} else {
				r.wantApplied()
				r.waitEvent(0, EventRejected, func(e Event) bool {
					return e.Release.Version == "2.0.0" && errors.Is(e.Err, errRolloutHold)
				})
			}
			if len(r.logged(`msg="rollout bucket"`, "channel=stable", "bucket="+strconv.Itoa(tc.bucket))) != 1 {
				t.Error("no single \"rollout bucket\" line naming the channel and bucket")
			}
			r.publish(r.statement(r.key, 2, stable("2.0.0", 50, false)))
			r.poll(u)
			r.wantApplied("2.0.0")
			// 3.0.0 is offered all along, and never taken.
			r.waitEvent(0, EventRejected, func(e Event) bool {
				return e.Release.Version == "3.0.0" && errors.Is(e.Err, errRolloutHold)
			})
		})
	}
}

// TestRolloutRamp: a ramp from 0% to 100% over ten hours reaches the node
// of bucket 5000 after five hours, not before.
func TestRolloutRamp(t *testing.T) {
	t.Parallel()
	fromT0(t, func(t *testing.T) {
		r := newRolloutRig(t, 5000)
		r.release("b-2.0.0", 3, r.key, "2.0.0")
		r.publish(r.statement(r.key, 1, func(s *rollout.Statement) {
			s.Channels = []rollout.Channel{{Name: "stable", Version: "2.0.0", Ramp: 10 * time.Hour, Start: t0}}
		}))
		u := r.spawn(r.config(""))
		r.advance(4*time.Hour + 59*time.Minute)
		r.poll(u)
		r.wantApplied()
		r.advance(2 * time.Minute)
		r.poll(u)
		r.wantApplied("2.0.0")
	})
}

// TestRolloutHaltResume: a halt stops a rollout where it is: a node not
// reached does not move, one already on the version keeps it; resuming
// at the same percentage reaches the same nodes.
func TestRolloutHaltResume(t *testing.T) {
	t.Parallel()
	r := newRolloutRig(t, 1000)
	r.release("b-2.0.0", 3, r.key, "2.0.0")
	r.release("a-1.5.0", 2, r.key, "1.5.0")
	r.publish(r.statement(r.key, 1, stable("2.0.0", 25, true)))
	u := r.spawn(r.config(""))
	r.poll(u)
	r.wantApplied()
	if len(r.logged("release held back", "version=2.0.0", "halted")) == 0 {
		t.Error("no line saying the halted rollout holds 2.0.0 back")
	}
	r.publish(r.statement(r.key, 2, stable("2.0.0", 25, false)))
	r.poll(u)
	r.wantApplied("2.0.0")
	// Halted again on the version it runs: the node keeps it, and goes
	// neither up nor down.
	r.release("c-2.1.0", 4, r.key, "2.1.0")
	r.publish(r.statement(r.key, 3, stable("2.1.0", 100, true)))
	r.poll(u)
	r.wantApplied("2.0.0")
}

// TestRolloutChannels: a node on channel beta takes the pre-release beta
// is on; one on stable takes neither it nor a pre-release below its
// channel's version, and takes the newest release below it.
func TestRolloutChannels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ channel, want string }{{"beta", "2.1.0-rc.1"}, {"stable", "1.5.0"}} {
		t.Run(tc.channel, func(t *testing.T) {
			t.Parallel()
			r := newRolloutRig(t, 9999)
			r.release("b-2.0.0-rc.1", 2, r.key, "2.0.0-rc.1")
			r.release("c-1.5.0", 3, r.key, "1.5.0")
			r.release("d-2.1.0-rc.1", 4, r.key, "2.1.0-rc.1")
			r.publish(r.statement(r.key, 1, func(s *rollout.Statement) {
				s.Channels = []rollout.Channel{{Name: "beta", Version: "2.1.0-rc.1", Percent: 100}, {Name: "stable", Version: "2.0.0", Percent: 100}}
			}))
			u := r.spawn(r.config(tc.channel))
			r.poll(u)
			r.wantApplied(tc.want)
		})
	}
}

// TestRolloutYank: a yank moves a node that runs the yanked version to
// the one the yank names, though older: that release and no other, and
// only one signed by the owner key; no node installs a yanked version.
func TestRolloutYank(t *testing.T) {
	t.Parallel()
	r := newRolloutRig(t, 0)
	evil := regiontest.NewKey(t)
	r.release("w-0.9.0-evil", 2, evil, "0.9.0")
	r.release("x-0.8.0", 3, r.key, "0.8.0")
	r.release("y-0.9.5", 4, r.key, "0.9.5")
	r.release("z-2.0.0", 5, r.key, "2.0.0")
	r.publish(r.statement(r.key, 1, func(s *rollout.Statement) {
		stable("2.0.0", 100, false)(s)
		s.Yanks = []rollout.Yank{{Version: "1.0.0", To: "0.9.0"}, {Version: "2.0.0", To: "1.0.0"}}
	}))
	u := r.spawn(r.config(""))
	r.poll(u)
	// 0.9.0 is only offered signed by another key: nothing to move to.
	r.wantApplied()
	r.waitEvent(0, EventRejected, func(e Event) bool {
		return e.Release.Version == "0.9.0" && errors.Is(e.Err, region.ErrBadSignature)
	})
	r.waitEvent(0, EventRejected, func(e Event) bool {
		return e.Release.Version == "2.0.0" && errors.Is(e.Err, errYanked)
	})
	r.waitEvent(0, EventRejected, func(e Event) bool {
		return e.Release.Version == "0.9.5" && errors.Is(e.Err, errRolloutHold)
	})
	r.release("w-0.9.0", 6, r.key, "0.9.0")
	r.poll(u)
	r.wantApplied("0.9.0")
	r.poll(u)
	r.wantApplied("0.9.0")
}

// TestRolloutYankApplied: a node that applied V and waits for a restart
// moves to W when V is yanked to W.
func TestRolloutYankApplied(t *testing.T) {
	t.Parallel()
	r := newRolloutRig(t, 0)
	r.release("a-1.0.1", 2, r.key, "1.0.1")
	r.release("b-2.0.0", 3, r.key, "2.0.0")
	u := r.spawn(r.config(""))
	r.poll(u) // no statement yet: as without rollouts
	r.wantApplied("2.0.0")
	r.publish(r.statement(r.key, 1, func(s *rollout.Statement) {
		stable("2.0.0", 100, false)(s)
		s.Yanks = []rollout.Yank{{Version: "2.0.0", To: "1.0.1"}}
	}))
	r.poll(u)
	r.wantApplied("2.0.0", "1.0.1")
	if got, _ := u.Applied(); got.Version != "1.0.1" {
		t.Errorf("Applied is %s, want 1.0.1", got.Version)
	}
}

// TestRolloutRefused: a statement replayed, signed by another key, for
// another target, expired, or of the held sequence with other content is
// refused with a line saying so, once, and changes nothing: not the
// state, not what the node applies. A restart keeps the replay
// protection.
func TestRolloutRefused(t *testing.T) {
	t.Parallel()
	evil := regiontest.NewKey(t)
	other := "linux/arm64"
	if runningTarget == other {
		other = "linux/amd64"
	}
	for _, tc := range []struct {
		name   string
		make   func(r *rolloutRig) rollout.Statement
		reason string
	}{
		{"replayed", func(r *rolloutRig) rollout.Statement { return r.statement(r.key, 4, stable("2.0.0", 100, false)) }, "older than the one held"},
		{"other key", func(r *rolloutRig) rollout.Statement { return r.statement(evil, 9, stable("2.0.0", 100, false)) }, "signed by another key"},
		{"other target", func(r *rolloutRig) rollout.Statement {
			return r.statement(r.key, 9, func(s *rollout.Statement) { stable("2.0.0", 100, false)(s); s.Target = other })
		}, "for another target"},
		{"expired", func(r *rolloutRig) rollout.Statement {
			return r.statement(r.key, 9, func(s *rollout.Statement) {
				stable("2.0.0", 100, false)(s)
				s.Issued, s.Expires = t0.Add(-2*time.Hour), t0.Add(-time.Hour)
			})
		}, "expired"},
		{"conflict", func(r *rolloutRig) rollout.Statement { return r.statement(r.key, 5, stable("2.0.0", 100, false)) }, "conflicts with the one held"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRolloutRig(t, 0)
			r.release("b-2.0.0", 3, r.key, "2.0.0")
			r.publish(r.statement(r.key, 5, stable("1.0.0", 100, false)))
			u := r.spawn(r.config(""))
			r.poll(u)
			u.Close()
			state, err := os.ReadFile(r.exe + stateSuffix)
			if err != nil {
				t.Fatal(err)
			}
			r.publish(tc.make(r))
			u = r.spawn(r.config(""))
			r.poll(u)
			r.poll(u)
			lines := r.logged(`msg="rollout statement refused"`, tc.reason)
			if len(lines) != 1 {
				t.Errorf("%d lines refusing the statement (%q), want 1:\n%s", len(lines), tc.reason, strings.Join(r.logged("rollout"), "\n"))
			}
			r.wantApplied()
			if now, _ := os.ReadFile(r.exe + stateSuffix); !bytes.Equal(now, state) {
				t.Errorf("the state changed:\n%s\nwas\n%s", now, state)
			}
		})
	}
}

// TestRolloutStale: once the statement held expired with no fresh one,
// the node warns once and emits EventStale once, and keeps obeying it; a
// fresh statement clears it, and the next expiry warns again.
func TestRolloutStale(t *testing.T) {
	t.Parallel()
	fromT0(t, func(t *testing.T) {
		r := newRolloutRig(t, 9000)
		r.release("b-2.0.0", 3, r.key, "2.0.0")
		r.publish(r.statement(r.key, 1, func(s *rollout.Statement) {
			stable("2.0.0", 25, false)(s)
			s.Expires = t0.Add(time.Hour)
		}))
		u := r.spawn(r.config(""))
		r.poll(u)
		r.advance(time.Hour)
		r.poll(u)
		r.poll(u)
		const warning = "cannot confirm this is the newest release; a network may be hiding updates"
		if n := len(r.logged("level=WARN", warning)); n != 1 {
			t.Errorf("%d stale warnings, want 1", n)
		}
		if n := r.countEvents(EventStale); n != 1 {
			t.Errorf("%d stale events, want 1", n)
		}
		r.wantApplied() // still under the statement: out of the 25%
		r.publish(r.statement(r.key, 2, stable("2.0.0", 25, false)))
		r.poll(u)
		if len(r.logged("a fresh rollout statement came")) != 1 {
			t.Error("the fresh statement was not noted")
		}
		r.advance(8 * 24 * time.Hour)
		r.poll(u)
		if n := r.countEvents(EventStale); n != 2 {
			t.Errorf("%d stale events after the second expiry, want 2", n)
		}
	})
}

// TestRolloutBucket: a node draws its bucket once and keeps it across
// restarts; a bad channel is refused by Spawn.
func TestRolloutBucket(t *testing.T) {
	t.Parallel()
	r := newRolloutRig(t, -1)
	bucket := func() int {
		t.Helper()
		var rec rolloutRecord
		b, err := os.ReadFile(r.exe + stateSuffix)
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil || rec.Bucket == nil {
			t.Fatalf("no bucket in the state: %v", err)
		}
		return *rec.Bucket
	}
	u := r.spawn(r.config(""))
	r.poll(u)
	u.Close()
	if _, err := os.Stat(r.exe + stateSuffix); err == nil {
		t.Fatal("a node that saw no rollout statement wrote a state file")
	}
	r.publish(r.statement(r.key, 1, stable("1.0.0", 100, false)))
	u = r.spawn(r.config(""))
	r.poll(u)
	u.Close()
	b := bucket()
	if b < 0 || b >= rollout.Buckets {
		t.Fatalf("bucket %d out of range", b)
	}
	u = r.spawn(r.config(""))
	r.poll(u)
	if bucket() != b {
		t.Errorf("the bucket changed from %d to %d across a restart", b, bucket())
	}
	if len(r.logged(`msg="rollout bucket"`, "bucket="+strconv.Itoa(b))) != 2 {
		t.Error("the start that drew the bucket and the next do not both log it")
	}

	cfg := r.config("Beta!")
	if _, err := spawn(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "Config.Channel") {
		t.Errorf("Spawn with channel %q: %v, want an error naming Config.Channel", cfg.Channel, err)
	}
}

// servingDir is the rig's directory source that also passes statements on
// and takes reports, as the network does.
type servingDir struct {
	polledDir
	mu       sync.Mutex
	served   []uint64
	reported [2]string
}

func (d *servingDir) serveRollout(_ context.Context, st rollout.Statement) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.served) == 0 || d.served[len(d.served)-1] != st.Sequence {
		d.served = append(d.served, st.Sequence)
	}
}

func (d *servingDir) report(running, rolledBackFrom string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reported = [2]string{running, rolledBackFrom}
}

// TestRolloutPassedOn: the statement a node holds is passed on to the
// sources that serve statements, each new one as it is taken and the one
// kept from before at the next start; they are told the version running
// and the one last rolled back from.
func TestRolloutPassedOn(t *testing.T) {
	t.Parallel()
	r := newRolloutRig(t, 0)
	b, _ := json.Marshal(map[string]any{"rollout_bucket": 0, "rolled_back_from": "1.1.0"})
	if err := os.WriteFile(r.exe+stateSuffix, b, 0o644); err != nil {
		t.Fatal(err)
	}
	src := &servingDir{polledDir: polledDir{DirSource(r.rels).(*dirSource), r.polls}}
	cfg := r.config("")
	cfg.Sources = []Source{src}
	r.publish(r.statement(r.key, 1, stable("1.0.0", 100, false)))
	u := r.spawn(cfg)
	r.poll(u)
	r.publish(r.statement(r.key, 2, stable("1.0.0", 100, false)))
	r.poll(u)
	u.Close()
	os.Remove(filepath.Join(r.rels, "target"+rollout.FileSuffix))
	u = r.spawn(cfg)
	r.poll(u)
	src.mu.Lock()
	defer src.mu.Unlock()
	if got := fmt.Sprint(src.served); got != "[1 2]" {
		t.Errorf("statements passed on: %s, want [1 2] (the second kept across the restart)", got)
	}
	if src.reported != [2]string{"1.0.0", "1.1.0"} {
		t.Errorf("reported %q, want running 1.0.0 and rolled back from 1.1.0", src.reported)
	}
}

// TestRolledBackFrom: a rollback keeps the version it rolled back from,
// for the fleet report, in the state file.
func TestRolledBackFrom(t *testing.T) {
	t.Parallel()
	exe := filepath.Join(t.TempDir(), "prog")
	var tr savedState
	tr.begin([32]byte{1}, "2.0.0", "1.0.0")
	tr.rollBack()
	if err := tr.save(exe); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(exe)
	if err != nil || got.RolledBackFrom != "2.0.0" {
		t.Errorf("rolled back from %q, %v; want 2.0.0", got.RolledBackFrom, err)
	}
}
