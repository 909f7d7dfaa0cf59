//go:build unix

package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/org/rustpatcher-go/internal/wire"
)

// The shape of TestRpseedFloods: each flood runs for floodProbes probes,
// one every probeEvery, each with probeTimeout to get its answers.
const (
	floodProbes  = 9
	probeEvery   = 2 * time.Second
	probeTimeout = 5 * time.Second
	// floodWarmup is how long a flood runs before the first probe.
	floodWarmup = time.Second
	// minAnswered is how many of floodProbes probes must be answered.
	minAnswered = 8
	// maxSeedMemory bounds rpseed's peak resident memory under a flood.
	maxSeedMemory = 100 << 20
)

// floodTarget is an rpseed under attack: the protocol it speaks, its
// addresses and the release it serves.
type floodTarget struct {
	pub    ed25519.PublicKey
	proto  protocol.ID
	target string
	seed   peer.AddrInfo
	file   []byte // the release's bytes
	layout wire.Layout
	id     [wire.IDLen]byte
}

// floodHost starts a libp2p host that only dials, over TCP (the first
// transport our nodes dial on loopback), with a fresh identity and no
// resource limits of its own.
func floodHost(t testing.TB) host.Host {
	h, err := libp2p.New(
		libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// request opens a stream of the protocol from h and sends req (with a
// fresh namespace check) and closes the write side.
func (ft *floodTarget) request(ctx context.Context, h host.Host, req *wire.Request) (network.Stream, error) {
	req.Auth = wire.Auth(ft.pub, time.Now())
	b, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	return ft.send(ctx, h, b)
}

// send opens a stream of the protocol from h, writes b and closes the
// write side.
func (ft *floodTarget) send(ctx context.Context, h host.Host, b []byte) (network.Stream, error) {
	h.Peerstore().AddAddrs(ft.seed.ID, ft.seed.Addrs, time.Hour)
	s, err := h.NewStream(ctx, ft.seed.ID, ft.proto)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	if _, err := s.Write(b); err != nil {
		s.Reset()
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, err
	}
	return s, nil
}

// probe is an honest peer with a fresh identity: it connects, asks for
// info, then for one random piece (again after a busy answer, as a
// download does), and checks the piece's bytes. It returns nil when both
// were answered within probeTimeout.
func (ft *floodTarget) probe(t testing.TB) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	h := floodHost(t)
	defer h.Close()
	if err := h.Connect(ctx, ft.seed); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	s, err := ft.request(ctx, h, &wire.Request{Kind: wire.KindInfo, Target: ft.target})
	if err != nil {
		return fmt.Errorf("info: %w", err)
	}
	o, err := wire.ReadInfo(s)
	s.Close()
	if err != nil {
		return fmt.Errorf("info: %w", err)
	}
	if o.FileID != ft.id {
		return fmt.Errorf("info: file %x, want %x", o.FileID[:8], ft.id[:8])
	}
	i := rand.Int64N(ft.layout.NumPieces())
	buf := make([]byte, ft.layout.MaxPieceLen())
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		s, err := ft.request(ctx, h, &wire.Request{Kind: wire.KindPieces, Target: ft.target, ID: ft.id, First: uint32(i), Count: 1})
		if err != nil {
			return fmt.Errorf("piece %d: %w", i, err)
		}
		err = wire.ReadPiecesHeader(s)
		if errors.Is(err, wire.ErrBusy) {
			s.Close()
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return fmt.Errorf("piece %d: busy until the probe's time was up", i)
			}
		}
		if err != nil {
			s.Reset()
			return fmt.Errorf("piece %d: %w", i, err)
		}
		b, err := ft.layout.ReadPiece(s, i, buf)
		s.Close()
		if err != nil {
			return fmt.Errorf("piece %d: %w", i, err)
		}
		off, n := ft.layout.Piece(i)
		if !bytes.Equal(b, ft.file[off:off+n]) {
			return fmt.Errorf("piece %d: wrong bytes", i)
		}
		return nil
	}
}

// A flood attacks ft until ctx is done, and returns a line that says what
// it did.
type flood func(t *testing.T, ctx context.Context, ft *floodTarget) string

