package wire

import (
	"fmt"
	"io"

	"github.com/org/rustpatcher-go/region"
)

// WritePiecesHeader writes the head of a pieces answer, status OK; the
// pieces' bytes follow.
func WritePiecesHeader(w io.Writer) error {
	_, err := w.Write([]byte{byte(StatusOK)})
	return err
}

// ReadPiecesHeader reads the head of a pieces answer: nil for status OK,
// after which the pieces' bytes follow (see Layout.ReadPiece), else the
// error the status stands for.
func ReadPiecesHeader(r io.Reader) error { return readStatus(r) }

// A Layout is how a file is cut into pieces on the wire: pieces 0 to n-1
// are the content's region.PieceSize pieces (the last one shorter), and
// piece n, only when the file is longer than its content, is the tail: the
// OS code signature after the content, which the region does not sign.
type Layout struct {
	// Content is the length of the content (region.Info.ContentLen).
	Content int64
	// Size is the length of the file.
	Size int64
}

// NewLayout returns the layout of a file of size bytes whose signed content
// is content bytes long. It fails with ErrMalformed unless the tail fits
// region.MaxTail, and with ErrTooLarge for content over MaxContentLen.
func NewLayout(content, size int64) (Layout, error) {
	if content <= 0 || content > MaxContentLen {
		return Layout{}, fmt.Errorf("%w: %d bytes of content", ErrTooLarge, content)
	}
	if size < content || size-content > region.MaxTail(content) {
		return Layout{}, fmt.Errorf("%w: a file of %d bytes for %d bytes of signed content", ErrMalformed, size, content)
	}
	return Layout{Content: content, Size: size}, nil
}

// ContentPieces returns the number of content pieces.
func (l Layout) ContentPieces() int64 { return region.NumPieces(l.Content) }

// NumPieces returns the number of pieces, the tail included.
func (l Layout) NumPieces() int64 {
	n := l.ContentPieces()
	if l.Size > l.Content {
		n++
	}
	return n
}

// IsTail reports whether piece i is the tail.
func (l Layout) IsTail(i int64) bool { return i == l.ContentPieces() && l.Size > l.Content }

// Piece returns the offset and length in the file of piece i, which must be
// below NumPieces.
func (l Layout) Piece(i int64) (off, n int64) {
	if l.IsTail(i) {
		return l.Content, l.Size - l.Content
	}
	off = i * region.PieceSize
	return off, min(region.PieceSize, l.Content-off)
}

// PieceAt returns the piece that holds byte off of the file, which must be
// below Size.
func (l Layout) PieceAt(off int64) int64 {
	if off >= l.Content {
		return l.ContentPieces()
	}
	return off / region.PieceSize
}

// MaxPieceLen returns the length of the longest piece.
func (l Layout) MaxPieceLen() int64 {
	return max(min(region.PieceSize, l.Content), l.Size-l.Content)
}

// CheckRange reports whether count pieces from first are pieces of l, and
// at most MaxPiecesPerRequest of them.
func (l Layout) CheckRange(first, count uint32) error {
	if count == 0 || count > MaxPiecesPerRequest || int64(first)+int64(count) > l.NumPieces() {
		return fmt.Errorf("%w: pieces %d+%d of %d", ErrMalformed, first, count, l.NumPieces())
	}
	return nil
}

// ReadPiece reads piece i of the file from r, after ReadPiecesHeader, into
// b, which must hold it, and returns the piece's bytes. A stream that ends
// before the piece does is malformed.
func (l Layout) ReadPiece(r io.Reader, i int64, b []byte) ([]byte, error) {
	if i < 0 || i >= l.NumPieces() {
		return nil, fmt.Errorf("no piece %d in %d", i, l.NumPieces())
	}
	_, n := l.Piece(i)
	if int64(len(b)) < n {
		return nil, fmt.Errorf("a buffer of %d bytes for piece %d of %d bytes", len(b), i, n)
	}
	if err := readFull(r, b[:n], fmt.Sprintf("piece %d", i)); err != nil {
		return nil, err
	}
	return b[:n], nil
}
