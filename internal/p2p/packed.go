package p2p

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/pack"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Packed transfers (wire.KindPacked, docs/PROTOCOL.md): a node answers a
// packed request with each piece as a frame made beforehand (a delta from
// the base the request names, or the piece compressed alone, kept in
// Config.PackDir), else compressed on the fly when an encoder is free, else
// raw. A node with a PackDir makes the frames of each release it serves in
// the background, and deltas from the older files MakeDeltas names.

// onTheFlyEncoders bounds the pieces a node compresses for uploads at
// once; an upload that finds none free sends its pieces raw. Each holds
// about 2 MiB.
const onTheFlyEncoders = 2

// maxDecoders bounds the packed pieces a node decodes at once. Each
// decoder holds a dictionary buffer of up to wire.MaxDictLen bytes.
const maxDecoders = 2

// extOf returns the info extension of sv: whether this node answers
// packed requests with compressed pieces, and the bases it holds deltas
// from.
func (s *server) extOf(sv *served) wire.InfoExt {
	if s.noCompress {
		return wire.InfoExt{}
	}
	return wire.InfoExt{Packed: true, Bases: sv.deltaBases()}
}

// deltaBases returns the bases of the deltas made for s, at most
// wire.MaxDeltaBases, in the order of their file IDs.
func (s *served) deltaBases() [][wire.IDLen]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][wire.IDLen]byte
	for id := range s.packs {
		if id != ([wire.IDLen]byte{}) && len(out) < wire.MaxDeltaBases {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, func(a, b [wire.IDLen]byte) int { return strings.Compare(string(a[:]), string(b[:])) })
	return out
}

// packFor returns the frames made for s to send to a node that holds the
// file base (zero: none): the deltas from base if made, else the pieces
// compressed alone if made, else nil.
func (s *served) packFor(base [wire.IDLen]byte) *pack.Cache {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.packs[base]; c != nil {
		return c
	}
	return s.packs[[wire.IDLen]byte{}]
}

// hasPack reports whether frames from base (zero: compressed alone) are
// made for s.
func (s *served) hasPack(base [wire.IDLen]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.packs[base] != nil
}

// attach keeps c, the frames of s made from c.Base(), to serve; it reports
// false when s is no longer served (the caller closes c).
func (s *served) attach(c *pack.Cache) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 || s.packs[c.Base()] != nil {
		return false
	}
	if s.packs == nil {
		s.packs = map[[wire.IDLen]byte]*pack.Cache{}
	}
	s.packs[c.Base()] = c
	return true
}

// encoder returns an encoder for pieces compressed on the fly, or nil
// when all onTheFlyEncoders are in use: the upload then sends raw pieces.
func (s *server) encoder() *pack.Encoder {
	select {
	case e := <-s.encoders:
		if e == nil {
			var err error
			if e, err = pack.NewEncoder(pack.Fast); err != nil {
				s.encoders <- nil
				return nil
			}
		}
		return e
	default:
		return nil
	}
}

// putEncoder gives back an encoder that encoder returned.
func (s *server) putEncoder(e *pack.Encoder) {
	if e != nil {
		s.encoders <- e
	}
}

