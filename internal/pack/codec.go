// Package pack sends the pieces of a release file in fewer bytes: each
// piece alone as a zstd frame, or as a delta from an older file that the
// receiving node holds, a zstd frame whose raw dictionary is a span of at
// most wire.MaxDictLen bytes of that file (zstd --patch-from, one piece at
// a time). Every piece stays independent, so pieces are fetched from
// several peers at once, resumed one by one, and checked on arrival against
// the signed root as a raw piece is.
//
// A Decoder decodes the frames a peer sent with bounded memory: the output
// is never longer than the piece, the window is at most Window, and the
// dictionary is read from the receiver's own file into one buffer. A Maker
// writes the frames of a file, compressed or as deltas, to a cache file
// that a node serves (see Cache); an Encoder compresses pieces on the fly.
package pack

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// Window is the zstd window of the frames an Encoder of level Small makes:
// a match reaches back over the piece and the whole dictionary. (A frame
// of one piece declares a window of the piece's length: a Decoder refuses
// frames that declare more than region.PieceSize.)
const Window = 8 << 20

// ErrBad means a packed piece does not decode to a piece of the right
// length: bytes an honest peer does not send.
var ErrBad = errors.New("packed piece does not decode")

// A Decoder decodes packed pieces. It holds a zstd decoder, whose window
// and output are at most the piece's length (it decodes into the caller's
// piece buffer), and a dictionary buffer of up to wire.MaxDictLen bytes,
// allocated on the first delta. It is not safe for concurrent use.
type Decoder struct {
	zd   *zstd.Decoder
	dict []byte
}

// NewDecoder returns a Decoder.
func NewDecoder() (*Decoder, error) {
	zd, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(Window),
		zstd.WithDecoderMaxMemory(region.PieceSize),
		zstd.WithDecodeAllCapLimit(true))
	// Unpack sets the output limit, and with it the window, to each
	// piece's length.
	if err != nil {
		return nil, err
	}
	return &Decoder{zd: zd}, nil
}

// Close releases the decoder.
func (d *Decoder) Close() { d.zd.Close() }

// Unpack decodes p into out, whose length is the piece's. A PackDelta
// piece takes its dictionary from base, a file of baseSize bytes (nil when
// the request named no base). It fails with an error wrapping ErrBad when p
// does not decode to exactly len(out) bytes or names a span outside base,
// and with another error when base cannot be read.
func (d *Decoder) Unpack(p wire.PackedPiece, base io.ReaderAt, baseSize int64, out []byte) error {
	n := len(out)
	switch p.Method {
	case wire.PackRaw:
		if len(p.Data) != n {
			return fmt.Errorf("%w: %d raw bytes for a piece of %d", ErrBad, len(p.Data), n)
		}
		copy(out, p.Data)
		return nil
	case wire.PackZstd:
		if err := d.zd.ResetWithOptions(nil, limit(n), zstd.WithDecoderDictDelete()); err != nil {
			return err
		}
	case wire.PackDelta:
		if base == nil {
			return fmt.Errorf("%w: a delta piece, and no base was asked for", ErrBad)
		}
		if p.DictLen <= 0 || p.DictLen > wire.MaxDictLen || p.DictOff < 0 || p.DictOff > baseSize-int64(p.DictLen) {
			return fmt.Errorf("%w: dictionary %d+%d outside the base's %d bytes", ErrBad, p.DictOff, p.DictLen, baseSize)
		}
		if d.dict == nil {
			d.dict = make([]byte, wire.MaxDictLen)
		}
		dict := d.dict[:p.DictLen]
		if _, err := base.ReadAt(dict, p.DictOff); err != nil {
			return fmt.Errorf("reading the base file: %w", err)
		}
		if err := d.zd.ResetWithOptions(nil, limit(n), zstd.WithDecoderDictDelete(), zstd.WithDecoderDictRaw(0, dict)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: method %d", ErrBad, p.Method)
	}
	got, err := d.zd.DecodeAll(p.Data, out[:0:n])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBad, err)
	}
	if len(got) != n || (n > 0 && &got[0] != &out[0]) {
		return fmt.Errorf("%w: %d bytes for a piece of %d", ErrBad, len(got), n)
	}
	return nil
}

