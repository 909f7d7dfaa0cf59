package sched

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// t0 is the virtual time every test starts at.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	steal   = 2 * time.Second
	endgame = 500 * time.Millisecond
)

// cfg returns the shape of a v1 download of n pieces as internal/p2p uses
// it, with hashes already in.
func cfg(n int64) Config {
	return Config{Pieces: n, Window: 16, Parallel: 4, PerRequest: 4, MaxPerRequest: 8,
		StealAfter: steal, EndgameAfter: endgame, MaxIdleRounds: 12, LookupEvery: time.Second, Rand: rand.New(rand.NewPCG(7, 7))}
}

// all returns a bitfield of n pieces that holds the listed ones.
func bits(n int, have ...int64) []bool {
	b := make([]bool, n)
	for _, i := range have {
		b[i] = true
	}
	return b
}

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

func ids(s ...string) []PeerID {
	var out []PeerID
	for _, x := range s {
		out = append(out, PeerID(x))
	}
	return out
}

// TestChoice checks which run of pieces a peer is asked for first.
func TestChoice(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(*Config)
		peers map[PeerID]PeerInfo
		order []PeerID
		ask   PeerID
		want  []int64
	}{
		{
			name:  "in order when every peer holds every piece",
			peers: map[PeerID]PeerInfo{"a": {}, "b": {}},
			order: ids("a", "b"), ask: "a", want: []int64{0, 1, 2, 3},
		},
		{
			name:  "the only peer gets a larger run",
			peers: map[PeerID]PeerInfo{"a": {}},
			order: ids("a"), ask: "a", want: []int64{0, 1, 2, 3, 4, 5, 6, 7},
		},
		{
			name:  "a delta peer gets a larger run",
			peers: map[PeerID]PeerInfo{"a": {Delta: true}, "b": {}},
			order: ids("a", "b"), ask: "a", want: []int64{0, 1, 2, 3, 4, 5, 6, 7},
		},
		{
			name: "rarest first: the piece only this peer holds",
			peers: map[PeerID]PeerInfo{
				"a": {Has: bits(40, 0, 1, 2, 3, 4, 5, 9, 10)},
				"b": {Has: bits(40, 0, 1, 2, 3, 4, 5, 10)},
				"c": {Has: bits(40, 0, 1, 2, 3, 4, 5)},
			},
			order: ids("a", "b", "c"), ask: "a", want: []int64{9, 10},
		},
		{
			name: "only pieces the peer holds",
			peers: map[PeerID]PeerInfo{
				"a": {Has: bits(40, 3, 4, 6)},
				"b": {},
				"c": {Has: bits(40, 4, 6)},
			},
			order: ids("a", "b", "c"), ask: "a", want: []int64{3, 4},
		},
		{
			name: "nothing outside the window",
			peers: map[PeerID]PeerInfo{
				"a": {Has: bits(40, 16, 17)},
				"b": {},
			},
			order: ids("a", "b"), ask: "a", want: nil,
		},
		{
			name:  "a resumed download starts at its first piece",
			cfg:   func(c *Config) { c.First = 30 },
			peers: map[PeerID]PeerInfo{"a": {}, "b": {}},
			order: ids("a", "b"), ask: "b", want: []int64{30, 31, 32, 33},
		},
		{
			name:  "the tail waits for piece 0",
			cfg:   func(c *Config) { c.Pieces, c.Tail = 3, true },
			peers: map[PeerID]PeerInfo{"a": {}, "b": {}},
			order: ids("a", "b"), ask: "a", want: []int64{0, 1},
		},
		{
			name:  "a resumed download past piece 0 takes the tail from anyone",
			cfg:   func(c *Config) { c.Pieces, c.Tail, c.First = 3, true, 1 },
			peers: map[PeerID]PeerInfo{"a": {}, "b": {}},
			order: ids("a", "b"), ask: "a", want: []int64{1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg(40)
			if tt.cfg != nil {
				tt.cfg(&c)
			}
			s := New(c)
			for _, id := range tt.order {
				s.AddPeer(id, tt.peers[id])
			}
			a := s.Next(tt.ask, t0)
			if tt.want == nil {
				if a.Kind == Pieces {
					t.Fatalf("asked for %v, want nothing", a.Pieces)
				}
				return
			}
			if a.Kind != Pieces || !slices.Equal(a.Pieces, tt.want) {
				t.Fatalf("Next = %+v, want pieces %v", a, tt.want)
			}
		})
	}
}

