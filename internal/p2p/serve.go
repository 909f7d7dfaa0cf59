package p2p

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"github.com/org/rustpatcher-go/internal/pack"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Serve starts serving the release at path for target, signed by pub, whose
// region is in. It opens the file and scans it once through the open
// descriptor (the path may be replaced afterwards), checking it against pub
// and in and keeping its file ID, length and piece hashes in memory;
// it replaces an older release of the same target, and announces the
// release in the DHT at once and every ReprovideInterval. Serving a release
// already served, or one older than the one served, does nothing; serving
// a version withdrawn (see Withdraw) fails with ErrWithdrawn.
func (n *Node) Serve(ctx context.Context, pub ed25519.PublicKey, target string, path string, in region.Info) error {
	return n.serve(ctx, pub, target, path, in, nil)
}

// ServeDownloaded is Serve for the file id of the release in that the
// caller wrote from this node's own download of it and verified as it
// wrote it: while the node serves that file in part (Config.PiecesEarly),
// holding its piece hashes and layout from the download, it serves the file
// at path whole without reading it again, as a BitTorrent client serves
// what it checked on arrival. Otherwise, or when the file at path is not
// the download's length, it scans the file as Serve does. The pieces peers
// take are checked on their side against the signed root all the same.
func (n *Node) ServeDownloaded(ctx context.Context, pub ed25519.PublicKey, target string, path string, in region.Info, id [wire.IDLen]byte) error {
	return n.serve(ctx, pub, target, path, in, &id)
}

// serve is Serve, or ServeDownloaded when downloaded names the file.
func (n *Node) serve(ctx context.Context, pub ed25519.PublicKey, target string, path string, in region.Info, downloaded *[wire.IDLen]byte) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("serving %s: public key is %d bytes", path, len(pub))
	}
	reg, err := in.Marshal()
	if err != nil {
		return fmt.Errorf("serving %s: %w", path, err)
	}
	if n.server.supersedes(pub, target, reg, in.Version) {
		return nil
	}
	if n.server.withdrawnVersion(pub, target, in.Version) {
		return fmt.Errorf("serving %s: %s %s: %w", path, target, in.Version, ErrWithdrawn)
	}
	var s *served
	if downloaded != nil {
		s = n.server.asDownloaded(pub, target, path, in, reg, *downloaded)
	}
	if s == nil {
		f, sc, l, err := openVerified(ctx, path, pub, in)
		if err != nil {
			return fmt.Errorf("serving %s: %w", path, err)
		}
		s = newServed(pub, target, in, reg, f, sc, l)
	}
	old, added, err := n.install(s)
	if err != nil || !added {
		s.f.Close()
		return err
	}
	if old != nil {
		old.release()
	}
	n.log.Info("serving release", "target", target, "version", in.Version, "format", in.Format, "size", s.layout.Size, "file", fmt.Sprintf("%x", s.id[:8]), "path", path)
	return nil
}

