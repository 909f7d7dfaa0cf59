package swarmsim

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchSetup is BenchmarkPropagation's setup (internal/p2p): a 20 MB
// release, one seed with 2 upload slots, every node's upload capped at
// 10 MB/s, 2 upload slots per node, loopback latency and an unlimited
// downlink.
func benchSetup(n int) Config {
	return Config{Nodes: n, Size: 20 << 20, Uplink: 10 << 20, Slots: 2, Latency: time.Millisecond,
		LookupDelay: 100 * time.Millisecond, Seed: 1}
}

// realPropagation50 is BenchmarkPropagation's 50-node figure with
// whole-file serving, internal/p2p's default, from docs/BENCHMARKS.md
// (2026-12-06 08:53 UTC, the nodes on TCP as apps are; one run, another
// took 14.65 s).
const realPropagation50 = 14620 * time.Millisecond

// realPropagation50Pieces is the same benchmark with pieces served early
// (p2p.Config.PiecesEarly, "pieces"): the median of six runs from
// 2026-12-06 08:50 UTC (5.08 to 5.45 s).
const realPropagation50Pieces = 5400 * time.Millisecond

// The CPU model of the benchmark, from a whole-file run of it, for
// TestSimulateValidate's log: the 51 nodes took 0.15 cores doing nothing
// (1.5 s of CPU in the 10 s after their start, RP_PROPAGATION_SETTLE=10s),
// which leaves realCPUFree50 of the 2 cores to move bytes, and the run took
// 14.69 s of CPU in 14.83 s: less the idle share, 12.5 s for 50 copies of
// 20 MiB, realCPUPerByte50 (11.9 ns a byte moved, both ends). A node that
// serves pieces early now spends less a byte (it does not read its copy
// again to serve it whole), which this cost leaves out.
const (
	realCPUFree50    = 2 - 0.15
	realCPUPerByte50 = (14.69 - 0.15*14.83) / (50 * 20 << 20)
)

// TestSimulateValidate runs the simulator on BenchmarkPropagation's setup
// at 50 nodes and requires the time until all nodes hold the release
// within 25% of the real benchmark's, with whole-file serving
// (internal/p2p's default) and with pieces served early. The model gives
// each node a CPU of its own, where the benchmark's 51 nodes share 2
// cores; it logs beside them what the model gives under the benchmark's
// CPU model (Config.CPU).
func TestSimulateValidate(t *testing.T) {
	for _, tc := range []struct {
		what  string
		early bool
		real  time.Duration
	}{
		{"whole-file serving", false, realPropagation50},
		{"pieces served early", true, realPropagation50Pieces},
	} {
		c := benchSetup(50)
		c.PiecesEarly = tc.early
		r := Run(c)
		c.CPU, c.CPUPerByte = realCPUFree50, realCPUPerByte50
		shared := Run(c)
		t.Logf("50 nodes, %s: simulated %v (%v under the benchmark's CPU model), real benchmark %v; seed uploaded %d MB, %d busy answers",
			tc.what, r.AllDone.Round(10*time.Millisecond), shared.AllDone.Round(10*time.Millisecond), tc.real, r.SeedUploaded>>20, r.Busy)
		if r.Done != 50 {
			t.Fatalf("%s: %d of 50 nodes got the release", tc.what, r.Done)
		}
		if diff := float64(r.AllDone-tc.real) / float64(tc.real); diff > 0.25 || diff < -0.25 {
			t.Errorf("%s: simulated %v, %.0f%% off the real %v: the model does not match the benchmark", tc.what, r.AllDone, 100*diff, tc.real)
		}
	}
}

