package wire

import (
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/org/rustpatcher-go/region"
)

// WriteHashes writes a hashes answer: status OK (1) | the piece hashes, 32
// bytes each, in order.
func WriteHashes(w io.Writer, leaves [][sha256.Size]byte) error {
	b := make([]byte, 0, 1+len(leaves)*sha256.Size)
	b = append(b, byte(StatusOK))
	for _, l := range leaves {
		b = append(b, l[:]...)
	}
	_, err := w.Write(b)
	return err
}

// ReadHashes reads a hashes answer for a file of layout l: exactly
// l.ContentPieces() hashes, a number computed from the signed region.
func ReadHashes(r io.Reader, l Layout) ([][sha256.Size]byte, error) {
	if err := readStatus(r); err != nil {
		return nil, err
	}
	n := l.ContentPieces()
	if n <= 0 || n > MaxContentLen/region.PieceSize {
		return nil, fmt.Errorf("%w: %d piece hashes", ErrTooLarge, n)
	}
	leaves := make([][sha256.Size]byte, n)
	const batch = 256 // hashes read at a time
	buf := make([]byte, batch*sha256.Size)
	for i := int64(0); i < n; i += batch {
		k := min(batch, n-i)
		if err := readFull(r, buf[:k*sha256.Size], "piece hashes"); err != nil {
			return nil, err
		}
		for j := range k {
			copy(leaves[i+j][:], buf[j*sha256.Size:])
		}
	}
	return leaves, nil
}
