// Package swarmsim is a discrete-event simulation of a release spreading
// through a fleet: virtual time, no sockets, no goroutines. Every node's
// download is driven by the same scheduler as the real one
// (internal/p2p/sched), and every node serves by the same rules as a real
// node (internal/p2p/slots.go): a fixed number of upload slots, one per
// peer, busy when none is free, a slot kept for the peer whose answer
// just ended (500 ms; 50 ms on a node that serves pieces early), the
// node's uplink shared by its uploads.
//
// The network model: each node has an uplink and a downlink bandwidth and
// a one-way latency to every other; a node that can only dial out (behind
// a NAT, no hole punch) accepts no connection: a request to it fails after
// DialTimeout unless it is connected to the asker already, because it
// asked the asker for pieces first (a libp2p connection carries streams
// both ways). Such a node announces nothing, as internal/p2p keeps quiet
// while AutoNAT finds it unreachable; with PiecesEarly its peers find it
// as real downloads do, among the connected peers that speak the owner's
// protocol (internal/p2p's connectedSpeakers). Nodes that churn leave at a random
// time while the release spreads, cutting their uploads. Discovery is a sample of at most 32 of
// the nodes that announced the release, as a DHT lookup returns, taken
// when a node polls and when its download asks for a lookup.
//
// It models what limits a swarm at scale: slots, bandwidth, latency,
// reachability, the scheduler's rules. It leaves out CPU, TLS and the DHT's
// own traffic.
package swarmsim

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/org/rustpatcher-go/internal/p2p/sched"
)

// The protocol's constants the simulation uses, as in internal/p2p.
const (
	pieceSize      = 1 << 20
	fetchWindow    = 16
	fetchParallel  = 4
	perRequest     = 4
	maxPerRequest  = 8
	stealAfter     = 2 * time.Second
	endgameAfter   = time.Second
	maxIdleRounds  = 12
	lookupEvery    = 500 * time.Millisecond
	slotGrace      = 500 * time.Millisecond
	earlySlotGrace = 50 * time.Millisecond // a node that serves pieces early
	lookupN        = 32
	haveEvery      = 100 * time.Millisecond // between an answer to a have request and the next request
	haveIdle       = 500 * time.Millisecond // the same after an answer that told nothing new
	maxHaveWaits   = 64                     // the have requests a node holds at once
	havePolls      = 128                    // the have requests a download has in flight
	maxHaveWait    = 2 * time.Second        // the longest a node holds a have request (wire.MaxHaveWait)
	maxWatches     = 64                     // the watches a node holds at once
	watchEvery     = 100 * time.Millisecond // between two bitfields of a watch (wire.WatchEvery)
	randomFirst    = 4                      // the pieces a download picks at random first
)

// Config is one simulated fleet.
type Config struct {
	// Nodes is the number of nodes that update, besides the seed.
	Nodes int
	// Size is the release's length in bytes.
	Size int64
	// Uplink and Downlink are every node's bandwidth in bytes a second;
	// a Downlink of 0 is unlimited. SeedUplink is the seed's uplink.
	Uplink, Downlink, SeedUplink float64
	// Slots and SeedSlots are the upload slots of a node and the seed.
	Slots, SeedSlots int
	// Latency is the one-way delay between any two nodes.
	Latency time.Duration
	// DialOutOnly is the fraction of nodes that accept no connection.
	DialOutOnly float64
	// DialTimeout is how long a request to such a node takes to fail.
	DialTimeout time.Duration
	// LoudDialOutOnly makes dial-out-only nodes announce the release like
	// any other, as nodes did before internal/p2p kept quiet while AutoNAT
	// finds them unreachable (or while AutoNAT has not decided yet).
	// Without it they announce nothing, as a node that AutoNAT found
	// unreachable does, so that no sample holds them.
	LoudDialOutOnly bool
	// Churn is the fraction of nodes that leave while the release
	// spreads, at a time drawn uniformly from [0, ChurnWithin).
	Churn       float64
	ChurnWithin time.Duration
	// PiecesEarly makes a node serve each piece as soon as it holds it,
	// announce itself as its download starts, and tell the downloads
	// that know it of each new piece by have answers (see watcher;
	// internal/p2p/partial.go, Config.PiecesEarly); otherwise a node
	// serves the release only once it holds all of it, as internal/p2p
	// does by default.
	PiecesEarly bool
	// AnnounceAtFirstPiece makes a node that serves pieces early announce
	// itself at its first piece rather than as its download starts, as
	// internal/p2p did before.
	AnnounceAtFirstPiece bool
	// HavePolls bounds the have requests one download has in flight at
	// once, as internal/p2p's havePolls: a download's requests take turns
	// (see watcher). Zero means havePolls, as internal/p2p; negative, no
	// bound: every peer a download knows always has its request.
	HavePolls int
	// PollHave makes the downloads ask have requests, held by the node
	// until it has a new piece, as internal/p2p did before watches;
	// without it they watch the nodes they know, each watch a have
	// request that stays open and gets a bitfield at each new piece (see
	// watcher; internal/p2p/partial.go, serveWatch).
	PollHave bool
	// CPU, when positive, is the CPU all the nodes share, in cores, as in
	// BenchmarkPropagation, where one process runs the 51 nodes on 2;
	// CPUPerByte is the CPU a byte moved costs its sender and receiver
	// together, in seconds. The nodes' uploads then move at most
	// CPU/CPUPerByte bytes a second in all, shared equally by the nodes
	// uploading (each still within its uplink). Each change in the nodes
	// uploading shares it anew, a cost that grows with the fleet: it is
	// for the benchmark's 50 nodes. Zero gives every node a CPU of its
	// own, as in a fleet.
	CPU, CPUPerByte float64
	// LookupDelay is how long a poll or a lookup takes.
	LookupDelay time.Duration
	// Seed seeds the randomness; the same Config gives the same Result.
	Seed uint64
	// Trace, when set, gets a line of the fleet's state every 250 ms of
	// virtual time: nodes holding pieces, uploads, the share of the
	// uplink of those nodes in use, slots kept idle, downloads.
	Trace io.Writer
}