// TestSimulateCPU: with Config.CPU the uploads move at most
// CPU/CPUPerByte bytes a second in all, so that the release takes at
// least the bytes the nodes need over that; a CPU that never binds changes
// nothing.
func TestSimulateCPU(t *testing.T) {
	c := benchSetup(20)
	c.PiecesEarly = true
	free := Run(c)
	c.CPU, c.CPUPerByte = 1, 1.0/(20<<20) // 20 MiB/s in all
	slow := Run(c)
	least := time.Duration(float64(int64(c.Nodes)*c.Size) / (20 << 20) * float64(time.Second))
	if slow.Done != 20 || slow.AllDone < least {
		t.Fatalf("20 copies of 20 MiB at 20 MiB/s in all: done %d in %v, want all in at least %v", slow.Done, slow.AllDone, least)
	}
	c.CPU = 1e6
	ample := Run(c)
	if d := ample.AllDone - free.AllDone; ample.Done != 20 || d > free.AllDone/100 || d < -free.AllDone/100 {
		t.Fatalf("a CPU that never binds: %v, %v without the CPU model", ample.AllDone, free.AllDone)
	}
	t.Logf("20 nodes: %v with a CPU each, %v sharing 20 MiB/s (at least %v)", free.AllDone, slow.AllDone, least)
}

// TestSimulateDeterministic: the same Config gives the same Result.
func TestSimulateDeterministic(t *testing.T) {
	c := benchSetup(40)
	c.PiecesEarly, c.Churn, c.ChurnWithin, c.DialOutOnly = true, 0.25, 5*time.Second, 0.2
	a, b := Run(c), Run(c)
	if a != b {
		t.Fatalf("two runs of one Config differ:\n%+v\n%+v", a, b)
	}
	if a.Left == 0 || a.Done+a.Left+a.Stuck != 40 {
		t.Fatalf("result %+v: want some nodes gone and every node counted", a)
	}
}

// TestSimulateHavePolls: a download has at most Config.HavePolls watches
// (or have requests, with PollHave) in flight, the turns go round (every
// node gets the release, with churn too: the watches of a node that left
// end), and a smaller bound makes fewer have answers.
func TestSimulateHavePolls(t *testing.T) {
	for _, poll := range []bool{false, true} {
		answers := map[int]int{}
		for _, polls := range []int{1, 4, -1} {
			c := benchSetup(60)
			c.PiecesEarly, c.HavePolls, c.PollHave, c.Churn, c.ChurnWithin = true, polls, poll, 0.1, 5*time.Second
			r := Run(c)
			if r.Stuck != 0 || r.Done+r.Left != 60 {
				t.Fatalf("PollHave %v, HavePolls %d: %+v: want every node that stayed to get the release", poll, polls, r)
			}
			if polls > 0 && r.MaxHavePolls > polls {
				t.Errorf("PollHave %v, HavePolls %d: a download had %d in flight", poll, polls, r.MaxHavePolls)
			}
			if polls < 0 && r.MaxHavePolls <= 4 {
				t.Errorf("PollHave %v, no bound: at most %d in flight, want more than 4 with 60 nodes", poll, r.MaxHavePolls)
			}
			answers[polls] = r.HaveAnswers
		}
		if !(answers[1] < answers[4] && answers[4] < answers[-1]) {
			t.Errorf("PollHave %v: have answers by bound (1, 4, none): %d, %d, %d; want fewer with a smaller bound", poll, answers[1], answers[4], answers[-1])
		}
	}
}