// TestRandomFirst checks that the first RandomFirst pieces are picked at
// random among those in the window, from a seeded source, while a peer
// holds only some pieces, and that the choice turns to rarest first
// afterwards; with every peer holding every piece, the reader's order is
// kept.
func TestRandomFirst(t *testing.T) {
	for seed := range uint64(5) {
		c := cfg(40)
		c.RandomFirst, c.PerRequest = 4, 1
		c.Rand = rand.New(rand.NewPCG(seed, 1))
		s := New(c)
		s.AddPeer("a", PeerInfo{})
		if a := s.Next("a", t0); a.Pieces[0] != 0 {
			t.Fatalf("seed %d: no peer holds only some pieces, yet the first piece asked is %v", seed, a.Pieces)
		}
	}
	firsts := map[int64]bool{}
	for seed := range uint64(20) {
		c := cfg(40)
		c.RandomFirst, c.PerRequest = 1, 1
		c.Rand = rand.New(rand.NewPCG(seed, 1))
		s := New(c)
		// b holds every piece but 5: a alone holds it, the rarest.
		most := make([]bool, 40)
		for i := range most {
			most[i] = i != 5
		}
		s.AddPeer("a", PeerInfo{})
		s.AddPeer("b", PeerInfo{Has: most})
		a := s.Next("a", t0)
		firsts[a.Pieces[0]] = true
		if !s.Received("a", a.Pieces[0], t0) {
			t.Fatal("piece not kept")
		}
		if a.Pieces[0] == 5 {
			continue
		}
		if again := s.Next("a", t0); again.Pieces[0] != 5 {
			t.Fatalf("after the random first piece %d, asked for %v, want the rarest, 5", a.Pieces[0], again.Pieces)
		}
	}
	if len(firsts) < 5 {
		t.Fatalf("20 seeds chose only the first pieces %v", firsts)
	}
	for i := range firsts {
		if i >= 16 {
			t.Fatalf("random first piece %d outside the window", i)
		}
	}
}

// TestStealFromSlowPeer: a piece a peer has not delivered after StealAfter
// is asked of a second peer, with the rest of the slow peer's run, one
// such steal at a time; the first copy is kept;
// the peer that let it wait is asked one piece at a time from then on, at
// the end of the window.
func TestStealFromSlowPeer(t *testing.T) {
	s := New(cfg(40))
	s.AddPeer("slow", PeerInfo{})
	s.AddPeer("fast", PeerInfo{})
	if a := s.Next("slow", t0); !slices.Equal(a.Pieces, []int64{0, 1, 2, 3}) {
		t.Fatalf("slow asked for %v", a.Pieces)
	}
	// fast takes the rest of the window, 4 at a time.
	for i := int64(4); i < 16; i += 4 {
		a := s.Next("fast", t0)
		if a.Pieces[0] != i {
			t.Fatalf("fast asked for %v, want from %d", a.Pieces, i)
		}
		for _, p := range a.Pieces {
			s.Received("fast", p, t0)
		}
	}
	// The window is full: fast waits until a piece of slow's may be stolen.
	a := s.Next("fast", at(time.Second))
	if a.Kind != Wait || !a.Until.Equal(at(steal)) {
		t.Fatalf("Next before StealAfter = %+v, want a wait until %v", a, at(steal))
	}
	a = s.Next("fast", at(steal))
	if a.Kind != Pieces || !a.Steal || !slices.Equal(a.Pieces, []int64{0, 1, 2, 3}) {
		t.Fatalf("Next at StealAfter = %+v, want a steal of the slow peer's run", a)
	}
	if !s.Slow("slow") {
		t.Fatal("the peer whose piece was stolen is not slow")
	}
	// One steal at a time.
	s.AddPeer("third", PeerInfo{})
	if a := s.Next("third", at(steal)); a.Kind != Wait || !a.Until.IsZero() {
		// A wait until a time past would spin: the steal that runs
		// ends with a change, which wakes the worker.
		t.Fatalf("Next while a steal runs = %+v, want a wait for a change", a)
	}
	if !s.Received("fast", 0, at(steal+time.Millisecond)) {
		t.Fatal("the stealer's copy came first and was not kept")
	}
	if s.Received("slow", 0, at(3*time.Second)) {
		t.Fatal("the slow copy was kept after the stolen one")
	}
	// The reader moves on; slow, asked again, gets the last piece of the
	// window, one piece.
	s.Consumed()
	s.Done("slow", Finished, at(3*time.Second))
	a = s.Next("slow", at(3*time.Second))
	if a.Kind != Pieces || !slices.Equal(a.Pieces, []int64{16}) {
		t.Fatalf("slow peer asked for %+v, want the window's last free piece alone", a)
	}
	// When the reader comes to the slow peer's piece, it is asked of
	// another at once, not StealAfter after the slow peer was asked.
	s.Done("fast", Finished, at(3*time.Second))
	for i := int64(1); i < 16; i++ {
		if i >= 4 {
			s.Consumed() // 4..15 came in before
			continue
		}
		s.Received("fast", i, at(3*time.Second))
		s.Consumed()
	}
	if s.ReaderAt() != 16 {
		t.Fatalf("reader at %d, want 16", s.ReaderAt())
	}
	if a := s.Next("fast", at(3*time.Second+time.Millisecond)); !a.Steal || a.Pieces[0] != 16 {
		t.Fatalf("fast told %+v when the reader came to the slow peer's piece, want it stolen", a)
	}
}

