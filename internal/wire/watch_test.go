package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestWatchRequest(t *testing.T) {
	in := Request{Kind: KindWatch, Target: "linux/amd64", ID: [IDLen]byte{7, 1}, Known: 3}
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + 1 + AuthLen + 1 + len(in.Target) + IDLen + 4; len(b) != want {
		t.Fatalf("a watch request of %d bytes, want %d", len(b), want)
	}
	got, err := ReadRequest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if *got != in {
		t.Fatalf("decoded %+v, want %+v", got, in)
	}
	if got.Kind.String() != "watch" {
		t.Fatalf("kind named %q", got.Kind)
	}
}

// readWatch reads a whole watch answer for layout l: the bitfields up to
// its end, and the error that ended it (nil for a clean end).
func readWatch(r io.Reader, l Layout) ([]Bitfield, error) {
	bf, err := ReadHave(r, l)
	if err != nil {
		return nil, err
	}
	out := []Bitfield{bf}
	for {
		next, err := ReadWatchUpdate(r, l, out[len(out)-1])
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, next)
	}
}

func TestWatchAnswer(t *testing.T) {
	l, err := NewLayout(10<<20, 10<<20) // 10 pieces: 2 bytes, bits 10..15 clear
	if err != nil {
		t.Fatal(err)
	}
	bits := func(set ...int64) Bitfield {
		b := NewBitfield(l)
		for _, i := range set {
			b.Set(i)
		}
		return b
	}
	answer := func(fs ...Bitfield) []byte {
		var buf bytes.Buffer
		WriteHave(&buf, fs[0])
		for _, f := range fs[1:] {
			WriteWatchUpdate(&buf, f)
		}
		return buf.Bytes()
	}
	for _, tt := range []struct {
		name  string
		b     []byte
		count []int // pieces named by each bitfield read
		want  error // nil: a clean end
	}{
		{"growing to the whole file", answer(bits(), bits(3), bits(3, 4), bits(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)), []int{0, 1, 2, 10}, nil},
		{"the same again (a peer with nothing new)", answer(bits(1), bits(1), bits(1)), []int{1, 1, 1}, nil},
		{"ended after the first", answer(bits(2)), []int{1}, nil},
		{"a bitfield cut short", append(answer(bits(2)), 0x04), []int{1}, ErrMalformed},
		{"a piece dropped", answer(bits(2, 5), bits(5)), []int{2}, ErrMalformed},
		{"bits past the last piece", answer(bits(2), Bitfield{0x04, 0x80}), []int{1}, ErrMalformed},
		{"refused by an older node", []byte{byte(StatusBadRequest), 3, 'o', 'l', 'd'}, nil, ErrRefused},
		{"not served", []byte{byte(StatusNotFound), 0}, nil, ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := readWatch(bytes.NewReader(tt.b), l)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var count []int
			for _, f := range fs {
				count = append(count, f.Count())
			}
			if !equalInts(count, tt.count) {
				t.Fatalf("bitfields naming %v pieces, want %v", count, tt.count)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzReadWatch(f *testing.F) {
	var buf bytes.Buffer
	WriteHave(&buf, Bitfield{0x01, 0x00})
	WriteWatchUpdate(&buf, Bitfield{0x03, 0x01})
	f.Add(buf.Bytes(), int64(9<<20))
	f.Fuzz(func(t *testing.T, b []byte, content int64) {
		l, err := NewLayout(content, content)
		if err != nil {
			return
		}
		cr := &countingReader{r: bytes.NewReader(b)}
		fs, _ := readWatch(cr, l)
		// Each bitfield read costs exactly its length, the failing one
		// at most that (or an error's).
		if cr.n > max(MaxErrorLen, 1+(len(fs)+1)*l.HaveLen()) {
			t.Fatalf("read %d bytes for %d bitfields of %d", cr.n, len(fs), l.HaveLen())
		}
		for i, f := range fs {
			if len(f) != l.HaveLen() || int64(f.Count()) > l.NumPieces() {
				t.Fatalf("a bitfield of %d bytes with %d set, for %d pieces", len(f), f.Count(), l.NumPieces())
			}
			if i > 0 && f.Count() < fs[i-1].Count() {
				t.Fatalf("bitfield %d names fewer pieces than the one before", i)
			}
		}
	})
}
