//go:build !rustpatcher_nop2p

package client

import (
	"context"
	"time"

	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/wire"
)

// statementAsk bounds asking peers for rollout and key rotation
// statements: the answers in by then are used, and a peer that is gone (a
// dial, or a connection to a process that died, timing out) does not hold
// up the poll; the next poll asks again.
const statementAsk = 5 * time.Second

// rollouts asks peers for their rollout statement of the target, signed
// by the key trusted now.
func (n *networkSource) rollouts(ctx context.Context) ([]rollout.Statement, error) {
	ctx, cancel := context.WithTimeout(ctx, statementAsk)
	defer cancel()
	return n.source().Rollouts(ctx)
}

// serveRollout passes the statement the node holds on to its peers, and
// stops serving and announcing the versions it yanks. Serving the same
// statement again does nothing.
func (n *networkSource) serveRollout(ctx context.Context, st rollout.Statement) {
	if err := n.node.ServeRollout(ctx, st); err != nil {
		n.log.Debug("serving the rollout statement held", "sequence", st.Sequence, "err", err)
	}
}

// report sets what the node tells the peers it asks for rollout
// statements, for the owner's fleet view: the version it runs and the one
// it last rolled back from (unauthenticated numbers).
func (n *networkSource) report(running, rolledBackFrom string) {
	if err := n.node.SetReport(wire.Report{Running: running, RolledBackFrom: rolledBackFrom}); err != nil {
		n.log.Debug("setting the fleet report", "err", err)
	}
}