// TestEndgame: once every piece left is asked for, an idle peer asks for a
// piece on its way from another after EndgameAfter of silence, not
// StealAfter, unless the other peer's pace is slower than that.
func TestEndgame(t *testing.T) {
	s := New(cfg(6))
	s.AddPeer("a", PeerInfo{})
	s.AddPeer("b", PeerInfo{})
	if a := s.Next("a", t0); len(a.Pieces) != 4 {
		t.Fatalf("a asked for %v", a.Pieces)
	}
	if a := s.Next("b", t0); !slices.Equal(a.Pieces, []int64{4, 5}) {
		t.Fatalf("b asked for %v", a.Pieces)
	}
	s.Received("b", 4, t0)
	s.Received("b", 5, t0)
	a := s.Next("b", at(10*time.Millisecond))
	if a.Kind != Wait || !a.Until.Equal(at(endgame)) {
		t.Fatalf("endgame Next = %+v, want a wait until EndgameAfter", a)
	}
	a = s.Next("b", at(endgame))
	if a.Kind != Pieces || !a.Steal || a.Pieces[0] != 0 {
		t.Fatalf("endgame Next = %+v, want piece 0 after EndgameAfter", a)
	}
	if s.Slow("a") {
		t.Fatal("a peer within StealAfter marked slow in the endgame")
	}
	// A peer that delivers steadily, a piece every 400 ms, is not asked
	// twice after EndgameAfter, only when it has sent nothing for twice
	// its pace.
	ms := func(n int) time.Time { return at(time.Duration(n) * time.Millisecond) }
	s = New(cfg(6))
	s.AddPeer("steady", PeerInfo{})
	s.AddPeer("b", PeerInfo{})
	s.Next("steady", t0)
	s.Received("steady", 0, ms(400))
	s.Received("steady", 1, ms(800))
	for _, i := range s.Next("b", ms(800)).Pieces {
		s.Received("b", i, ms(800))
	}
	if a := s.Next("b", ms(1300)); a.Kind != Wait || !a.Until.Equal(ms(1600)) {
		t.Fatalf("Next beside a steady peer = %+v, want a wait until twice its pace", a)
	}
	if a := s.Next("b", ms(1600)); a.Kind != Pieces || a.Pieces[0] != 2 {
		t.Fatalf("Next after twice the steady peer's pace = %+v, want piece 2", a)
	}
	// Not in the endgame: with pieces left beyond the window, a peer with
	// nothing to ask waits until StealAfter.
	s = New(cfg(40))
	s.AddPeer("a", PeerInfo{})
	s.AddPeer("b", PeerInfo{})
	s.Next("a", t0)
	for range 3 {
		for _, i := range s.Next("b", t0).Pieces {
			s.Received("b", i, t0)
		}
	}
	if a := s.Next("b", at(10*time.Millisecond)); a.Kind != Wait || !a.Until.Equal(at(steal)) {
		t.Fatalf("Next with the window full = %+v, want a wait until StealAfter", a)
	}
}

