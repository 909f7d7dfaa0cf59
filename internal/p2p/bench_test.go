package p2p

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	chk "github.com/org/rustpatcher-go/internal/checked"
	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// benchRelease makes (once per benchmark) a signed release of about size
// bytes.
func benchRelease(b *testing.B, size int64) (ed25519.PublicKey, string, region.Info) {
	b.Helper()
	key := regiontest.NewKey(b)
	path := filepath.Join(b.TempDir(), "release-2.0.0")
	in := regiontest.WriteBinary(b, path, size, 1, key, "2.0.0")
	return key.Public, path, in
}

// BenchmarkTransfer compares one download of a 200 MB release over the
// rustpatcher protocol (TCP and QUIC) with a plain net/http download of the
// same file, all on loopback in one process (BenchmarkTransferProcs serves
// from other processes). Besides throughput it reports the CPU time both
// ends took per download (cpu-ms/op), which varies less than throughput
// on a shared machine, and the cores kept busy. p2p-both listens on QUIC
// and TCP as nodes do by default and logs the transport the nodes chose
// (TCP on loopback, internal/p2phost/dial.go).
// Run with:
//
//	go test -run '^$' -bench 'Transfer$' -benchtime 3x ./internal/p2p/
//
// The goal (p2p-tcp at least half of http) is checked with:
//
//	go test -run '^$' -bench 'Transfer$/(http|p2p-tcp)$' -benchtime 5x -count 3 ./internal/p2p/
func BenchmarkTransfer(b *testing.B) {
	const size = 200 << 20
	pub, path, in := benchRelease(b, size)
	total := in.ContentLen()

	// https is not the goal's yardstick (plain http is); it shows what
	// encryption alone costs on the same loopback.
	for _, tls := range []bool{false, true} {
		name := "http"
		if tls {
			name = "https"
		}
		b.Run(name, func(b *testing.B) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
			var srv *httptest.Server
			if tls {
				srv = httptest.NewTLSServer(h)
			} else {
				srv = httptest.NewServer(h)
			}
			defer srv.Close()
			benchHTTP(b, srv.Client(), srv.URL+"/release", total)
		})
	}
	for _, tr := range []struct {
		name  string
		addrs []string
	}{
		{"p2p-tcp", []string{"/ip4/127.0.0.1/tcp/0"}},
		{"p2p-quic", []string{"/ip4/127.0.0.1/udp/0/quic-v1"}},
		{"p2p-both", []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}},
	} {
		b.Run(tr.name, func(b *testing.B) {
			ctx := context.Background()
			mk := func(boot ...*Node) *Node {
				cfg := Config{Private: true, DHTServer: true, ListenAddrs: tr.addrs, QUIC: hostquic.New}
				for _, n := range boot {
					cfg.Bootstrap = n.Addrs()
				}
				n, err := New(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { n.Close() })
				return n
			}
			seed := mk()
			if err := seed.Serve(ctx, pub, testTarget, path, in); err != nil {
				b.Fatal(err)
			}
			client := mk(seed)
			rels, err := client.Source(pub, testTarget).Releases(ctx)
			if err != nil || len(rels) != 1 {
				b.Fatalf("Releases: %d, %v", len(rels), err)
			}
			if tr.name == "p2p-both" {
				for _, c := range client.Host().Network().ConnsToPeer(seed.Host().ID()) {
					b.Logf("connected to the seed at %s", c.RemoteMultiaddr())
				}
			}
			b.SetBytes(total)
			cpu := startCPU(b)
			for i := 0; i < b.N; i++ {
				rc, err := rels[0].Open(ctx, 0)
				if err != nil {
					b.Fatal(err)
				}
				n, err := consume(rc)
				rc.Close()
				if err != nil || n != total {
					b.Fatalf("got %d bytes, %v", n, err)
				}
			}
			cpu.report(b)
		})
	}
}