// servePacked answers a packed request: the pieces asked as frames, in an
// upload slot, or "busy" when none is free. It holds a frame buffer and,
// for pieces it compresses or sends raw, a piece buffer: about 2 MiB.
func (s *server) servePacked(ctx context.Context, st network.Stream, remote peer.ID, pub ed25519.PublicKey, req *wire.Request) {
	sv, up := s.startUpload(st, remote, pub, req)
	if sv == nil {
		return
	}
	defer s.endUpload(sv, up)

	var made *pack.Cache
	var enc *pack.Encoder
	if !s.noCompress {
		made = sv.packFor(req.Base)
		if made == nil {
			enc = s.encoder()
			defer s.putEncoder(enc)
		}
	}
	frame := make([]byte, 0, 1+wire.MaxPackedHeaderLen+sv.layout.MaxPieceLen())
	var piece []byte
	frame = append(frame, byte(wire.StatusOK))
	var sent int64
	deltas := 0
	for i := int64(req.First); i < int64(req.First)+int64(req.Count); i++ {
		var err error
		fromMade := false
		if made != nil {
			var b []byte
			if b, err = made.Frame(i, frame[len(frame):cap(frame)]); err == nil {
				frame = frame[:len(frame)+len(b)]
				fromMade = true
				if b[0] == wire.PackDelta {
					deltas++
				}
			} else {
				s.log.Warn("reading made frames failed; sending the piece as it is", "version", sv.info.Version, "piece", i, "err", err)
			}
		}
		if !fromMade {
			off, n := sv.layout.Piece(i)
			if enc == nil || sv.rawKnown(i) {
				// Raw: the piece is read straight into the frame.
				frame = append(frame, wire.PackRaw)
				_, err = sv.f.ReadAt(frame[len(frame):len(frame)+int(n)], off)
				frame = frame[:len(frame)+int(n)]
			} else {
				if piece == nil {
					piece = make([]byte, sv.layout.MaxPieceLen())
				}
				if _, err = sv.f.ReadAt(piece[:n], off); err == nil {
					// The data is encoded into the frame after room for
					// its head, which AppendPacked then writes in front
					// of it (moving it back when the head is shorter).
					start := len(frame)
					var p wire.PackedPiece
					if p, err = enc.Pack(piece[:n], nil, 0, append(frame, 0, 0, 0, 0, 0)); err == nil {
						frame = wire.AppendPacked(frame[:start], p)
						if p.Method == wire.PackRaw {
							sv.setRaw(i)
						}
					}
				}
			}
		}
		if err == nil {
			var k int64
			k, err = s.writeWithDeadlines(ctx, st, up, frame)
			sent += k
		}
		if err != nil {
			s.counts.up.Add(uint64(max(sent-1, 0)))
			s.uploadFailed(st, remote, sv, up, sent, fmt.Errorf("packed piece %d: %w", i, err))
			return
		}
		frame = frame[:0]
	}
	s.counts.up.Add(uint64(max(sent-1, 0)))
	s.log.Debug("packed upload done", "peer", remote, "version", sv.info.Version, "first", req.First, "count", req.Count, "bytes", sent-1, "deltas", deltas)
}

// writeWithDeadlines writes b to st for the upload up in writes of at
// most copyBuf bytes, each given the idle timeout, at no more than the
// upload rate (a wait for the rate ends when ctx is done). It returns the
// number of bytes written. Every upload's bytes go out through it.
func (s *server) writeWithDeadlines(ctx context.Context, st network.Stream, up *upload, b []byte) (int64, error) {
	var total int64
	for len(b) > 0 {
		k := min(len(b), copyBuf)
		if s.upRate != nil {
			if err := s.upRate.WaitN(ctx, k); err != nil {
				return total, err
			}
		}
		st.SetWriteDeadline(time.Now().Add(s.idle))
		nw, err := st.Write(b[:k])
		total += int64(nw)
		up.wrote(nw)
		if err != nil {
			return total, err
		}
		b = b[k:]
	}
	return total, nil
}

// A decoderPool holds the decoders of packed pieces a node's downloads
// share: at most maxDecoders, made when first needed.
type decoderPool struct {
	slots chan *pack.Decoder // maxDecoders entries; nil until made
}

func newDecoderPool() *decoderPool {
	p := &decoderPool{slots: make(chan *pack.Decoder, maxDecoders)}
	for range maxDecoders {
		p.slots <- nil
	}
	return p
}

