package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/region"
)

// DefaultUnhealthyAfter is the default of --unhealthy-after.
const DefaultUnhealthyAfter = 10 * time.Minute

// announceWarnEvery is the least time between two warnings about failed
// announcements.
const announceWarnEvery = time.Minute

// health judges whether the seed does its job: it serves a release, it has
// a peer, and its announcements in the DHT succeed.
type health struct {
	peerID  string
	version string
	start   time.Time
	// after is how long announcements may fail (or not happen) before the
	// seed is unhealthy, counted from start.
	after time.Duration
	stats func() p2p.Stats
	// fleet and rollouts, if set, add the fleet view and the rollout
	// statements served to the report.
	fleet    *fleet
	rollouts func() []rollout.Statement
}

// healthReport is the JSON body of /healthz.
type healthReport struct {
	// Status is "ok" or "unhealthy".
	Status string `json:"status"`
	// Reasons says why the seed is unhealthy, one sentence each.
	Reasons       []string `json:"reasons,omitempty"`
	PeerID        string   `json:"peer_id"`
	Version       string   `json:"version"`
	UptimeSeconds int64    `json:"uptime_seconds"`
	Peers         int      `json:"peers"`
	Releases      int      `json:"releases"`
	ActiveUploads int      `json:"active_uploads"`
	Announcements uint64   `json:"announcements"`
	// AnnounceFailures counts failed announcements since the start.
	AnnounceFailures uint64 `json:"announce_failures"`
	// LastAnnounce is when an announcement last succeeded (absent if none
	// did), LastAnnounceError the last failure's error.
	LastAnnounce      *time.Time `json:"last_announce,omitempty"`
	LastAnnounceError string     `json:"last_announce_error,omitempty"`
	// Warnings are what the owner should act on that does not stop the
	// seed from doing its job, such as an expired rollout statement.
	Warnings []string `json:"warnings,omitempty"`
	// Rollouts are the rollout statements served.
	Rollouts []rolloutStatus `json:"rollouts,omitempty"`
	// Fleet counts what the nodes that asked for rollout statements
	// reported (unauthenticated).
	Fleet *fleetView `json:"fleet,omitempty"`
}

// rolloutStatus is one rollout statement served, in /healthz.
type rolloutStatus struct {
	Target   string          `json:"target"`
	Owner    string          `json:"owner"`
	Sequence uint64          `json:"sequence"`
	Expires  time.Time       `json:"expires"`
	Expired  bool            `json:"expired"`
	Channels []channelStatus `json:"channels"`
	Yanks    []rollout.Yank  `json:"yanks,omitempty"`
}

// channelStatus is one channel of a rollout statement, in /healthz.
type channelStatus struct {
	Name     string  `json:"name"`
	Version  string  `json:"version"`
	Percent  int     `json:"percent"`
	ShareNow float64 `json:"share_now_percent"`
	Halted   bool    `json:"halted"`
}