// BenchmarkDownloadVerified measures what an update's download costs from
// the first byte to a verified file: the transfer of a 200 MB release from
// one seed over TCP on loopback and the update engine's check of it, as the
// client does, against plain HTTP followed by the engine's check of a
// stream from anywhere (region.ScanAs and Verify). The p2p download checks
// each piece as it arrives, and the engine then only what surrounds the
// content (region.ScanLayout).
//
//	go test -run '^$' -bench 'DownloadVerified' -benchtime 3x ./internal/p2p/
func BenchmarkDownloadVerified(b *testing.B) {
	const size = 200 << 20
	pub, path, in := benchRelease(b, size)
	total := in.ContentLen()
	// The engine's check: the whole content for a stream from anywhere;
	// only what surrounds it for a stream checked piece by piece.
	check := func(b *testing.B, r io.Reader) {
		s, err := region.ScanAs(context.Background(), r, in.Format)
		if err != nil {
			b.Fatal(err)
		}
		if got, err := s.Verify(pub); err != nil || got != in {
			b.Fatalf("Verify = %+v, %v", got, err)
		}
	}
	checked := func(b *testing.B, r io.Reader) {
		s, err := region.ScanLayout(context.Background(), r)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.MatchesLayout(in); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("http", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) }))
		defer srv.Close()
		b.SetBytes(total)
		cpu := startCPU(b)
		for i := 0; i < b.N; i++ {
			resp, err := srv.Client().Get(srv.URL + "/release")
			if err != nil {
				b.Fatal(err)
			}
			check(b, resp.Body)
			resp.Body.Close()
		}
		cpu.report(b)
	})
	b.Run("p2p-tcp", func(b *testing.B) {
		ctx := context.Background()
		addrs := []string{"/ip4/127.0.0.1/tcp/0"}
		seed, err := New(ctx, Config{Private: true, DHTServer: true, ListenAddrs: addrs})
		if err != nil {
			b.Fatal(err)
		}
		defer seed.Close()
		if err := seed.Serve(ctx, pub, testTarget, path, in); err != nil {
			b.Fatal(err)
		}
		client, err := New(ctx, Config{Private: true, DHTServer: true, ListenAddrs: addrs, Bootstrap: seed.Addrs()})
		if err != nil {
			b.Fatal(err)
		}
		defer client.Close()
		rels, err := client.Source(pub, testTarget).Releases(ctx)
		if err != nil || len(rels) != 1 {
			b.Fatalf("Releases: %d, %v", len(rels), err)
		}
		b.SetBytes(total)
		cpu := startCPU(b)
		for i := 0; i < b.N; i++ {
			rc, err := rels[0].Open(ctx, 0)
			if err != nil {
				b.Fatal(err)
			}
			if rels[0].PiecesChecked(chk.PieceCheck{}) {
				checked(b, rc)
			} else {
				check(b, rc)
			}
			rc.Close()
		}
		cpu.report(b)
	})
}

// benchHTTP downloads url b.N times with c.
func benchHTTP(b *testing.B, c *http.Client, url string, total int64) {
	b.SetBytes(total)
	cpu := startCPU(b)
	for i := 0; i < b.N; i++ {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, err := consume(resp.Body)
		resp.Body.Close()
		if err != nil || n != total {
			b.Fatalf("got %d bytes, %v", n, err)
		}
	}
	cpu.report(b)
}

// cpuMeter measures the CPU time this process spends (both ends of a
// transfer run in it), reported per operation and as cores kept busy.
type cpuMeter struct {
	wall time.Time
	cpu  time.Duration
}

// startCPU resets b's timer and starts a cpuMeter.
func startCPU(b *testing.B) cpuMeter {
	b.ResetTimer()
	return cpuMeter{time.Now(), processCPU(b)}
}

