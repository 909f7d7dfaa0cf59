// Command hostile is a test peer that speaks the rustpatcher protocol wrongly.
// The end-to-end tests run it inside the network to check that no node takes
// anything from it. It joins the DHT like any node, announces the channel and
// the real release (so that clients find it), and answers every request
// with one of its lies, in turn:
//
// With --role info it lies about releases: garbage, a truncated answer, a
// region with a bad signature, a region signed by another key, and a
// correctly signed older release (--older).
//
// With --role fetch it offers the real release's region (--real) but never
// has its bytes: it answers fetches with a garbage status, a length longer
// or shorter than signed, the right length of wrong bytes followed by more
// bytes than signed, the right length of wrong bytes (a wrong hash), a stall
// mid-transfer, a drip of one byte a second, or an early close. It also
// floods every peer it meets with malformed requests.
//
// It prints "listening: <multiaddr>" lines like hello and rpseed, and
// "hostile: <role> info=N fetch=N flood=N" after every request and on exit.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type hostile struct {
	role   string
	pub    ed25519.PublicKey
	real   [region.Size]byte
	older  [region.Size]byte
	total  uint64
	stall  time.Duration
	info   atomic.Int64
	fetch  atomic.Int64
	flood  atomic.Int64
	out    sync.Mutex
	node   *p2p.Node
	target string
}

