package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/org/rustpatcher-go/region"
)

// TestInfoExt checks the extension of an info answer both ways: a node of
// this release reads an answer of an older one (none) and the extension of
// a new one, and refuses a malformed one; an older node, which reads no
// more than InfoAnswerLen bytes, gets the same answer as before.
func TestInfoExt(t *testing.T) {
	in := testRegion(t, 3<<20+5)
	reg, _ := in.Marshal()
	id := [IDLen]byte{7}
	bases := make([][IDLen]byte, MaxDeltaBases+3)
	for i := range bases {
		bases[i][0] = byte(i + 1)
	}
	var old, ext bytes.Buffer
	WriteInfo(&old, reg, in.ContentLen(), id)
	WriteInfoExt(&ext, reg, in.ContentLen(), id, InfoExt{Packed: true, Bases: bases})
	if !bytes.Equal(ext.Bytes()[:InfoAnswerLen], old.Bytes()) {
		t.Fatal("the answer an older node reads changed")
	}
	if ext.Len() != InfoAnswerLen+MaxInfoExtLen {
		t.Fatalf("answer with %d bases is %d bytes, want %d", MaxDeltaBases, ext.Len(), InfoAnswerLen+MaxInfoExtLen)
	}
	o, err := ReadInfo(bytes.NewReader(old.Bytes()))
	if err != nil || o.Ext.Packed || o.Ext.Bases != nil {
		t.Errorf("older answer: %+v, %v", o.Ext, err)
	}
	o, err = ReadInfo(bytes.NewReader(ext.Bytes()))
	if err != nil || !o.Ext.Packed || len(o.Ext.Bases) != MaxDeltaBases || !o.Ext.HasBase(bases[0]) || o.Ext.HasBase(bases[MaxDeltaBases]) {
		t.Errorf("new answer: %+v, %v", o.Ext, err)
	}
	// A stream that fails after the answer is an older node's.
	o, err = ReadInfo(&failAfter{b: old.Bytes(), err: errors.New("reset")})
	if err != nil || o.Ext.Packed {
		t.Errorf("failing stream after the answer: %+v, %v", o.Ext, err)
	}
	b := ext.Bytes()
	tests := []struct {
		name string
		b    []byte
	}{
		{"other tag", append(append([]byte{}, old.Bytes()...), 'Q', 1, 0)},
		{"no flags", append(append([]byte{}, old.Bytes()...), 'P')},
		{"too many bases", append(append([]byte{}, old.Bytes()...), 'P', 1, MaxDeltaBases+1)},
		{"truncated base", b[:len(b)-1]},
	}
	for _, tt := range tests {
		if _, err := ReadInfo(bytes.NewReader(tt.b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", tt.name, err)
		}
	}
}

// failAfter returns b, then err.
type failAfter struct {
	b   []byte
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, f.err
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

func TestPacked(t *testing.T) {
	l, err := NewLayout(2<<20+10, 2<<20+10+500)
	if err != nil {
		t.Fatal(err)
	}
	pieces := []struct {
		i int64
		p PackedPiece
	}{
		{0, PackedPiece{Method: PackZstd, Data: []byte("zstd")}},
		{1, PackedPiece{Method: PackDelta, DictOff: 1 << 33, DictLen: MaxDictLen, Data: bytes.Repeat([]byte{1}, 1<<20)}},
		{2, PackedPiece{Method: PackRaw, Data: bytes.Repeat([]byte{2}, 10)}},
		{3, PackedPiece{Method: PackDelta, DictOff: 0, DictLen: 1, Data: []byte{3}}},
	}
	var buf bytes.Buffer
	WritePackedHeader(&buf)
	for _, p := range pieces {
		buf.Write(AppendPacked(nil, p.p))
	}
	if err := ReadPackedHeader(&buf); err != nil {
		t.Fatal(err)
	}
	b, raw := make([]byte, l.MaxPieceLen()), make([]byte, l.MaxPieceLen())
	for _, p := range pieces {
		got, err := l.ReadPackedInto(&buf, p.i, b, raw)
		if err != nil {
			t.Fatalf("piece %d: %v", p.i, err)
		}
		if got.Method != p.p.Method || got.DictOff != p.p.DictOff || got.DictLen != p.p.DictLen || !bytes.Equal(got.Data, p.p.Data) {
			t.Errorf("piece %d: got %+v", p.i, got)
		}
		// ReadPackedInto reads a raw piece's data into raw, others' into b.
		want := &b[0]
		if p.p.Method == PackRaw {
			want = &raw[0]
		}
		if &got.Data[0] != want {
			t.Errorf("piece %d (method %d): data read into the other buffer", p.i, p.p.Method)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes left", buf.Len())
	}
}

func TestReadPackedRejects(t *testing.T) {
	l, err := NewLayout(region.PieceSize+100, region.PieceSize+100)
	if err != nil {
		t.Fatal(err)
	}
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		i    int64
		b    []byte
	}{
		{"empty", 1, nil},
		{"unknown method", 1, []byte{3, 1}},
		{"short raw", 1, cat([]byte{PackRaw}, make([]byte, 99))},
		{"zero zstd", 1, cat([]byte{PackZstd}, u32(0))},
		{"zstd longer than the piece", 1, cat([]byte{PackZstd}, u32(101), make([]byte, 101))},
		{"zstd longer than a piece", 0, cat([]byte{PackZstd}, u32(region.PieceSize+1))},
		{"truncated zstd", 1, cat([]byte{PackZstd}, u32(50), make([]byte, 49))},
		{"truncated length", 1, []byte{PackZstd, 1, 0}},
		{"empty dictionary", 1, cat([]byte{PackDelta}, u64(0), u32(0), u32(1), []byte{0})},
		{"long dictionary", 1, cat([]byte{PackDelta}, u64(0), u32(MaxDictLen+1), u32(1), []byte{0})},
		{"dictionary far away", 1, cat([]byte{PackDelta}, u64(1<<63), u32(1), u32(1), []byte{0})},
		{"truncated delta", 1, cat([]byte{PackDelta}, u64(0), u32(1))},
	}
	b := make([]byte, l.MaxPieceLen())
	for _, tt := range tests {
		if _, err := l.ReadPacked(bytes.NewReader(tt.b), tt.i, b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", tt.name, err)
		}
	}
	if _, err := l.ReadPacked(bytes.NewReader(nil), 2, b); err == nil || errors.Is(err, ErrMalformed) {
		t.Errorf("no such piece: got %v", err)
	}
	if _, err := l.ReadPacked(bytes.NewReader(nil), 0, b[:10]); err == nil || errors.Is(err, ErrMalformed) {
		t.Errorf("small buffer: got %v", err)
	}
}

func FuzzReadPacked(f *testing.F) {
	f.Add(AppendPacked([]byte{0}, PackedPiece{Method: PackZstd, Data: []byte("abc")}), int64(3000), uint32(0))
	f.Add(AppendPacked([]byte{0}, PackedPiece{Method: PackDelta, DictOff: 7, DictLen: 100, Data: []byte("abc")}), int64(3000), uint32(0))
	f.Add(AppendPacked([]byte{0}, PackedPiece{Method: PackRaw, Data: make([]byte, 1000)}), int64(1<<20+1000), uint32(1))
	piece := make([]byte, region.PieceSize)
	f.Fuzz(func(t *testing.T, b []byte, content int64, first uint32) {
		if content <= 0 || content > 3<<20 {
			return
		}
		l, err := NewLayout(content, content)
		if err != nil || l.CheckRange(first, 1) != nil {
			return
		}
		cr := &countingReader{r: bytes.NewReader(b)}
		if err := ReadPackedHeader(cr); err != nil {
			return
		}
		for i := int64(first); i < l.NumPieces(); i++ {
			_, n := l.Piece(i)
			before := cr.n
			p, err := l.ReadPacked(cr, i, piece)
			if cr.n-before > MaxPackedHeaderLen+int(n) {
				t.Fatalf("piece %d: read %d bytes", i, cr.n-before)
			}
			if err != nil {
				return
			}
			switch {
			case p.Method == PackRaw && int64(len(p.Data)) != n,
				p.Method != PackRaw && (len(p.Data) == 0 || int64(len(p.Data)) > n),
				p.Method == PackDelta && (p.DictLen <= 0 || p.DictLen > MaxDictLen || p.DictOff < 0):
				t.Fatalf("piece %d: accepted %d bytes of method %d, dictionary %d+%d", i, len(p.Data), p.Method, p.DictOff, p.DictLen)
			}
			if !bytes.Equal(AppendPacked(nil, p), b[before:cr.n]) {
				t.Fatalf("piece %d: re-encoding differs", i)
			}
		}
	})
}
