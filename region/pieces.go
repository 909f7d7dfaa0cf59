package region

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/org/rustpatcher-go/internal/exefmt"
)

// PieceSize is the length of a V1 piece: the content is hashed in pieces of
// this many bytes, the last one shorter. See docs/FORMAT.md for why 1 MiB.
const PieceSize = 1 << 20

// NumPieces returns the number of pieces of content of length n.
func NumPieces(n int64) int64 { return (n + PieceSize - 1) / PieceSize }

// rootDomain separates the root from any other SHA-256 in the format.
const rootDomain = "rustpatcher-go/v1 pieces\x00"

// Root returns the V1 root of content of length n whose pieces hash to
// leaves: SHA-256("rustpatcher-go/v1 pieces\x00" || n as u64 little-endian
// || leaves in order).
func Root(n int64, leaves [][sha256.Size]byte) [HashLen]byte {
	h := sha256.New()
	h.Write([]byte(rootDomain))
	h.Write(binary.LittleEndian.AppendUint64(nil, uint64(n)))
	for _, l := range leaves {
		h.Write(l[:])
	}
	var r [HashLen]byte
	h.Sum(r[:0])
	return r
}

// ErrBadPiece means a piece's bytes do not hash to the signed piece hash.
var ErrBadPiece = errors.New("piece does not match its signed hash")

// A PieceChecker checks the pieces of a V1 release's content as they
// arrive, in any order, against its signed root. It is safe for concurrent
// use.
type PieceChecker struct {
	in     Info
	leaves [][sha256.Size]byte
	size   int64
}

// NewPieceChecker returns a checker for the pieces of the release whose
// region is in (already verified with the owner key), given the piece
// hashes a peer sent: there must be NumPieces(in.ContentLen()) of them and
// their root must be in's. fileSize is the length of the whole file, code
// signature included.
func NewPieceChecker(in Info, leaves [][sha256.Size]byte, fileSize int64) (*PieceChecker, error) {
	if in.Format != V1 {
		return nil, fmt.Errorf("%w: pieces are checked for v1 releases only", ErrMalformed)
	}
	n := in.ContentLen()
	if int64(len(leaves)) != NumPieces(n) {
		return nil, fmt.Errorf("%w: %d piece hashes for %d bytes of content, want %d", ErrHashMismatch, len(leaves), n, NumPieces(n))
	}
	if Root(n, leaves) != in.Hash {
		return nil, fmt.Errorf("%w: the piece hashes do not add up to the signed root", ErrHashMismatch)
	}
	if fileSize < n || fileSize-n > MaxTail(n) {
		return nil, fmt.Errorf("%w: a file of %d bytes for %d bytes of content", ErrSizeMismatch, fileSize, n)
	}
	return &PieceChecker{in: in, leaves: leaves, size: fileSize}, nil
}

// Piece returns the offset and length of piece i in the file.
func (c *PieceChecker) Piece(i int64) (off, n int64) {
	off = i * PieceSize
	return off, min(PieceSize, c.in.ContentLen()-off)
}

// Check checks that b, as received, is piece i of the content. It does not
// change b.
func (c *PieceChecker) Check(i int64, b []byte) error {
	if i < 0 || i >= int64(len(c.leaves)) {
		return fmt.Errorf("%w: no piece %d", ErrBadPiece, i)
	}
	off, n := c.Piece(i)
	if int64(len(b)) != n {
		return fmt.Errorf("%w: piece %d is %d bytes, want %d", ErrBadPiece, i, len(b), n)
	}
	var mutable []exefmt.Range
	if i == 0 {
		l, err := exefmt.Parse(b[:min(len(b), exefmt.MaxHeader)], c.size)
		if err != nil {
			return fmt.Errorf("%w: piece 0: %v", ErrBadPiece, err)
		}
		mutable = l.Mutable
	}
	h := sha256.New()
	canonical(h, off, b, mutable, int64(c.in.Offset), V1)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if sum != c.leaves[i] {
		return fmt.Errorf("%w: piece %d", ErrBadPiece, i)
	}
	return nil
}

// zeros is what canonical writes for the bytes the content leaves out.
var zeros [Size]byte

// canonical writes to h the content form of b, the file's bytes from
// offset off: the mutable header fields zeroed, and the region at regionOff
// zeroed (V1) or cut out (V0). It reports the number of bytes written.
func canonical(h hash.Hash, off int64, b []byte, mutable []exefmt.Range, regionOff int64, f Format) int64 {
	end := off + int64(len(b))
	var written int64
	for len(b) > 0 {
		// The next excluded span that starts at or after off.
		skipAt, skipLen, cut := end, int64(0), false
		for _, m := range mutable {
			if m.End() > off && m.Off < skipAt {
				skipAt, skipLen = max(m.Off, off), min(m.End(), end)-max(m.Off, off)
			}
		}
		if regionOff+Size > off && regionOff < skipAt {
			skipAt, skipLen, cut = max(regionOff, off), min(regionOff+Size, end)-max(regionOff, off), f == V0
		}
		k := skipAt - off
		h.Write(b[:k])
		written += k
		if skipLen > 0 && !cut {
			h.Write(zeros[:skipLen])
			written += skipLen
		}
		b = b[k+skipLen:]
		off += k + skipLen
	}
	return written
}

// MaxTail returns the longest code signature that may follow content of
// length n: 1 MiB and 1/64 of the content. A Mach-O signature holds 32 bytes
// per 4 KiB page for each of at most two code directories, plus a CMS blob;
// an Authenticode certificate table holds a few certificates.
func MaxTail(n int64) int64 { return 1<<20 + n/64 }
