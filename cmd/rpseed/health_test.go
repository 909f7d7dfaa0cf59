package main

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/p2p"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fail := errors.New("failed to find any peer in table")
	tests := []struct {
		name    string
		st      p2p.Stats
		at      time.Duration // after start
		reasons []string      // parts of the reasons, in order; none: healthy
	}{
		{"new lone seed", p2p.Stats{}, time.Second, []string{"serves no release", "no connected peer"}},
		{"serving, no peer, announcing fails, early", p2p.Stats{Served: 1, LastProvideError: start.Add(time.Minute), ProvideError: fail}, 2 * time.Minute,
			[]string{"no connected peer"}},
		{"serving, no peer, announcing fails for long", p2p.Stats{Served: 1, LastProvideError: start.Add(11 * time.Minute), ProvideError: fail}, 11 * time.Minute,
			[]string{"no connected peer", "no announcement in the DHT has succeeded since rpseed started (11m0s, more than --unhealthy-after 10m0s): failed to find any peer in table"}},
		{"healthy", p2p.Stats{Served: 2, Peers: 3, LastProvide: start.Add(time.Minute)}, time.Hour, nil},
		{"healthy between reprovides", p2p.Stats{Served: 2, Peers: 3, LastProvide: start.Add(time.Minute), LastProvideError: start.Add(30 * time.Second), ProvideError: fail}, time.Hour, nil},
		{"announcing broke after a success", p2p.Stats{Served: 1, Peers: 1, LastProvide: start.Add(time.Minute), LastProvideError: start.Add(20 * time.Minute), ProvideError: fail}, 20 * time.Minute,
			[]string{"no announcement in the DHT has succeeded since 2026-01-01T00:01:00Z (19m0s"}},
		{"serving, never announced", p2p.Stats{Served: 1, Peers: 1}, 15 * time.Minute, []string{"since rpseed started (15m0s"}},
		{"serving, unreachable", p2p.Stats{Served: 1, Peers: 1, Quiet: true}, 15 * time.Minute,
			[]string{"since rpseed started (15m0s, more than --unhealthy-after 10m0s): AutoNAT finds this seed unreachable"}},
	}
	for _, tt := range tests {
		h := &health{peerID: "12D3", start: start, after: 10 * time.Minute, stats: func() p2p.Stats { return tt.st }}
		r := h.check(start.Add(tt.at))
		if (r.Status == "ok") != (len(tt.reasons) == 0) || len(r.Reasons) != len(tt.reasons) {
			t.Errorf("%s: status %s, reasons %q; want reasons %q", tt.name, r.Status, r.Reasons, tt.reasons)
			continue
		}
		for i, want := range tt.reasons {
			if !strings.Contains(r.Reasons[i], want) {
				t.Errorf("%s: reason %q, want one with %q", tt.name, r.Reasons[i], want)
			}
		}
	}

	h := &health{peerID: "12D3", start: time.Now(), after: time.Minute, stats: func() p2p.Stats { return p2p.Stats{} }}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"status": "unhealthy"`) || !strings.Contains(rec.Body.String(), "serves no release") {
		t.Errorf("/healthz of an unhealthy seed: %d %s", rec.Code, rec.Body)
	}
	h.stats = func() p2p.Stats { return p2p.Stats{Served: 1, Peers: 1, LastProvide: time.Now()} }
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status": "ok"`) || strings.Contains(rec.Body.String(), "reasons") {
		t.Errorf("/healthz of a healthy seed: %d %s", rec.Code, rec.Body)
	}
}

// TestAnnounceWarner checks that failed announcements are logged at WARN
// with their cause, at most once a minute with the count since, and that
// recovery is logged once.
func TestAnnounceWarner(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	w := &announceWarner{log: slog.New(slog.NewTextHandler(&logs, nil)), every: time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fail := errors.New("failed to find any peer in table")
	st := p2p.Stats{}
	w.observe(t0, st) // nothing failed: nothing to say
	for i := 1; i <= 34; i++ {
		now := t0.Add(time.Duration(i) * 5 * time.Second)
		st.ProvideErrors, st.LastProvideError, st.ProvideError = uint64(i), now, fail
		w.observe(now, st)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	// Failures at 5 s (warned), 10..65 s (12, warned at 65 s), 70..125 s (12,
	// warned at 125 s), and 130..170 s (9, not yet a minute).
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), &logs)
	}
	for i, n := range []string{"failures=1 ", "failures=12 ", "failures=12 "} {
		if !strings.Contains(lines[i], "level=WARN") || !strings.Contains(lines[i], n) || !strings.Contains(lines[i], `err="failed to find any peer in table"`) || !strings.Contains(lines[i], "--bootstrap") {
			t.Errorf("line %d = %s, want a WARN with %s, the cause and a hint", i, lines[i], n)
		}
	}
	logs.Reset()
	st.Provides, st.LastProvide, st.Peers = 1, t0.Add(3*time.Minute), 1
	w.observe(t0.Add(3*time.Minute), st)
	w.observe(t0.Add(4*time.Minute), st)
	w.observe(t0.Add(5*time.Minute), st)
	if got := logs.String(); strings.Count(got, "works again") != 1 || !strings.Contains(got, "failures=9 ") {
		t.Errorf("after recovery the log says:\n%s\nwant the 9 failures since the last warning and one line that it works again", got)
	}
}