// TestDeltaClaimNeverOnlySource: a delta peer is preferred, but when it
// lets a piece wait StealAfter the others are started at once, and the
// plan wakes up at that moment to do it.
func TestDeltaClaimNeverOnlySource(t *testing.T) {
	s := New(cfg(40))
	s.AddPeer("delta", PeerInfo{Delta: true})
	s.AddPeer("seed", PeerInfo{})
	pl := s.Plan(t0)
	if !slices.Equal(pl.Start, ids("delta")) {
		t.Fatalf("started %v, want only the delta peer", pl.Start)
	}
	if a := s.Next("delta", t0); len(a.Pieces) != 8 {
		t.Fatalf("delta peer asked for %v", a.Pieces)
	}
	pl = s.Plan(at(time.Second))
	if len(pl.Start) != 0 || !pl.Wake.Equal(at(steal)) {
		t.Fatalf("plan at 1 s = %+v, want no start and a wake at %v", pl, at(steal))
	}
	pl = s.Plan(at(steal))
	if !slices.Equal(pl.Start, ids("seed")) {
		t.Fatalf("plan at StealAfter started %v, want the seed", pl.Start)
	}
	// The reader waits for piece 0: the seed is asked for the slow delta
	// peer's first pieces before those nobody asked for.
	a := s.Next("seed", at(steal))
	if a.Kind != Pieces || !a.Steal || !slices.Equal(a.Pieces, []int64{0, 1, 2, 3}) {
		t.Fatalf("seed asked for %+v, want the delta peer's first 4 pieces", a)
	}
	// A delta peer that delivers keeps the others out.
	s = New(cfg(100))
	s.AddPeer("delta", PeerInfo{Delta: true})
	s.AddPeer("seed", PeerInfo{})
	s.Plan(t0)
	for k := range 5 {
		now := at(time.Duration(k) * time.Second)
		a := s.Next("delta", now)
		for _, i := range a.Pieces {
			s.Received("delta", i, now.Add(100*time.Millisecond))
		}
		for range a.Pieces {
			s.Consumed()
		}
		if pl := s.Plan(now.Add(100 * time.Millisecond)); len(pl.Start) != 0 {
			t.Fatalf("round %d: started %v beside a delta peer that delivers", k, pl.Start)
		}
	}
	// A delta peer whose deltas failed is asked for other pieces, and
	// no longer keeps the others out.
	s.NoDelta("delta")
	if pl := s.Plan(at(6 * time.Second)); !slices.Equal(pl.Start, ids("seed")) {
		t.Fatalf("after the delta peer's deltas failed, started %v", pl.Start)
	}
}

// TestSlowFirstContact: the only worker allowed while the hashes are not
// in is joined by a second when they have not arrived after StealAfter;
// the pieces of a first contact that is slow are asked of the other after
// StealAfter.
func TestSlowFirstContact(t *testing.T) {
	c := cfg(40)
	c.NeedHashes = true
	s := New(c)
	s.AddPeer("slow", PeerInfo{})
	s.AddPeer("seed", PeerInfo{})
	if pl := s.Plan(t0); !slices.Equal(pl.Start, ids("slow")) || !pl.Wake.IsZero() {
		t.Fatalf("first plan %+v, want only the first peer", pl)
	}
	if a := s.Next("slow", t0); a.Kind != Hashes {
		t.Fatalf("first worker told %+v, want the hashes", a)
	}
	if pl := s.Plan(at(time.Second)); len(pl.Start) != 0 || !pl.Wake.Equal(at(steal)) {
		t.Fatalf("plan at 1 s = %+v, want a wake at StealAfter", pl)
	}
	pl := s.Plan(at(steal))
	if !slices.Equal(pl.Start, ids("seed")) {
		t.Fatalf("plan at StealAfter started %v, want the seed", pl.Start)
	}
	if a := s.Next("seed", at(steal)); a.Kind != Hashes {
		t.Fatalf("second worker told %+v, want the hashes", a)
	}
	if !s.Slow("slow") {
		t.Fatal("the peer that let the hashes wait is not slow")
	}
	// The slow peer's hashes come in first; the seed's request is
	// still in flight. The slow peer is asked for one piece, the last of
	// the window, so that the reader does not wait for it.
	s.HashesDone("slow", true, at(steal+time.Millisecond))
	a := s.Next("slow", at(steal+time.Millisecond))
	if !slices.Equal(a.Pieces, []int64{15}) {
		t.Fatalf("slow asked for %+v, want the window's last piece", a)
	}
	s.HashesDone("seed", true, at(steal+time.Millisecond))
	a = s.Next("seed", at(steal+time.Millisecond))
	if !slices.Equal(a.Pieces, []int64{0, 1, 2, 3}) {
		t.Fatalf("seed asked for %+v", a)
	}
	// The seed runs through the window; after StealAfter without a piece
	// from slow, it takes piece 15 too.
	for _, i := range a.Pieces {
		s.Received("seed", i, at(steal+time.Millisecond))
	}
	for k := 4; k < 15; k += 4 {
		for _, i := range s.Next("seed", at(steal+time.Millisecond)).Pieces {
			s.Received("seed", i, at(steal+time.Millisecond))
		}
	}
	if a := s.Next("seed", at(2*steal+time.Millisecond)); !a.Steal || a.Pieces[0] != 15 {
		t.Fatalf("seed told %+v, want piece 15 stolen from the slow peer", a)
	}
}

