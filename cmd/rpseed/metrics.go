package main

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/org/rustpatcher-go/internal/p2p"
)

// registerNodeMetrics exports the node's counters.
func registerNodeMetrics(reg prometheus.Registerer, n *p2p.Node) {
	gauge := func(name, help string, f func(p2p.Stats) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "rpseed", Name: name, Help: help},
			func() float64 { return f(n.Stats()) }))
	}
	counter := func(name, help string, f func(p2p.Stats) float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "rpseed", Name: name, Help: help},
			func() float64 { return f(n.Stats()) }))
	}
	unix := func(t func(p2p.Stats) (ok bool, sec float64)) func(p2p.Stats) float64 {
		return func(s p2p.Stats) float64 {
			if ok, sec := t(s); ok {
				return sec
			}
			return 0
		}
	}
	gauge("peers", "Connected peers.", func(s p2p.Stats) float64 { return float64(s.Peers) })
	gauge("releases_served", "Releases served.", func(s p2p.Stats) float64 { return float64(s.Served) })
	gauge("uploads_active", "Uploads running now.", func(s p2p.Stats) float64 { return float64(s.ActiveUploads) })
	counter("info_requests_total", "Info requests answered.", func(s p2p.Stats) float64 { return float64(s.InfoRequests) })
	counter("fetch_requests_total", "Fetch requests answered.", func(s p2p.Stats) float64 { return float64(s.FetchRequests) })
	counter("packed_requests_total", "Fetch requests answered with packed pieces (compressed, or deltas).", func(s p2p.Stats) float64 { return float64(s.PackedRequests) })
	counter("have_requests_total", "Have requests answered (which pieces of a file this seed holds).", func(s p2p.Stats) float64 { return float64(s.HaveRequests) })
	counter("watch_requests_total", "Watch requests answered (have requests that stay open while a file is served in part).", func(s p2p.Stats) float64 { return float64(s.WatchRequests) })
	counter("busy_total", "Fetches refused for want of an upload slot.", func(s p2p.Stats) float64 { return float64(s.Busy) })
	counter("bad_requests_total", "Malformed requests and failed namespace checks.", func(s p2p.Stats) float64 { return float64(s.BadRequests) })
	counter("streams_refused_total", "Streams refused by the stream limits (docs/PROTOCOL.md, Limits).", func(s p2p.Stats) float64 { return float64(s.StreamsRefused) })
	counter("streams_evicted_total", "Streams without a request that gave their place to a peer with fewer streams.", func(s p2p.Stats) float64 { return float64(s.StreamsEvicted) })
	counter("uploads_taken_back_total", "Uploads below the minimum rate whose slot went to a waiting peer.", func(s p2p.Stats) float64 { return float64(s.UploadsTakenBack) })
	counter("uploaded_bytes_total", "Release bytes uploaded, as sent on the wire (packed pieces count their compressed bytes).", func(s p2p.Stats) float64 { return float64(s.BytesUploaded) })
	counter("provides_total", "DHT announcements made.", func(s p2p.Stats) float64 { return float64(s.Provides) })
	counter("provide_errors_total", "DHT announcements that failed.", func(s p2p.Stats) float64 { return float64(s.ProvideErrors) })
	gauge("last_provide_timestamp_seconds", "Unix time of the last DHT announcement that succeeded (0: none yet).",
		unix(func(s p2p.Stats) (bool, float64) {
			return !s.LastProvide.IsZero(), float64(s.LastProvide.UnixNano()) / 1e9
		}))
	gauge("last_provide_error_timestamp_seconds", "Unix time of the last DHT announcement that failed (0: none yet).",
		unix(func(s p2p.Stats) (bool, float64) {
			return !s.LastProvideError.IsZero(), float64(s.LastProvideError.UnixNano()) / 1e9
		}))
}

// sourcePath matches a label value that names a Go source file, such as
// the ".../go-libp2p-kad-dht@v0.42.2/subscriber_notifee.go-L37" that
// libp2p's event bus uses as the name of a subscriber that gave none.
var sourcePath = regexp.MustCompile(`\.go(-L\d+|:\d+)?$`)

// noPaths is a Gatherer that drops the series whose labels name a source
// file: they carry the build machine's module cache paths, change with
// every build and say nothing an operator can act on.
type noPaths struct{ prometheus.Gatherer }

// Gather gathers and drops the series with a source file path in a label.
func (g noPaths) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.Gatherer.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		ms := mf.Metric[:0]
		for _, m := range mf.Metric {
			if !hasPathLabel(m) {
				ms = append(ms, m)
			}
		}
		mf.Metric = ms
		if len(ms) > 0 {
			out = append(out, mf)
		}
	}
	return out, err
}

func hasPathLabel(m *dto.Metric) bool {
	for _, l := range m.GetLabel() {
		if sourcePath.MatchString(l.GetValue()) {
			return true
		}
	}
	return false
}
