package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestHaveRequest(t *testing.T) {
	in := Request{Kind: KindHave, Target: "linux/arm64", ID: [IDLen]byte{9, 8}, Known: 1 << 20}
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + 1 + AuthLen + 1 + len(in.Target) + IDLen + 4; len(b) != want || len(b) > MaxRequestLen {
		t.Fatalf("a have request of %d bytes, want %d (at most %d)", len(b), want, MaxRequestLen)
	}
	got, err := ReadRequest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if *got != in {
		t.Fatalf("decoded %+v, want %+v", got, in)
	}
	if _, err := ReadRequest(bytes.NewReader(b[:len(b)-1])); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a have request cut short: %v, want ErrMalformed", err)
	}
}

func TestHaveAnswer(t *testing.T) {
	for _, tt := range []struct {
		name          string
		content, size int64
		set           []int64
	}{
		{"one piece", 100, 100, []int64{0}},
		{"eight pieces", 8 << 20, 8 << 20, []int64{0, 7}},
		{"nine pieces and a tail", 9 << 20, 9<<20 + 10, []int64{1, 8, 9}},
		{"none held", 20 << 20, 20 << 20, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLayout(tt.content, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			bf := NewBitfield(l)
			for _, i := range tt.set {
				bf.Set(i)
			}
			var buf bytes.Buffer
			WriteHave(&buf, bf)
			if buf.Len() != 1+l.HaveLen() {
				t.Fatalf("answer of %d bytes, want %d", buf.Len(), 1+l.HaveLen())
			}
			buf.WriteString("trailing bytes are left unread")
			got, err := ReadHave(&buf, l)
			if err != nil {
				t.Fatal(err)
			}
			if got.Count() != len(tt.set) {
				t.Fatalf("%d pieces set, want %d", got.Count(), len(tt.set))
			}
			for i := range l.NumPieces() {
				want := contains(tt.set, i)
				if got.Has(i) != want {
					t.Fatalf("piece %d: Has = %v, want %v", i, got.Has(i), want)
				}
			}
			if got.Has(-1) || got.Has(l.NumPieces()+8) {
				t.Fatal("Has reports pieces outside the file")
			}
		})
	}
}

func contains(s []int64, i int64) bool {
	for _, x := range s {
		if x == i {
			return true
		}
	}
	return false
}

func TestHaveAnswerBad(t *testing.T) {
	l, _ := NewLayout(3<<20, 3<<20) // 3 pieces: bits 3..7 must be clear
	for _, tt := range []struct {
		name string
		b    []byte
		want error
	}{
		{"bits past the last piece", []byte{0, 0x0f}, ErrMalformed},
		{"cut short", []byte{0}, ErrMalformed},
		{"busy", []byte{byte(StatusBusy), 0}, ErrBusy},
		{"refused by an older node", []byte{byte(StatusBadRequest), 3, 'o', 'l', 'd'}, ErrRefused},
		{"unknown status", []byte{9}, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadHave(bytes.NewReader(tt.b), l); !errors.Is(err, tt.want) {
				t.Fatalf("ReadHave = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzReadHave(f *testing.F) {
	var buf bytes.Buffer
	WriteHave(&buf, Bitfield{0xff, 0x01})
	f.Add(buf.Bytes(), int64(9<<20))
	buf.Reset()
	WriteError(&buf, StatusBadRequest, "unknown kind")
	f.Add(buf.Bytes(), int64(1))
	f.Fuzz(func(t *testing.T, b []byte, content int64) {
		l, err := NewLayout(content, content)
		if err != nil {
			return
		}
		cr := &countingReader{r: bytes.NewReader(b)}
		bf, err := ReadHave(cr, l)
		if cr.n > max(MaxErrorLen, 1+l.HaveLen()) {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err != nil {
			return
		}
		if len(bf) != l.HaveLen() || int64(bf.Count()) > l.NumPieces() {
			t.Fatalf("a bitfield of %d bytes with %d set, for %d pieces", len(bf), bf.Count(), l.NumPieces())
		}
	})
}