// report adds cpu-ms/op and cores to b's results.
func (m cpuMeter) report(b *testing.B) {
	cpu := processCPU(b) - m.cpu
	wall := time.Since(m.wall)
	if cpu <= 0 {
		return // not measured on this system
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
}

// consume reads r to its end in 1 MiB reads, as the update engine's
// scanner does.
func consume(r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fetchVerified downloads the newest release offered by src into path
// like the update engine (resume on read errors, verify while streaming,
// start over when it does not verify) and returns its region.
func fetchVerified(ctx context.Context, src *Source, pub ed25519.PublicKey, path string) (region.Info, error) {
	return fetchVerifiedWith(ctx, src, pub, path, nil)
}

// fetchVerifiedWith is fetchVerified calling done, unless nil, with the
// release it verified.
func fetchVerifiedWith(ctx context.Context, src *Source, pub ed25519.PublicKey, path string, done func(*Release)) (region.Info, error) {
	for ctx.Err() == nil {
		rels, err := src.Releases(ctx)
		if err != nil || len(rels) == 0 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		r := rels[0]
		for _, o := range rels[1:] {
			if region.CompareVersions(o.Info().Version, r.Info().Version) > 0 {
				r = o
			}
		}
		f, err := os.Create(path)
		if err != nil {
			return region.Info{}, err
		}
		// As the update engine does: the download writes the file
		// (OpenFile), the engine reads it through; a release whose
		// pieces were checked against the signed root as they arrived
		// is not hashed again, only its layout read; any other is hashed
		// whole.
		rr := &resumer{ctx: ctx, r: r, into: f, limit: r.Size()}
		vouched := r.PiecesChecked(chk.PieceCheck{})
		var sc *region.Scanned
		if vouched {
			sc, err = region.ScanLayout(context.Background(), rr)
		} else {
			sc, err = region.ScanAs(context.Background(), rr, r.Info().Format)
		}
		f.Close()
		if rr.rc != nil {
			rr.rc.Close()
		}
		if err == nil {
			var in region.Info
			if vouched {
				in, err = r.Info(), sc.MatchesLayout(r.Info())
			} else {
				in, err = sc.Verify(pub)
			}
			if err == nil && in == r.Info() && sc.FileID == r.FileID() {
				if done != nil {
					done(r)
				}
				return in, nil
			}
		}
		r.Reject(fmt.Errorf("%w or did not verify: %v", ErrOtherFile, err))
		time.Sleep(100 * time.Millisecond)
	}
	return region.Info{}, ctx.Err()
}

// resumer reads a release, reopening it at the offset reached on errors;
// with into, the download writes the file there (OpenFile).
type resumer struct {
	ctx   context.Context
	r     *Release
	into  *os.File
	limit int64
	off   int64
	rc    io.ReadCloser
	fails int
}

func (x *resumer) Read(p []byte) (int, error) {
	for {
		if x.off == x.limit {
			return 0, io.EOF
		}
		if x.rc == nil {
			var rc io.ReadCloser
			var err error
			if x.into != nil {
				rc, err = x.r.OpenFile(x.ctx, x.into, x.off)
			} else {
				rc, err = x.r.Open(x.ctx, x.off)
			}
			if err != nil {
				if x.fails++; x.fails > 20 || x.ctx.Err() != nil {
					return 0, err
				}
				continue
			}
			x.rc = rc
		}
		n, err := x.rc.Read(p[:min(int64(len(p)), x.limit-x.off)])
		x.off += int64(n)
		if err != nil && err != io.EOF || err == io.EOF && x.off < x.limit {
			x.rc.Close()
			x.rc = nil
		}
		if n > 0 {
			return n, nil
		}
	}
}

// BenchmarkPropagation measures how long a 20 MB release takes to reach 50
// nodes (100 with RP_PROPAGATION_NODES=100) from one seed whose upload
// slots are capped at 2, in three serving modes: "pieces" (Config.PiecesEarly:
// every node serves each piece as soon as it checked it, and the whole
// file once verified), "whole" (the default: a node serves the release
// only once it verified all of it) and "off" (nodes serve nothing; only
// the seed uploads). All nodes are libp2p hosts
// in this process (real QUIC and TCP on loopback, real DHT) to fit on 2
// cores, and every node's upload is capped at 10 MB/s (UploadRate) to
// stand for a network link: unshaped, on loopback the shared CPU would be
// the bottleneck, not the links. It logs the CPU time the process took,
// which varies less than the wall time on a shared machine. Run once:
//
//	go test -run '^$' -bench Propagation$ -benchtime 1x -timeout 30m ./internal/p2p/
func BenchmarkPropagation(b *testing.B) {
	const (
		size = 20 << 20
		rate = 10 << 20
	)
	nodes := 50
	if v := os.Getenv("RP_PROPAGATION_NODES"); v != "" {
		if _, err := fmt.Sscan(v, &nodes); err != nil || nodes < 1 {
			b.Fatalf("RP_PROPAGATION_NODES=%q: want a node count", v)
		}
	}
	pub, path, in := benchRelease(b, size)
	for _, mode := range []serving{servePieces, serveWhole, serveOff} {
		b.Run(mode.String(), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res := propagate(b, pub, path, in, nodes, rate, mode)
				var at []time.Duration
				for _, d := range res.dones {
					at = append(at, d.at.Round(100*time.Millisecond))
				}
				b.Logf("completion times: %v", at)
				b.ReportMetric(res.total.Seconds(), "s/all-updated")
				b.ReportMetric(float64(res.seedUp)/float64(size), "seed-uploads/release")
			}
		})
	}
}

