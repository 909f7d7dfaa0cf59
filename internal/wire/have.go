package wire

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// KindHave asks which pieces of a file the peer holds, by file ID: a node
// serves each piece of a release it is still downloading as soon as it
// checked it against the signed root, and peers learn which with this
// request. The request names the number of pieces the asking node knows
// the peer holds (Request.Known); a peer that holds no more answers when
// it does, or after at most MaxHaveWait: a have-update by long poll. A
// node of an older release refuses the kind with StatusBadRequest; it
// serves only whole files, so the asking node takes it to hold every
// piece.
const KindHave Kind = 6

// MaxHaveWait is the longest a peer holds a have request before it
// answers with what it holds, when it holds no more than the asking node
// knows.
const MaxHaveWait = 2 * time.Second

// HaveLen returns the length of the bitfield of a file of layout l: one
// bit per piece, the tail included.
func (l Layout) HaveLen() int { return int((l.NumPieces() + 7) / 8) }

// A Bitfield says which pieces of a file a node holds: bit i%8 (the least
// significant first) of byte i/8 is set when it holds piece i.
type Bitfield []byte

// NewBitfield returns an empty bitfield for a file of layout l.
func NewBitfield(l Layout) Bitfield { return make(Bitfield, l.HaveLen()) }

// Has reports whether piece i is set.
func (b Bitfield) Has(i int64) bool {
	return i >= 0 && i/8 < int64(len(b)) && b[i/8]&(1<<(i%8)) != 0
}

// Set sets piece i.
func (b Bitfield) Set(i int64) { b[i/8] |= 1 << (i % 8) }

// Count returns the number of pieces set.
func (b Bitfield) Count() int {
	n := 0
	for _, c := range b {
		for ; c != 0; c &= c - 1 {
			n++
		}
	}
	return n
}

// WriteHave writes a have answer: status OK (1) | the bitfield, whose
// length the receiver computes from the layout (Layout.HaveLen).
func WriteHave(w io.Writer, b Bitfield) error {
	out := make([]byte, 0, 1+len(b))
	out = append(out, byte(StatusOK))
	out = append(out, b...)
	_, err := w.Write(out)
	return err
}

// ReadHave reads a have answer for a file of layout l: exactly
// l.HaveLen() bytes, a number computed from the signed region, at most
// 8 KiB for MaxContentLen. Bits past the last piece must be clear. It reads
// at most 1+l.HaveLen() bytes (MaxErrorLen for an error).
func ReadHave(r io.Reader, l Layout) (Bitfield, error) {
	if err := readStatus(r); err != nil {
		return nil, err
	}
	n := l.HaveLen()
	if n <= 0 || int64(n) > (MaxContentLen/region.PieceSize+8)/8 {
		return nil, fmt.Errorf("%w: a bitfield of %d bytes", ErrTooLarge, n)
	}
	b := make(Bitfield, n)
	if err := readFull(r, b, "bitfield"); err != nil {
		return nil, err
	}
	if extra := l.NumPieces() % 8; extra != 0 && b[n-1]>>extra != 0 {
		return nil, fmt.Errorf("%w: bits set past piece %d", ErrMalformed, l.NumPieces()-1)
	}
	return b, nil
}

// appendKnown appends the field of a have request.
func appendKnown(b []byte, known uint32) []byte { return binary.LittleEndian.AppendUint32(b, known) }

// readKnown reads the field of a have request.
func readKnown(r io.Reader) (uint32, error) {
	var b [4]byte
	if err := readFull(r, b[:], "known piece count"); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}
