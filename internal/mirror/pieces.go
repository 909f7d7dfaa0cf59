package mirror

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/org/rustpatcher-go/region"
)

// ErrBadPieces means a file of piece hashes does not fit the signed
// region: its length is not one hash a piece, or their root is not the
// signed hash.
var ErrBadPieces = errors.New("piece hashes do not match the signed region")

// ParsePieces decodes a file of piece hashes (see manifest.PiecesSuffix)
// for the v1 release whose region in was checked with the owner key and
// whose file is fileSize bytes long, and returns the checker of its
// pieces: the file must hold exactly one hash a piece, and their root
// must be the signed hash.
func ParsePieces(b []byte, in region.Info, fileSize int64) (*region.PieceChecker, error) {
	n := region.NumPieces(in.ContentLen())
	if int64(len(b)) != n*sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes, want %d hashes of %d bytes", ErrBadPieces, len(b), n, sha256.Size)
	}
	leaves := make([][sha256.Size]byte, n)
	for i := range leaves {
		copy(leaves[i][:], b[i*sha256.Size:])
	}
	c, err := region.NewPieceChecker(in, leaves, fileSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPieces, err)
	}
	return c, nil
}

// PiecesSize returns the length of the file of piece hashes of content of
// length n.
func PiecesSize(n int64) int64 { return region.NumPieces(n) * sha256.Size }

// A PieceReader hands on the bytes of a release's file from a reader of
// them, checking each piece of the content against the signed root (with
// a region.PieceChecker) before it hands on a byte of it. It reads a whole
// piece at a time, so it needs the file from the start of a piece:
// NewPieceReader says where to ask the server from. What follows the
// content (an OS code signature) is handed on as it comes: the root does
// not cover it, and the update engine checks it. Memory use is one piece.
type PieceReader struct {
	r       io.Reader
	c       *region.PieceChecker
	content int64
	off     int64 // file offset of the next byte read from r
	skip    int64 // bytes of the next piece before the offset asked for
	piece   []byte
	out     []byte // checked bytes not handed on yet
	err     error
}

// PieceStart returns where to start reading a file of content length
// content so that a PieceReader can hand on its bytes from offset: the
// start of offset's piece, or offset itself past the content.
func PieceStart(offset, content int64) int64 {
	if offset >= content {
		return offset
	}
	return offset - offset%region.PieceSize
}

// NewPieceReader returns a reader of the file from offset on, reading r,
// which must hold the file from PieceStart(offset, content) on, where
// content is the signed content length.
func NewPieceReader(r io.Reader, c *region.PieceChecker, content, offset int64) *PieceReader {
	start := PieceStart(offset, content)
	return &PieceReader{r: r, c: c, content: content, off: start, skip: offset - start}
}

func (p *PieceReader) Read(b []byte) (int, error) {
	for len(p.out) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if p.off >= p.content {
			n, err := p.r.Read(b)
			p.off += int64(n)
			return n, err
		}
		i := p.off / region.PieceSize
		_, n := p.c.Piece(i)
		if p.piece == nil {
			p.piece = make([]byte, region.PieceSize)
		}
		got, err := io.ReadFull(p.r, p.piece[:n])
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("piece %d ends after %d of %d bytes: %w", i, got, n, io.ErrUnexpectedEOF)
			}
			p.err = err
			return 0, err
		}
		if err := p.c.Check(i, p.piece[:n]); err != nil {
			p.err = err
			return 0, err
		}
		p.off += n
		p.out = p.piece[p.skip:n]
		p.skip = 0
	}
	k := copy(b, p.out)
	p.out = p.out[k:]
	return k, nil
}
