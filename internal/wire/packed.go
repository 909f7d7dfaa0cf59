package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// How a piece of a packed answer is sent (PackedPiece.Method).
const (
	// PackRaw sends the piece's bytes as they are.
	PackRaw byte = 0
	// PackZstd sends a zstd frame (RFC 8878) that decodes to the piece.
	PackZstd byte = 1
	// PackDelta sends a zstd frame that decodes to the piece with a span
	// of the base file named in the request as its raw dictionary.
	PackDelta byte = 2
)

// Limits of a packed answer.
const (
	// MaxDictLen is the longest span of the base file a delta piece
	// takes as its dictionary.
	MaxDictLen = 4 << 20
	// MaxPackedHeaderLen is the longest head of a packed piece: method,
	// dictionary span and data length.
	MaxPackedHeaderLen = 1 + 8 + 4 + 4
)

// A PackedPiece is one piece of a packed answer. Its frame is
//
//	method (1) | [dictionary offset (u64 LE) | dictionary length (u32 LE)    PackDelta]
//	           | [data length (u32 LE), 1 to the piece's length              PackZstd, PackDelta]
//	           | data
//
// where the data of a PackRaw piece is the piece itself (its length is the
// piece's), and that of the others a zstd frame no longer than the piece: a
// piece that does not compress is sent raw.
type PackedPiece struct {
	// Method is PackRaw, PackZstd or PackDelta.
	Method byte
	// DictOff and DictLen are the span of the base file that is the
	// dictionary of a PackDelta piece; DictLen is 1 to MaxDictLen.
	DictOff int64
	DictLen int
	// Data is the piece (PackRaw) or its zstd frame.
	Data []byte
}

// AppendPacked appends the frame of p to b.
func AppendPacked(b []byte, p PackedPiece) []byte {
	b = append(b, p.Method)
	if p.Method == PackDelta {
		b = binary.LittleEndian.AppendUint64(b, uint64(p.DictOff))
		b = binary.LittleEndian.AppendUint32(b, uint32(p.DictLen))
	}
	if p.Method != PackRaw {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Data)))
	}
	return append(b, p.Data...)
}

// WritePackedHeader writes the head of a packed answer, status OK; the
// pieces' frames follow.
func WritePackedHeader(w io.Writer) error { return WritePiecesHeader(w) }

// ReadPackedHeader reads the head of a packed answer: nil for status OK,
// after which the frames follow (see Layout.ReadPacked), else the error the
// status stands for.
func ReadPackedHeader(r io.Reader) error { return readStatus(r) }

// ReadPacked reads the frame of piece i of the file from r, after
// ReadPackedHeader, with its data in buf, which must hold the piece. It
// reads at most MaxPackedHeaderLen bytes and the piece's length. The data
// is not decoded here (see internal/pack).
func (l Layout) ReadPacked(r io.Reader, i int64, buf []byte) (PackedPiece, error) {
	return l.ReadPackedInto(r, i, buf, buf)
}

// ReadPackedInto is ReadPacked with the data of a raw frame read into raw
// instead of buf: a raw piece needs no decoding, so it can be read where
// the piece goes. Both must hold the piece.
func (l Layout) ReadPackedInto(r io.Reader, i int64, buf, raw []byte) (PackedPiece, error) {
	if i < 0 || i >= l.NumPieces() {
		return PackedPiece{}, fmt.Errorf("no piece %d in %d", i, l.NumPieces())
	}
	_, n := l.Piece(i)
	if int64(min(len(buf), len(raw))) < n {
		return PackedPiece{}, fmt.Errorf("a buffer of %d bytes for piece %d of %d bytes", min(len(buf), len(raw)), i, n)
	}
	what := fmt.Sprintf("packed piece %d", i)
	var h [MaxPackedHeaderLen]byte
	if err := readFull(r, h[:1], what); err != nil {
		return PackedPiece{}, err
	}
	p := PackedPiece{Method: h[0]}
	size := n
	switch p.Method {
	case PackRaw:
		buf = raw
	case PackZstd, PackDelta:
		hl := 4
		if p.Method == PackDelta {
			hl += 12
		}
		if err := readFull(r, h[1:1+hl], what); err != nil {
			return PackedPiece{}, err
		}
		if p.Method == PackDelta {
			off := binary.LittleEndian.Uint64(h[1:])
			dl := binary.LittleEndian.Uint32(h[9:])
			if off > MaxContentLen*2 || dl == 0 || dl > MaxDictLen {
				return PackedPiece{}, fmt.Errorf("%w: %s: dictionary of %d bytes at %d", ErrMalformed, what, dl, off)
			}
			p.DictOff, p.DictLen = int64(off), int(dl)
		}
		size = int64(binary.LittleEndian.Uint32(h[hl-3:]))
		if size == 0 || size > n {
			return PackedPiece{}, fmt.Errorf("%w: %s: %d bytes of data for a piece of %d", ErrMalformed, what, size, n)
		}
	default:
		return PackedPiece{}, fmt.Errorf("%w: %s: unknown method %d", ErrMalformed, what, p.Method)
	}
	if err := readFull(r, buf[:size], what); err != nil {
		return PackedPiece{}, err
	}
	p.Data = buf[:size]
	return p, nil
}