// Result is the outcome of a run.
type Result struct {
	// AllDone is when the last node that stayed held the release.
	AllDone time.Duration
	// Median is when half of the nodes that stayed held it.
	Median time.Duration
	// Bound is S/U + log2(N) x piece/U, the broadcast bound for equal
	// uplinks U.
	Bound time.Duration
	// Done and Left count the nodes that got the release and those that
	// left first; Stuck those that neither did by the end of the run.
	Done, Left, Stuck int
	// SeedUploaded is the bytes the seed sent; Uploaded all nodes'.
	SeedUploaded, Uploaded int64
	// Busy counts busy answers; Lookups the polls and lookups.
	Busy, Lookups int
	// HaveAnswers counts have answers (bitfields of watches included);
	// MaxHavePolls is the most have requests (or watches) one download
	// had in flight at once.
	HaveAnswers, MaxHavePolls int
	// Events is the number of events simulated.
	Events int
}

// Bound returns S/U + log2(n) x piece/U for a release of size bytes and
// uplinks of up bytes a second.
func Bound(size int64, up float64, n int) time.Duration {
	s := float64(size)/up + math.Log2(float64(n))*float64(pieceSize)/up
	return time.Duration(s * float64(time.Second))
}

// event is something that happens at a time; seq keeps the order of
// events at the same time deterministic.
type event struct {
	at  time.Duration
	seq uint64
	fn  func()
}

// queue is a binary min-heap of events by (at, seq), held by value so
// that scheduling one costs no allocation but its closure's.
type queue []event

func (q queue) less(i, j int) bool {
	return q[i].at < q[j].at || (q[i].at == q[j].at && q[i].seq < q[j].seq)
}

