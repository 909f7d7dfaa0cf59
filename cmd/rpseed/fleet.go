package main

import (
	"cmp"
	"crypto/ed25519"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Bounds of the fleet view: what peers report costs the seed memory and
// metric series, and any peer may report anything.
const (
	// maxFleetPeers bounds the peers whose last report is kept.
	maxFleetPeers = 100_000
	// maxFleetVersions bounds the versions shown per target; the peers of
	// the others are counted under otherVersion.
	maxFleetVersions = 32
	// otherVersion names the versions beyond maxFleetVersions.
	otherVersion = "other"
	// DefaultFleetWindow is the default of --fleet-window.
	DefaultFleetWindow = time.Hour
)

// A fleet is the owner's view of the nodes that ask this seed for rollout
// statements: each says, with every request, which version it runs and
// which it last rolled back from (see wire.Report). The fleet keeps each
// peer's last report and counts, over the window, distinct peers per
// version run and per version rolled back from. Nothing authenticates a
// report: the counts show trends, such as a staged rollout's crash rate,
// not facts. It is safe for concurrent use.
type fleet struct {
	window time.Duration

	mu      sync.Mutex
	last    map[fleetPeer]fleetReport
	dropped uint64 // reports not kept: maxFleetPeers reached
}

type fleetPeer struct {
	id     peer.ID
	target string
}

type fleetReport struct {
	running, rolledBack string
	at                  time.Time
}

func newFleet(window time.Duration) *fleet {
	return &fleet{window: window, last: map[fleetPeer]fleetReport{}}
}

// record keeps a peer's report; it is p2p.Config.OnReport.
func (f *fleet) record(from peer.ID, _ ed25519.PublicKey, target string, r wire.Report) {
	f.recordAt(time.Now(), from, target, r)
}

func (f *fleet) recordAt(now time.Time, from peer.ID, target string, r wire.Report) {
	if r.Running == "" && r.RolledBackFrom == "" {
		return // a node that reports nothing
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fleetPeer{from, target}
	if _, ok := f.last[k]; !ok && len(f.last) >= maxFleetPeers {
		f.prune(now)
		if len(f.last) >= maxFleetPeers {
			f.dropped++
			return
		}
	}
	f.last[k] = fleetReport{running: r.Running, rolledBack: r.RolledBackFrom, at: now}
}

// prune forgets the reports older than the window. f.mu is held.
func (f *fleet) prune(now time.Time) {
	for k, r := range f.last {
		if now.Sub(r.at) > f.window {
			delete(f.last, k)
		}
	}
}

// A fleetView is the fleet's counts at one time, by target.
type fleetView struct {
	WindowSeconds int64                  `json:"window_seconds"`
	Targets       map[string]fleetTarget `json:"targets"`
	// Dropped counts reports not kept because the seed kept as many
	// peers as it may.
	Dropped uint64 `json:"dropped_reports,omitempty"`
}

// A fleetTarget is the counts of one target: distinct peers that reported
// within the window per version they run, and per version they last
// rolled back from.
type fleetTarget struct {
	Peers     map[string]int `json:"peers"`
	Rollbacks map[string]int `json:"rollbacks"`
}

// view counts the reports of the window that ends at now.
func (f *fleet) view(now time.Time) fleetView {
	f.mu.Lock()
	f.prune(now)
	v := fleetView{WindowSeconds: int64(f.window / time.Second), Targets: map[string]fleetTarget{}, Dropped: f.dropped}
	for k, r := range f.last {
		t, ok := v.Targets[k.target]
		if !ok {
			t = fleetTarget{Peers: map[string]int{}, Rollbacks: map[string]int{}}
			v.Targets[k.target] = t
		}
		if r.running != "" {
			t.Peers[r.running]++
		}
		if r.rolledBack != "" {
			t.Rollbacks[r.rolledBack]++
		}
	}
	f.mu.Unlock()
	for _, t := range v.Targets {
		capVersions(t.Peers)
		capVersions(t.Rollbacks)
	}
	return v
}

// capVersions keeps the maxFleetVersions versions of m with the most peers
// (the newest first among equals) and counts the others under
// otherVersion.
func capVersions(m map[string]int) {
	if len(m) <= maxFleetVersions {
		return
	}
	vs := make([]string, 0, len(m))
	for v := range m {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), region.CompareVersions(b, a), cmp.Compare(a, b))
	})
	other := 0
	for _, v := range vs[maxFleetVersions-1:] {
		other += m[v]
		delete(m, v)
	}
	m[otherVersion] += other
}

// fleetCollector exports the fleet view and the rollout statements served
// as Prometheus metrics.
type fleetCollector struct {
	fleet    *fleet
	rollouts func() []rollout.Statement

	peers, rollbacks, window, seq, expiry, share *prometheus.Desc
}

func newFleetCollector(f *fleet, rollouts func() []rollout.Statement) *fleetCollector {
	return &fleetCollector{
		fleet: f, rollouts: rollouts,
		peers: prometheus.NewDesc("rpseed_fleet_peers", "Distinct peers that reported running the version within the fleet window (unauthenticated reports).",
			[]string{"target", "version"}, nil),
		rollbacks: prometheus.NewDesc("rpseed_fleet_rollbacks", "Distinct peers that reported, within the fleet window, that they last rolled back from the version (unauthenticated reports).",
			[]string{"target", "version"}, nil),
		window: prometheus.NewDesc("rpseed_fleet_window_seconds", "The window the fleet counts cover (--fleet-window).", nil, nil),
		seq: prometheus.NewDesc("rpseed_rollout_sequence", "Sequence of the rollout statement served.",
			[]string{"target", "owner"}, nil),
		expiry: prometheus.NewDesc("rpseed_rollout_expiry_timestamp_seconds", "Unix time the rollout statement served expires; apps warn once it has passed.",
			[]string{"target", "owner"}, nil),
		share: prometheus.NewDesc("rpseed_rollout_channel_percent", "Share of a channel's nodes its rollout is on now, in percent (the ramp included); halted=1 when halted.",
			[]string{"target", "owner", "channel", "version", "halted"}, nil),
	}
}

// Describe sends the metrics' descriptions.
func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peers, c.rollbacks, c.window, c.seq, c.expiry, c.share} {
		ch <- d
	}
}

// Collect sends the metrics.
func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	v := c.fleet.view(now)
	ch <- prometheus.MustNewConstMetric(c.window, prometheus.GaugeValue, float64(v.WindowSeconds))
	for target, t := range v.Targets {
		for ver, n := range t.Peers {
			ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(n), target, ver)
		}
		for ver, n := range t.Rollbacks {
			ch <- prometheus.MustNewConstMetric(c.rollbacks, prometheus.GaugeValue, float64(n), target, ver)
		}
	}
	for _, st := range c.rollouts() {
		o := region.EncodePublicKey(st.Key)
		ch <- prometheus.MustNewConstMetric(c.seq, prometheus.GaugeValue, float64(st.Sequence), st.Target, o)
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(st.Expires.Unix()), st.Target, o)
		for _, ch2 := range st.Channels {
			h := "0"
			if ch2.Halted {
				h = "1"
			}
			ch <- prometheus.MustNewConstMetric(c.share, prometheus.GaugeValue, float64(ch2.Share(now))*100/rollout.Buckets, st.Target, o, ch2.Name, ch2.Version, h)
		}
	}
}