// TestBackoff: failures leave a peer alone for doubling times, busy ones
// briefly, and a piece resets the count; a peer that sent bad data is
// never asked again, and a download whose every peer did fails.
func TestBackoff(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	tests := []struct {
		fails    int
		busy     bool
		min, max time.Duration
	}{
		{1, false, 500 * time.Millisecond, 750 * time.Millisecond},
		{2, false, time.Second, 1500 * time.Millisecond},
		{5, false, 8 * time.Second, 12 * time.Second},
		{9, false, 10 * time.Second, 15 * time.Second},
		{1, true, 50 * time.Millisecond, 75 * time.Millisecond},
		{6, true, time.Second, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		for range 50 {
			if d := RetryDelay(r, tt.fails, tt.busy); d < tt.min || d > tt.max {
				t.Errorf("RetryDelay(%d, busy %v) = %v, want %v..%v", tt.fails, tt.busy, d, tt.min, tt.max)
			}
		}
	}

	s := New(cfg(40))
	s.AddPeer("a", PeerInfo{})
	s.AddPeer("b", PeerInfo{})
	s.Plan(t0)
	s.Next("a", t0)
	s.Done("a", Failed, at(time.Second))
	pl := s.Plan(at(time.Second))
	if slices.Contains(pl.Start, "a") {
		t.Fatal("a failed peer was started again at once")
	}
	if pl.Wake.IsZero() || pl.Wake.Before(at(1500*time.Millisecond)) || pl.Wake.After(at(1750*time.Millisecond)) {
		t.Fatalf("plan wakes at %v, want when the failed peer may be asked", pl.Wake.Sub(t0))
	}
	if pl := s.Plan(pl.Wake); !slices.Equal(pl.Start, ids("a")) {
		t.Fatalf("after its backoff, started %v", pl.Start)
	}
	// The pieces it was asked for went back: b gets piece 0 first.
	if a := s.Next("b", at(2*time.Second)); a.Pieces[0] != 0 {
		t.Fatalf("b asked for %v after a failed", a.Pieces)
	}
}

// TestLiar: a peer that sent bad data is never asked again, its pieces go
// to others, and when every peer known after a lookup did, the download
// fails at once.
func TestLiar(t *testing.T) {
	s := New(cfg(40))
	s.AddPeer("liar", PeerInfo{})
	s.AddPeer("seed", PeerInfo{})
	pl := s.Plan(t0)
	if !pl.Lookup {
		t.Fatal("no lookup with fewer peers than asked at once")
	}
	s.LookupDone(t0)
	if !slices.Equal(pl.Start, ids("liar", "seed")) {
		t.Fatalf("started %v", pl.Start)
	}
	s.Next("liar", t0)
	s.Next("seed", t0)
	s.Done("liar", Bad, at(time.Millisecond))
	if a := s.Next("seed", at(time.Millisecond)); a.Pieces[0] != 0 {
		t.Fatalf("the liar's pieces did not go back: seed asked for %v", a.Pieces)
	}
	for k := range 10 {
		pl := s.Plan(at(time.Duration(k) * time.Minute))
		if slices.Contains(pl.Start, "liar") {
			t.Fatal("the liar was started again")
		}
		if pl.Lookup { // one usable peer: fewer than asked at once
			s.LookupDone(at(time.Duration(k) * time.Minute))
		}
	}
	s.Done("seed", Bad, at(time.Hour))
	pl = s.Plan(at(time.Hour))
	if !pl.Done || pl.Fail == "" {
		t.Fatalf("every peer lied; plan %+v, want a failure", pl)
	}
}

// TestIdleRoundsFail: a download whose only peer keeps failing fails after
// MaxIdleRounds rounds without a piece, with a lookup between rounds.
func TestIdleRoundsFail(t *testing.T) {
	s := New(cfg(40))
	s.AddPeer("a", PeerInfo{})
	now := t0
	lookups := 0
	for round := 0; round < 100; round++ {
		pl := s.Plan(now)
		if pl.Done {
			if pl.Fail == "" || round < 12 {
				t.Fatalf("round %d: done with %q", round, pl.Fail)
			}
			if lookups < 2 {
				t.Fatalf("only %d lookups", lookups)
			}
			return
		}
		if pl.Lookup {
			lookups++
			s.LookupDone(now)
		}
		for _, id := range pl.Start {
			s.Next(id, now)
			s.Done(id, Busy, now)
		}
		if !pl.Wake.IsZero() {
			now = pl.Wake
		}
	}
	t.Fatal("the download never failed")
}

// TestWindowBound: at most Window pieces are asked for or held, and at most
// one request's worth of them asked of a second peer, whatever the peers
// do, as long as each peer is told what to do next only after its request
// ended (as the download's workers are).
func TestWindowBound(t *testing.T) {
	s := New(cfg(100))
	peers := ids("a", "b", "c", "d")
	pending := map[PeerID][]int64{}
	for _, id := range peers {
		s.AddPeer(id, PeerInfo{})
	}
	now := t0
	steals := 0
	for step := range 2000 {
		id := peers[step%4]
		switch {
		case pending[id] == nil:
			if a := s.Next(id, now); a.Kind == Pieces {
				pending[id] = a.Pieces
				if a.Steal {
					steals++
				}
			}
		case step%3 == 0:
			for _, i := range pending[id] {
				s.Received(id, i, now)
			}
			pending[id] = nil
		case step%17 == 0:
			s.Done(id, Failed, now)
			pending[id] = nil
		}
		if step%5 == 0 && s.ReaderAt() < 100 {
			if sl := s.pieces[s.ReaderAt()]; sl != nil && sl.have {
				s.Consumed()
			}
		}
		if s.claimed > 16 {
			t.Fatalf("step %d: %d pieces held or asked", step, s.claimed)
		}
		dups := map[PeerID]int{}
		set := 0
		for i, sl := range s.pieces {
			if sl == nil {
				continue
			}
			set++
			if int64(i) < s.ReaderAt() || int64(i) >= s.ReaderAt()+16 {
				t.Fatalf("piece %d outside the window at %d", i, s.ReaderAt())
			}
			if sl.dup != "" {
				dups[sl.dup]++
			}
		}
		if set != s.claimed {
			t.Fatalf("step %d: %d pieces set, %d counted", step, set, s.claimed)
		}
		if step%7 == 0 {
			s.Plan(now) // starts workers: the peers' state changes
		}
		var retry time.Time
		for _, p := range s.list {
			if !p.worker && !p.bad && p.retryAt.After(now) && (retry.IsZero() || p.retryAt.Before(retry)) {
				retry = p.retryAt
			}
		}
		if got := s.nextRetry(now); !got.Equal(retry) {
			t.Fatalf("step %d: next retry %v, want %v", step, got, retry)
		}
		if len(dups) > 1 {
			t.Fatalf("step %d: pieces asked of a second peer by %v", step, dups)
		}
		for _, n := range dups {
			if n > 4 {
				t.Fatalf("step %d: %d pieces asked of a second peer", step, n)
			}
		}
		now = now.Add(300 * time.Millisecond)
	}
	if s.ReaderAt() < 20 || steals == 0 {
		t.Fatalf("the reader got to piece %d, with %d steals: the test did not exercise the window", s.ReaderAt(), steals)
	}
}

// TestHave checks what a have-update reports: whether it may change what
// the download does, so that the caller wakes the download only then.
func TestHave(t *testing.T) {
	tests := []struct {
		name string
		// setup runs after peers "a" (holding piece 0 only) and "b" (all)
		// were added; when it returns a piece, that piece is told.
		setup func(s *Scheduler) (piece int64)
		peer  PeerID
		piece int64
		want  bool
	}{
		{name: "a piece nobody was asked for", peer: "a", piece: 5, want: true},
		{name: "a piece past the window, which it reaches later", peer: "a", piece: 30, want: true},
		{name: "a piece the peer was known to hold", peer: "a", piece: 0, want: false},
		{name: "a peer that holds every piece", peer: "b", piece: 5, want: false},
		{name: "an unknown peer", peer: "c", piece: 5, want: false},
		{name: "a piece out of range", peer: "a", piece: 40, want: false},
		{
			name: "a piece received",
			setup: func(s *Scheduler) int64 {
				i := s.Next("b", t0).Pieces[0]
				s.Received("b", i, t0)
				return i
			},
			peer: "a", want: false,
		},
		{
			name: "a piece the reader took",
			setup: func(s *Scheduler) int64 {
				s.Next("a", t0) // piece 0, which only a and b hold
				s.Received("a", 0, t0)
				s.Consumed()
				return 0
			},
			peer: "a", want: false,
		},
		{
			name:  "a piece on its way from one peer, which may be asked of a second",
			setup: func(s *Scheduler) int64 { return s.Next("b", t0).Pieces[0] },
			peer:  "a", want: true,
		},
		{
			name: "a piece asked of two peers already",
			setup: func(s *Scheduler) int64 {
				i := s.Next("b", t0).Pieces[0]
				s.AddPeer("c", PeerInfo{})
				s.pieces[i].dup = "c" // as a steal by c would
				return i
			},
			peer: "a", want: false,
		},
		{
			name:  "a peer that sent bad data",
			setup: func(s *Scheduler) int64 { s.Next("a", t0); s.Done("a", Bad, t0); return 5 },
			peer:  "a", want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(cfg(40))
			s.AddPeer("a", PeerInfo{Has: bits(40, 0)})
			s.AddPeer("b", PeerInfo{})
			piece := tt.piece
			if tt.setup != nil {
				piece = tt.setup(s)
			}
			if got := s.Have(tt.peer, piece); got != tt.want {
				t.Fatalf("Have(%s, %d) = %v, want %v", tt.peer, piece, got, tt.want)
			}
			if s.Have(tt.peer, piece) {
				t.Fatalf("the same have twice: reported a change the second time")
			}
		})
	}
}