// asDownloaded returns the file at path to serve as the file id of the
// release in, which the node serves in part from its own download, with
// the download's piece hashes and layout, without reading it (see
// ServeDownloaded); nil when the node serves no such file in part, or the
// file at path cannot be opened or is not the download's length.
func (s *server) asDownloaded(pub ed25519.PublicKey, target, path string, in region.Info, reg [region.Size]byte, id [wire.IDLen]byte) *served {
	s.mu.Lock()
	part := s.partials[id]
	ok := part != nil && part.pub.Equal(pub) && part.target == target && part.info == in && part.leaves != nil
	var leaves [][sha256.Size]byte
	var l wire.Layout
	if ok {
		leaves, l = part.leaves, part.layout
	}
	s.mu.Unlock()
	if !ok {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Size() != l.Size {
		f.Close()
		return nil
	}
	sv := &served{pub: pub, target: target, info: in, reg: reg, id: id, layout: l, leaves: leaves, f: f, refs: 1}
	sv.raw = make([]atomic.Uint64, (l.NumPieces()+63)/64)
	return sv
}

// install serves s in place of the release of its target served so far,
// which it returns, and announces s. It adds nothing when s or a newer
// release is served already.
func (n *Node) install(s *served) (old *served, added bool, err error) {
	n.serveMu.Lock()
	defer n.serveMu.Unlock()
	old, added, err = n.server.put(s)
	if err != nil || !added {
		return nil, false, err
	}
	if old != nil {
		n.ann.remove(ReleaseCID(s.pub, s.target, old.id))
	}
	n.ann.add(ChannelCID(s.pub, s.target), "channel "+s.target)
	n.ann.add(ReleaseCID(s.pub, s.target, s.id), fmt.Sprintf("release %s %s file %x", s.target, s.info.Version, s.id[:8]))
	if p := n.server.takePartial(s.id); p != nil {
		for k := range s.raw {
			s.raw[k].Or(p.raw[k].Load()) // the pieces found not worth compressing
		}
		p.release() // served whole from now on; running uploads finish
	}
	return old, true, nil
}

// Unserve stops serving the release of target signed by pub whose region is
// in, if it is served. Running uploads finish.
func (n *Node) Unserve(pub ed25519.PublicKey, target string, in region.Info) {
	reg, err := in.Marshal()
	if err != nil {
		return
	}
	n.serveMu.Lock()
	s, wasNewest := n.server.remove(pub, target, reg)
	if s != nil {
		if wasNewest && !n.server.keepsChannel(pub, target) {
			n.ann.remove(ChannelCID(pub, target)) // kept for statements served
		}
		n.ann.remove(ReleaseCID(pub, target, s.id))
	}
	n.serveMu.Unlock()
	if s == nil {
		return
	}
	s.release()
	n.log.Info("no longer serving release", "target", target, "version", in.Version)
}

// A server holds the releases a node serves, by owner key and target (the
// newest, which info requests get) and by file ID (what hashes and pieces
// requests name),
// registers the stream handler of each owner's protocol, and answers its
// streams: one request, one answer.
type server struct {
	ctx    context.Context // done once the node closes: ends rate waits
	h      host.Host
	idle   time.Duration
	upRate *rate.Limiter // nil: no cap
	slots  *uploadSlots
	admit  *admission
	log    *slog.Logger

	noCompress bool               // packed requests get raw pieces
	encoders   chan *pack.Encoder // see encoder; nil entries until made
	frames     sync.Pool          // *[]byte of packed uploads: frameBuf

	mu          sync.Mutex
	closed      bool
	newest      map[string]*served // by ownerKey(pub, target)
	byID        map[[wire.IDLen]byte]*served
	partials    map[[wire.IDLen]byte]*served // files served while they download, by file ID (see partial.go)
	haveWaits   chan struct{}                // a token per have request held open
	watchesHeld int                          // watches served (see serveWatch)
	watchesOf   map[peer.ID]int              // watches served, by peer
	noHave      bool                         // Config.noHave
	noWatch     bool                         // Config.noWatch
	protocols   map[protocol.ID]bool
	rotations   []rotation.Statement         // verified, at most maxServedRotations
	rollouts    map[string]rollout.Statement // verified, by ownerKey; at most maxServedRollouts
	withdrawn   map[string]map[string]bool   // versions, by ownerKey; see Node.Withdraw

	onReport func(peer.ID, ed25519.PublicKey, string, wire.Report) // Config.OnReport

	counts serverCounts
}

// serverCounts are a server's counters, for Stats.
type serverCounts struct {
	info, hashes, pieces, packed, rotations, rollouts, have, watch, haveUpdates, busy, bad, up atomic.Uint64
}

// newServer returns the server of a node with host h and configuration cfg
// (defaults set); ctx ends with the node.
func newServer(ctx context.Context, h host.Host, cfg Config) *server {
	s := &server{
		ctx:        ctx,
		h:          h,
		idle:       cfg.IdleTimeout,
		slots:      newUploadSlots(cfg.UploadSlots, cfg.UploadSlotsPerPeer, slotGraceFor(cfg), minUploadRate(cfg)),
		admit:      newAdmission(cmp.Or(cfg.streamLimit, maxStreams), maxStreamsPerIP),
		log:        cfg.Logger,
		newest:     map[string]*served{},
		byID:       map[[wire.IDLen]byte]*served{},
		partials:   map[[wire.IDLen]byte]*served{},
		haveWaits:  make(chan struct{}, maxHaveWaits),
		watchesOf:  map[peer.ID]int{},
		noHave:     cfg.noHave,
		noWatch:    cfg.noWatch,
		protocols:  map[protocol.ID]bool{},
		noCompress: cfg.NoCompression,
		onReport:   cfg.OnReport,
		encoders:   make(chan *pack.Encoder, onTheFlyEncoders),
	}
	for range onTheFlyEncoders {
		s.encoders <- nil
	}
	if cfg.UploadRate > 0 {
		s.upRate = rate.NewLimiter(rate.Limit(cfg.UploadRate), max(cfg.UploadRate/10, copyBuf))
	}
	return s
}

// supersedes reports whether a file of the release whose region is reg,
// or a newer release of target signed by pub, is served.
func (s *server) supersedes(pub ed25519.PublicKey, target string, reg [region.Size]byte, version string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.newest[ownerKey(pub, target)]
	return sv != nil && (sv.reg == reg || region.CompareVersions(sv.info.Version, version) > 0)
}

// put serves sv in place of the newest release of its owner key and
// target, and returns the release it replaced (not released yet). It adds
// nothing when sv or a newer release is served already, and fails with
// ErrClosed once the server is closed.
func (s *server) put(sv *served) (old *served, added bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false, ErrClosed
	}
	if s.isWithdrawn(sv.pub, sv.target, sv.info.Version) {
		return nil, false, fmt.Errorf("serving %s %s: %w", sv.target, sv.info.Version, ErrWithdrawn)
	}
	k := ownerKey(sv.pub, sv.target)
	old = s.newest[k]
	if old.newerOrSame(sv.id, sv.info.Version) {
		return nil, false, nil
	}
	s.newest[k] = sv
	s.byID[sv.id] = sv
	if old != nil {
		delete(s.byID, old.id)
	}
	s.handleProtocol(sv.pub)
	return old, true, nil
}