func (q *queue) push(e event) {
	*q = append(*q, e)
	h := *q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() event {
	h := *q
	e := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = event{}
	h = h[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return e
}

// sim is one run.
type sim struct {
	cfg     Config
	rng     *rand.Rand
	now     time.Duration
	q       queue
	seq     uint64
	nodes   []*node
	pieces  int64
	lastLen int64 // the last piece's length
	provs   []int // nodes that announced, in order
	res     Result
	epoch   time.Time      // the scheduler's clock at virtual time 0
	ids     []sched.PeerID // the scheduler's name of each node
	upNodes int            // nodes uploading, with Config.CPU
}

// node is one simulated node.
type node struct {
	id        int
	up        float64
	slots     int
	grace     time.Duration // how long a slot is kept for the peer whose upload ended
	natted    bool
	gone      bool
	have      []bool
	got       []int64 // the pieces it holds, in the order they came
	nHave     int64
	doneAt    time.Duration
	announced bool
	watches   int // watches it holds

	// serving
	flows   []*flow               // uploads running
	knownBy []*watcher            // downloads that have it among their peers (PiecesEarly)
	kept    map[int]time.Duration // a slot kept for a peer until then
	rated   time.Duration         // when the flows' remaining bytes were last brought up to date
	gen     int                   // invalidates the scheduled end of the next piece

	// conns are the nodes it has a connection with, made by its own or
	// their requests: a dial-out-only node is reached only over one.
	conns []int32

	// downloading
	dl       *download
	inFlows  int // downloads into this node running, for the downlink share
	fetching bool
}

// download is one Open of the release by a node: a scheduler and its
// workers.
type download struct {
	n        *node
	s        *sched.Scheduler
	workers  []*worker // running, in the order they started
	kicked   bool
	ended    bool
	planGen  int           // invalidates a planned wake
	wakeGen  int           // the planned wake pending, or 0
	wakeAt   time.Duration // when it is
	polls    int           // its have requests in flight
	pollQ    []*watcher    // watchers waiting for a turn, in order
	watches  []*watcher    // its watches held (some ended: see rotate)
	rotating bool          // a rotate is scheduled
}

// worker asks one peer, like a download's worker goroutine.
type worker struct {
	d       *download
	peer    int
	waitGen int // invalidates a planned wake
	waiting bool
	flow    *flow
}

// flow is one answer being sent: a run of pieces from a server to a
// downloader's worker.
type flow struct {
	from, to *node
	w        *worker
	pieces   []int64
	left     float64 // bytes of the current piece still to send
	rate     float64
	dead     bool
}

// Run simulates cfg and returns what happened.
func Run(cfg Config) Result {
	if cfg.Slots == 0 {
		cfg.Slots = 2
	}
	if cfg.SeedSlots == 0 {
		cfg.SeedSlots = cfg.Slots
	}
	if cfg.HavePolls == 0 {
		cfg.HavePolls = havePolls
	}
	if cfg.SeedUplink == 0 {
		cfg.SeedUplink = cfg.Uplink
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	s := &sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), epoch: time.Unix(1<<30, 0)}
	s.pieces = (cfg.Size + pieceSize - 1) / pieceSize
	s.lastLen = cfg.Size - (s.pieces-1)*pieceSize
	s.res.Bound = Bound(cfg.Size, cfg.Uplink, cfg.Nodes)
	seed := &node{id: 0, up: cfg.SeedUplink, slots: cfg.SeedSlots, grace: slotGrace, have: make([]bool, s.pieces), nHave: s.pieces, announced: true, kept: map[int]time.Duration{}}
	for i := range seed.have {
		seed.have[i] = true
	}
	if cfg.PiecesEarly {
		// Every node of a fleet that serves pieces early has
		// Config.PiecesEarly, the seed too: it keeps slots 50 ms.
		seed.grace = earlySlotGrace
	}
	s.ids = make([]sched.PeerID, cfg.Nodes+1)
	for i := range s.ids {
		s.ids[i] = sched.PeerID(strconv.Itoa(i))
	}
	s.nodes = append(s.nodes, seed)
	s.provs = append(s.provs, 0)
	for i := 1; i <= cfg.Nodes; i++ {
		n := &node{id: i, up: cfg.Uplink, slots: cfg.Slots, grace: slotGrace, have: make([]bool, s.pieces), kept: map[int]time.Duration{},
			natted: s.rng.Float64() < cfg.DialOutOnly}
		n.grace = seed.grace
		s.nodes = append(s.nodes, n)
		s.at(0, func() { s.poll(n) })
		if s.rng.Float64() < cfg.Churn {
			leave := time.Duration(s.rng.Int64N(int64(max(cfg.ChurnWithin, time.Millisecond))))
			s.at(leave, func() { s.leave(n) })
		}
	}
	if cfg.Trace != nil {
		s.at(0, s.trace)
	}
	limit := 100*s.res.Bound + time.Hour
	for len(s.q) > 0 && s.res.Done+s.res.Left < cfg.Nodes {
		e := s.q.pop()
		if e.at > limit {
			break
		}
		s.now = e.at
		s.res.Events++
		e.fn()
	}
	var times []time.Duration
	for _, n := range s.nodes[1:] {
		switch {
		case n.gone:
		case n.nHave == s.pieces:
			times = append(times, n.doneAt)
			s.res.AllDone = max(s.res.AllDone, n.doneAt)
		default:
			s.res.Stuck++
		}
	}
	if len(times) > 0 {
		slices.Sort(times)
		s.res.Median = times[len(times)/2]
	}
	return s.res
}

// at schedules fn at time t.
func (s *sim) at(t time.Duration, fn func()) {
	s.seq++
	s.q.push(event{at: max(t, s.now), seq: s.seq, fn: fn})
}

// clock returns the scheduler's time for the virtual time now.
func (s *sim) clock() time.Time { return s.epoch.Add(s.now) }

// sample returns up to lookupN announced nodes other than n, at random,
// the seed among them when fewer than lookupN have announced.
func (s *sim) sample(n *node) []int {
	var out []int
	seen := map[int]bool{n.id: true}
	if len(s.provs) <= lookupN+1 {
		for _, p := range s.provs {
			if !seen[p] {
				out = append(out, p)
			}
		}
		return out
	}
	for tries := 0; len(out) < lookupN && tries < 4*lookupN; tries++ {
		p := s.provs[s.rng.IntN(len(s.provs))]
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// poll starts a download by n of the release from where it is, after a
// lookup: as the update engine's poll and Open.
func (s *sim) poll(n *node) {
	if n.gone || n.nHave == s.pieces || n.fetching {
		return
	}
	n.fetching = true
	s.res.Lookups++
	s.at(s.now+s.cfg.LookupDelay, func() {
		if n.gone {
			return
		}
		first := int64(0)
		for first < s.pieces && n.have[first] {
			first++
		}
		d := &download{n: n}
		d.s = sched.New(sched.Config{
			Pieces: s.pieces, First: first, Window: fetchWindow, Parallel: fetchParallel,
			PerRequest: perRequest, MaxPerRequest: maxPerRequest, StealAfter: stealAfter,
			EndgameAfter: endgameAfter, MaxIdleRounds: maxIdleRounds, LookupEvery: lookupEvery,
			RandomFirst: randomFirst, Trade: s.cfg.PiecesEarly,
			Rand: rand.New(rand.NewPCG(s.rng.Uint64(), uint64(n.id))),
		})
		n.dl = d
		if s.cfg.PiecesEarly && !s.cfg.AnnounceAtFirstPiece {
			// A node that serves pieces early announces the release as
			// its download starts (internal/p2p's startPartial): peers
			// learn of its pieces by have requests.
			s.announce(n)
		}
		s.addPeers(d, s.sample(n))
		s.addPeers(d, s.speakers(n))
		s.plan(d)
	})
}

// speakers returns, with PiecesEarly, up to lookupN of the nodes n is
// connected to that hold pieces, at random: those a real download adds at
// each lookup (internal/p2p's connectedSpeakers; a node registers the
// owner's protocol once it serves pieces).
func (s *sim) speakers(n *node) []int {
	if !s.cfg.PiecesEarly {
		return nil
	}
	var out []int
	for _, c := range n.conns {
		if p := s.nodes[c]; !p.gone && p.nHave > 0 {
			out = append(out, int(c))
		}
	}
	s.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(len(out), lookupN)]
}

// connect records a connection between a and b.
func (s *sim) connect(a, b *node) {
	if slices.Contains(a.conns, int32(b.id)) {
		return
	}
	a.conns = append(a.conns, int32(b.id))
	b.conns = append(b.conns, int32(a.id))
}

// addPeers adds candidates to d, with what they hold when nodes serve
// pieces early.
func (s *sim) addPeers(d *download, ids []int) {
	for _, id := range ids {
		var has []bool
		if s.cfg.PiecesEarly {
			has = append([]bool(nil), s.nodes[id].have...)
		}
		if d.s.AddPeer(s.peerID(id), sched.PeerInfo{Has: has}) && s.cfg.PiecesEarly {
			p := s.nodes[id]
			if p.natted && !slices.Contains(p.conns, int32(d.n.id)) {
				continue // its have requests cannot reach it (nor its pieces requests: request)
			}
			// The have requests go over a connection the download
			// makes: the peer can ask this node back over it.
			s.connect(d.n, p)
			w := &watcher{d: d, n: p, told: len(p.got)}
			p.knownBy = append(p.knownBy, w)
			if w.told == int(s.pieces) {
				w.done = true // it holds every piece: nothing to ask
			} else {
				s.at(s.now+haveEvery, func() { s.turn(w) })
			}
		}
	}
}

// kick runs the download's manager and waiting workers once after a
// change, as closing the download's wake channel does.
func (s *sim) kick(d *download) {
	if d.kicked || d.ended {
		return
	}
	d.kicked = true
	s.at(s.now, func() {
		d.kicked = false
		if d.ended {
			return
		}
		s.plan(d)
		for _, w := range slices.Clone(d.workers) {
			if w.waiting {
				s.next(w)
			}
		}
	})
}

// plan runs the download's manager.
func (s *sim) plan(d *download) {
	if d.ended {
		return
	}
	pl := d.s.Plan(s.clock())
	if pl.Done {
		s.endDownload(d, pl.Fail != "")
		return
	}
	for _, id := range pl.Start {
		w := &worker{d: d, peer: nodeID(id)}
		d.workers = append(d.workers, w)
		s.next(w)
	}
	if pl.Lookup {
		s.res.Lookups++
		s.at(s.now+s.cfg.LookupDelay, func() {
			if d.ended {
				return
			}
			s.addPeers(d, s.sample(d.n))
			s.addPeers(d, s.speakers(d.n))
			d.s.LookupDone(s.clock())
			s.kick(d)
		})
	}
	if pl.Wake.IsZero() {
		return
	}
	// One wake pending at a time: an earlier one plans again, and
	// schedules the next.
	g := pl.Wake.Sub(s.epoch)
	if d.wakeGen != 0 && d.wakeAt >= s.now && d.wakeAt <= g {
		return
	}
	d.planGen++
	gen := d.planGen
	d.wakeGen, d.wakeAt = gen, g
	s.at(g, func() {
		if d.planGen == gen {
			d.wakeGen = 0
			s.plan(d)
		}
	})
}

// endDownload ends d; when it failed, the node polls again shortly.
func (s *sim) endDownload(d *download, failed bool) {
	if d.ended {
		return
	}
	d.ended = true
	d.n.fetching = false
	if d.n.dl == d {
		d.n.dl = nil
	}
	for _, w := range d.workers {
		if w.flow != nil {
			w.flow.dead = true
		}
	}
	// Nothing asks an ended download again (every event checks ended
	// first); the lists of the nodes it knew may hold it a while longer.
	d.s, d.workers = nil, nil
	if failed && !d.n.gone && d.n.nHave < s.pieces {
		s.at(s.now+100*time.Millisecond, func() { s.poll(d.n) })
	}
}

// next asks the scheduler what worker w does now.
func (s *sim) next(w *worker) {
	d := w.d
	if d.ended {
		return
	}
	w.waiting = false
	a := d.s.Next(s.peerID(w.peer), s.clock())
	switch a.Kind {
	case sched.Stop:
		s.workerDone(w, sched.Finished)
	case sched.Pieces:
		s.request(w, a.Pieces)
	case sched.Hashes:
		// No piece hashes in the model: take them as in.
		d.s.HashesDone(s.peerID(w.peer), true, s.clock())
		s.at(s.now, func() { s.next(w) })
	case sched.Wait:
		w.waiting = true
		w.waitGen++
		if !a.Until.IsZero() {
			gen := w.waitGen
			s.at(a.Until.Sub(s.epoch), func() {
				if w.waiting && w.waitGen == gen {
					s.next(w)
				}
			})
		}
	}
}

// workerDone ends w with out.
func (s *sim) workerDone(w *worker, out sched.Outcome) {
	d := w.d
	k := slices.Index(d.workers, w)
	if d.ended || k < 0 {
		return
	}
	d.workers = slices.Delete(d.workers, k, k+1)
	d.s.Done(s.peerID(w.peer), out, s.clock())
	s.kick(d)
}

// request sends w's request for pieces to its peer, which answers a
// latency later.
func (s *sim) request(w *worker, pieces []int64) {
	srv := s.nodes[w.peer]
	lat := s.cfg.Latency
	if srv.natted && !slices.Contains(srv.conns, int32(w.d.n.id)) {
		s.at(s.now+s.cfg.DialTimeout, func() { s.workerDone(w, sched.Failed) })
		return
	}
	s.connect(w.d.n, srv)
	s.at(s.now+lat, func() {
		if w.d.ended {
			return
		}
		if srv.gone || !srv.holds(pieces) {
			s.at(s.now+lat, func() { s.workerDone(w, sched.Failed) })
			return
		}
		if !s.takeSlot(srv, w.d.n.id) {
			s.res.Busy++
			s.at(s.now+lat, func() { s.workerDone(w, sched.Busy) })
			return
		}
		f := &flow{from: srv, to: w.d.n, w: w, pieces: pieces}
		w.flow = f
		f.left = float64(s.pieceLen(pieces[0]))
		s.update(srv)
		srv.flows = append(srv.flows, f)
		f.to.inFlows++
		s.reschedule(srv)
		s.cpuShare(srv, len(srv.flows)-1)
	})
}

// uplink returns the bytes a second srv's flows share: its uplink, or
// less, its share of the CPU, with Config.CPU.
func (s *sim) uplink(srv *node) float64 {
	if s.cfg.CPU <= 0 || s.upNodes == 0 {
		return srv.up
	}
	return min(srv.up, s.cfg.CPU/s.cfg.CPUPerByte/float64(s.upNodes))
}

// cpuShare, with Config.CPU, shares the CPU anew among the nodes
// uploading when srv, which had before flows, starts or stops uploading.
func (s *sim) cpuShare(srv *node, before int) {
	if s.cfg.CPU <= 0 || (before == 0) == (len(srv.flows) == 0) {
		return
	}
	// rate is what uplink gives a node of uplink up while nodes upload.
	rate := func(up float64, nodes int) float64 {
		if nodes == 0 {
			return up
		}
		return min(up, s.cfg.CPU/s.cfg.CPUPerByte/float64(nodes))
	}
	was := s.upNodes
	if before == 0 {
		s.upNodes++
	} else {
		s.upNodes--
	}
	for _, n := range s.nodes {
		// Only the nodes whose rate changes: a CPU that does not bind
		// changes no event.
		if len(n.flows) > 0 && rate(n.up, was) != rate(n.up, s.upNodes) {
			s.update(n)
			s.reschedule(n)
		}
	}
}

// holds reports whether n holds every piece of pieces.
func (n *node) holds(pieces []int64) bool {
	for _, i := range pieces {
		if !n.have[i] {
			return false
		}
	}
	return true
}

// pieceLen returns the length of piece i.
func (s *sim) pieceLen(i int64) int64 {
	if i == s.pieces-1 {
		return s.lastLen
	}
	return pieceSize
}

// takeSlot reports whether srv has an upload slot for peer p now, as
// internal/p2p's uploadSlots: one per peer, none while the others are
// kept for the peers whose answers just ended.
func (s *sim) takeSlot(srv *node, p int) bool {
	for _, f := range srv.flows {
		if f.to.id == p {
			return false
		}
	}
	kept := 0
	for q, until := range srv.kept {
		switch {
		case until <= s.now:
			delete(srv.kept, q)
		case q == p:
			delete(srv.kept, q)
			return true // its own kept slot
		default:
			kept++
		}
	}
	return len(srv.flows)+kept < srv.slots
}

// update brings the remaining bytes of srv's flows up to now.
func (s *sim) update(srv *node) {
	dt := (s.now - srv.rated).Seconds()
	srv.rated = s.now
	for _, f := range srv.flows {
		f.left -= f.rate * dt
	}
}

// reschedule shares srv's uplink among its flows (each capped by its
// receiver's share of its downlink) and schedules the end of the piece
// that ends first.
func (s *sim) reschedule(srv *node) {
	srv.gen++
	if len(srv.flows) == 0 {
		return
	}
	share := s.uplink(srv) / float64(len(srv.flows))
	var first *flow
	for _, f := range srv.flows {
		f.rate = share
		if s.cfg.Downlink > 0 {
			f.rate = min(f.rate, s.cfg.Downlink/float64(max(f.to.inFlows, 1)))
		}
		if first == nil || f.left/f.rate < first.left/first.rate {
			first = f
		}
	}
	dt := time.Duration(max(first.left/first.rate, 0) * float64(time.Second))
	gen := srv.gen
	s.at(s.now+dt, func() {
		if srv.gen == gen {
			s.pieceSent(srv, first)
		}
	})
}

// pieceSent ends the piece f is sending: it arrives a latency later; the
// flow goes on with the next piece of its run or ends.
func (s *sim) pieceSent(srv *node, f *flow) {
	s.update(srv)
	i := f.pieces[0]
	n := s.pieceLen(i)
	srv.uploadedAdd(s, n)
	f.pieces = f.pieces[1:]
	last := len(f.pieces) == 0
	before := len(srv.flows)
	if last || f.dead {
		s.endFlow(srv, f)
	} else {
		f.left = float64(s.pieceLen(f.pieces[0]))
	}
	s.reschedule(srv)
	s.cpuShare(srv, before)
	w := f.w
	dead := f.dead
	s.at(s.now+s.cfg.Latency, func() {
		if dead || w.d.ended {
			return
		}
		s.received(w, i)
		if last {
			w.flow = nil
			s.next(w)
		}
	})
}

func (srv *node) uploadedAdd(s *sim, n int64) {
	s.res.Uploaded += n
	if srv.id == 0 {
		s.res.SeedUploaded += n
	}
}

// endFlow removes f from srv and keeps the slot for its peer.
func (s *sim) endFlow(srv *node, f *flow) {
	for k, g := range srv.flows {
		if g == f {
			srv.flows = append(srv.flows[:k], srv.flows[k+1:]...)
			break
		}
	}
	f.to.inFlows--
	if !f.dead {
		srv.kept[f.to.id] = s.now + srv.grace
	}
}

// received hands piece i from w's peer to w's node.
func (s *sim) received(w *worker, i int64) {
	d := w.d
	n := d.n
	if !d.s.Received(s.peerID(w.peer), i, s.clock()) {
		s.kick(d)
		return
	}
	if !n.have[i] {
		n.have[i] = true
		n.got = append(n.got, i)
		n.nHave++
		if s.cfg.PiecesEarly {
			s.tellHave(n)
			if s.cfg.AnnounceAtFirstPiece {
				s.announce(n)
			}
		}
	}
	for d.s.ReaderAt() < s.pieces && n.have[d.s.ReaderAt()] {
		d.s.Consumed()
	}
	if n.nHave == s.pieces {
		n.doneAt = s.now
		s.res.Done++
		s.endDownload(d, false)
		s.announce(n)
		return
	}
	s.kick(d)
}

// watcher is a download's have requests to one node (internal/p2p's
// pollHave). A watch (the default) stays open: its first bitfield comes at
// once, the next a latency after each new piece, at most one every
// watchEvery, until the node holds every piece; a node holding maxWatches
// already answers with the first bitfield alone, and the watcher asks
// again haveEvery later (haveIdle when it told nothing new). With
// Config.PollHave each answer tells the node's pieces; the next request
// goes haveEvery after it and, when the node holds nothing new, is held
// there until it does (a long poll), unless the node holds maxHaveWaits
// requests already: then it is answered at once with nothing new, and the
// next goes haveIdle later. A download has at most Config.HavePolls
// requests or watches in flight: a watcher takes a turn to send one (turn)
// and gives it back with the answer's end, so the others, in order, get
// theirs.
type watcher struct {
	d       *download
	n       *node         // the node watched
	sentAt  time.Duration // when the request in flight was sent
	req     int           // counts its requests: invalidates a held request's timeout
	active  bool          // it has a request in flight (a turn)
	pending bool          // an answer with a new piece is on its way
	done    bool          // the node holds every piece: it asks no more
	told    int           // the node's pieces told so far (of node.got)
	watch   bool          // its request is a watch the node holds
	pushed  time.Duration // when the node last sent a bitfield of the watch
}

// turn sends w's next have request when its download has a turn free, or
// queues w for one.
func (s *sim) turn(w *watcher) {
	d := w.d
	if d.ended || w.active || w.done {
		return
	}
	if s.cfg.HavePolls > 0 && d.polls >= s.cfg.HavePolls {
		d.pollQ = append(d.pollQ, w)
		if !s.cfg.PollHave && !d.rotating {
			d.rotating = true
			s.at(s.now+maxHaveWait, func() { s.rotate(d) })
		}
		return
	}
	d.polls++
	s.res.MaxHavePolls = max(s.res.MaxHavePolls, d.polls)
	w.active, w.sentAt = true, s.now
	w.req++
	if !s.cfg.PollHave {
		// A watch: held by the node, unless it holds maxWatches; its
		// first bitfield goes back at once.
		w.pending = true
		s.at(s.now+s.cfg.Latency, func() {
			n := w.n
			if n.gone || d.ended {
				w.pending = false
				s.endTurnAfter(w, 0)
				return
			}
			if n.watches < maxWatches {
				w.watch = true
				n.watches++
				d.watches = append(d.watches, w)
			}
			w.pushed = s.now
			s.at(s.now+s.cfg.Latency, func() { s.haveAnswer(n, w) })
		})
		return
	}
	if len(w.n.got) > w.told { // answered as it arrives
		w.pending = true
		s.at(s.now+2*s.cfg.Latency, func() { s.haveAnswer(w.n, w) })
		return
	}
	// Held at the node until it has a new piece (tellHave), at most
	// maxHaveWait: then answered with nothing new.
	req := w.req
	s.at(s.now+2*s.cfg.Latency+maxHaveWait, func() {
		if w.req == req && w.active && !w.pending {
			s.res.HaveAnswers++
			s.endTurnAfter(w, haveIdle)
		}
	})
}

// rotate ends, while watchers of d wait for a turn, the watches of d that
// ran maxHaveWait, as internal/p2p's pollHave does at the watch's next
// bitfield (one every maxHaveWait at least), and runs again maxHaveWait
// later while some wait.
func (s *sim) rotate(d *download) {
	d.rotating = false
	if d.ended || len(d.pollQ) == 0 {
		return
	}
	live := d.watches[:0]
	for _, w := range d.watches {
		switch {
		case !w.watch || !w.active:
		case w.pending || s.now-w.sentAt < maxHaveWait:
			live = append(live, w)
		default:
			w.watch = false
			w.n.watches--
			s.endTurnAfter(w, haveEvery)
		}
	}
	d.watches = live
	if len(d.pollQ) > 0 {
		d.rotating = true
		s.at(s.now+maxHaveWait, func() { s.rotate(d) })
	}
}

// tellHave schedules, for each download that has a have request at n or
// on its way there, the answer that tells it n's new piece: a latency
// after the piece when its request is held at n, or as soon as it reaches
// n; for those beyond maxHaveWaits held requests, at a random point of
// their haveIdle cycle.
func (s *sim) tellHave(n *node) {
	lat := s.cfg.Latency
	held := 0
	live := n.knownBy[:0]
	for _, w := range n.knownBy {
		if w.d.ended || w.done {
			if w.watch { // the watch's next write fails: it ends
				w.watch = false
				n.watches--
			}
			continue
		}
		live = append(live, w)
		if !w.active || w.pending {
			continue
		}
		if w.watch {
			at := max(s.now, w.pushed+watchEvery)
			w.pending, w.pushed = true, at
			s.at(at+lat, func() { s.haveAnswer(n, w) })
			continue
		}
		if !s.cfg.PollHave {
			continue // a watch's one bitfield, on its way
		}
		at := max(s.now+lat, w.sentAt+2*lat)
		if s.now >= w.sentAt+lat { // its request waits at n
			if held++; held > maxHaveWaits {
				at = s.now + lat + time.Duration(s.rng.Int64N(int64(haveIdle)))
			}
		}
		w.pending = true
		s.at(at, func() { s.haveAnswer(n, w) })
	}
	n.knownBy = live
}

// haveAnswer delivers n's pieces to the download of w, and wakes it when
// that may change what it does, as pollHave does; the download's turn
// passes to the next watcher waiting for one.
func (s *sim) haveAnswer(n *node, w *watcher) {
	w.pending = false
	d := w.d
	if d.ended {
		return
	}
	s.res.HaveAnswers++
	// The answer is every piece n holds; those told before change
	// nothing (Have returns false), so only the others are passed on.
	news := false
	for _, i := range n.got[w.told:] {
		if d.s.Have(s.peerID(n.id), i) {
			news = true
		}
	}
	told := len(n.got) > w.told
	w.told = len(n.got)
	if w.told == int(s.pieces) {
		w.done = true
	}
	switch {
	case w.watch && !w.done:
		// The watch goes on.
	case w.watch:
		w.watch = false
		n.watches--
		s.endTurnAfter(w, haveEvery)
	case !s.cfg.PollHave && !told:
		s.endTurnAfter(w, haveIdle) // a watch past the node's bound
	default:
		s.endTurnAfter(w, haveEvery)
	}
	if news {
		s.kick(d)
	}
}

// endTurnAfter ends w's have request: the download's turn passes to the
// next watcher waiting for one, and w asks again wait later unless it is
// done.
func (s *sim) endTurnAfter(w *watcher, wait time.Duration) {
	d := w.d
	if d.ended || !w.active {
		return
	}
	w.active = false
	d.polls--
	for len(d.pollQ) > 0 && d.polls < s.cfg.HavePolls {
		next := d.pollQ[0]
		d.pollQ = d.pollQ[1:]
		s.turn(next)
	}
	if !w.done {
		s.at(s.now+wait, func() { s.turn(w) })
	}
}

// announce makes n a provider, a lookup's delay later.
func (s *sim) announce(n *node) {
	if n.announced {
		return
	}
	n.announced = true
	if n.natted && !s.cfg.LoudDialOutOnly {
		return
	}
	s.at(s.now+s.cfg.LookupDelay, func() {
		if !n.gone {
			s.provs = append(s.provs, n.id)
		}
	})
}

// leave takes n out of the fleet: its uploads end as resets, its
// download stops.
func (s *sim) leave(n *node) {
	if n.gone || n.nHave == s.pieces {
		return
	}
	n.gone = true
	s.res.Left++
	s.update(n)
	for _, f := range n.flows {
		f.dead = true
		f.to.inFlows--
		w := f.w
		s.at(s.now+s.cfg.Latency, func() { s.workerDone(w, sched.Failed) })
	}
	before := len(n.flows)
	n.flows = nil
	n.gen++
	s.cpuShare(n, before)
	// Its have requests fail as its connections close: the downloads
	// that watched it stop asking it and give their turns on.
	for _, w := range n.knownBy {
		if w.d.ended || w.done {
			continue
		}
		w.done = true
		if w.active && !w.pending {
			s.at(s.now+s.cfg.Latency, func() { s.endTurnAfter(w, 0) })
		}
	}
	n.knownBy = nil
	if n.dl != nil {
		s.endDownload(n.dl, false)
	}
	for k, p := range s.provs {
		if p == n.id {
			s.provs = append(s.provs[:k], s.provs[k+1:]...)
			break
		}
	}
}

// trace writes a line of the fleet's state to cfg.Trace, and schedules
// the next.
func (s *sim) trace() {
	var holders, flows, uploading, kept, dls, workers, peers int
	var pieces int64
	var rate float64
	for _, n := range s.nodes {
		if n.nHave > 0 {
			holders++
		}
		pieces += n.nHave
		flows += len(n.flows)
		if len(n.flows) > 0 {
			uploading++
		}
		for _, f := range n.flows {
			rate += f.rate
		}
		for _, u := range n.kept {
			if u > s.now {
				kept++
			}
		}
		if n.dl != nil {
			dls++
			workers += len(n.dl.workers)
			peers += n.dl.s.State(s.clock()).Peers
		}
	}
	fmt.Fprintf(s.cfg.Trace, "t=%6.2fs holding=%d pieces/node=%.1f uploads=%d uploading=%d uplink-use=%.2f kept=%d downloads=%d workers/download=%.1f peers/download=%.0f done=%d busy=%d providers=%d\n",
		s.now.Seconds(), holders, float64(pieces)/float64(len(s.nodes)), flows, uploading, rate/float64(max(holders, 1))/s.cfg.Uplink,
		kept, dls, float64(workers)/float64(max(dls, 1)), float64(peers)/float64(max(dls, 1)), s.res.Done, s.res.Busy, len(s.provs))
	s.at(s.now+250*time.Millisecond, s.trace)
}

// peerID names node id for the scheduler.
func (s *sim) peerID(id int) sched.PeerID { return s.ids[id] }

// nodeID is the node peerID names.
func nodeID(p sched.PeerID) int {
	id, _ := strconv.Atoi(string(p))
	return id
}
