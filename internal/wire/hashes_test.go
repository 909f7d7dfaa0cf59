package wire

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestHashes(t *testing.T) {
	l, err := NewLayout(3<<20+1, 3<<20+1)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][sha256.Size]byte, 4)
	for i := range leaves {
		leaves[i][0] = byte(i + 1)
	}
	var buf bytes.Buffer
	WriteHashes(&buf, leaves)
	got, err := ReadHashes(&buf, l)
	if err != nil || len(got) != 4 || got[3] != leaves[3] {
		t.Fatalf("ReadHashes = %v, %v", got, err)
	}
	buf.Reset()
	WriteHashes(&buf, leaves[:3])
	if _, err := ReadHashes(&buf, l); !errors.Is(err, ErrMalformed) {
		t.Errorf("short list: got %v, want ErrMalformed", err)
	}
}

func FuzzReadHashes(f *testing.F) {
	var buf bytes.Buffer
	WriteHashes(&buf, make([][sha256.Size]byte, 3))
	f.Add(buf.Bytes(), int64(3<<20))
	buf.Reset()
	WriteError(&buf, StatusNotFound, "v0 file")
	f.Add(buf.Bytes(), int64(1))
	f.Fuzz(func(t *testing.T, b []byte, content int64) {
		l, err := NewLayout(content, content)
		if err != nil {
			return
		}
		cr := &countingReader{r: bytes.NewReader(b)}
		leaves, err := ReadHashes(cr, l)
		if cr.n > max(MaxErrorLen, 1+int(l.ContentPieces())*sha256.Size) {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err == nil && int64(len(leaves)) != l.ContentPieces() {
			t.Fatalf("%d hashes for %d pieces", len(leaves), l.ContentPieces())
		}
	})
}
