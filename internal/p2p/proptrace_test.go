package p2p

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/p2p/sched"
)

// propTrace samples a propagation benchmark's nodes every traceEvery when
// RP_PROPAGATION_TRACE is set: what their downloads know and do, what they
// hold and upload. It is how the benchmark's slowness was looked into.
type propTrace struct {
	out *os.File
	// the last line's totals
	lastSeed, lastUp  uint64
	lastCPU, lastWait time.Duration
	mu                sync.Mutex
	dls               [][]*download // by node, every download started
}

const traceEvery = 500 * time.Millisecond

func newPropTrace(nodes int) *propTrace {
	path := os.Getenv("RP_PROPAGATION_TRACE")
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	return &propTrace{out: f, dls: make([][]*download, nodes)}
}

// hook returns node i's Config.onDownload.
func (t *propTrace) hook(i int) func(*download) {
	return func(d *download) {
		t.mu.Lock()
		t.dls[i] = append(t.dls[i], d)
		t.mu.Unlock()
	}
}

// run logs a line every traceEvery until the returned func is called.
func (t *propTrace) run(b *testing.B, start time.Time, seed *Node, all []*Node) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(traceEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			fmt.Fprintln(t.out, t.line(b, time.Since(start), seed, all))
		}
	})
	fmt.Fprintf(t.out, "--- %s, %d nodes\n", b.Name(), len(all))
	return func() { close(done); wg.Wait(); t.out.Close() }
}

// line sums up the nodes now: kept pieces (a histogram by 4s: 0-3, 4-7, ...),
// uploads running, and the means of what the live downloads know.
func (t *propTrace) line(b *testing.B, at time.Duration, seed *Node, all []*Node) string {
	now := time.Now()
	var up uint64
	for _, n := range all {
		up += n.server.counts.up.Load()
	}
	sup := seed.server.counts.up.Load()
	cpu, wait := processCPU(b), runDelay()
	rates := fmt.Sprintf("MB/s seed=%.1f nodes=%.1f cores=%.2f starved=%.2f", float64(sup-t.lastSeed)/traceEvery.Seconds()/1e6,
		float64(up-t.lastUp)/traceEvery.Seconds()/1e6, (cpu-t.lastCPU).Seconds()/traceEvery.Seconds(), (wait-t.lastWait).Seconds()/traceEvery.Seconds())
	t.lastSeed, t.lastUp, t.lastCPU, t.lastWait = sup, up, cpu, wait
	t.mu.Lock()
	defer t.mu.Unlock()
	var hist [6]int
	var sum sched.State
	var outs [5]int
	live, ups, dls := 0, 0, 0
	for i, n := range all {
		ups += n.server.slots.active()
		kept := 0
		for _, d := range t.dls[i] {
			dls++
			d.mu.Lock()
			for k, v := range d.outs {
				outs[k] += v
			}
			if d.err == nil {
				st := d.s.State(now)
				kept = max(kept, st.Kept)
				live++
				sum.Peers += st.Peers
				sum.Partial += st.Partial
				sum.Workers += st.Workers
				sum.BackedOff += st.BackedOff
				sum.Claimable += st.Claimable
				sum.InFlight += st.InFlight
			} else if d.s.ReaderAt() == d.l.NumPieces() {
				kept = int(d.l.NumPieces())
			}
			d.mu.Unlock()
		}
		hist[min(kept/4, 5)]++
	}
	mean := func(x int) string {
		if live == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", float64(x)/float64(live))
	}
	var h []string
	for _, c := range hist {
		h = append(h, fmt.Sprint(c))
	}
	var keptBusy uint64
	for _, n := range all {
		keptBusy += n.server.slots.keptBusy.Load()
	}
	rates += fmt.Sprintf(" keptbusy seed=%d nodes=%d", seed.server.slots.keptBusy.Load(), keptBusy)
	return rates + fmt.Sprintf(" t=%4.1fs held[0-3,4-7,..,20]=%s uploads=%d seed=%d live=%d peers=%s partial=%s workers=%s backedoff=%s claimable=%s inflight=%s outs(fin,bad,busy,fail,retry)=%v dls=%d",
		at.Seconds(), strings.Join(h, "/"), ups, seed.server.slots.active(), live, mean(sum.Peers), mean(sum.Partial), mean(sum.Workers),
		mean(sum.BackedOff), mean(sum.Claimable), mean(sum.InFlight), outs, dls)
}

// runDelay returns the time the process's threads spent runnable but
// waiting for a CPU (Linux schedstat), summed: the CPU the machine's other
// load took from the benchmark.
func runDelay() time.Duration {
	tasks, _ := os.ReadDir("/proc/self/task")
	var sum time.Duration
	for _, e := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		var run, wait int64
		if _, err := fmt.Sscan(string(b), &run, &wait); err == nil {
			sum += time.Duration(wait)
		}
	}
	return sum
}