// limit caps a decoding's window at n bytes, the piece's length (more
// than region.PieceSize for a long OS code signature after the content),
// or zstd's least window; the output is capped at the piece's length by
// the buffer given to DecodeAll.
func limit(n int) zstd.DOption {
	return zstd.WithDecoderMaxMemory(uint64(max(n, zstd.MinWindowSize)))
}

// Level is how hard an Encoder compresses.
type Level int

// Levels of compression.
const (
	// Fast is for pieces compressed on the fly for one upload: about
	// 170 MB/s on one core, 52% of a Go binary (docs/BENCHMARKS.md).
	Fast Level = iota
	// Small is for pieces made once and kept: about 75 MB/s, 50%.
	Small
)

// An Encoder compresses pieces, alone or with a dictionary. It holds about
// Window bytes of history and the hash tables of its level. It is not safe
// for concurrent use.
type Encoder struct {
	ze     *zstd.Encoder
	level  Level
	dicted bool
	sample []byte // the frame of a sample of a piece (Fast)
}

// samples and sampleLen say how much of a piece an Encoder of level Fast
// compresses first: sampleLen bytes at each of samples places spread over
// the piece, each on its own. A piece none of whose samples shrinks by at
// least 1/32 (random or already compressed data, such as an embedded
// archive) is sent as it is, without the cost of compressing all of it.
const (
	samples   = 4
	sampleLen = 16 << 10
)

// worthCompressing reports whether a sample of piece compresses.
func (e *Encoder) worthCompressing(piece []byte) bool {
	for i := range samples {
		at := len(piece) / samples * i
		e.sample = e.ze.EncodeAll(piece[at:at+sampleLen], e.sample[:0])
		if len(e.sample) <= sampleLen-sampleLen/32 {
			return true
		}
	}
	return false
}

// Incompressible reports whether Pack, with no dictionary, would send
// piece raw without compressing it whole: at level Fast, none of its
// samples shrinks. A caller holding the piece where its raw frame goes can
// then send it as it is, without Pack's copy of it.
func (e *Encoder) Incompressible(piece []byte) bool {
	return e.level == Fast && len(piece) >= 4*samples*sampleLen && !e.worthCompressing(piece)
}

// NewEncoder returns an Encoder of level l.
func NewEncoder(l Level) (*Encoder, error) {
	opts := []zstd.EOption{zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false)}
	switch l {
	case Fast:
		opts = append(opts, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(region.PieceSize))
	default:
		opts = append(opts, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithWindowSize(Window), zstd.WithLowerEncoderMem(true))
	}
	ze, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, err
	}
	return &Encoder{ze: ze, level: l}, nil
}

// Close releases the encoder.
func (e *Encoder) Close() { e.ze.Close() }

// Pack returns the frame of piece as a packed piece, with its data
// appended to dst: a zstd frame, with dict (a span of the base file at
// dictOff) as its dictionary when dict is not empty, or the piece itself
// when the frame would be no shorter, or, at level Fast, when no sample of
// the piece compresses. A dictionary needs level Small.
func (e *Encoder) Pack(piece, dict []byte, dictOff int64, dst []byte) (wire.PackedPiece, error) {
	if len(dict) > wire.MaxDictLen || len(dict) > 0 && e.level == Fast {
		return wire.PackedPiece{}, fmt.Errorf("a dictionary of %d bytes at level %d", len(dict), e.level)
	}
	switch {
	case len(dict) > 0:
		if err := e.ze.ResetWithOptions(nil, zstd.WithEncoderDictRaw(0, dict)); err != nil {
			return wire.PackedPiece{}, err
		}
		e.dicted = true
	case e.dicted:
		if err := e.ze.ResetWithOptions(nil, zstd.WithEncoderDictDelete()); err != nil {
			return wire.PackedPiece{}, err
		}
		e.dicted = false
	}
	start := len(dst)
	if len(dict) == 0 && e.Incompressible(piece) {
		return wire.PackedPiece{Method: wire.PackRaw, Data: append(dst, piece...)[start:]}, nil
	}
	out := e.ze.EncodeAll(piece, dst)
	if len(out)-start >= len(piece) {
		return wire.PackedPiece{Method: wire.PackRaw, Data: append(out[:start], piece...)[start:]}, nil
	}
	p := wire.PackedPiece{Method: wire.PackZstd, Data: out[start:]}
	if len(dict) > 0 {
		p.Method, p.DictOff, p.DictLen = wire.PackDelta, dictOff, len(dict)
	}
	return p, nil
}