// handleProtocol registers the stream handler of pub's protocol, once.
// s.mu is held.
func (s *server) handleProtocol(pub ed25519.PublicKey) {
	proto := protocol.ID(wire.ProtocolID(pub))
	if !s.protocols[proto] {
		s.protocols[proto] = true
		s.h.SetStreamHandler(proto, func(st network.Stream) { s.handle(s.ctx, pub, st) })
	}
}

// remove stops serving the release whose region is reg and returns it (not
// released yet), and whether it was the newest of target signed by pub; nil
// when it was not served.
func (s *server) remove(pub ed25519.PublicKey, target string, reg [region.Size]byte) (sv *served, wasNewest bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.byID {
		if c.reg == reg && c.pub.Equal(pub) && c.target == target {
			sv = c
			break
		}
	}
	if sv == nil {
		return nil, false
	}
	delete(s.byID, sv.id)
	k := ownerKey(pub, target)
	if s.newest[k] == sv {
		delete(s.newest, k)
		wasNewest = true
	}
	return sv, wasNewest
}

// close removes the stream handlers, stops serving and returns every
// release it served (not released yet).
func (s *server) close() []*served {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for p := range s.protocols {
		s.h.RemoveStreamHandler(p)
	}
	var all []*served
	for _, sv := range s.byID {
		all = append(all, sv)
	}
	for _, sv := range s.partials {
		all = append(all, sv)
	}
	s.partials = map[[wire.IDLen]byte]*served{}
	s.byID = map[[wire.IDLen]byte]*served{}
	s.newest = map[string]*served{}
	s.rotations = nil
	s.rollouts = nil
	return all
}

// count returns the number of releases served.
func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// newestOf returns the newest release of target signed by pub, or nil.
func (s *server) newestOf(pub ed25519.PublicKey, target string) *served {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newest[ownerKey(pub, target)]
}

