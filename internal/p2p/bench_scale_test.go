package p2p

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// BenchmarkPropagationScale measures how a 20 MB release spreads from one
// seed (2 upload slots) to N nodes with whole-file serving (the default: a
// node serves the release once it verified all of it; BenchmarkPropagation
// compares it with pieces served early),
// for N = 25, 50, 100 and 200 (RP_SCALE_NODES=25,50 picks others), every node's upload capped
// at 10 MB/s as in BenchmarkPropagation. Besides the time until every
// node has verified the release it reports the number of generations: a
// node's generation is one more than the highest generation among the
// peers that delivered bytes of its copy (the seed's is 0); a node serves
// only a whole verified copy, so this is the longest chain of hand-offs
// behind the last node, and what grows with N. It logs how many nodes
// finished in each generation and the time per generation. The model in
// docs/BENCHMARKS.md extrapolates from it. Run once, with the 2 cores
// otherwise idle:
//
//	go test -run '^$' -bench PropagationScale -benchtime 1x -timeout 60m ./internal/p2p/
func BenchmarkPropagationScale(b *testing.B) {
	const (
		size = 20 << 20
		rate = 10 << 20
	)
	ns := []int{25, 50, 100, 200}
	if v := os.Getenv("RP_SCALE_NODES"); v != "" {
		ns = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("RP_SCALE_NODES=%q: want a list of node counts", v)
			}
			ns = append(ns, n)
		}
	}
	pub, path, in := benchRelease(b, size)
	for _, n := range ns {
		b.Run(fmt.Sprintf("nodes-%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res := propagate(b, pub, path, in, n, rate, serveWhole)
				g := generations(b, res)
				b.ReportMetric(res.total.Seconds(), "s/all-updated")
				b.ReportMetric(float64(g), "generations")
				b.ReportMetric(res.total.Seconds()/float64(g), "s/generation")
				b.ReportMetric(math.Log(float64(n+1))/math.Log(3), "log3(N+1)")
			}
		})
	}
}

// generations works out each node's generation in res and logs how many
// nodes finished in each; it returns the highest.
func generations(b *testing.B, res propagation) int {
	gen := map[peer.ID]int{res.seed.ID(): 0}
	perGen := map[int][]time.Duration{}
	highest := 0
	for _, d := range res.dones {
		g := 0
		for _, p := range d.from {
			pg, ok := gen[p]
			if !ok {
				b.Fatalf("node %s took bytes from %s, which had no copy yet", d.id, p)
			}
			g = max(g, pg)
		}
		gen[d.id] = g + 1
		perGen[g+1] = append(perGen[g+1], d.at)
		highest = max(highest, g+1)
	}
	var lines []string
	for _, g := range slices.Sorted(maps.Keys(perGen)) {
		ts := perGen[g]
		lines = append(lines, fmt.Sprintf("gen %d: %d nodes, done %.1f-%.1f s", g, len(ts), ts[0].Seconds(), ts[len(ts)-1].Seconds()))
	}
	b.Logf("%d generations\n%s", highest, strings.Join(lines, "\n"))
	return highest
}

// fetchVerifiedFrom is fetchVerified that also returns the ID of the file
// it verified and the peers that delivered bytes of it.
func fetchVerifiedFrom(ctx context.Context, src *Source, pub ed25519.PublicKey, path string) (region.Info, [wire.IDLen]byte, []peer.ID, error) {
	var from []peer.ID
	var id [wire.IDLen]byte
	in, err := fetchVerifiedWith(ctx, src, pub, path, func(r *Release) {
		id = r.FileID()
		r.mu.Lock()
		from = slices.Collect(maps.Keys(r.from))
		r.mu.Unlock()
	})
	return in, id, from, err
}
