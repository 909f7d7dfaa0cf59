// Command hostile is a test peer that speaks the rustpatcher protocol v1
// wrongly. The end-to-end tests run it inside the network to check that no
// node takes anything from it and that its lies cost it strikes, never an
// honest peer. It joins the DHT like any node, announces the channel and
// the file it claims (so that clients find it), and answers every request
// with one of its lies.
//
// With --role info it lies about releases, in turn: garbage, a truncated
// answer, a region with a bad signature, a region signed by another key,
// and a correctly signed older release (--older).
//
// With --role fetch it offers the real release (--real: its region, length
// and file ID) and answers hashes requests with the real hashes or garbage,
// in turn, but never sends the real pieces: it answers pieces requests, in
// turn, with a garbage status, garbage bytes of the right length, the real
// pieces with one byte changed, the pieces of a copy of the release whose
// region was moved, a stall, a drip of a byte a second, an early close, or
// a reset. It also floods every peer it meets with malformed requests.
//
// With --role moved it serves a copy of the real release whose region was
// moved to half its offset (the same region, other bytes): with --claim
// real it offers the real file ID and hashes, so that it is asked among the
// honest peers, and its pieces fail the root; with --claim own it offers
// the copy's own file ID and hashes, which fail the root.
//
// With --role garbage it offers the real release and hashes, and answers
// every pieces request with status OK, 1 MiB of garbage, and a close: the
// blame-shifting attack that made protocol v0 strike the honest seed.
//
// With --role tail it offers the real release with a tail of zeros, as
// long as the format allows any tail to be (region.MaxTail), after a file
// type that may have none (ELF), and serves that file honestly: its
// hashes and pieces, the real content's, and the zeros. A node must refuse
// the offer before downloading a byte of it.
//
// With --role slowdelta it offers the real release and claims, in its info
// extension, deltas from the file at --base (the asking node's own
// release); it answers packed and pieces requests with the real pieces,
// raw, at --rate bytes a second: honest bytes just fast enough not to be
// dropped, which made it the only source of the download (issue 24).
//
// With --role slowfirst it offers the real release, answers hashes
// requests --hashes-delay late, and pieces requests with the real pieces
// at --rate bytes a second; packed requests it refuses as an older node.
//
// It prints "listening: <multiaddr>" lines like hello and rpseed, and
// "hostile: <role> info=N fetch=N flood=N" after every request and on exit
// (fetch counts hashes and pieces requests).
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
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
	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// file is a release file as the hostile peer knows it.
type file struct {
	reg    [region.Size]byte
	layout wire.Layout
	id     [wire.IDLen]byte
	leaves [][sha256.Size]byte
	bytes  []byte
}

// readFile reads and scans the release at path; nil for an empty path.
func readFile(path string) (*file, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return scanBytes(b)
}

