package client

import (
	"slices"
	"time"
)

// leaveTimeout bounds leaving the network before a restart: the process
// is replaced after it either way.
const leaveTimeout = 3 * time.Second

// leaveNetwork closes the network, joined or just joined, before the
// process is replaced by a restart, so that peers see their connections
// to it close at once. Otherwise they would not: a QUIC connection to a
// process that exec'd is silently gone, and a peer's next request on it
// waits out its timeouts (seconds each), which holds up that peer's
// polls and downloads. It waits for the network to close at most
// leaveTimeout, and reports whether it left one: the caller joins again
// when the restart returns (it failed).
func (p *pipeline) leaveNetwork() bool {
	c := p.network
	switch {
	case c != nil:
		p.sources = slices.DeleteFunc(p.sources, func(s Source) bool { return s == p.netSrc })
	case p.joining != nil:
		select {
		case ns := <-p.joining:
			c = ns.closer
		default:
			// Still starting, with no peer told about this node
			// yet: the process goes without waiting for it.
			return false
		}
	default:
		return false
	}
	p.network, p.netSrc, p.joining = nil, nil, nil
	if c == nil {
		return true // it failed to start: a restart that returns tries again
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		p.log.Debug("left the network before restarting", "took", time.Since(start).Round(time.Millisecond), "err", err)
	case <-time.After(leaveTimeout):
		p.log.Warn("leaving the network before restarting takes too long; restarting without waiting", "waited", leaveTimeout)
	}
	return true
}