// floodSilentStreams: 16 identities keep 16 streams each open to the seed,
// negotiated but without a byte of request.
func floodSilentStreams(t *testing.T, ctx context.Context, ft *floodTarget) string {
	var opened, refused atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		h := floodHost(t)
		defer h.Close()
		if err := h.Connect(ctx, ft.seed); err != nil {
			t.Logf("silent streams: connecting: %v", err)
			continue
		}
		for range 16 {
			wg.Go(func() {
				for ctx.Err() == nil {
					if holdSilentStream(ctx, h, ft) {
						opened.Add(1)
					} else {
						refused.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	return fmt.Sprintf("16 identities x 16 silent streams: %d streams opened (reset at once past 8 per peer, after 3 s without a request otherwise), %d failed to open", opened.Load(), refused.Load())
}

// floodConnections: 300 identities hold a connection to the seed each,
// and connect again when it is closed.
func floodConnections(t *testing.T, ctx context.Context, ft *floodTarget) string {
	var connects, fails atomic.Int64
	var wg sync.WaitGroup
	for range 300 {
		h := floodHost(t)
		defer h.Close()
		wg.Go(func() {
			for ctx.Err() == nil {
				if h.Network().Connectedness(ft.seed.ID) != network.Connected {
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					if err := h.Connect(cctx, ft.seed); err != nil {
						fails.Add(1)
					} else {
						connects.Add(1)
					}
					cancel()
				}
				pause(ctx, 100*time.Millisecond)
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("300 identities holding connections: %d connects, %d failed", connects.Load(), fails.Load())
}

// floodSlowDownloads: 16 identities ask for 8 pieces at a time and read
// them at 120 kB/s.
func floodSlowDownloads(t *testing.T, ctx context.Context, ft *floodTarget) string {
	const rate = 120_000
	var bytesRead, busy, requests atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		h := floodHost(t)
		defer h.Close()
		wg.Go(func() {
			buf := make([]byte, 4096)
			for ctx.Err() == nil {
				n := ft.layout.NumPieces()
				first := rand.Int64N(max(n-wire.MaxPiecesPerRequest, 1))
				count := min(wire.MaxPiecesPerRequest, n-first)
				s, err := ft.request(ctx, h, &wire.Request{Kind: wire.KindPieces, Target: ft.target, ID: ft.id, First: uint32(first), Count: uint32(count)})
				if err != nil {
					pause(ctx, 100*time.Millisecond)
					continue
				}
				requests.Add(1)
				stop := context.AfterFunc(ctx, func() { s.Reset() })
				s.SetDeadline(time.Time{})
				if err := wire.ReadPiecesHeader(s); err != nil {
					busy.Add(1)
					stop()
					s.Reset()
					pause(ctx, 100*time.Millisecond)
					continue
				}
				start := time.Now()
				var got int64
				for {
					k, err := s.Read(buf)
					got += int64(k)
					bytesRead.Add(int64(k))
					if err != nil {
						break
					}
					// Sleep until got bytes took got/rate seconds.
					if d := time.Duration(got*int64(time.Second)/rate) - time.Since(start); d > 0 {
						if !pause(ctx, d) {
							break
						}
					}
				}
				stop()
				s.Reset()
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("16 slow downloaders at 120 kB/s: %d requests, %d refused (busy or reset before the answer), %d bytes read", requests.Load(), busy.Load(), bytesRead.Load())
}

// floodRequests: 8 identities with 16 streams each send info requests as
// fast as they can, and among them junk, oversized requests and requests
// followed by trailing bytes.
func floodRequests(t *testing.T, ctx context.Context, ft *floodTarget) string {
	var sent, answered atomic.Int64
	var wg sync.WaitGroup
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(rand.Uint32())
	}
	for range 8 {
		h := floodHost(t)
		defer h.Close()
		if err := h.Connect(ctx, ft.seed); err != nil {
			t.Logf("request flood: connecting: %v", err)
			continue
		}
		for g := range 16 {
			wg.Go(func() {
				for k := 0; ctx.Err() == nil; k++ {
					var b []byte
					req := &wire.Request{Kind: wire.KindInfo, Target: ft.target, Auth: wire.Auth(ft.pub, time.Now())}
					valid, _ := req.Marshal()
					switch (g + k) % 8 {
					case 0:
						b = junk[:1+rand.IntN(200)]
					case 1:
						b = junk // oversized
					case 2:
						b = append(valid, junk[:512]...) // trailing bytes
					default:
						b = valid
					}
					sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					s, err := ft.send(sctx, h, b)
					if err == nil {
						sent.Add(1)
						if _, err := io.Copy(io.Discard, io.LimitReader(s, wire.InfoAnswerLen)); err == nil {
							answered.Add(1)
						}
						s.Reset()
					} else {
						pause(ctx, 10*time.Millisecond)
					}
					cancel()
				}
			})
		}
	}
	wg.Wait()
	return fmt.Sprintf("request flood: %d requests sent (5 in 8 info requests, the rest junk, oversized or with trailing bytes), %d streams ended cleanly", sent.Load(), answered.Load())
}

// pause waits d or until ctx is done, and reports whether d passed.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// procMemory returns a process's peak and current resident memory in
// bytes, from /proc.
func procMemory(t *testing.T, pid int) (hwm, rss int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("reading rpseed's memory: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v << 10
		case "VmRSS:":
			rss = v << 10
		}
	}
	return hwm, rss
}

// startFloodSeed starts an rpseed with its own identity serving release
// (signed with key) on a private loopback network and returns the process
// and what the attackers need to know.
func startFloodSeed(t *testing.T, rpseed, release string, key Key, extra ...string) (*Proc, *floodTarget) {
	dir := t.TempDir()
	seedDir := filepath.Join(dir, "releases")
	target := runtime.GOOS + "/" + runtime.GOARCH
	CopyFile(t, release, filepath.Join(seedDir, "app-2.0.0"))
	args := append([]string{"--dir", seedDir, "--identity", filepath.Join(dir, "identity.key"), "--private",
		"--pub", target + "=" + key.Public}, seedLoopback()...)
	p := Start(t, rpseed, append(args, extra...)...)
	addrs := listenAddrs(t, p, 0, 2)
	p.WaitLine(0, 30*time.Second, `msg="serving release".* version=2\.0\.0`)
	var seed peer.AddrInfo
	for _, a := range addrs {
		if strings.Contains(a, "/tcp/") {
			ai, err := peer.AddrInfoFromString(a)
			if err != nil {
				t.Fatal(err)
			}
			seed = *ai
		}
	}
	pub := key.Private.Public().(ed25519.PublicKey)
	ft := &floodTarget{pub: pub, proto: protocol.ID(wire.ProtocolID(pub)), target: target, seed: seed}
	b, err := os.ReadFile(release)
	if err != nil {
		t.Fatal(err)
	}
	ft.file = b
	// The file ID and layout, as the seed's info gives them.
	h := floodHost(t)
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, seed); err != nil {
		t.Fatal(err)
	}
	s, err := ft.request(ctx, h, &wire.Request{Kind: wire.KindInfo, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	o, err := wire.ReadInfo(s)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	ft.layout, ft.id = o.Layout, o.FileID
	return p, ft
}

// TestRpseedFloods runs each of four floods against a real rpseed serving
// a real signed release, from attackers that are libp2p hosts in the test
// process, while an honest probe with a fresh identity asks for info and a
// piece every probeEvery: at least minAnswered of floodProbes probes must
// be answered, and rpseed's peak memory must stay under maxSeedMemory.
// docs/BENCHMARKS.md ("rpseed under floods") has the figures.
func TestRpseedFloods(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a real rpseed for over a minute")
	}
	key := NewKey(t)
	rpseed := GoBuild(t, rpseedPkg, "")
	release := filepath.Join(t.TempDir(), "app-2.0.0")
	SignedCopy(t, BuildHello(t, key.Public), release, key, "2.0.0")
	floods := []struct {
		name string
		run  flood
	}{
		{"silent_streams", floodSilentStreams},
		{"connections", floodConnections},
		{"slow_downloads", floodSlowDownloads},
		{"requests", floodRequests},
	}
	for _, f := range floods {
		t.Run(f.name, func(t *testing.T) {
			seed, ft := startFloodSeed(t, rpseed, release, key)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			summary := make(chan string, 1)
			go func() { summary <- f.run(t, ctx, ft) }()
			time.Sleep(floodWarmup)
			var (
				mu       sync.Mutex
				answered int
				failures []string
				wg       sync.WaitGroup
			)
			for i := range floodProbes {
				if i > 0 {
					time.Sleep(probeEvery)
				}
				wg.Go(func() {
					start := time.Now()
					err := ft.probe(t)
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						answered++
						return
					}
					failures = append(failures, fmt.Sprintf("probe %d (%v): %v", i, time.Since(start).Round(time.Millisecond), err))
				})
			}
			wg.Wait()
			hwm, rss := procMemory(t, seed.Pid())
			cancel()
			what := <-summary
			t.Logf("%s: %d of %d probes answered; rpseed VmHWM %.1f MB, VmRSS %.1f MB", what, answered, floodProbes, float64(hwm)/1e6, float64(rss)/1e6)
			for _, f := range failures {
				t.Log(f)
			}
			if answered < minAnswered {
				t.Errorf("%d of %d probes answered under the flood, want at least %d", answered, floodProbes, minAnswered)
			}
			if hwm > maxSeedMemory {
				t.Errorf("rpseed's peak memory %.1f MB, over %d MB", float64(hwm)/1e6, maxSeedMemory>>20)
			}
			if seed.Exited() {
				t.Fatalf("rpseed died:\n%s", seed.Output())
			}
		})
	}
}

// floodOneStreamEach: n identities hold one silent stream each, more than
// the seed's handler holds, so that every place is held by a peer with as
// few streams as a newcomer and new streams are refused.
func floodOneStreamEach(t *testing.T, ctx context.Context, ft *floodTarget, n int) string {
	var opened atomic.Int64
	var wg sync.WaitGroup
	for range n {
		h := floodHost(t)
		defer h.Close()
		wg.Go(func() {
			for ctx.Err() == nil {
				h.Peerstore().AddAddrs(ft.seed.ID, ft.seed.Addrs, time.Hour)
				if holdSilentStream(ctx, h, ft) {
					opened.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%d identities with one silent stream each: %d streams opened", n, opened.Load())
}

// holdSilentStream opens a stream of the release protocol to the seed and
// sends no request: reading sends the protocol's name (multistream's lazy
// negotiation) and then waits until the seed ends the stream or ctx ends.
// It reports false, after a short pause, when the stream did not open.
func holdSilentStream(ctx context.Context, h host.Host, ft *floodTarget) bool {
	s, err := h.NewStream(ctx, ft.seed.ID, ft.proto)
	if err != nil {
		pause(ctx, 50*time.Millisecond)
		return false
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	s.Read(make([]byte, 1))
	stop()
	s.Reset()
	return true
}

// seedMetric reads one counter from an rpseed's /metrics.
func seedMetric(t *testing.T, url, name string) float64 {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("rpseed metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("rpseed has no metric %s", name)
	return 0
}

// TestP2PUpdateAfterFlood floods an rpseed serving hello 2.0.0 for 15 s
// with more identities, each holding one silent stream, than the seed's
// handler holds streams: a hello 1.0.0 node that polls the seed meanwhile
// has its streams refused (reset). It must give the seed no strike for
// them and run 2.0.0 within two poll intervals of the flood's end.
func TestP2PUpdateAfterFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test with a flood")
	}
	const (
		interval = 4 * time.Second
		length   = 15 * time.Second
	)
	key := NewKey(t)
	rpseed := GoBuild(t, rpseedPkg, "")
	hello := BuildHello(t, key.Public)
	release := filepath.Join(t.TempDir(), "hello-2.0.0")
	SignedCopy(t, hello, release, key, "2.0.0")
	seed, ft := startFloodSeed(t, rpseed, release, key, "--metrics-addr", "127.0.0.1:0")
	l, _ := seed.WaitLine(0, 30*time.Second, `^metrics: http://`)
	metrics := strings.TrimPrefix(l.Text, "metrics: ")
	seedID := ft.seed.ID.String()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	summary := make(chan string, 1)
	go func() { summary <- floodOneStreamEach(t, ctx, ft, 300) }()
	time.Sleep(3 * time.Second) // the flood takes every place
	refused := seedMetric(t, metrics, "rpseed_streams_refused_total")

	exe := filepath.Join(t.TempDir(), "node", "hello")
	SignedCopy(t, hello, exe, key, "1.0.0")
	var seedAddrs []string
	for _, a := range ft.seed.Addrs {
		seedAddrs = append(seedAddrs, a.String()+"/p2p/"+seedID)
	}
	args := append([]string{"--private", "--dht-server", "--interval", interval.String()}, loopback()...)
	node := Start(t, exe, append(args, bootstrapArgs(seedAddrs)...)...)
	node.WaitLine(0, 30*time.Second, `^hello 1\.0\.0`)
	time.Sleep(length - 3*time.Second)
	_, _, err := node.FindLine(0, 0, `^hello 2\.0\.0`)
	duringFlood := err == nil
	refused = seedMetric(t, metrics, "rpseed_streams_refused_total") - refused
	cancel()
	ended := time.Now()
	t.Log(<-summary)
	t.Logf("the seed refused %.0f streams during the flood; the node updated during it: %v", refused, duringFlood)
	if refused == 0 {
		t.Error("the seed refused no stream: the flood did not bite")
	}
	node.WaitLine(0, 2*interval, `^hello 2\.0\.0`)
	t.Logf("the node ran 2.0.0 %v after the flood ended (limit %v)", time.Since(ended).Round(time.Millisecond), 2*interval)
	if !sameBytes(t, exe, release) {
		t.Error("the node's executable differs from the seed's 2.0.0")
	}
	if n := struckPeers(node)[seedID]; n > 0 {
		t.Errorf("the node struck the honest seed %d times", n)
	}
}