// scanBytes scans a release held in memory.
func scanBytes(b []byte) (*file, error) {
	sc, err := region.Scan(context.Background(), bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	in, err := sc.Info()
	if err != nil {
		return nil, err
	}
	l, err := wire.NewLayout(in.ContentLen(), int64(len(b)))
	if err != nil {
		return nil, err
	}
	return &file{reg: sc.Region, layout: l, id: sc.FileID, leaves: sc.Leaves, bytes: b}, nil
}

// moved returns a copy of f whose region is moved to half its offset: the
// bytes between the two places shift by the region's length.
func moved(f *file) (*file, error) {
	sc, err := region.Scan(context.Background(), bytes.NewReader(f.bytes))
	if err != nil {
		return nil, err
	}
	at := sc.Offset
	to := at / 2
	b := make([]byte, 0, len(f.bytes))
	b = append(b, f.bytes[:to]...)
	b = append(b, f.bytes[at:at+region.Size]...)
	b = append(b, f.bytes[to:at]...)
	b = append(b, f.bytes[at+region.Size:]...)
	return scanBytes(b)
}

// piece returns the bytes of piece i of f.
func (f *file) piece(i int64) []byte {
	off, n := f.layout.Piece(i)
	return f.bytes[off : off+n]
}

type hostile struct {
	role   string
	pub    ed25519.PublicKey
	target string
	stall  time.Duration
	rate   int           // bytes a second of the slow roles
	delay  time.Duration // of a slowfirst hashes answer
	base   *file         // the file a slowdelta peer claims deltas from
	offer  *file         // what it offers: region, length, file ID, hashes
	real   *file         // the real release, if known
	copy   *file         // the moved-region copy, if any
	older  *file

	info, fetch, flood atomic.Int64
	out                sync.Mutex
	node               *p2p.Node
}

func main() {
	var (
		pubS, target, realPath, olderPath, role, claim, basePath string
		boot, listen                                             listFlag
		private                                                  bool
		stall, delay                                             time.Duration
		rate                                                     int
	)
	flag.StringVar(&pubS, "pub", "", "owner public key (z-base-32)")
	flag.StringVar(&target, "target", "", "GOOS/GOARCH to lie about")
	flag.StringVar(&role, "role", "fetch", "info, fetch, moved, garbage, tail, slowdelta or slowfirst")
	flag.StringVar(&claim, "claim", "real", "moved role: offer the real file ID and hashes (real) or the copy's (own)")
	flag.StringVar(&realPath, "real", "", "a real signed release: it is offered (fetch, moved, garbage, tail, slowdelta, slowfirst roles)")
	flag.StringVar(&olderPath, "older", "", "a real signed older release: it is offered (info role)")
	flag.Var(&boot, "bootstrap", "bootstrap multiaddr (repeatable)")
	flag.Var(&listen, "listen", "listen multiaddr (repeatable)")
	flag.BoolVar(&private, "private", true, "private network")
	flag.DurationVar(&stall, "stall", time.Minute, "how long a stalling answer stalls")
	flag.StringVar(&basePath, "base", "", "slowdelta role: the file it claims deltas from")
	flag.IntVar(&rate, "rate", 72<<10, "slowdelta and slowfirst roles: bytes a second of pieces")
	flag.DurationVar(&delay, "hashes-delay", 2*time.Second, "slowfirst role: how late it answers hashes")
	flag.Parse()
	h := &hostile{role: role, stall: stall, rate: rate, delay: delay}
	if err := run(h, pubS, target, claim, realPath, olderPath, basePath, boot, listen, private); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

func run(h *hostile, pubS, target, claim, realPath, olderPath, basePath string, boot, listen []string, private bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pub, err := region.ParsePublicKey(pubS)
	if err != nil {
		return err
	}
	role := h.role
	h.pub, h.target = pub, target
	if h.base, err = readFile(basePath); err != nil {
		return err
	}
	if h.real, err = readFile(realPath); err != nil {
		return err
	}
	if h.older, err = readFile(olderPath); err != nil {
		return err
	}
	switch role {
	case "info":
		if h.older == nil {
			return errors.New("--role info needs --older")
		}
	case "tail":
		if h.real == nil {
			return errors.New("--role tail needs --real")
		}
		b := append(bytes.Clone(h.real.bytes), make([]byte, region.MaxTail(h.real.layout.Content))...)
		if h.offer, err = scanBytes(b); err != nil {
			return err
		}
	case "slowdelta":
		if h.base == nil {
			return errors.New("--role slowdelta needs --base")
		}
		fallthrough
	case "fetch", "garbage", "moved", "slowfirst":
		if h.rate <= 0 {
			return fmt.Errorf("--rate %d: must be positive", h.rate)
		}
		if h.real == nil {
			return fmt.Errorf("--role %s needs --real", role)
		}
		h.offer = h.real
		if h.copy, err = moved(h.real); err != nil {
			return err
		}
		if role == "moved" && claim == "own" {
			h.offer = h.copy
		}
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	n, err := p2p.New(ctx, p2p.Config{Private: private, Bootstrap: boot, ListenAddrs: listen, QUIC: hostquic.New, DHTServer: true})
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
			if h.offer != nil {
				err2 = n.Provide(pctx, p2p.ReleaseCID(pub, target, h.offer.id))
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
	s.SetWriteDeadline(time.Now().Add(h.stall + 30*time.Second))
	if req.Kind == wire.KindPacked && h.role == "slowdelta" && req.ID == h.offer.id && h.offer.layout.CheckRange(req.First, req.Count) == nil {
		h.fetch.Add(1)
		h.slowPieces(s, req, true)
		h.report()
		return
	}
	if req.Kind == wire.KindPacked || req.Kind == wire.KindHave {
		// As a node of an older release, whose decoder does not know the
		// kind: the asking node falls back to pieces requests, and takes
		// a provider that refuses have requests to hold the whole file.
		wire.WriteError(s, wire.StatusBadRequest, "malformed request")
		return
	}
	if req.Kind != wire.KindInfo && h.offer == nil {
		wire.WriteError(s, wire.StatusNotFound, "no")
		return
	}
	switch req.Kind {
	case wire.KindRotations:
		if h.role == "slowdelta" || h.role == "slowfirst" {
			// Right bytes only: no rotation statements.
			wire.WriteRotations(s, nil)
		}
	case wire.KindRollout:
		if h.role == "slowdelta" || h.role == "slowfirst" {
			// Right bytes only: no rollout statement.
			wire.WriteRollouts(s, nil)
		}
	case wire.KindInfo:
		i := h.info.Add(1)
		h.lieInfo(s, int(i))
	case wire.KindHashes:
		i := h.fetch.Add(1)
		h.lieHashes(s, req, int(i))
	case wire.KindPieces:
		i := h.fetch.Add(1)
		h.liePieces(s, req, int(i))
	}
	h.report()
}

// lieInfo answers an info request.
func (h *hostile) lieInfo(s network.Stream, i int) {
	if h.role == "slowdelta" {
		// The lure: deltas from the asking node's own file.
		wire.WriteInfoExt(s, h.offer.reg, h.offer.layout.Size, h.offer.id, wire.InfoExt{Packed: true, Bases: [][wire.IDLen]byte{h.base.id}})
		return
	}
	if h.role != "info" {
		// The lure: a real region and length, bytes it does not have.
		wire.WriteInfo(s, h.offer.reg, h.offer.layout.Size, h.offer.id)
		return
	}
	o := h.older
	switch i % 5 {
	case 0: // garbage
		s.Write(garbage(300))
	case 1: // truncated
		s.Write(append([]byte{0}, o.reg[:100]...))
	case 2: // bad signature: a real region with one bit flipped
		r := o.reg
		r[100] ^= 1
		wire.WriteInfo(s, r, o.layout.Size, o.id)
	case 3: // signed by another key, a high version
		_, other, _ := ed25519.GenerateKey(nil)
		in := region.Info{Format: region.V1, Version: "9.9.9", Size: 1 << 20, Offset: 4096, Target: h.target}
		copy(in.Hash[:], garbage(32))
		in.Sign(other)
		r, _ := in.Marshal()
		wire.WriteInfo(s, r, 1<<20, [wire.IDLen]byte{9})
	case 4: // correctly signed but older
		wire.WriteInfo(s, o.reg, o.layout.Size, o.id)
	}
}

// lieHashes answers a hashes request with the offered file's hashes or,
// in the fetch role every other time, garbage.
func (h *hostile) lieHashes(s network.Stream, req *wire.Request, i int) {
	if req.ID != h.offer.id {
		wire.WriteError(s, wire.StatusNotFound, "no")
		return
	}
	if h.role == "slowfirst" {
		time.Sleep(h.delay)
	}
	if h.role == "fetch" && i%2 == 0 {
		wire.WriteHashes(s, make([][sha256.Size]byte, len(h.offer.leaves)))
		return
	}
	wire.WriteHashes(s, h.offer.leaves)
}

// liePieces answers a pieces request: never with the real pieces, but in
// the tail role, whose lie is the length.
func (h *hostile) liePieces(s network.Stream, req *wire.Request, i int) {
	l := h.offer.layout
	if req.ID != h.offer.id || l.CheckRange(req.First, req.Count) != nil {
		wire.WriteError(s, wire.StatusNotFound, "no")
		return
	}
	first, count := int64(req.First), int64(req.Count)
	off, _ := l.Piece(first)
	lastOff, lastN := l.Piece(first + count - 1)
	total := lastOff + lastN - off
	pieces := func(f *file) {
		for j := first; j < first+count; j++ {
			if _, err := s.Write(f.piece(j)); err != nil {
				return
			}
		}
	}
	switch h.role {
	case "slowdelta", "slowfirst":
		h.slowPieces(s, req, false)
		return
	case "tail":
		wire.WritePiecesHeader(s)
		pieces(h.offer)
		return
	case "moved":
		wire.WritePiecesHeader(s)
		pieces(h.copy)
		return
	case "garbage":
		wire.WritePiecesHeader(s)
		s.Write(garbage(1 << 20))
		return
	}
	switch i % 9 {
	case 0: // garbage status
		s.Write(garbage(9))
		s.Write([]byte{0xee})
	case 1: // garbage bytes of the right length
		wire.WritePiecesHeader(s)
		s.Write(garbage(int(total)))
	case 2: // the real pieces, one byte changed in each
		wire.WritePiecesHeader(s)
		for j := first; j < first+count; j++ {
			p := bytes.Clone(h.real.piece(j))
			p[len(p)/2] ^= 0x5a
			s.Write(p)
		}
	case 3: // the moved-region copy's pieces
		wire.WritePiecesHeader(s)
		pieces(h.copy)
	case 4: // stall after a third
		wire.WritePiecesHeader(s)
		s.Write(garbage(int(total / 3)))
		time.Sleep(h.stall)
	case 5: // close early, cleanly: a truncated answer
		wire.WritePiecesHeader(s)
		s.Write(garbage(int(total / 2)))
	case 6: // reset after a half
		wire.WritePiecesHeader(s)
		s.Write(garbage(int(total / 2)))
		s.Reset()
	case 7: // drip a byte at a time, never stalling long enough for a read deadline
		wire.WritePiecesHeader(s)
		for end := time.Now().Add(h.stall); time.Now().Before(end); {
			if _, err := s.Write(garbage(1)); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
	case 8: // more than asked: garbage of the right length, then more
		wire.WritePiecesHeader(s)
		s.Write(garbage(int(total) + 1<<20))
	}
}

// slowPieces answers a pieces or (packed) packed request with the real
// pieces, raw, at h.rate bytes a second.
func (h *hostile) slowPieces(s network.Stream, req *wire.Request, packed bool) {
	first, count := int64(req.First), int64(req.Count)
	var b []byte
	for i := first; i < first+count; i++ {
		if packed {
			b = wire.AppendPacked(b, wire.PackedPiece{Method: wire.PackRaw, Data: h.real.piece(i)})
		} else {
			b = append(b, h.real.piece(i)...)
		}
	}
	wire.WritePiecesHeader(s)
	chunk := max(h.rate/10, 1)
	for len(b) > 0 {
		k := min(len(b), chunk)
		if _, err := s.Write(b[:k]); err != nil {
			return
		}
		b = b[k:]
		time.Sleep(100 * time.Millisecond)
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
			case 1: // pieces with a stale namespace check, far past the end
				req := &wire.Request{Kind: wire.KindPieces, Target: h.target, Auth: wire.Auth(h.pub, time.Unix(0, 0)), First: 1 << 30, Count: 8}
				binary.LittleEndian.PutUint64(req.ID[:], uint64(i))
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
