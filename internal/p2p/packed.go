package p2p

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sort"

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
// the background, and deltas from the older files MakeDeltas names
// (deltamaker.go); downloads decode packed pieces with the decoders of
// decoderpool.go. This file is the serving side and the info extension.

// onTheFlyEncoders bounds the pieces a node compresses for uploads at
// once; an upload that finds none free sends its pieces raw. Each holds
// about 2 MiB.
const onTheFlyEncoders = 2

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
	// sort.Slice, not slices.SortFunc: a generic sort of a struct
	// links its own copy of the sort (docs/BENCHMARKS.md, Cost of embedding).
	sort.Slice(out, func(i, j int) bool { return string(out[i][:]) < string(out[j][:]) })
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

// frameBuf returns an empty buffer of capacity n for the frames of a
// packed upload, one an ended upload gave back when it is that size: a
// fresh piece-sized buffer per upload cost a busy node more in page faults,
// zeroing and collection than reading the piece into it.
func (s *server) frameBuf(n int) []byte {
	if b, ok := s.frames.Get().(*[]byte); ok && cap(*b) == n {
		return (*b)[:0]
	}
	return make([]byte, 0, n)
}

// putFrameBuf gives back a buffer that frameBuf returned.
func (s *server) putFrameBuf(b []byte) {
	if cap(b) == 1+wire.MaxPackedHeaderLen+region.PieceSize {
		s.frames.Put(&b)
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
	frame := s.frameBuf(1 + wire.MaxPackedHeaderLen + int(sv.layout.MaxPieceLen()))
	defer s.putFrameBuf(frame)
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
			// The piece is read straight into its raw frame, and sent so
			// unless a sample of it compresses (on the fly, and it was not
			// found raw before): then it is compressed from a copy.
			off, n := sv.layout.Piece(i)
			start := len(frame)
			frame = append(frame, wire.PackRaw)
			data := frame[len(frame) : len(frame)+int(n)]
			frame = frame[:len(frame)+int(n)]
			if _, err = sv.f.ReadAt(data, off); err == nil && enc != nil && !sv.rawKnown(i) {
				if enc.Incompressible(data) {
					sv.setRaw(i)
				} else {
					if piece == nil {
						piece = make([]byte, sv.layout.MaxPieceLen())
					}
					copy(piece, data)
					// The data is encoded into the frame after room for
					// its head, which AppendPacked then writes in front
					// of it (moving it back when the head is shorter).
					var p wire.PackedPiece
					if p, err = enc.Pack(piece[:n], nil, 0, append(frame[:start], 0, 0, 0, 0, 0)); err == nil {
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