// TestSimulateScale runs the fleets of issue 20: N nodes (RP_SIM_NODES,
// default 1000: about a minute on 2 cores, so the full test suite stays
// short), each with whole-file serving (internal/p2p's default: "whole")
// and pieces served as soon as held ("early"; RP_SIM_SERVING picks one),
// plain and with 20% dial-out-only nodes and 5% churn. It logs the time
// until all nodes hold the release against the broadcast bound
// S/U + log2(N) x piece/U, and fails only when a node that stayed never
// got the release. RP_SIM_SEED picks another seed of the randomness than
// 1, RP_SIM_HAVE_POLLS another bound of a download's have requests in
// flight (Config.HavePolls; -1: none), RP_SIM_POLL_HAVE=1 have requests
// rather than watches (Config.PollHave), RP_SIM_TRACE=1 writes the fleet's
// state every 250 ms to stderr. 10k nodes serving early take about 4
// minutes a run on 2 cores, 100k about ten times as long
// (docs/BENCHMARKS.md):
//
//	RP_SIM_NODES=10000 RP_SIM_SERVING=early go test ./internal/swarmsim -run TestSimulateScale -v -timeout 60m
//	RP_SIM_NODES=100000 RP_SIM_SERVING=early go test ./internal/swarmsim -run 'TestSimulateScale/.*/.*/natchurn=false' -v -timeout 120m
func TestSimulateScale(t *testing.T) {
	if testing.Short() {
		t.Skip("minutes of simulation")
	}
	ns := []int{1000}
	if v := os.Getenv("RP_SIM_NODES"); v != "" {
		ns = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("RP_SIM_NODES=%q: want a list of node counts", v)
			}
			ns = append(ns, n)
		}
	}
	seed := uint64(1)
	if v := os.Getenv("RP_SIM_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("RP_SIM_SEED=%q: want a number", v)
		}
	}
	pollHave := os.Getenv("RP_SIM_POLL_HAVE") == "1"
	havePollsEnv := 0
	if v := os.Getenv("RP_SIM_HAVE_POLLS"); v != "" {
		var err error
		if havePollsEnv, err = strconv.Atoi(v); err != nil {
			t.Fatalf("RP_SIM_HAVE_POLLS=%q: want a number (negative: no bound)", v)
		}
	}
	serving := []bool{false, true}
	switch os.Getenv("RP_SIM_SERVING") {
	case "whole":
		serving = []bool{false}
	case "early":
		serving = []bool{true}
	case "":
	default:
		t.Fatalf("RP_SIM_SERVING=%q: want whole or early", os.Getenv("RP_SIM_SERVING"))
	}
	for _, n := range ns {
		for _, early := range serving {
			for _, hostile := range []bool{false, true} {
				name := fmt.Sprintf("nodes=%d/early=%v/natchurn=%v", n, early, hostile)
				t.Run(name, func(t *testing.T) {
					c := benchSetup(n)
					c.PiecesEarly, c.Seed, c.HavePolls, c.PollHave = early, seed, havePollsEnv, pollHave
					if os.Getenv("RP_SIM_TRACE") != "" {
						c.Trace = os.Stderr
					}
					if hostile {
						c.DialOutOnly, c.Churn, c.ChurnWithin = 0.2, 0.05, 10*time.Second
					}
					start := time.Now()
					r := Run(c)
					t.Logf("%s: all %d in %v (median %v), bound %v, %.2fx; left %d, stuck %d; seed uploaded %d MB (%.1fx the release); %d busy, %d lookups, %d have answers; %d events in %v",
						name, r.Done, r.AllDone.Round(10*time.Millisecond), r.Median.Round(10*time.Millisecond), r.Bound.Round(10*time.Millisecond),
						r.AllDone.Seconds()/r.Bound.Seconds(), r.Left, r.Stuck, r.SeedUploaded>>20, float64(r.SeedUploaded)/float64(c.Size),
						r.Busy, r.Lookups, r.HaveAnswers, r.Events, time.Since(start).Round(time.Millisecond))
					if r.Stuck != 0 {
						t.Errorf("%d nodes never got the release", r.Stuck)
					}
				})
			}
		}
	}
}

