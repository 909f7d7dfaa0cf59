package pack

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// files returns a base of size bytes, half random and half text, and a
// new version of it: bytes changed every 4 KiB (as moved code changes its
// offsets) and 100 KiB inserted at 1 MiB, which moves what follows.
func files(size int) (base, next []byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	base = make([]byte, size)
	for i := range base {
		if i%2048 < 1024 {
			base[i] = byte(rng.Uint32())
		} else {
			base[i] = "the quick brown fox jumps over the lazy dog "[i%44]
		}
	}
	next = bytes.Clone(base)
	for i := 100; i < len(next); i += 4096 {
		next[i]++
	}
	ins := make([]byte, 100<<10)
	for i := range ins {
		ins[i] = byte(rng.Uint32())
	}
	at := min(1<<20, len(next))
	next = append(next[:at:at], append(ins, next[at:]...)...)
	return base, next
}

func indexOf(t testing.TB, b []byte) *Index {
	t.Helper()
	x, err := NewIndex(context.Background(), bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestPackUnpack(t *testing.T) {
	base, next := files(3 << 20)
	x := indexOf(t, base)
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	random := make([]byte, 1000)
	for i := range random {
		random[i] = byte(rand.Uint32())
	}
	tests := []struct {
		name   string
		level  Level
		piece  []byte
		off    int64 // in next, for a delta; -1: none
		method byte
		limit  int // the frame's data is at most this long
	}{
		{"compressed", Fast, next[:region.PieceSize], -1, wire.PackZstd, region.PieceSize * 3 / 4},
		{"compressed small", Small, next[:region.PieceSize], -1, wire.PackZstd, region.PieceSize * 3 / 4},
		{"incompressible", Fast, random, -1, wire.PackRaw, len(random)},
		{"delta", Small, next[2<<20 : 3<<20], 2 << 20, wire.PackDelta, 4 << 10},
		{"delta of an insertion", Small, next[1<<20 : 2<<20], 1 << 20, wire.PackDelta, 120 << 10},
		{"short last piece", Small, next[3<<20:], 3 << 20, wire.PackDelta, 4 << 10},
		{"tail longer than a piece", Fast, next[:2<<20], -1, wire.PackZstd, 3 << 20 / 2},
		{"tail longer than a piece, small", Small, next[:2<<20], -1, wire.PackZstd, 3 << 20 / 2},
		{"tiny piece", Small, next[3<<20 : 3<<20+300], 3 << 20, wire.PackDelta, 100},
	}
	for _, tt := range tests {
		enc, err := NewEncoder(tt.level)
		if err != nil {
			t.Fatal(err)
		}
		var dict []byte
		var dictOff int64
		if tt.off >= 0 {
			do, dl, _ := x.Span(tt.piece, tt.off)
			dict, dictOff = base[do:do+int64(dl)], do
		}
		p, err := enc.Pack(tt.piece, dict, dictOff, nil)
		enc.Close()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if p.Method != tt.method || len(p.Data) > tt.limit {
			t.Errorf("%s: method %d, %d bytes; want method %d, at most %d", tt.name, p.Method, len(p.Data), tt.method, tt.limit)
		}
		// Through the wire format, as a peer reads it: as the only piece,
		// or as the tail after 64 MiB of content when longer than a piece.
		l, _ := wire.NewLayout(int64(len(tt.piece)), int64(len(tt.piece)))
		i := int64(0)
		if len(tt.piece) > region.PieceSize {
			l, _ = wire.NewLayout(64<<20, 64<<20+int64(len(tt.piece)))
			i = l.ContentPieces()
		}
		got, err := l.ReadPacked(bytes.NewReader(wire.AppendPacked(nil, p)), i, make([]byte, len(tt.piece)))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		out := make([]byte, len(tt.piece))
		if err := dec.Unpack(got, bytes.NewReader(base), int64(len(base)), out); err != nil || !bytes.Equal(out, tt.piece) {
			t.Errorf("%s: Unpack: %v, equal %v", tt.name, err, bytes.Equal(out, tt.piece))
		}
	}
}

func TestUnpackRejects(t *testing.T) {
	base, next := files(2 << 20)
	piece := next[:4000]
	enc, _ := NewEncoder(Small)
	defer enc.Close()
	zp, _ := enc.Pack(piece, nil, 0, nil)
	dp, _ := enc.Pack(piece, base[:8000], 0, nil)
	long, _ := enc.Pack(next[:4001], nil, 0, nil)
	// A frame that declares a 32 MiB window, more than Window: magic,
	// no content size, window 2^(10+15), one raw block of the piece.
	wide := bytes.NewBuffer([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 15 << 3})
	bh := uint32(len(piece))<<3 | 1
	wide.Write([]byte{byte(bh), byte(bh >> 8), byte(bh >> 16)})
	wide.Write(piece)
	tests := []struct {
		name string
		p    wire.PackedPiece
		base bool
		bad  bool // ErrBad, else another error
	}{
		{"short raw", wire.PackedPiece{Method: wire.PackRaw, Data: piece[:3999]}, false, true},
		{"unknown method", wire.PackedPiece{Method: 7, Data: zp.Data}, false, true},
		{"garbage", wire.PackedPiece{Method: wire.PackZstd, Data: []byte("not zstd")}, false, true},
		{"longer than the piece", long, false, true},
		{"two frames", wire.PackedPiece{Method: wire.PackZstd, Data: append(bytes.Clone(zp.Data), zp.Data...)}, false, true},
		{"wide window", wire.PackedPiece{Method: wire.PackZstd, Data: wide.Bytes()}, false, true},
		{"delta without base", dp, false, true},
		{"delta without its dictionary", wire.PackedPiece{Method: wire.PackZstd, Data: dp.Data}, true, true},
		{"dictionary past the base", wire.PackedPiece{Method: wire.PackDelta, DictOff: int64(len(base)) - 10, DictLen: 11, Data: dp.Data}, true, true},
		{"negative dictionary", wire.PackedPiece{Method: wire.PackDelta, DictOff: -1, DictLen: 11, Data: dp.Data}, true, true},
	}
	dec, _ := NewDecoder()
	defer dec.Close()
	out := make([]byte, len(piece))
	for _, tt := range tests {
		var b *bytes.Reader
		if tt.base {
			b = bytes.NewReader(base)
		}
		var err error
		if b == nil {
			err = dec.Unpack(tt.p, nil, 0, out)
		} else {
			err = dec.Unpack(tt.p, b, int64(len(base)), out)
		}
		if tt.bad != errors.Is(err, ErrBad) {
			t.Errorf("%s: got %v", tt.name, err)
		}
	}
	// The decoder is still good for honest frames.
	if err := dec.Unpack(dp, bytes.NewReader(base), int64(len(base)), out); err != nil || !bytes.Equal(out, piece) {
		t.Errorf("after the bad frames: %v", err)
	}
	// A base that cannot be read is this node's failure, not the peer's.
	if err := dec.Unpack(dp, failingReaderAt{}, int64(len(base)), out); err == nil || errors.Is(err, ErrBad) {
		t.Errorf("unreadable base: got %v", err)
	}
}

type failingReaderAt struct{}

func (failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }

func TestSpan(t *testing.T) {
	base, next := files(12 << 20)
	x := indexOf(t, base)
	// After the insertion the bytes of next moved 100 KiB; the span is
	// centred where they were.
	off := int64(6 << 20)
	do, dl, ok := x.Span(next[off:off+region.PieceSize], off)
	if !ok || dl != wire.MaxDictLen {
		t.Fatalf("Span = %d+%d, %v", do, dl, ok)
	}
	want := off - 100<<10 + region.PieceSize/2 - wire.MaxDictLen/2
	if do != want {
		t.Errorf("span starts at %d, want %d", do, want)
	}
	// The start of the file is clamped to the base.
	if do, _, ok := x.Span(next[:region.PieceSize], 0); !ok || do != 0 {
		t.Errorf("first piece: span at %d, %v", do, ok)
	}
	if do, _, ok := x.Span(bytes.Repeat([]byte{0xaa}, 100000), 5<<20); ok || do != 5<<20+50000-wire.MaxDictLen/2 {
		t.Errorf("bytes the base does not hold: span at %d, %v; want around their own offset", do, ok)
	}
	// A base shorter than a dictionary is the dictionary.
	small := indexOf(t, base[:1<<20])
	if do, dl, ok := small.Span(base[:1<<20], 0); !ok || do != 0 || dl != 1<<20 {
		t.Errorf("small base: %d+%d, %v", do, dl, ok)
	}
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	base, next := files(5<<20 + 1000)
	l, err := wire.NewLayout(int64(len(next))-300, int64(len(next))) // with a tail
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tg := Target{File: bytes.NewReader(next), ID: [32]byte{1}, Layout: l}
	b := &Base{File: bytes.NewReader(base), Size: int64(len(base)), ID: [32]byte{2}, Index: indexOf(t, base)}
	for _, tt := range []struct {
		name  string
		base  *Base
		limit int64
	}{
		{"compressed", nil, int64(len(next)) * 3 / 4},
		{"delta", b, 200 << 10},
	} {
		path, err := Make(ctx, dir, tg, tt.base)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var id [32]byte
		if tt.base != nil {
			id = tt.base.ID
		}
		if filepath.Base(path) != CacheName(tg.ID, id) {
			t.Errorf("%s: made %s", tt.name, path)
		}
		c, err := OpenCache(path, tg, id)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		t.Logf("%s: %d bytes of frames for %d", tt.name, c.Size(), len(next))
		if c.Size() > tt.limit {
			t.Errorf("%s: %d bytes, want at most %d", tt.name, c.Size(), tt.limit)
		}
		dec, _ := NewDecoder()
		buf := make([]byte, l.MaxPieceLen())
		for i := range l.NumPieces() {
			fr, err := c.Frame(i, nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := l.ReadPacked(bytes.NewReader(fr), i, make([]byte, l.MaxPieceLen()))
			if err != nil {
				t.Fatal(err)
			}
			po, pn := l.Piece(i)
			if err := dec.Unpack(p, bytes.NewReader(base), int64(len(base)), buf[:pn]); err != nil || !bytes.Equal(buf[:pn], next[po:po+pn]) {
				t.Fatalf("%s: piece %d: %v", tt.name, i, err)
			}
		}
		dec.Close()
		c.Close()
		// Asked for another file, or damaged, it is refused.
		if _, err := OpenCache(path, Target{ID: [32]byte{3}, Layout: l}, id); !errors.Is(err, ErrCache) {
			t.Errorf("%s: other target: %v", tt.name, err)
		}
		raw, _ := os.ReadFile(path)
		raw[len(raw)-5] ^= 1
		os.WriteFile(path, raw, 0o644)
		if _, err := OpenCache(path, tg, id); !errors.Is(err, ErrCache) {
			t.Errorf("%s: damaged: %v", tt.name, err)
		}
	}
	if es, _ := os.ReadDir(dir); len(es) != 2 {
		t.Errorf("%d files in the cache directory, want 2", len(es))
	}
	// A cancelled Make leaves nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Make(cctx, dir, Target{File: bytes.NewReader(next), ID: [32]byte{9}, Layout: l}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 2 {
		t.Errorf("%d files after a cancelled Make", len(es))
	}
}

// TestFastSkipsIncompressible: at level Fast a piece none of whose samples
// compresses goes raw, and one with a compressible part anywhere is
// compressed; both unpack to themselves.
func TestFastSkipsIncompressible(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := bytes.Repeat([]byte("a release of the program, "), region.PieceSize/26+1)
	lateText := random(region.PieceSize)
	copy(lateText[region.PieceSize*3/4:], text) // compressible only in its last quarter
	enc, err := NewEncoder(Fast)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		piece []byte
		want  byte
	}{
		{"random", random(region.PieceSize), wire.PackRaw},
		{"text", text[:region.PieceSize], wire.PackZstd},
		{"text in the last quarter", lateText, wire.PackZstd},
		{"short random", random(1000), wire.PackRaw},
	} {
		p, err := enc.Pack(tt.piece, nil, 0, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if p.Method != tt.want {
			t.Errorf("%s: method %d, want %d", tt.name, p.Method, tt.want)
		}
		out := make([]byte, len(tt.piece))
		if err := dec.Unpack(p, nil, 0, out); err != nil || !bytes.Equal(out, tt.piece) {
			t.Errorf("%s: unpacks to another piece (%v)", tt.name, err)
		}
	}
}
