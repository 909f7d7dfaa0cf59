package pack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// A cache file holds the packed frames of every piece of one file, as
// deltas from one base file or compressed alone, in the order of the
// pieces:
//
//	magic "RPPACK1\n" (8) | target file ID (32) | base file ID (32, zero: none)
//	  | target length (u64 LE) | pieces n (u32 LE)
//	  | n × (frame offset (u64 LE) | frame length (u32 LE) | SHA-256 of the frame (32))
//	  | the frames, each as wire.AppendPacked writes it
//
// It is made by Make, next to other cache files in one directory, and read
// by OpenCache, which checks every frame against its hash once.
const cacheMagic = "RPPACK1\n"

const (
	cacheHeaderLen = 8 + 32 + 32 + 8 + 4
	cacheEntryLen  = 8 + 4 + 32
)

// ErrCache means a cache file is not the one expected or is damaged.
var ErrCache = errors.New("bad cache file")

// CacheName returns the name of the cache file of the file target, as
// deltas from base or, when base is zero, compressed alone.
func CacheName(target, base [wire.IDLen]byte) string {
	if base == ([wire.IDLen]byte{}) {
		return hex.EncodeToString(target[:]) + ".zst"
	}
	return hex.EncodeToString(target[:]) + "." + hex.EncodeToString(base[:]) + ".delta"
}

// A Target is the file whose pieces a cache file holds.
type Target struct {
	// File holds the file's bytes; ID is its file ID and Layout its
	// pieces.
	File   io.ReaderAt
	ID     [wire.IDLen]byte
	Layout wire.Layout
}

// OpenBase scans the signed binary open in f (its file ID, and that its
// content is what its own region signs) and indexes it, to make deltas
// from it; it returns the base and the binary's signed region.
func OpenBase(ctx context.Context, f *os.File) (*Base, region.Info, error) {
	sc, err := region.ScanOpen(ctx, f)
	if err != nil {
		return nil, region.Info{}, err
	}
	in, err := sc.Info()
	if err != nil {
		return nil, in, err
	}
	if err := sc.Matches(in); err != nil {
		return nil, in, err
	}
	x, err := NewIndex(ctx, io.NewSectionReader(f, 0, sc.FileSize), sc.FileSize)
	if err != nil {
		return nil, in, err
	}
	return &Base{File: f, Size: sc.FileSize, ID: sc.FileID, Index: x}, in, nil
}

// A Base is the file a cache file's deltas are made from.
type Base struct {
	// File holds the base's bytes, Size bytes; ID is its file ID.
	File io.ReaderAt
	Size int64
	ID   [wire.IDLen]byte
	// Index is the base's (see NewIndex).
	Index *Index
}

// Make writes the cache file of t into dir, as deltas from base or, when
// base is nil, compressed alone, and returns its path. It writes a
// temporary file and renames it into place, so that a cache file is whole
// or absent. Each frame is decoded again and compared with its piece
// before it is written. Memory: the encoder (about 3 × Window), a piece, a
// dictionary and the index of frames (44 bytes per piece), whatever the
// length of the files.
func Make(ctx context.Context, dir string, t Target, base *Base) (string, error) {
	enc, err := NewEncoder(Small)
	if err != nil {
		return "", err
	}
	defer enc.Close()
	dec, err := NewDecoder()
	if err != nil {
		return "", err
	}
	defer dec.Close()
	var baseID [wire.IDLen]byte
	if base != nil {
		baseID = base.ID
	}
	final := filepath.Join(dir, CacheName(t.ID, baseID))
	f, err := os.CreateTemp(dir, ".making-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	n := t.Layout.NumPieces()
	index := make([]byte, 0, n*cacheEntryLen)
	off := int64(cacheHeaderLen) + n*cacheEntryLen
	w := bufio.NewWriterSize(io.NewOffsetWriter(f, off), 1<<20)
	piece := make([]byte, t.Layout.MaxPieceLen())
	check := make([]byte, t.Layout.MaxPieceLen())
	var dict []byte
	data := make([]byte, 0, t.Layout.MaxPieceLen())
	frame := make([]byte, 0, wire.MaxPackedHeaderLen+t.Layout.MaxPieceLen())
	for i := range n {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		po, pn := t.Layout.Piece(i)
		p := piece[:pn]
		if _, err := t.File.ReadAt(p, po); err != nil {
			return "", fmt.Errorf("reading piece %d: %w", i, err)
		}
		var dictOff int64
		dict = dict[:0]
		if base != nil {
			// Every piece gets a dictionary, where its bytes were or
			// else at its own offset: the encoder keeps its tables
			// (switching between frames with and without one makes it
			// anew).
			do, dl, _ := base.Index.Span(p, po)
			if dict == nil {
				dict = make([]byte, 0, wire.MaxDictLen)
			}
			dict, dictOff = dict[:dl], do
			if _, err := base.File.ReadAt(dict, do); err != nil {
				return "", fmt.Errorf("reading the base: %w", err)
			}
		}
		pp, err := enc.Pack(p, dict, dictOff, data[:0])
		if err != nil {
			return "", err
		}
		data = pp.Data[:0]
		var br io.ReaderAt
		var bs int64
		if base != nil {
			br, bs = base.File, base.Size
		}
		if err := dec.Unpack(pp, br, bs, check[:pn]); err != nil || string(check[:pn]) != string(p) {
			return "", fmt.Errorf("piece %d does not decode to itself (%v)", i, err)
		}
		frame = wire.AppendPacked(frame[:0], pp)
		if _, err := w.Write(frame); err != nil {
			return "", err
		}
		sum := sha256.Sum256(frame)
		index = binary.LittleEndian.AppendUint64(index, uint64(off))
		index = binary.LittleEndian.AppendUint32(index, uint32(len(frame)))
		index = append(index, sum[:]...)
		off += int64(len(frame))
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	hdr := make([]byte, 0, cacheHeaderLen)
	hdr = append(hdr, cacheMagic...)
	hdr = append(hdr, t.ID[:]...)
	hdr = append(hdr, baseID[:]...)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(t.Layout.Size))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(n))
	if _, err := f.WriteAt(append(hdr, index...), 0); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return "", err
	}
	f = nil
	return final, nil
}

