package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Serve starts serving the release at path for target, signed by pub, whose
// region is in. It opens the file and checks it against pub and in before
// serving a byte (the path may be replaced afterwards), replaces an older
// release of the same target, and announces the release in the DHT at once
// and every ReprovideInterval. Serving a release already served, or one older
// than the one served, does nothing.
func (n *Node) Serve(ctx context.Context, pub ed25519.PublicKey, target string, path string, in region.Info) error {
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
	id := wire.ReleaseID(reg)
	k := ownerKey(pub, target)
	n.mu.Lock()
	if cur := n.newest[k]; cur != nil && (cur.id == id || region.CompareVersions(cur.info.Version, in.Version) > 0) {
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()

	f, err := openVerified(path, pub, in)
	if err != nil {
		return fmt.Errorf("serving %s: %w", path, err)
	}
	s := &served{pub: pub, target: target, info: in, reg: reg, id: id, f: f, total: in.Size + region.Size, refs: 1}

	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		f.Close()
		return ErrClosed
	}
	old := n.newest[k]
	if old != nil && (old.id == id || region.CompareVersions(old.info.Version, in.Version) > 0) {
		n.mu.Unlock()
		f.Close()
		return nil
	}
	n.newest[k] = s
	n.byID[id] = s
	if old != nil {
		delete(n.byID, old.id)
		n.ann.remove(ReleaseCID(pub, target, old.id))
	}
	proto := protocol.ID(wire.ProtocolID(pub))
	if !n.protocols[proto] {
		n.protocols[proto] = true
		n.h.SetStreamHandler(proto, func(st network.Stream) { n.handle(pub, st) })
	}
	n.ann.add(ChannelCID(pub, target), "channel "+target)
	n.ann.add(ReleaseCID(pub, target, id), fmt.Sprintf("release %s %s", target, in.Version))
	n.mu.Unlock()
	if old != nil {
		old.release()
	}
	n.log.Info("serving release", "target", target, "version", in.Version, "size", s.total, "path", path)
	return nil
}

// Unserve stops serving the release of target signed by pub whose region is
// in, if it is served. Running uploads finish.
func (n *Node) Unserve(pub ed25519.PublicKey, target string, in region.Info) {
	reg, err := in.Marshal()
	if err != nil {
		return
	}
	id := wire.ReleaseID(reg)
	n.mu.Lock()
	s := n.byID[id]
	if s == nil {
		n.mu.Unlock()
		return
	}
	delete(n.byID, id)
	k := ownerKey(pub, target)
	if n.newest[k] == s {
		delete(n.newest, k)
		n.ann.remove(ChannelCID(pub, target))
	}
	n.ann.remove(ReleaseCID(pub, target, id))
	n.mu.Unlock()
	s.release()
	n.log.Info("no longer serving release", "target", target, "version", in.Version)
}

// handle serves one stream of the protocol of pub: one request, one answer.
func (n *Node) handle(pub ed25519.PublicKey, s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer()
	if err := s.Scope().SetService(ServiceName); err != nil {
		n.log.Debug("stream refused by resource limits", "peer", remote, "err", err)
		s.Reset()
		return
	}
	s.SetReadDeadline(time.Now().Add(n.cfg.IdleTimeout))
	req, err := wire.ReadRequest(s)
	if err != nil {
		n.stats.bad.Add(1)
		n.log.Debug("bad request", "peer", remote, "err", err)
		s.SetWriteDeadline(time.Now().Add(n.cfg.IdleTimeout))
		wire.WriteError(s, wire.StatusBadRequest, "malformed request")
		return
	}
	s.SetReadDeadline(time.Time{})
	go n.refuseTrailing(s, remote)
	defer s.CloseRead() // ends refuseTrailing
	s.SetWriteDeadline(time.Now().Add(n.cfg.IdleTimeout))
	if !wire.CheckAuth(pub, req.Auth, time.Now()) {
		n.stats.bad.Add(1)
		n.log.Debug("request failed the namespace check", "peer", remote, "kind", req.Kind)
		wire.WriteError(s, wire.StatusBadRequest, "namespace check failed (clock off by more than a minute?)")
		return
	}
	switch req.Kind {
	case wire.KindInfo:
		n.stats.info.Add(1)
		n.mu.Lock()
		sv := n.newest[ownerKey(pub, req.Target)]
		n.mu.Unlock()
		if sv == nil {
			wire.WriteError(s, wire.StatusNotFound, "no release for "+req.Target)
			return
		}
		wire.WriteInfo(s, sv.reg)
	case wire.KindFetch:
		n.stats.fetch.Add(1)
		n.serveFetch(s, remote, pub, req)
	}
}

// refuseTrailing resets s if its peer sends anything after its request.
// A request is all a peer sends on a stream (this node's downloads close
// their write side after it), and bytes after it would wait unread in
// the stream's receive window, up to muxerWindow of them, for as long as
// an upload runs. It returns when the peer closes its side or s is closed
// for reading.
func (n *Node) refuseTrailing(s network.Stream, remote peer.ID) {
	var b [1]byte
	if k, _ := s.Read(b[:]); k > 0 {
		n.stats.bad.Add(1)
		n.log.Debug("bytes after the request; stream reset", "peer", remote)
		s.Reset()
	}
}

func (n *Node) serveFetch(s network.Stream, remote peer.ID, pub ed25519.PublicKey, req *wire.Request) {
	n.mu.Lock()
	sv := n.byID[req.ID]
	if sv == nil || !sv.pub.Equal(pub) || sv.target != req.Target {
		n.mu.Unlock()
		wire.WriteError(s, wire.StatusNotFound, "release not served here")
		return
	}
	if req.Offset > sv.total {
		n.mu.Unlock()
		n.stats.bad.Add(1)
		wire.WriteError(s, wire.StatusBadRequest, "offset past the end of the release")
		return
	}
	if !n.slots.acquire(remote) {
		n.mu.Unlock()
		n.stats.busy.Add(1)
		wire.WriteError(s, wire.StatusBusy, "all upload slots in use")
		return
	}
	sv.acquire()
	n.mu.Unlock()
	defer func() {
		n.slots.release(remote)
		sv.release()
	}()

	left := sv.total - req.Offset
	if err := wire.WriteFetchHeader(s, left); err != nil {
		return
	}
	sent, err := n.copyWithDeadlines(s, io.NewSectionReader(sv.f, int64(req.Offset), int64(left)))
	n.stats.up.Add(uint64(sent))
	if err != nil {
		n.log.Debug("upload ended early", "peer", remote, "version", sv.info.Version, "sent", sent, "err", err)
		s.Reset()
		return
	}
	n.log.Debug("upload done", "peer", remote, "version", sv.info.Version, "offset", req.Offset, "bytes", sent)
}

// copyBuf is the unit of one write of an upload: what one yamux frame
// carries, so that a write is one frame and never leaves a small one.
const copyBuf = muxerMaxMessage - muxerHeader

// copyWithDeadlines copies src to s, giving each write IdleTimeout to
// complete, at no more than UploadRate.
func (n *Node) copyWithDeadlines(s network.Stream, src io.Reader) (int64, error) {
	buf := make([]byte, copyBuf)
	var total int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if n.upRate != nil {
				if err := n.upRate.WaitN(n.ctx, nr); err != nil {
					return total, err
				}
			}
			s.SetWriteDeadline(time.Now().Add(n.cfg.IdleTimeout))
			nw, werr := s.Write(buf[:nr])
			total += int64(nw)
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