// byIDOf returns the release served whose file ID is id, or nil.
func (s *server) byIDOf(id [wire.IDLen]byte) *served {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// acquireID returns the release served whose file ID is id, whatever its
// owner key and target, with a reference taken, or nil.
func (s *server) acquireID(id [wire.IDLen]byte) *served {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.byID[id]
	if sv != nil {
		sv.acquire()
	}
	return sv
}

// acquire returns the file id of a release of target signed by pub with a
// reference taken for an upload, or nil when it is not served. A file the
// node serves while it downloads it (see partial.go) is returned too.
func (s *server) acquire(pub ed25519.PublicKey, target string, id [wire.IDLen]byte) *served {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.byID[id]
	if sv == nil {
		sv = s.partials[id]
	}
	if sv == nil || !sv.pub.Equal(pub) || sv.target != target {
		return nil
	}
	sv.acquire()
	return sv
}

// handle serves one stream of the protocol of pub: one request, one answer.
func (s *server) handle(ctx context.Context, pub ed25519.PublicKey, st network.Stream) {
	defer st.Close()
	remote := st.Conn().RemotePeer()
	if err := st.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("stream refused by resource limits", "peer", remote, "err", err)
		st.Reset()
		return
	}
	place, why := s.admit.admit(remote, streamPrefix(st), func() { st.Reset() })
	if place == nil {
		s.log.Debug("stream refused by the stream limits", "peer", remote, "why", why)
		st.Reset()
		return
	}
	defer s.admit.done(place)
	st.SetReadDeadline(time.Now().Add(min(s.idle, requestTimeout)))
	req, err := wire.ReadRequest(st)
	if err == nil && !s.admit.requested(place) {
		err = errors.New("evicted")
	}
	if err != nil {
		if s.admit.wasEvicted(place) {
			s.log.Debug("waiting stream gave its place to a peer with fewer streams", "peer", remote)
			st.Reset()
			return
		}
		s.counts.bad.Add(1)
		msg := "malformed request"
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			msg = "no request in time"
		}
		s.log.Debug("bad request", "peer", remote, "err", err)
		st.SetWriteDeadline(time.Now().Add(s.idle))
		wire.WriteError(st, wire.StatusBadRequest, msg)
		return
	}
	st.SetReadDeadline(time.Time{})
	go s.refuseTrailing(st, remote)
	defer st.CloseRead() // ends refuseTrailing
	st.SetWriteDeadline(time.Now().Add(s.idle))
	if !wire.CheckAuth(pub, req.Auth, time.Now()) {
		s.counts.bad.Add(1)
		s.log.Debug("request failed the namespace check", "peer", remote, "kind", req.Kind)
		wire.WriteError(st, wire.StatusBadRequest, "namespace check failed (clock off by more than a minute?)")
		return
	}
	switch req.Kind {
	case wire.KindInfo:
		s.counts.info.Add(1)
		sv := s.newestOf(pub, req.Target)
		if sv == nil {
			wire.WriteError(st, wire.StatusNotFound, "no release for "+req.Target)
			return
		}
		wire.WriteInfoExt(st, sv.reg, sv.layout.Size, sv.id, s.extOf(sv))
	case wire.KindHashes:
		s.counts.hashes.Add(1)
		s.serveHashes(st, pub, req)
	case wire.KindPieces:
		s.counts.pieces.Add(1)
		s.servePieces(ctx, st, remote, pub, req)
	case wire.KindPacked:
		s.counts.pieces.Add(1)
		s.counts.packed.Add(1)
		s.servePacked(ctx, st, remote, pub, req)
	case wire.KindRotations:
		s.counts.rotations.Add(1)
		s.serveRotations(st, pub, req)
	case wire.KindRollout:
		s.counts.rollouts.Add(1)
		s.serveRollout(st, remote, pub, req)
	case wire.KindHave:
		if s.noHave {
			s.counts.bad.Add(1)
			wire.WriteError(st, wire.StatusBadRequest, "malformed request")
			return
		}
		s.counts.have.Add(1)
		s.serveHave(ctx, st, pub, req)
	case wire.KindWatch:
		if s.noHave || s.noWatch {
			s.counts.bad.Add(1)
			wire.WriteError(st, wire.StatusBadRequest, "malformed request")
			return
		}
		s.counts.watch.Add(1)
		s.serveWatch(ctx, st, remote, pub, req)
	}
}

// refuseTrailing resets st if its peer sends anything after its request.
// A request is all a peer sends on a stream (this node's downloads close
// their write side after it), and bytes after it would wait unread in
// the stream's receive window, up to muxerWindow of them, for as long as
// an upload runs. It returns when the peer closes its side or st is closed
// for reading.
func (s *server) refuseTrailing(st network.Stream, remote peer.ID) {
	var b [1]byte
	if k, _ := st.Read(b[:]); k > 0 {
		s.counts.bad.Add(1)
		s.log.Debug("bytes after the request; stream reset", "peer", remote)
		st.Reset()
	}
}

// serveHashes answers a hashes request: the piece hashes of a v1 file,
// kept in memory. A v0 file has none: not found. It takes no upload slot,
// as the answer is 32 bytes per MiB of release.
func (s *server) serveHashes(st network.Stream, pub ed25519.PublicKey, req *wire.Request) {
	sv := s.acquire(pub, req.Target, req.ID)
	if sv == nil {
		wire.WriteError(st, wire.StatusNotFound, "file not served here")
		return
	}
	defer sv.release()
	if sv.leaves == nil {
		wire.WriteError(st, wire.StatusNotFound, "a v0 release has no piece hashes")
		return
	}
	wire.WriteHashes(st, sv.leaves)
}