// serving is how the nodes of a propagation benchmark serve the release.
type serving int

const (
	servePieces serving = iota // each piece once checked, then the whole file (Config.PiecesEarly)
	serveWhole                 // only the whole file, once verified (the default)
	serveOff                   // nothing
)

func (m serving) String() string { return [...]string{"pieces", "whole", "off"}[m] }

// propagation is the outcome of one run of propagate.
type propagation struct {
	total  time.Duration
	seed   *Node  // closed by then
	seedUp int64  // the bytes the seed uploaded
	dones  []done // in the order the nodes finished
}

// done is one node's verified copy: when, and from which peers.
type done struct {
	id   peer.ID
	at   time.Duration
	from []peer.ID
}

// propagate starts a seed serving the release at path (2 upload slots) and
// nodes nodes bootstrapped to it, every upload capped at rate bytes per
// second, and has every node fetch and verify the release at once, serving
// it as mode says.
func propagate(b *testing.B, pub ed25519.PublicKey, path string, in region.Info, nodes, rate int, mode serving) propagation {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	// By default the seed listens on QUIC and TCP, as rpseed does, and
	// the nodes on TCP alone, as apps do unless they ask for QUIC
	// (client/quic); RP_PROPAGATION_TRANSPORT=both gives every node QUIC
	// and TCP, tcp or quic one transport for all.
	both := []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	seedListen, listen := both, both[1:]
	var quic QUIC // the nodes'
	switch v := os.Getenv("RP_PROPAGATION_TRANSPORT"); v {
	case "":
	case "both":
		listen, quic = both, hostquic.New
	case "tcp":
		seedListen = listen
	case "quic":
		seedListen, listen, quic = both[:1], both[:1], hostquic.New
	default:
		b.Fatalf("RP_PROPAGATION_TRANSPORT=%q: want both, tcp or quic", v)
	}
	var grace time.Duration
	if v := os.Getenv("RP_SLOT_GRACE"); v != "" {
		var err error
		if grace, err = time.ParseDuration(v); err != nil {
			b.Fatal(err)
		}
	}
	// In pieces mode the seed has PiecesEarly too, as every node of such a
	// fleet: it keeps an ended upload's slot earlySlotGrace, not slotGrace.
	seed, err := New(ctx, Config{Private: true, DHTServer: true, ListenAddrs: seedListen, QUIC: hostquic.New, UploadSlots: 2, UploadRate: rate,
		PiecesEarly: mode == servePieces, slotGrace: grace})
	if err != nil {
		b.Fatal(err)
	}
	defer seed.Close()
	if err := seed.Serve(ctx, pub, testTarget, path, in); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	all := make([]*Node, nodes)
	tr := newPropTrace(nodes)
	for i := range all {
		cfg := Config{Private: true, DHTServer: true, ListenAddrs: listen, QUIC: quic, Bootstrap: seed.Addrs(), UploadRate: rate,
			PiecesEarly: mode == servePieces, slotGrace: grace}
		if tr != nil {
			cfg.onDownload = tr.hook(i)
		}
		n, err := New(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		all[i] = n
	}
	if v := os.Getenv("RP_PROPAGATION_SETTLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("RP_PROPAGATION_SETTLE=%q: %v", v, err)
		}
		c0 := processCPU(b)
		time.Sleep(d)
		b.Logf("settled %v: %v of CPU", d, (processCPU(b) - c0).Round(10*time.Millisecond))
	}
	b.ResetTimer()
	start := time.Now()
	if tr != nil {
		stop := tr.run(b, start, seed, all)
		defer stop()
	}
	cpu0 := processCPU(b)
	if p := os.Getenv("RP_PROPAGATION_CPUPROFILE"); p != "" {
		// The timed part alone, where -cpuprofile takes the nodes' start
		// too.
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
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
			got, id, from, err := fetchVerifiedFrom(ctx, src, pub, p)
			if err != nil {
				errs <- fmt.Errorf("node %d: %w", i, err)
				return
			}
			mu.Lock()
			dones = append(dones, done{n.ID(), time.Since(start), from})
			mu.Unlock()
			if mode != serveOff {
				// As the update engine does: the file it wrote from its
				// download and verified (client's seedOne).
				if err := src.SeedDownloaded(ctx, p, got, id); err != nil {
					errs <- err
				}
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
	slices.SortFunc(dones, func(x, y done) int { return cmp.Compare(x.at, y.at) })
	cpu := processCPU(b) - cpu0
	var sum Stats
	for _, n := range all {
		st := n.Stats()
		sum.HaveRequests += st.HaveRequests
		sum.WatchRequests += st.WatchRequests
		sum.HaveUpdates += st.HaveUpdates
		sum.FetchRequests += st.FetchRequests
		sum.Busy += st.Busy
		sum.BytesUploaded += st.BytesUploaded
		sum.Strikes += st.Strikes
		sum.Lookups += st.Lookups
		sum.Provides += st.Provides
	}
	b.Logf("the nodes answered %d have, %d watch (%d bitfields) and %d pieces requests (%d busy), uploaded %d MB; %d strikes; %d DHT lookups and %d announcements; connections by transport at the end: %v",
		sum.HaveRequests, sum.WatchRequests, sum.HaveUpdates, sum.FetchRequests, sum.Busy, sum.BytesUploaded>>20, sum.Strikes, sum.Lookups, sum.Provides, transports(append(all, seed)))
	up := int64(seed.Stats().BytesUploaded)
	b.Logf("%d nodes updated in %v (serving %v); seed uploaded %d MB (%.1fx the release), busy answers %d; %v of CPU (%.2f cores)",
		nodes, total.Round(10*time.Millisecond), mode, up>>20, float64(up)/float64(in.ContentLen()), seed.Stats().Busy,
		cpu.Round(10*time.Millisecond), cpu.Seconds()/total.Seconds())
	return propagation{total: total, seed: seed, seedUp: up, dones: dones}
}

// transports counts the nodes' connections by transport (each connection
// between two of them twice, once at each end).
func transports(nodes []*Node) map[string]int {
	m := map[string]int{}
	for _, n := range nodes {
		for _, c := range n.Host().Network().Conns() {
			m[string(c.ConnState().Transport)]++
		}
	}
	return m
}

// BenchmarkDiscovery measures how long a new node takes from its start
// (host creation) to a verified 20 MB release on disk, with the seed up, 10
// times; it reports the median and the worst. The new node bootstraps from
// a DHT node that is not the seed, so it must find the seed through the
// DHT's provider records. In-process libp2p hosts on loopback. Run with:
//
//	go test -run '^$' -bench Discovery -benchtime 1x ./internal/p2p/
func BenchmarkDiscovery(b *testing.B) {
	const size = 20 << 20
	pub, path, in := benchRelease(b, size)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	listen := []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	seed, err := New(ctx, Config{Private: true, DHTServer: true, ListenAddrs: listen, QUIC: hostquic.New})
	if err != nil {
		b.Fatal(err)
	}
	defer seed.Close()
	// A small DHT: ten server nodes joined through the seed.
	var dhtNodes []*Node
	for i := 0; i < 10; i++ {
		n, err := New(ctx, Config{Private: true, DHTServer: true, ListenAddrs: listen, Bootstrap: seed.Addrs(), QUIC: hostquic.New})
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		dhtNodes = append(dhtNodes, n)
	}
	if err := seed.Serve(ctx, pub, testTarget, path, in); err != nil {
		b.Fatal(err)
	}
	// Wait until the seed's announcement is in the DHT.
	for seed.Stats().Provides < 2 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		var times []time.Duration
		for run := 0; run < 10; run++ {
			start := time.Now()
			boot := dhtNodes[run%len(dhtNodes)]
			n, err := New(ctx, Config{Private: true, DHTServer: true, ListenAddrs: listen, Bootstrap: boot.Addrs(), QUIC: hostquic.New})
			if err != nil {
				b.Fatal(err)
			}
			got, err := fetchVerified(ctx, n.Source(pub, testTarget), pub, filepath.Join(dir, fmt.Sprint(run)))
			d := time.Since(start)
			n.Close()
			if err != nil || got != in {
				b.Fatalf("run %d: %v", run, err)
			}
			times = append(times, d)
		}
		slices.Sort(times)
		median := (times[4] + times[5]) / 2
		b.ReportMetric(median.Seconds(), "s/median")
		b.ReportMetric(times[9].Seconds(), "s/worst")
		b.Logf("start to verified 20 MB release, 10 runs: %v", times)
	}
}
