package pack

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/org/rustpatcher-go/internal/wire"
)

// FuzzUnpack decodes frames a peer might send: whatever the bytes, the
// output is the piece's length or the frame is refused.
func FuzzUnpack(f *testing.F) {
	base, next := files(64 << 10)
	enc, _ := NewEncoder(Small)
	for _, n := range []int{1, 1000, 30000} {
		p, _ := enc.Pack(next[:n], nil, 0, nil)
		f.Add(p.Method, p.Data, int64(0), 0, n)
		d, _ := enc.Pack(next[1000:1000+n], base[:20000], 0, nil)
		f.Add(d.Method, d.Data, d.DictOff, d.DictLen, n)
	}
	enc.Close()
	dec, _ := NewDecoder()
	out := make([]byte, 1<<16)
	f.Fuzz(func(t *testing.T, method byte, data []byte, dictOff int64, dictLen, n int) {
		if n < 0 || n > len(out) {
			return
		}
		p := wire.PackedPiece{Method: method, Data: data, DictOff: dictOff, DictLen: dictLen}
		err := dec.Unpack(p, bytes.NewReader(base), int64(len(base)), out[:n])
		if err != nil && !errors.Is(err, ErrBad) {
			t.Fatalf("an error that is not ErrBad: %v", err)
		}
		if err == nil && method == wire.PackRaw && !bytes.Equal(out[:n], data) {
			t.Fatal("raw piece changed")
		}
	})
}

// FuzzReadCache reads damaged cache files, through the FrameReader that
// also reads a mirror's packs: they are refused, never trusted.
func FuzzReadCache(f *testing.F) {
	_, next := files(40 << 10)
	l, _ := wire.NewLayout(int64(len(next)), int64(len(next)))
	dir := f.TempDir()
	path, err := Make(f.Context(), dir, Target{File: bytes.NewReader(next), ID: [32]byte{1}, Layout: l}, nil)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	f.Add(good)
	f.Add(good[:cacheHeaderLen])
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := readCache(bytes.NewReader(b), [32]byte{1}, [32]byte{}, l)
		if err != nil {
			if !errors.Is(err, ErrCache) {
				t.Fatalf("an error that is not ErrCache: %v", err)
			}
			return
		}
		if int64(len(c.frames)) != l.NumPieces() || c.size > int64(len(b)) {
			t.Fatalf("accepted %d frames of %d bytes", len(c.frames), c.size)
		}
	})
}

// TestFuzzCorpus checks that every fuzz target has a committed seed corpus.
func TestFuzzCorpus(t *testing.T) {
	for _, name := range []string{"FuzzUnpack", "FuzzReadCache"} {
		if es, err := os.ReadDir("testdata/fuzz/" + name); err != nil || len(es) == 0 {
			t.Errorf("%s: no seed corpus in testdata/fuzz (%v)", name, err)
		}
	}
}