// servePieces answers a pieces request: the exact bytes of the pieces
// asked, in an upload slot, or "busy" when none is free.
func (s *server) servePieces(ctx context.Context, st network.Stream, remote peer.ID, pub ed25519.PublicKey, req *wire.Request) {
	sv, up := s.startUpload(st, remote, pub, req)
	if sv == nil {
		return
	}
	defer s.endUpload(sv, up)

	off, _ := sv.layout.Piece(int64(req.First))
	lastOff, lastLen := sv.layout.Piece(int64(req.First) + int64(req.Count) - 1)
	n := lastOff + lastLen - off
	sent, err := s.copyWithDeadlines(ctx, st, up, []byte{byte(wire.StatusOK)}, io.NewSectionReader(sv.f, off, n))
	s.counts.up.Add(uint64(max(sent-1, 0)))
	if err != nil {
		s.uploadFailed(st, remote, sv, up, sent, err)
		return
	}
	s.log.Debug("upload done", "peer", remote, "version", sv.info.Version, "first", req.First, "count", req.Count, "bytes", n)
}

// startUpload does what every request for pieces does first: it finds the
// file asked for, checks the range and takes an upload slot, answering the
// peer with an error when one of them fails (then sv is nil). Otherwise the
// caller ends with endUpload(sv, up).
func (s *server) startUpload(st network.Stream, remote peer.ID, pub ed25519.PublicKey, req *wire.Request) (sv *served, up *upload) {
	sv = s.acquire(pub, req.Target, req.ID)
	if sv == nil {
		wire.WriteError(st, wire.StatusNotFound, "file not served here")
		return nil, nil
	}
	if err := sv.layout.CheckRange(req.First, req.Count); err != nil {
		sv.release()
		s.counts.bad.Add(1)
		wire.WriteError(st, wire.StatusBadRequest, "no such pieces")
		return nil, nil
	}
	if !sv.holdsRange(req.First, req.Count) {
		sv.release()
		wire.WriteError(st, wire.StatusNotFound, "pieces not held yet")
		return nil, nil
	}
	up = s.slots.acquire(remote, func() { st.Reset() })
	if up == nil {
		sv.release()
		s.counts.busy.Add(1)
		wire.WriteError(st, wire.StatusBusy, "all upload slots in use")
		return nil, nil
	}
	return sv, up
}

// endUpload gives back what startUpload took.
func (s *server) endUpload(sv *served, up *upload) {
	s.slots.release(up)
	sv.release()
}

// uploadFailed logs why an upload ended before its last byte (its slot
// taken back for a faster peer, or the write failed) and resets st.
func (s *server) uploadFailed(st network.Stream, remote peer.ID, sv *served, up *upload, sent int64, err error) {
	if s.slots.wasTakenBack(up) {
		s.log.Debug("upload taken back: slower than the minimum rate while another peer waited", "peer", remote,
			"sent", sent, "took", time.Since(up.start).Round(time.Millisecond))
	} else {
		s.log.Debug("upload ended early", "peer", remote, "version", sv.info.Version, "sent", sent, "err", err)
	}
	st.Reset()
}

// copyBuf is the unit of one write of an upload: what one yamux frame
// carries, so that a write is one frame and never leaves a small one.
const copyBuf = muxerMaxMessage - muxerHeader

// copyWithDeadlines writes head and then src to st for the upload up
// through writeWithDeadlines, in writes of at most copyBuf bytes; head goes
// out with src's first bytes, in one write. It returns the number of bytes
// written, head included.
func (s *server) copyWithDeadlines(ctx context.Context, st network.Stream, up *upload, head []byte, src io.Reader) (int64, error) {
	buf := make([]byte, copyBuf)
	k := copy(buf, head)
	var total int64
	for {
		nr, rerr := src.Read(buf[k:])
		nr += k
		k = 0
		if nr > 0 {
			nw, werr := s.writeWithDeadlines(ctx, st, up, buf[:nr])
			total += nw
			if werr != nil {
				return total, werr
			}
		}
		if errors.Is(rerr, io.EOF) {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
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
