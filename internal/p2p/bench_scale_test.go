package p2p

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/region"
)

// BenchmarkPropagationScale measures how a 20 MB release spreads from one
// seed (2 upload slots) to N nodes with swarm serving, for N = 25, 50, 100
// and 200 (RP_SCALE_NODES=25,50 picks others), every node's upload capped
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
				res := propagateGenerations(b, pub, path, in, n, rate)
				b.ReportMetric(res.all.Seconds(), "s/all-updated")
				b.ReportMetric(float64(res.generations), "generations")
				b.ReportMetric(res.all.Seconds()/float64(res.generations), "s/generation")
				b.ReportMetric(math.Log(float64(n+1))/math.Log(3), "log3(N+1)")
			}
		})
	}
}

// scaleResult is one propagation run.
type scaleResult struct {
	all         time.Duration
	generations int
}

// propagateGenerations runs one propagation to nodes nodes and works out
// each node's generation from the peers that delivered its bytes.
func propagateGenerations(b *testing.B, pub ed25519.PublicKey, path string, in region.Info, nodes, rate int) scaleResult {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	listen := []string{"/ip4/127.0.0.1/tcp/0"}
	seed, err := New(ctx, Config{Private: true, DHTServer: true, ListenAddrs: listen, UploadSlots: 2, UploadRate: rate})
	if err != nil {
		b.Fatal(err)
	}
	defer seed.Close()
	if err := seed.Serve(ctx, pub, testTarget, path, in); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	all := make([]*Node, nodes)
	for i := range all {
		n, err := New(ctx, Config{Private: true, DHTServer: true, ListenAddrs: listen, Bootstrap: seed.Addrs(), UploadRate: rate})
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		all[i] = n
	}
	b.ResetTimer()
	start := time.Now()
	type done struct {
		id   peer.ID
		at   time.Duration
		from []peer.ID
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		dones []done
	)
	errs := make(chan error, nodes)
	for i, n := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(dir, fmt.Sprintf("node-%d", i))
			src := n.Source(pub, testTarget)
			got, from, err := fetchVerifiedFrom(ctx, src, pub, p)
			if err != nil {
				errs <- fmt.Errorf("node %d: %w", i, err)
				return
			}
			mu.Lock()
			dones = append(dones, done{n.ID(), time.Since(start), from})
			mu.Unlock()
			if err := src.Seed(ctx, p, got); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	total := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	// Generations, in the order nodes finished: every peer a node took
	// bytes from had finished before it started serving.
	slices.SortFunc(dones, func(x, y done) int { return int(x.at - y.at) })
	gen := map[peer.ID]int{seed.ID(): 0}
	perGen := map[int][]time.Duration{}
	maxGen := 0
	for _, d := range dones {
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
		maxGen = max(maxGen, g+1)
	}
	var lines []string
	for _, g := range slices.Sorted(maps.Keys(perGen)) {
		ts := perGen[g]
		lines = append(lines, fmt.Sprintf("gen %d: %d nodes, done %.1f-%.1f s", g, len(ts), ts[0].Seconds(), ts[len(ts)-1].Seconds()))
	}
	b.Logf("%d nodes updated in %v, %d generations; seed uploaded %d MB\n%s",
		nodes, total.Round(10*time.Millisecond), maxGen, seed.Stats().BytesUploaded>>20, strings.Join(lines, "\n"))
	return scaleResult{all: total, generations: maxGen}
}

// fetchVerifiedFrom is fetchVerified that also returns the peers that
// delivered bytes of the copy it verified.
func fetchVerifiedFrom(ctx context.Context, src *Source, pub ed25519.PublicKey, path string) (region.Info, []peer.ID, error) {
	var from []peer.ID
	in, err := fetchVerifiedWith(ctx, src, pub, path, func(r *Release) {
		r.mu.Lock()
		from = slices.Collect(maps.Keys(r.from))
		r.mu.Unlock()
	})
	return in, from, err
}