func main() {
	var (
		pubS, target, realPath, olderPath, role string
		boot, listen                            listFlag
		private                                 bool
		stall                                   time.Duration
	)
	flag.StringVar(&pubS, "pub", "", "owner public key (z-base-32)")
	flag.StringVar(&target, "target", "", "GOOS/GOARCH to lie about")
	flag.StringVar(&role, "role", "fetch", "info or fetch")
	flag.StringVar(&realPath, "real", "", "a real signed release: its region is offered (fetch role)")
	flag.StringVar(&olderPath, "older", "", "a real signed older release: its region is offered (info role)")
	flag.Var(&boot, "bootstrap", "bootstrap multiaddr (repeatable)")
	flag.Var(&listen, "listen", "listen multiaddr (repeatable)")
	flag.BoolVar(&private, "private", true, "private network")
	flag.DurationVar(&stall, "stall", time.Minute, "how long a stalling answer stalls")
	flag.Parse()
	if err := run(pubS, target, role, realPath, olderPath, boot, listen, private, stall); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

func readRegion(path string) ([region.Size]byte, uint64, error) {
	var r [region.Size]byte
	if path == "" {
		return r, 0, nil
	}
	sc, err := region.ScanFile(context.Background(), path)
	if err != nil {
		return r, 0, err
	}
	in, err := sc.Info()
	if err != nil {
		return r, 0, err
	}
	return sc.Region, uint64(in.ContentLen()), nil
}

func run(pubS, target, role, realPath, olderPath string, boot, listen []string, private bool, stall time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pub, err := region.ParsePublicKey(pubS)
	if err != nil {
		return err
	}
	h := &hostile{role: role, pub: pub, target: target, stall: stall}
	if h.real, h.total, err = readRegion(realPath); err != nil {
		return err
	}
	if h.older, _, err = readRegion(olderPath); err != nil {
		return err
	}
	n, err := p2p.New(ctx, p2p.Config{Private: private, Bootstrap: boot, ListenAddrs: listen, DHTServer: true})
	if err != nil {
		return err
	}
	defer n.Close()
	h.node = n
	n.Host().SetStreamHandler(protocol.ID(wire.ProtocolID(pub)), h.handle)
	for _, a := range n.Addrs() {
		fmt.Println("listening: " + a)
	}
	// Announce like an honest node, until it works.
	go func() {
		for i := 0; i < 60 && ctx.Err() == nil; i++ {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err1 := n.Provide(pctx, p2p.ChannelCID(pub, target))
			var err2 error
			if role == "fetch" {
				err2 = n.Provide(pctx, p2p.ReleaseCID(pub, target, wire.ReleaseID(h.real)))
			}
			cancel()
			if err1 == nil && err2 == nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	if role == "fetch" {
		go h.floodLoop(ctx)
	}
	<-ctx.Done()
	h.report()
	return nil
}

func (h *hostile) report() {
	h.out.Lock()
	defer h.out.Unlock()
	fmt.Printf("hostile: %s info=%d fetch=%d flood=%d\n", h.role, h.info.Load(), h.fetch.Load(), h.flood.Load())
}

func garbage(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (h *hostile) handle(s network.Stream) {
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := wire.ReadRequest(s)
	if err != nil {
		return
	}
	switch req.Kind {
	case wire.KindInfo:
		i := h.info.Add(1)
		h.lieInfo(s, int(i))
	case wire.KindFetch:
		i := h.fetch.Add(1)
		h.lieFetch(s, req, int(i))
	}
	h.report()
}

// lieInfo answers an info request.
func (h *hostile) lieInfo(s network.Stream, i int) {
	if h.role == "fetch" {
		wire.WriteInfo(s, h.real) // the lure: a real region, bytes it does not have
		return
	}
	switch i % 5 {
	case 0: // garbage
		s.Write(garbage(300))
	case 1: // truncated
		s.Write(append([]byte{0}, h.older[:100]...))
	case 2: // bad signature: a real region with one bit flipped
		r := h.older
		r[68+10] ^= 1
		wire.WriteInfo(s, r)
	case 3: // signed by another key, a high version
		_, other, _ := ed25519.GenerateKey(nil)
		in := region.Info{Version: "9.9.9", Size: 1000}
		copy(in.Hash[:], garbage(32))
		in.Sign(other)
		r, _ := in.Marshal()
		wire.WriteInfo(s, r)
	case 4: // correctly signed but older
		wire.WriteInfo(s, h.older)
	}
}

// lieFetch answers a fetch request for the real release.
func (h *hostile) lieFetch(s network.Stream, req *wire.Request, i int) {
	if req.Offset > h.total {
		wire.WriteError(s, wire.StatusBadRequest, "no")
		return
	}
	left := h.total - req.Offset
	s.SetWriteDeadline(time.Now().Add(h.stall + 30*time.Second))
	body := func(n uint64) {
		// The real region first (if at offset 0), then random bytes: never
		// the real content.
		if req.Offset == 0 {
			k := min(n, region.Size)
			s.Write(h.real[:k])
			n -= k
		}
		buf := garbage(64 << 10)
		for n > 0 {
			k := min(n, uint64(len(buf)))
			if _, err := s.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	}
	switch i % 8 {
	case 0: // garbage status
		s.Write(garbage(9))
		s.Write([]byte{0xee})
	case 1: // longer than signed
		wire.WriteFetchHeader(s, left+1000)
		body(left + 1000)
	case 2: // shorter than signed
		wire.WriteFetchHeader(s, left/2)
		body(left / 2)
	case 3: // right length, wrong bytes, then more than signed
		wire.WriteFetchHeader(s, left)
		body(left)
		s.Write(garbage(1 << 20))
	case 4: // right length, wrong bytes: a wrong hash
		wire.WriteFetchHeader(s, left)
		body(left)
	case 5: // stall mid-transfer
		wire.WriteFetchHeader(s, left)
		body(left / 3)
		time.Sleep(h.stall)
	case 6: // close early
		wire.WriteFetchHeader(s, left)
		body(left / 2)
		s.Reset()
	case 7: // drip a byte at a time, never stalling long enough for a read deadline
		wire.WriteFetchHeader(s, left)
		for end := time.Now().Add(h.stall); time.Now().Before(end); {
			if _, err := s.Write(garbage(1)); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
	}
}

// floodLoop sends bursts of malformed and unauthenticated requests to every
// connected peer, every second.
func (h *hostile) floodLoop(ctx context.Context) {
	proto := protocol.ID(wire.ProtocolID(h.pub))
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range h.node.Host().Network().Peers() {
			go h.floodPeer(ctx, p, proto)
		}
	}
}

func (h *hostile) floodPeer(ctx context.Context, p peer.ID, proto protocol.ID) {
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			s, err := h.node.Host().NewStream(sctx, p, proto)
			if err != nil {
				return
			}
			defer s.Reset()
			h.flood.Add(1)
			s.SetDeadline(time.Now().Add(5 * time.Second))
			switch i % 3 {
			case 0:
				s.Write(garbage(200))
			case 1: // a fetch with a stale namespace check and a huge offset
				req := &wire.Request{Kind: wire.KindFetch, Target: h.target, Auth: wire.Auth(h.pub, time.Unix(0, 0))}
				binary.LittleEndian.PutUint64(req.ID[:], uint64(i))
				req.Offset = 1 << 62
				b, _ := req.Marshal()
				s.Write(b)
			case 2: // a valid info request, over and over
				req := &wire.Request{Kind: wire.KindInfo, Target: h.target, Auth: wire.Auth(h.pub, time.Now())}
				b, _ := req.Marshal()
				s.Write(b)
			}
			s.CloseWrite()
			io.Copy(io.Discard, io.LimitReader(s, 4096))
		}()
	}
	wg.Wait()
}
