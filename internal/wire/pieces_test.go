package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/org/rustpatcher-go/region"
)

func TestLayout(t *testing.T) {
	if _, err := NewLayout(MaxContentLen+1, MaxContentLen+1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge content: %v", err)
	}
	l, err := NewLayout(2<<20+10, 2<<20+10+500)
	if err != nil {
		t.Fatal(err)
	}
	if l.ContentPieces() != 3 || l.NumPieces() != 4 || !l.IsTail(3) || l.IsTail(2) {
		t.Fatalf("pieces: %d content, %d in all", l.ContentPieces(), l.NumPieces())
	}
	for _, tt := range []struct{ i, off, n int64 }{{0, 0, 1 << 20}, {2, 2 << 20, 10}, {3, 2<<20 + 10, 500}} {
		if off, n := l.Piece(tt.i); off != tt.off || n != tt.n {
			t.Errorf("piece %d = %d+%d, want %d+%d", tt.i, off, n, tt.off, tt.n)
		}
	}
	if l.PieceAt(2<<20+9) != 2 || l.PieceAt(2<<20+10) != 3 || l.PieceAt(5) != 0 {
		t.Error("PieceAt")
	}
	if l.MaxPieceLen() != 1<<20 {
		t.Errorf("MaxPieceLen = %d", l.MaxPieceLen())
	}
	for _, r := range [][2]uint32{{0, 0}, {0, 9}, {3, 2}, {1 << 31, 1}} {
		if err := l.CheckRange(r[0], r[1]); !errors.Is(err, ErrMalformed) {
			t.Errorf("range %v: %v", r, err)
		}
	}
	if err := l.CheckRange(0, 4); err != nil {
		t.Errorf("all pieces: %v", err)
	}
	var buf bytes.Buffer
	WritePiecesHeader(&buf)
	buf.Write(bytes.Repeat([]byte{1}, 10))
	buf.Write(bytes.Repeat([]byte{2}, 499))
	if err := ReadPiecesHeader(&buf); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, l.MaxPieceLen())
	if p, err := l.ReadPiece(&buf, 2, b); err != nil || len(p) != 10 {
		t.Fatalf("piece 2: %d bytes, %v", len(p), err)
	}
	if _, err := l.ReadPiece(&buf, 3, b); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated tail: got %v, want ErrMalformed", err)
	}
}

func FuzzReadPieces(f *testing.F) {
	var buf bytes.Buffer
	WritePiecesHeader(&buf)
	buf.Write(make([]byte, 3000))
	f.Add(buf.Bytes(), int64(1<<20+1000), int64(2000), uint32(1), uint32(2))
	f.Add([]byte{1, 3, 'a', 'b', 'c'}, int64(10), int64(10), uint32(0), uint32(1))
	piece := make([]byte, region.PieceSize)
	f.Fuzz(func(t *testing.T, b []byte, content, tail int64, first, count uint32) {
		// Small files keep the fuzzer fast; the layout's rules are the
		// same for every length.
		if tail < 0 || tail > 64<<10 || content <= 0 || content > 3<<20 {
			return
		}
		l, err := NewLayout(content, content+tail)
		if err != nil || l.CheckRange(first, count) != nil {
			return
		}
		cr := &countingReader{r: bytes.NewReader(b)}
		if err := ReadPiecesHeader(cr); err != nil {
			if cr.n > MaxErrorLen {
				t.Fatalf("read %d bytes of an error", cr.n)
			}
			return
		}
		want := 1
		for i := int64(first); i < int64(first)+int64(count); i++ {
			_, n := l.Piece(i)
			want += int(n)
			p, err := l.ReadPiece(cr, i, piece)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("piece %d: %v", i, err)
				}
				break
			}
			if int64(len(p)) != n {
				t.Fatalf("piece %d: %d bytes, want %d", i, len(p), n)
			}
		}
		if cr.n > want {
			t.Fatalf("read %d bytes for pieces of %d", cr.n, want)
		}
	})
}
