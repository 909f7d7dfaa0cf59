package client

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/region"
)

// BenchmarkRolloutObey measures how fast a fleet obeys the owner: the
// time from a statement reaching one seed (its ServeRollout) until 95% of
// 50 nodes obey it, for a halt (the node holds the statement: it applies
// nothing the halt holds back) and for a yank of the 2.0.0 every node
// runs to 1.0.1 (the node applied 1.0.1, fetched from the seed and its
// peers), against the poll interval. The seed and the 50 nodes are libp2p
// hosts in this process (real TCP on loopback, and QUIC for the seed; real DHT), each
// node a full update engine (client.Spawn) on a 300 kB stand-in
// executable; self-test and restart are stubbed out. Run once:
//
//	go test -run '^$' -bench RolloutObey -benchtime 1x -timeout 20m ./client/
func BenchmarkRolloutObey(b *testing.B) {
	for _, interval := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second} {
		b.Run("interval="+interval.String(), func(b *testing.B) {
			for b.Loop() {
				halt, yank := rolloutFleet(b, 50, interval)
				b.ReportMetric(halt.Seconds(), "halt-p95-s")
				b.ReportMetric(yank.Seconds(), "yank-p95-s")
				b.ReportMetric(halt.Seconds()/interval.Seconds(), "halt-p95/interval")
				b.ReportMetric(yank.Seconds()/interval.Seconds(), "yank-p95/interval")
			}
		})
	}
}

// rolloutFleet runs one seed and n nodes and returns the times until 95%
// of them obeyed a halt and then a yank.
func rolloutFleet(b *testing.B, n int, interval time.Duration) (halt, yank time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := regiontest.NewKey(b)
	dir := b.TempDir()
	loopback := []string{"/ip4/127.0.0.1/tcp/0"} // apps' transport
	seed, err := p2p.New(ctx, p2p.Config{Private: true, ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1", loopback[0]}, QUIC: hostquic.New, DHTServer: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer seed.Close()
	w := filepath.Join(dir, "w-1.0.1")
	win := regiontest.WriteBinary(b, w, 300_000, 2, k, "1.0.1")
	if err := seed.Serve(ctx, k.Public, runningTarget, w, win); err != nil {
		b.Fatal(err)
	}

	// took[i] records when node i took the statement of each sequence,
	// applied records when it applied 1.0.1.
	var mu sync.Mutex
	took := map[uint64][]time.Time{1: make([]time.Time, n), 2: make([]time.Time, n)}
	applied := make([]time.Time, n)
	up := make(chan struct{}, n)
	for i := range n {
		exe := filepath.Join(dir, fmt.Sprintf("node%02d", i), "prog")
		running := regiontest.WriteBinary(b, exe, 300_000, 1, k, "2.0.0")
		var once sync.Once
		cfg := options{
			Config: Config{
				PublicKey: k.PublicText,
				Mode:      OnRestart(),
				Interval:  interval,
				Network: NetworkConfig{Private: true, Bootstrap: seed.Addrs(), ListenAddrs: loopback, DHTServer: true,
					OnListen: func(string) { once.Do(func() { up <- struct{}{} }) }},
				Logger:     slog.New(&takenHandler{on: func(seq uint64) { mu.Lock(); took[seq][i] = time.Now(); mu.Unlock() }}),
				Executable: exe,
				OnEvent: func(e Event) {
					if e.Kind == EventApplied && e.Release.Version == "1.0.1" {
						mu.Lock()
						applied[i] = time.Now()
						mu.Unlock()
					}
				},
			},
			current:  func() (region.Info, error) { return running, nil },
			restart:  func(string, []string, []string) error { return nil },
			selfTest: func(context.Context, string, region.Info) error { return nil },
		}
		u, err := spawn(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer u.Close()
	}
	for range n {
		select {
		case <-up:
		case <-time.After(time.Minute):
			b.Fatal("the nodes' networks did not start within a minute")
		}
	}
	time.Sleep(2 * interval) // every node joined and polled once

	statement := func(seq uint64, edit func(*rollout.Statement)) time.Duration {
		st := rollout.Statement{Target: runningTarget, Sequence: seq, Issued: time.Now().Add(-time.Minute), Expires: time.Now().Add(time.Hour)}
		edit(&st)
		if err := st.Sign(k.Private); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := seed.ServeRollout(ctx, st); err != nil {
			b.Fatal(err)
		}
		at := func() []time.Time {
			if seq == 2 {
				return applied
			}
			return took[seq]
		}
		deadline := time.Now().Add(max(20*interval, time.Minute))
		for time.Now().Before(deadline) {
			mu.Lock()
			d, ok := p95(at(), start)
			mu.Unlock()
			if ok {
				return d
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.Fatalf("statement %d: fewer than 95%% of %d nodes obeyed it within %v", seq, n, max(20*interval, time.Minute))
		return 0
	}
	halt = statement(1, func(s *rollout.Statement) {
		s.Channels = []rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 100, Halted: true}}
	})
	yank = statement(2, func(s *rollout.Statement) {
		s.Channels = []rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 100, Halted: true}}
		s.Yanks = []rollout.Yank{{Version: "2.0.0", To: "1.0.1"}}
	})
	b.Logf("interval %v: 95%% of %d nodes held the halt %v after it reached the seed, and ran the yank's 1.0.1 %v after", interval, n, halt.Round(time.Millisecond), yank.Round(time.Millisecond))
	return halt, yank
}

// p95 returns how long after start 95% of the times were set, and whether
// they were.
func p95(ts []time.Time, start time.Time) (time.Duration, bool) {
	var ds []time.Duration
	for _, t := range ts {
		if !t.IsZero() {
			ds = append(ds, t.Sub(start))
		}
	}
	need := (len(ts)*95 + 99) / 100
	if len(ds) < need {
		return 0, false
	}
	slices.Sort(ds)
	return ds[need-1], true
}

// takenHandler is a log handler that calls on with the sequence of each
// "rollout statement taken" record, and drops every record.
type takenHandler struct{ on func(seq uint64) }

func (h *takenHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *takenHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "rollout statement taken" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "sequence" {
			h.on(a.Value.Uint64())
			return false
		}
		return true
	})
	return nil
}

func (h *takenHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *takenHandler) WithGroup(string) slog.Handler      { return h }