// A Cache is an open cache file whose frames were checked.
type Cache struct {
	f      *os.File
	base   [wire.IDLen]byte
	frames []cacheEntry
	size   int64
}

type cacheEntry struct {
	off int64
	n   int
}

// OpenCache opens the cache file at path and checks it: it must hold the
// frames of the file t, as deltas from base (zero: compressed alone), each
// frame a valid frame of its piece that matches its hash. A file that is
// not the one expected, or is damaged, fails with an error wrapping
// ErrCache.
func OpenCache(path string, t Target, base [wire.IDLen]byte) (*Cache, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	c, err := readCache(f, t.ID, base, t.Layout)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.f = f
	return c, nil
}

// readCache reads and checks the cache file in r, streaming: it holds
// the index (12 bytes a piece) and one frame at a time.
func readCache(r io.Reader, target, base [wire.IDLen]byte, l wire.Layout) (*Cache, error) {
	fr, err := NewFrameReader(r, target, base, l)
	if err != nil {
		return nil, err
	}
	c := &Cache{base: base}
	buf := make([]byte, l.MaxPieceLen())
	for i := range l.NumPieces() {
		if _, err := fr.Next(buf); err != nil {
			return nil, err
		}
		fe := fr.entries[i]
		c.frames = append(c.frames, cacheEntry{off: fe.off, n: fe.n})
		c.size += int64(fe.n)
	}
	var one [1]byte
	if _, err := io.ReadFull(fr.br, one[:]); err != io.EOF {
		return nil, fmt.Errorf("%w: bytes after the last frame", ErrCache)
	}
	return c, nil
}

// A FrameReader reads the frames of a cache file in order, as they come
// from a stream (such as a mirror's body): it checks the header and the
// index first, then each frame against its hash and its piece's limits.
// It reads at most MaxCacheLen(l) bytes. Memory: the index (44 bytes a
// piece) and two pieces.
type FrameReader struct {
	br      *bufio.Reader
	l       wire.Layout
	base    [wire.IDLen]byte
	entries []frameEntry
	frame   []byte // the frame read
	data    []byte // the data of a frame that is not raw
	next    int64
}

type frameEntry struct {
	off int64
	n   int
	sum [sha256.Size]byte
}

// MaxCacheLen returns the most bytes a cache file of a file of layout l
// may hold: its header, its index, and each piece's frame at its longest.
func MaxCacheLen(l wire.Layout) int64 {
	n := l.NumPieces()
	return cacheHeaderLen + n*(cacheEntryLen+wire.MaxPackedHeaderLen) + l.Size
}