// get waits for a decoder, until ctx is done.
func (p *decoderPool) get(ctx context.Context) (*pack.Decoder, error) {
	select {
	case d := <-p.slots:
		if d == nil {
			var err error
			if d, err = pack.NewDecoder(); err != nil {
				p.slots <- nil
				return nil, err
			}
		}
		return d, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put gives back a decoder that get returned.
func (p *decoderPool) put(d *pack.Decoder) { p.slots <- d }

// MakeDeltas has a node with a Config.PackDir make, in the background,
// the frames of the release of target signed by pub whose region is in,
// when it is the one served: its pieces compressed alone, and its deltas
// from each file in bases (the paths of older releases of the same target,
// newest first; at most wire.MaxDeltaBases are used). Frames made before
// and still in PackDir are used again. Peers are told of a delta in info
// answers once it is made. Frames of files no longer served are removed
// from PackDir. Without a PackDir it does nothing.
func (n *Node) MakeDeltas(pub ed25519.PublicKey, target string, in region.Info, bases []string) {
	if n.packer == nil || n.checkOpen() != nil {
		return
	}
	sv := n.server.newestOf(pub, target)
	if sv == nil || sv.info != in {
		return
	}
	n.packer.add(sv, bases[:min(len(bases), wire.MaxDeltaBases)])
}

// A packer makes the frames of served files in PackDir, one job at a
// time on one goroutine: at most one core, and the memory of one
// pack.Make (about 40 MiB, see pack.Make) plus one base's index (at most
// 32 MiB), whatever the length of the files.
type packer struct {
	dir    string
	server *server
	log    *slog.Logger

	mu    sync.Mutex
	queue []packJob
	known map[string]time.Time // jobs queued or done (zero), or failed (when), by packJob.key
	wake  chan struct{}
}

// packJob makes the frames of target: compressed alone when base is
// empty, else deltas from the file at base.
type packJob struct {
	target *served // with a reference, given back when the job is done
	base   string
	key    string
}

func newPacker(dir string, s *server, log *slog.Logger) *packer {
	return &packer{dir: dir, server: s, log: log, known: map[string]time.Time{}, wake: make(chan struct{}, 1)}
}

// add queues the jobs of sv not queued or done before: its compressed
// pieces, and a delta from each base.
func (p *packer) add(sv *served, bases []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range append([]string{""}, bases...) {
		key := hex.EncodeToString(sv.id[:]) + "\x00" + b
		if b != "" {
			st, err := os.Stat(b)
			if err != nil {
				continue
			}
			key += fmt.Sprintf("\x00%d\x00%d", st.Size(), st.ModTime().UnixNano())
		}
		if failed, ok := p.known[key]; ok && (failed.IsZero() || time.Since(failed) < packRetry) {
			continue
		}
		if len(p.known) > 4096 {
			clear(p.known)
		}
		p.known[key] = time.Time{}
		sv.acquire()
		p.queue = append(p.queue, packJob{target: sv, base: b, key: key})
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run makes the queued frames until ctx is done.
func (p *packer) run(ctx context.Context) {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		p.log.Warn("no directory for compressed pieces and deltas; pieces are compressed on the fly", "dir", p.dir, "err", err)
	}
	p.clean(true)
	worked := false // since the last clean
	for {
		p.mu.Lock()
		var job packJob
		ok := len(p.queue) > 0
		if ok {
			job = p.queue[0]
			p.queue = p.queue[1:]
		}
		p.mu.Unlock()
		if !ok {
			if worked {
				// Only once jobs ran, so that the frames of a release
				// about to be served again (at a start) are kept.
				p.clean(false)
				worked = false
			}
			select {
			case <-ctx.Done():
				p.drain()
				return
			case <-p.wake:
				continue
			}
		}
		p.do(ctx, job)
		job.target.release()
		worked = true
	}
}

// packRetry is how long after a failure a job is not queued again.
const packRetry = 10 * time.Minute

// forget lets the job key be queued again packRetry after a failure.
func (p *packer) forget(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.known[key] = time.Now()
}

// drain gives back the references of the jobs left.
func (p *packer) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, j := range p.queue {
		j.target.release()
	}
	p.queue = nil
}

// do runs one job, unless its target is no longer served.
func (p *packer) do(ctx context.Context, job packJob) {
	sv := job.target
	if p.server.byIDOf(sv.id) != sv {
		return
	}
	t := pack.Target{File: sv.f, ID: sv.id, Layout: sv.layout}
	log := p.log.With("version", sv.info.Version, "file", fmt.Sprintf("%x", sv.id[:8]))
	start := time.Now()
	if job.base == "" {
		c, made, err := p.makeOrOpen(ctx, t, nil)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("compressing the pieces of a release failed; they are compressed on the fly", "err", err)
			}
			p.forget(job.key)
			return
		}
		if p.keep(sv, c) && made {
			log.Info("pieces compressed", "bytes", c.Size(), "of", sv.layout.Size, "took", time.Since(start).Round(time.Millisecond))
		}
		return
	}
	f, err := os.Open(job.base)
	if err != nil {
		log.Warn("no delta from a file that cannot be opened", "base", job.base, "err", err)
		return
	}
	defer f.Close()
	base, bin, err := openBase(ctx, f)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("no delta from a file that is not a whole release", "base", job.base, "err", err)
		}
		return
	}
	if base.ID == sv.id || sv.hasPack(base.ID) {
		return
	}
	log = log.With("base", filepath.Base(job.base), "base_version", bin.Version)
	c, made, err := p.makeOrOpen(ctx, t, base)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("making a delta failed", "err", err)
		}
		p.forget(job.key)
		return
	}
	if p.keep(sv, c) && made {
		log.Info("delta made", "bytes", c.Size(), "of", sv.layout.Size, "took", time.Since(start).Round(time.Millisecond))
	}
}