// TestRarityCounts checks the holders the rarest-first choice counts: a
// have adds the peer to a piece's holders once, and a peer that sent bad
// data no longer counts.
func TestRarityCounts(t *testing.T) {
	s := New(cfg(40))
	s.AddPeer("a", PeerInfo{Has: bits(40, 0, 1, 2, 3)})
	s.AddPeer("b", PeerInfo{Has: bits(40, 0, 1)})
	s.AddPeer("c", PeerInfo{Has: bits(40, 2)})
	s.AddPeer("d", PeerInfo{})
	s.Have("c", 3)
	s.Have("c", 3)
	for i, want := range []int{3, 3, 3, 3, 1} {
		if got := s.rarity(int64(i)); got != want {
			t.Errorf("piece %d: %d holders, want %d", i, got, want)
		}
	}
	// Once b proves bad, pieces 0 and 1 have one holder fewer.
	s.Next("b", t0)
	s.Done("b", Bad, t0)
	for i, want := range []int{2, 2, 3, 3, 1} {
		if got := s.rarity(int64(i)); got != want {
			t.Errorf("after b proved bad: piece %d: %d holders, want %d", i, got, want)
		}
	}
	// c holds only 2 and 3, equally rare: it asks for both or for 3; d
	// holds every piece and asks for one of the rarest left, 4 to 15 (d
	// alone holds them), rather than 0 (a and d).
	if a := s.Next("c", t0); a.Kind != Pieces || !slices.Equal(a.Pieces, []int64{2, 3}) && !slices.Equal(a.Pieces, []int64{3}) {
		t.Fatalf("c asked for %+v, want pieces [2 3] or [3]", a)
	}
	if a := s.Next("d", t0); a.Kind != Pieces || a.Pieces[0] < 4 || s.rarity(a.Pieces[0]) != 1 {
		t.Fatalf("d asked for %+v, want one of the rarest pieces first: 4 to 15, held by d alone", a)
	}
}