// TestShardLoad measures the sharded announcement scheme of ShardLoad:
// at most about 10k provider records per key at a million nodes, one
// lookup per poll while the channel's key is not full, and at most two on
// average at a million nodes (issue 20, item 4). The constants are
// internal/p2p's (NumShards, providerLookupN, maxShardLookups).
func TestShardLoad(t *testing.T) {
	for _, tt := range []struct {
		nodes, shards, batch int
		maxRecords           int
		maxLookups           float64
	}{
		{1, 128, 1, 1, 1},
		{31, 128, 1, 31, 1},
		{32, 128, 1, 32, 2},
		{1000, 128, 1, 1000, 5},
		{1_000_000, 0, 1, 1_000_000, 1}, // before: one key
		{1_000_000, 128, 1, 10_000, 2.1},
		// 1,000 nodes placing their keys at once, before the channel's
		// key filled up.
		{1_000_000, 128, 1000, 10_000, 2.1},
	} {
		r := ShardLoad(ShardConfig{Nodes: tt.nodes, Shards: tt.shards, Batch: tt.batch, Full: 32, Want: 32, Polls: 1000, MaxShardLookups: 4, Seed: 3})
		t.Logf("%8d nodes, %3d shards, batches of %4d: %6d records under the channel's key, at most %6d under a shard key; %.2f lookups per poll (at most %d)",
			tt.nodes, tt.shards, tt.batch, r.ChannelRecords, r.MaxShardRecords, r.LookupsPerPoll, r.MaxLookups)
		if most := max(r.ChannelRecords, r.MaxShardRecords); most > tt.maxRecords {
			t.Errorf("%d nodes, %d shards: %d records under one key, want at most %d", tt.nodes, tt.shards, most, tt.maxRecords)
		}
		if r.LookupsPerPoll > tt.maxLookups {
			t.Errorf("%d nodes, %d shards: %.2f lookups per poll, want at most %.2f", tt.nodes, tt.shards, r.LookupsPerPoll, tt.maxLookups)
		}
	}
}

// TestSimulateQuietDialOutOnly compares 1000 nodes, 20% of them
// dial-out-only, serving pieces early, with those nodes announcing the
// release (as nodes did before internal/p2p kept quiet while AutoNAT finds
// them unreachable) and keeping quiet (as they do now, the simulator's
// default): quiet, no download asks a peer it cannot reach, and the last
// node is done sooner.
func TestSimulateQuietDialOutOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of simulation")
	}
	c := benchSetup(1000)
	c.PiecesEarly, c.DialOutOnly = true, 0.2
	quiet := Run(c)
	c.LoudDialOutOnly = true
	loud := Run(c)
	t.Logf("1000 nodes, 20%% dial-out-only: all done in %v when they announce, %v when they do not (bound %v)",
		loud.AllDone.Round(10*time.Millisecond), quiet.AllDone.Round(10*time.Millisecond), quiet.Bound.Round(10*time.Millisecond))
	if loud.Stuck+quiet.Stuck != 0 {
		t.Fatalf("stuck nodes: %d announcing, %d quiet", loud.Stuck, quiet.Stuck)
	}
	if quiet.AllDone >= loud.AllDone {
		t.Errorf("quiet dial-out-only nodes did not make the fleet faster: %v against %v", quiet.AllDone, loud.AllDone)
	}
}

// TestSimulateAnnounceAtStart compares 1000 nodes serving pieces early
// that announce the release as their download starts (internal/p2p's
// rule, the simulator's default) with nodes that announce it at their
// first piece (the rule before): at the start, the last node is done
// sooner.
func TestSimulateAnnounceAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of simulation")
	}
	c := benchSetup(1000)
	c.PiecesEarly = true
	start := Run(c)
	c.AnnounceAtFirstPiece = true
	first := Run(c)
	t.Logf("1000 nodes serving early: all done in %v announcing at the start (%d busy answers), %v at the first piece (%d busy answers); bound %v",
		start.AllDone.Round(10*time.Millisecond), start.Busy, first.AllDone.Round(10*time.Millisecond), first.Busy, start.Bound.Round(10*time.Millisecond))
	if start.Stuck+first.Stuck != 0 {
		t.Fatalf("stuck nodes: %d announcing at the start, %d at the first piece", start.Stuck, first.Stuck)
	}
	if start.AllDone >= first.AllDone {
		t.Errorf("announcing at the start did not make the fleet faster: %v against %v", start.AllDone, first.AllDone)
	}
}
