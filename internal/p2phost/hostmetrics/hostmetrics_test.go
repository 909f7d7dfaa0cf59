package hostmetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/org/rustpatcher-go/internal/p2phost"
	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
)

// TestHostMetrics: a host with New's metrics reports libp2p's metrics of
// its parts to the registry.
func TestHostMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := p2phost.New(p2phost.Config{
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		Metrics:     New(reg),
		QUIC:        hostquic.New,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"libp2p_rcmgr_", "libp2p_eventbus_", "libp2p_identify_"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %s* metric among %s", want, all)
		}
	}
}