// NewFrameReader reads the header and index of the cache file in r, which
// must hold the frames of the file target, of layout l, as deltas from
// base (zero: compressed alone). A file that is not that one, or is
// damaged, fails with an error wrapping ErrCache.
func NewFrameReader(r io.Reader, target, base [wire.IDLen]byte, l wire.Layout) (*FrameReader, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxCacheLen(l)+1), 64<<10)
	var hdr [cacheHeaderLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrCache, err)
	}
	switch {
	case string(hdr[:8]) != cacheMagic:
		return nil, fmt.Errorf("%w: not a cache file", ErrCache)
	case [wire.IDLen]byte(hdr[8:40]) != target || [wire.IDLen]byte(hdr[40:72]) != base:
		return nil, fmt.Errorf("%w: made for other files", ErrCache)
	case int64(binary.LittleEndian.Uint64(hdr[72:])) != l.Size || int64(binary.LittleEndian.Uint32(hdr[80:])) != l.NumPieces():
		return nil, fmt.Errorf("%w: made for another layout", ErrCache)
	}
	n := l.NumPieces()
	fr := &FrameReader{br: br, l: l, base: base, entries: make([]frameEntry, 0, n)}
	off := int64(cacheHeaderLen) + n*cacheEntryLen
	var e [cacheEntryLen]byte
	for i := range n {
		if _, err := io.ReadFull(br, e[:]); err != nil {
			return nil, fmt.Errorf("%w: index: %w", ErrCache, err)
		}
		fo, fl := int64(binary.LittleEndian.Uint64(e[:])), int64(binary.LittleEndian.Uint32(e[8:]))
		_, pn := l.Piece(i)
		if fo != off || fl < 1 || fl > wire.MaxPackedHeaderLen+pn {
			return nil, fmt.Errorf("%w: frame %d at %d+%d", ErrCache, i, fo, fl)
		}
		fr.entries = append(fr.entries, frameEntry{off: fo, n: int(fl), sum: [sha256.Size]byte(e[12:])})
		off += fl
	}
	fr.frame = make([]byte, wire.MaxPackedHeaderLen+l.MaxPieceLen())
	fr.data = make([]byte, l.MaxPieceLen())
	return fr, nil
}

// Next reads the frame of the next piece and returns it, its data in buf
// (which must hold the piece) for a raw frame, else in a buffer of the
// reader's that the next call reuses. It fails with io.EOF after the last
// piece, and with an error wrapping ErrCache for a damaged frame.
func (fr *FrameReader) Next(buf []byte) (wire.PackedPiece, error) {
	i := fr.next
	if i >= int64(len(fr.entries)) {
		return wire.PackedPiece{}, io.EOF
	}
	fe := fr.entries[i]
	b := fr.frame[:fe.n]
	if _, err := io.ReadFull(fr.br, b); err != nil {
		return wire.PackedPiece{}, fmt.Errorf("%w: frame %d: %w", ErrCache, i, err)
	}
	if sha256.Sum256(b) != fe.sum {
		return wire.PackedPiece{}, fmt.Errorf("%w: frame %d does not match its hash", ErrCache, i)
	}
	p, err := fr.l.ReadPackedInto(bytes.NewReader(b), i, fr.data, buf)
	if err != nil || p.Method == wire.PackDelta && fr.base == ([wire.IDLen]byte{}) {
		return wire.PackedPiece{}, fmt.Errorf("%w: frame %d: %v", ErrCache, i, err)
	}
	if frameLen(p) != fe.n {
		return wire.PackedPiece{}, fmt.Errorf("%w: frame %d has trailing bytes", ErrCache, i)
	}
	fr.next++
	return p, nil
}

// Base returns the file ID of the base the frames are deltas from; zero
// when they are compressed alone.
func (c *Cache) Base() [wire.IDLen]byte { return c.base }

// Size returns the length of all frames.
func (c *Cache) Size() int64 { return c.size }

// Frame returns the frame of piece i, read into buf when it is large
// enough (wire.MaxPackedHeaderLen and the piece's length are).
func (c *Cache) Frame(i int64, buf []byte) ([]byte, error) {
	if i < 0 || i >= int64(len(c.frames)) {
		return nil, fmt.Errorf("no piece %d in the cache", i)
	}
	fe := c.frames[i]
	if cap(buf) < fe.n {
		buf = make([]byte, fe.n)
	}
	b := buf[:fe.n]
	if _, err := c.f.ReadAt(b, fe.off); err != nil {
		return nil, err
	}
	return b, nil
}

// Close closes the cache file.
func (c *Cache) Close() error { return c.f.Close() }

// frameLen returns the length of p's frame.
func frameLen(p wire.PackedPiece) int {
	n := 1 + len(p.Data)
	if p.Method == wire.PackDelta {
		n += 12
	}
	if p.Method != wire.PackRaw {
		n += 4
	}
	return n
}