// check returns the seed's health at now.
func (h *health) check(now time.Time) healthReport {
	st := h.stats()
	r := healthReport{
		Status:           "ok",
		PeerID:           h.peerID,
		Version:          h.version,
		UptimeSeconds:    int64(now.Sub(h.start) / time.Second),
		Peers:            st.Peers,
		Releases:         st.Served,
		ActiveUploads:    st.ActiveUploads,
		Announcements:    st.Provides,
		AnnounceFailures: st.ProvideErrors,
	}
	if !st.LastProvide.IsZero() {
		t := st.LastProvide.UTC()
		r.LastAnnounce = &t
	}
	failing := st.ProvideError != nil && st.LastProvideError.After(st.LastProvide)
	if failing {
		r.LastAnnounceError = st.ProvideError.Error()
	}
	if st.Served == 0 {
		r.Reasons = append(r.Reasons, "serves no release: no file in --dir verifies with a --pub key for its target (rpseed logs why at WARN for each file), or --dir is empty")
	}
	if st.Peers == 0 {
		r.Reasons = append(r.Reasons, "no connected peer: give --bootstrap addresses of other nodes, and check that TCP and UDP port 4001 (or the --listen ports) are reachable")
	}
	since := st.LastProvide
	if since.Before(h.start) {
		since = h.start
	}
	if st.Served > 0 && (st.LastProvide.IsZero() || failing) && now.Sub(since) > h.after {
		what := "since rpseed started"
		if !st.LastProvide.IsZero() {
			what = "since " + st.LastProvide.UTC().Format(time.RFC3339)
		}
		reason := fmt.Sprintf("no announcement in the DHT has succeeded %s (%v, more than --unhealthy-after %v)", what, now.Sub(since).Round(time.Second), h.after)
		if failing {
			reason += ": " + st.ProvideError.Error()
		} else if st.Quiet {
			reason += ": AutoNAT finds this seed unreachable and it has no relay address, so it announces nothing; open TCP and UDP port 4001 (or the --listen ports), or give it --relay if others can dial it"
		}
		r.Reasons = append(r.Reasons, reason)
	}
	if len(r.Reasons) > 0 {
		r.Status = "unhealthy"
	}
	if h.rollouts != nil {
		for _, st := range h.rollouts() {
			rs := rolloutStatus{Target: st.Target, Owner: region.EncodePublicKey(st.Key), Sequence: st.Sequence,
				Expires: st.Expires.UTC(), Expired: st.Expired(now), Channels: []channelStatus{}, Yanks: st.Yanks}
			for _, c := range st.Channels {
				rs.Channels = append(rs.Channels, channelStatus{Name: c.Name, Version: c.Version, Percent: c.Percent,
					ShareNow: float64(c.Share(now)) * 100 / rollout.Buckets, Halted: c.Halted})
			}
			r.Rollouts = append(r.Rollouts, rs)
			if rs.Expired {
				r.Warnings = append(r.Warnings, fmt.Sprintf("the rollout statement of %s (sequence %d) expired at %s: apps warn that they cannot confirm they run the newest release; re-sign it with rpsign rollout --refresh",
					st.Target, st.Sequence, st.Expires.UTC().Format(time.RFC3339)))
			}
		}
	}
	if h.fleet != nil {
		v := h.fleet.view(now)
		r.Fleet = &v
	}
	return r
}

// ServeHTTP answers /healthz: 200 with the report when the seed is healthy,
// 503 with the report and its reasons otherwise.
func (h *health) ServeHTTP(rw http.ResponseWriter, _ *http.Request) {
	r := h.check(time.Now())
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	if r.Status != "ok" {
		rw.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	enc.Encode(r)
}

// announceWarner turns failed announcements into WARN lines with their
// cause, at most one every announceWarnEvery with the number of failures
// since the last line, and says at INFO when announcing works again.
type announceWarner struct {
	log      *slog.Logger
	every    time.Duration
	warnedAt time.Time // of the last warning
	reported uint64    // ProvideErrors counted in warnings so far
	failing  bool      // a warning was logged and no success seen since
}

// observe looks at the node's counters at now and logs what is due.
func (w *announceWarner) observe(now time.Time, st p2p.Stats) {
	if w.failing && st.LastProvide.After(st.LastProvideError) {
		w.failing = false
		w.log.Info("announcing releases in the DHT works again", "announcements", st.Provides)
	}
	n := st.ProvideErrors - w.reported
	if n == 0 || (!w.warnedAt.IsZero() && now.Sub(w.warnedAt) < w.every) {
		return
	}
	attrs := []any{"failures", n, "err", st.ProvideError, "peers", st.Peers}
	if !st.LastProvide.IsZero() {
		attrs = append(attrs, "last_success", st.LastProvide.UTC().Format(time.RFC3339))
	}
	if st.Peers == 0 {
		attrs = append(attrs, "hint", "this seed is connected to no other node: give --bootstrap addresses of other nodes (or wait for apps to connect); nodes cannot find its releases until an announcement succeeds")
	}
	w.log.Warn("announcing releases in the DHT failed; retrying", attrs...)
	w.warnedAt, w.reported = now, st.ProvideErrors
	w.failing = st.LastProvideError.After(st.LastProvide)
}

// watch observes stats every interval until ctx is done.
func (w *announceWarner) watch(ctx context.Context, interval time.Duration, stats func() p2p.Stats) {
	every(ctx, interval, func(now time.Time) { w.observe(now, stats()) })
}

// every calls f with the time once an interval until ctx is done.
func every(ctx context.Context, interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}
