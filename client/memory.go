package client

import "runtime/debug"

// Start-up memory: the engine's start (self-verification's buffers, the
// system's TLS roots, which crypto/x509 parses from every file of
// /etc/ssl/certs at the first HTTPS request, the network's start) leaves a
// few MiB of garbage that Go's background scavenger returns to the system
// only slowly, so a small app would idle MiB above what it holds
// (docs/BENCHMARKS.md). The engine returns it once after its first poll,
// and once more after its first poll with the network up.

// trimAfterPoll returns the memory the start-up freed to the system
// (debug.FreeOSMemory, which runs a garbage collection) after the first
// poll and after the first poll with the network up; later calls do
// nothing.
func (p *pipeline) trimAfterPoll() {
	netUp := !p.cfg.Network.enabled() || p.joining == nil
	var trim bool
	if p.trimmed, trim = nextTrim(p.trimmed, netUp); trim {
		debug.FreeOSMemory()
	}
}

// Stages of trimAfterPoll.
const (
	trimNone       = iota // no poll yet
	trimNetPending        // trimmed after a poll, before the network was up
	trimDone              // trimmed after a poll with the network up (or none)
)

// nextTrim returns the stage after a poll in stage, with the network up
// (or off) or not, and whether to trim now.
func nextTrim(stage int, netUp bool) (int, bool) {
	switch {
	case stage == trimNone && netUp:
		return trimDone, true
	case stage == trimNone:
		return trimNetPending, true
	case stage == trimNetPending && netUp:
		return trimDone, true
	}
	return stage, false
}