// TestSparseLookups: a download that knows fewer usable peers than it asks
// at once looks for more while its workers run (a seed serving it alone
// may be all it knows), with a wait that doubles from LookupEvery up to
// maxSparseWait times it, and not at all once it knows Parallel peers.
func TestSparseLookups(t *testing.T) {
	s := New(cfg(400))
	s.AddPeer("seed", PeerInfo{})
	var looked []time.Duration
	for ms := time.Duration(0); ms <= 40*time.Second; ms += 100 * time.Millisecond {
		pl := s.Plan(at(ms))
		if ms == 0 && !slices.Equal(pl.Start, ids("seed")) {
			t.Fatalf("started %v", pl.Start)
		}
		if pl.Lookup {
			looked = append(looked, ms)
			s.LookupDone(at(ms)) // found nobody new
		}
	}
	want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 31 * time.Second}
	if !slices.Equal(looked, want) {
		t.Errorf("lookups at %v, want %v (waits of 1, 2, 4, 8, 16 s)", looked, want)
	}
	// Wake is never later than the next one, so that an idle download
	// still looks.
	if pl := s.Plan(at(41 * time.Second)); pl.Wake.IsZero() || pl.Wake.After(at(47*time.Second)) {
		t.Errorf("wake at %v, want by the next lookup at 47 s", pl.Wake.Sub(t0))
	}

	// With Parallel peers, no lookup while they are asked.
	s = New(cfg(400))
	for _, p := range []PeerID{"a", "b", "c", "d"} {
		s.AddPeer(p, PeerInfo{})
	}
	for ms := time.Duration(0); ms <= 5*time.Second; ms += 100 * time.Millisecond {
		if s.Plan(at(ms)).Lookup {
			t.Fatalf("a download with %d peers looked up at %v", 4, ms)
		}
	}
}

// TestRarestTies checks that among equally rare pieces the first one asked
// for is drawn at random (downloads asking one source at once then ask it
// for different pieces), always one of the rarest, and that a piece rarer
// than the rest is always the one asked for.
func TestRarestTies(t *testing.T) {
	firsts := map[int64]bool{}
	for seed := range uint64(20) {
		c := cfg(40)
		c.Rand = rand.New(rand.NewPCG(seed, 2))
		s := New(c)
		// b holds 0 to 3: pieces 4 to 15 of the window are held by a
		// alone, the rarest, all equally.
		s.AddPeer("a", PeerInfo{})
		s.AddPeer("b", PeerInfo{Has: bits(40, 0, 1, 2, 3)})
		a := s.Next("a", t0)
		if a.Kind != Pieces || a.Pieces[0] < 4 || a.Pieces[0] >= 16 {
			t.Fatalf("seed %d: asked for %+v, want a run from one of the rarest pieces, 4 to 15", seed, a)
		}
		firsts[a.Pieces[0]] = true

		// One piece rarer than all others is always asked first.
		s = New(c)
		s.AddPeer("a", PeerInfo{})
		s.AddPeer("b", PeerInfo{Has: bits(40, 0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15)})
		if a := s.Next("a", t0); a.Kind != Pieces || a.Pieces[0] != 7 {
			t.Fatalf("seed %d: asked for %+v, want the rarest piece, 7", seed, a)
		}
	}
	if len(firsts) < 5 {
		t.Fatalf("20 seeds chose only the first pieces %v among 12 equally rare", firsts)
	}
}

