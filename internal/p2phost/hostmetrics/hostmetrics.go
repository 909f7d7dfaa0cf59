// Package hostmetrics wires libp2p's Prometheus metrics into the parts of
// a host that internal/p2phost assembles: the resource manager, the event
// bus, the swarm, AutoRelay, AutoNAT and the QUIC connection manager (the
// basic host adds its own from the same registerer). rpseed imports it; an
// app does not, so that libp2p's metrics tracers stay out of its binary
// (docs/BENCHMARKS.md, Cost of embedding).
package hostmetrics

import (
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/org/rustpatcher-go/internal/p2phost"
)

// New returns the metrics of a host, registered with reg.
func New(reg prometheus.Registerer) *p2phost.Metrics {
	return &p2phost.Metrics{
		Registerer:      reg,
		ResourceManager: func() { rcmgr.MustRegisterWith(reg) },
		EventBus: func() eventbus.Option {
			return eventbus.WithMetricsTracer(eventbus.NewMetricsTracer(eventbus.WithRegisterer(reg)))
		},
		Swarm: func() swarm.Option {
			return swarm.WithMetricsTracer(swarm.NewMetricsTracer(swarm.WithRegisterer(reg)))
		},
		AutoRelay: func() autorelay.Option {
			return autorelay.WithMetricsTracer(autorelay.NewMetricsTracer(autorelay.WithRegisterer(reg)))
		},
		AutoNAT: func() autonat.Option {
			return autonat.WithMetricsTracer(autonat.NewMetricsTracer(autonat.WithRegisterer(reg)))
		},
	}
}
