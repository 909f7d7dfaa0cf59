package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/wire"
)

func TestFleet(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	f := newFleet(time.Hour)
	rep := func(at time.Duration, p, target, running, back string) {
		f.recordAt(t0.Add(at), peer.ID(p), target, wire.Report{Running: running, RolledBackFrom: back})
	}
	rep(0, "a", "linux/amd64", "1.0.0", "")
	rep(0, "b", "linux/amd64", "2.0.0", "")
	rep(time.Minute, "b", "linux/amd64", "1.0.0", "2.0.0") // b rolled back: counted once, as it says now
	rep(time.Minute, "c", "linux/amd64", "2.0.0", "")
	rep(time.Minute, "c", "linux/arm64", "2.0.0", "")
	rep(time.Minute, "d", "linux/amd64", "", "") // says nothing: not counted
	v := f.view(t0.Add(30 * time.Minute))
	want := "linux/amd64 peers map[1.0.0:2 2.0.0:1] rollbacks map[2.0.0:1]; linux/arm64 peers map[2.0.0:1] rollbacks map[]"
	if got := describeView(v); got != want {
		t.Errorf("view = %s\nwant   %s", got, want)
	}
	// An hour later, only the reports of the last hour count.
	rep(90*time.Minute, "a", "linux/amd64", "1.0.0", "")
	if got := describeView(f.view(t0.Add(90 * time.Minute))); got != "linux/amd64 peers map[1.0.0:1] rollbacks map[]" {
		t.Errorf("after the window: %s", got)
	}

	// Many versions: the most common are shown, the others summed.
	many := newFleet(time.Hour)
	for i := range maxFleetVersions + 10 {
		for j := range 1 + i/10 {
			many.recordAt(t0, peer.ID(fmt.Sprintf("p%d-%d", i, j)), "linux/amd64", wire.Report{Running: fmt.Sprintf("1.0.%d", i)})
		}
	}
	mv := many.view(t0).Targets["linux/amd64"].Peers
	total := 0
	for _, n := range mv {
		total += n
	}
	if len(mv) != maxFleetVersions || mv[otherVersion] == 0 || mv["1.0.41"] != 5 || mv["1.0.0"] != 0 {
		t.Errorf("capped view has %d versions (other %d, 1.0.41 %d, 1.0.0 %d), want %d with the rare ones summed", len(mv), mv[otherVersion], mv["1.0.41"], mv["1.0.0"], maxFleetVersions)
	}
	if total != many.peerCount() {
		t.Errorf("capped view counts %d peers, want all %d", total, many.peerCount())
	}
}

// peerCount returns the number of reports kept.
func (f *fleet) peerCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.last)
}

// describeView writes a view in one line, targets in order.
func describeView(v fleetView) string {
	var s []string
	for _, tg := range []string{"linux/amd64", "linux/arm64"} {
		if t, ok := v.Targets[tg]; ok {
			s = append(s, fmt.Sprintf("%s peers %v rollbacks %v", tg, t.Peers, t.Rollbacks))
		}
	}
	return strings.Join(s, "; ")
}

func TestFleetCollector(t *testing.T) {
	t.Parallel()
	f := newFleet(time.Hour)
	f.record(peer.ID("a"), nil, "linux/amd64", wire.Report{Running: "1.0.1", RolledBackFrom: "2.0.0"})
	k := regiontest.NewKey(t)
	now := time.Now()
	st := rollout.Statement{Target: "linux/amd64", Sequence: 4, Issued: now, Expires: now.Add(time.Hour),
		Channels: []rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 25, Halted: true}}}
	if err := st.Sign(k.Private); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newFleetCollector(f, func() []rollout.Statement { return []rollout.Statement{st} }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	for series, v := range map[string]float64{
		"rpseed_fleet_peers{target=linux/amd64,version=1.0.1}":                                                                1,
		"rpseed_fleet_rollbacks{target=linux/amd64,version=2.0.0}":                                                            1,
		"rpseed_fleet_window_seconds{}":                                                                                       3600,
		"rpseed_rollout_sequence{owner=" + k.PublicText + ",target=linux/amd64}":                                              4,
		"rpseed_rollout_expiry_timestamp_seconds{owner=" + k.PublicText + ",target=linux/amd64}":                              float64(st.Expires.Unix()),
		"rpseed_rollout_channel_percent{channel=stable,halted=1,owner=" + k.PublicText + ",target=linux/amd64,version=2.0.0}": 25,
	} {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v; all: %v", series, g, ok, v, got)
		}
	}
}

func TestHealthRollouts(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	start := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	st := rollout.Statement{Target: "linux/amd64", Sequence: 2, Issued: start, Expires: start.Add(time.Hour),
		Channels: []rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 10, Ramp: 10 * time.Hour, Start: start}}}
	if err := st.Sign(k.Private); err != nil {
		t.Fatal(err)
	}
	f := newFleet(time.Hour)
	f.recordAt(start, peer.ID("a"), "linux/amd64", wire.Report{Running: "2.0.0"})
	h := &health{start: start, after: time.Hour, fleet: f, rollouts: func() []rollout.Statement { return []rollout.Statement{st} },
		stats: func() p2p.Stats { return p2p.Stats{Served: 1, Peers: 1, LastProvide: start} }}
	r := h.check(start.Add(30 * time.Minute))
	if r.Status != "ok" || len(r.Warnings) != 0 || len(r.Rollouts) != 1 || r.Rollouts[0].Channels[0].ShareNow != 14.5 || r.Fleet.Targets["linux/amd64"].Peers["2.0.0"] != 1 {
		t.Errorf("before expiry: %+v", r)
	}
	r = h.check(start.Add(2 * time.Hour))
	if r.Status != "ok" || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "re-sign it with rpsign rollout --refresh") || !r.Rollouts[0].Expired {
		t.Errorf("after expiry: status %s, warnings %q, want one warning and still ok", r.Status, r.Warnings)
	}
	if len(r.Fleet.Targets) != 0 {
		t.Errorf("after the window, the fleet still counts %+v", r.Fleet.Targets)
	}
}