// openBase scans the base file f (its file ID, and that it is the content
// its own region signs) and indexes it.
func openBase(ctx context.Context, f *os.File) (*pack.Base, region.Info, error) {
	sc, err := region.ScanOpen(ctx, f)
	if err != nil {
		return nil, region.Info{}, err
	}
	in, err := sc.Info()
	if err != nil {
		return nil, in, err
	}
	if err := sc.Matches(in); err != nil {
		return nil, in, err
	}
	x, err := pack.NewIndex(ctx, io.NewSectionReader(f, 0, sc.FileSize), sc.FileSize)
	if err != nil {
		return nil, in, err
	}
	return &pack.Base{File: f, Size: sc.FileSize, ID: sc.FileID, Index: x}, in, nil
}

// makeOrOpen opens the frames of t from base (nil: compressed alone) made
// before, or makes them. made reports whether they were made now.
func (p *packer) makeOrOpen(ctx context.Context, t pack.Target, base *pack.Base) (c *pack.Cache, made bool, err error) {
	var id [wire.IDLen]byte
	if base != nil {
		id = base.ID
	}
	path := filepath.Join(p.dir, pack.CacheName(t.ID, id))
	if c, err := pack.OpenCache(path, t, id); err == nil {
		return c, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		p.log.Warn("making again frames that do not check", "err", err)
	}
	if path, err = pack.Make(ctx, p.dir, t, base); err != nil {
		return nil, false, err
	}
	c, err = pack.OpenCache(path, t, id)
	return c, true, err
}

// keep attaches c to sv, or closes it when sv is no longer served.
func (p *packer) keep(sv *served, c *pack.Cache) bool {
	if sv.attach(c) {
		return true
	}
	c.Close()
	return false
}

// clean removes from the directory the temporary files an interrupted job
// left (at start) or the frames of files no longer served (after jobs).
func (p *packer) clean(start bool) {
	es, err := os.ReadDir(p.dir)
	if err != nil {
		return
	}
	for _, e := range es {
		name := e.Name()
		if strings.HasPrefix(name, ".making-") {
			if start {
				os.Remove(filepath.Join(p.dir, name))
			}
			continue
		}
		if start {
			continue
		}
		if !strings.HasSuffix(name, ".zst") && !strings.HasSuffix(name, ".delta") {
			continue
		}
		h, _, _ := strings.Cut(name, ".")
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != wire.IDLen {
			continue
		}
		if p.server.byIDOf([wire.IDLen]byte(b)) == nil {
			if os.Remove(filepath.Join(p.dir, name)) == nil {
				p.log.Debug("removed the frames of a file no longer served", "file", name)
			}
		}
	}
}