// TestTradeRandomFirst checks Config.Trade: with every known peer holding
// every piece (a seed, as a release starts to spread), the first
// RandomFirst pieces are still drawn at random, one a request; then the
// reader's order comes back, with full runs. Without Trade the reader's
// order is kept from the start (TestRandomFirst).
func TestTradeRandomFirst(t *testing.T) {
	firsts := map[int64]bool{}
	for seed := range uint64(20) {
		c := cfg(40)
		c.RandomFirst, c.Trade = 2, true
		c.Rand = rand.New(rand.NewPCG(seed, 3))
		s := New(c)
		s.AddPeer("seed", PeerInfo{})
		for range c.RandomFirst {
			a := s.Next("seed", t0)
			if a.Kind != Pieces || len(a.Pieces) != 1 || a.Pieces[0] >= 16 {
				t.Fatalf("seed %d: asked for %+v, want one piece of the window", seed, a)
			}
			firsts[a.Pieces[0]] = true
			s.Received("seed", a.Pieces[0], t0)
		}
		from := firstUnasked(s)
		var want []int64 // the only peer's full run from there
		for i := from; i < s.windowEnd() && s.pieces[i] == nil && len(want) < c.MaxPerRequest; i++ {
			want = append(want, i)
		}
		if a := s.Next("seed", t0); a.Kind != Pieces || !slices.Equal(a.Pieces, want) {
			t.Fatalf("seed %d: after the random first pieces asked for %+v, want the run %v from the first piece not asked for", seed, a, want)
		}
	}
	if len(firsts) < 8 {
		t.Fatalf("20 seeds chose only the first pieces %v", firsts)
	}
}

// firstUnasked returns the first piece of the window nobody was asked for.
func firstUnasked(s *Scheduler) int64 {
	for i := s.next; i < s.windowEnd(); i++ {
		if s.pieces[i] == nil {
			return i
		}
	}
	return -1
}

// TestWorkerGivesWay checks that a worker whose peer holds nothing to ask
// for ends when a peer not asked holds a piece the download needs (its
// place among Parallel goes to that peer), and waits when none does.
func TestWorkerGivesWay(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *Scheduler) // after a (piece 0 only) asked for and received piece 0
		want  ActionKind
	}{
		{
			name:  "another peer holds a piece nobody asked for",
			setup: func(s *Scheduler) { s.AddPeer("b", PeerInfo{Has: bits(40, 1, 2)}) },
			want:  Stop,
		},
		{
			name: "the other peer is asked already",
			setup: func(s *Scheduler) {
				s.AddPeer("b", PeerInfo{Has: bits(40, 1, 2)})
				s.Plan(t0)
				s.Next("b", t0)
			},
			want: Wait,
		},
		{
			name: "the other peer is left alone after a busy answer",
			setup: func(s *Scheduler) {
				s.AddPeer("b", PeerInfo{Has: bits(40, 1, 2)})
				s.Plan(t0)
				s.Next("b", t0)
				s.Done("b", Busy, t0)
			},
			want: Wait,
		},
		{
			name:  "the other peer holds only what is received",
			setup: func(s *Scheduler) { s.AddPeer("b", PeerInfo{Has: bits(40, 0)}) },
			want:  Wait,
		},
		{
			name:  "the other peer holds only pieces past the window",
			setup: func(s *Scheduler) { s.AddPeer("b", PeerInfo{Has: bits(40, 20)}) },
			want:  Wait,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(cfg(40))
			s.AddPeer("a", PeerInfo{Has: bits(40, 0)})
			if pl := s.Plan(t0); !slices.Equal(pl.Start, ids("a")) {
				t.Fatalf("started %v, want a", pl.Start)
			}
			if a := s.Next("a", t0); a.Kind != Pieces || !slices.Equal(a.Pieces, []int64{0}) {
				t.Fatalf("a asked for %+v, want piece 0", a)
			}
			s.Received("a", 0, t0)
			tt.setup(s)
			if a := s.Next("a", t0); a.Kind != tt.want {
				t.Fatalf("a's worker told %+v, want kind %d", a, tt.want)
			}
		})
	}
}
