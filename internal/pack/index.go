package pack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"sort"

	"github.com/org/rustpatcher-go/internal/wire"
)

// Limits of an Index.
const (
	// maxAnchors bounds the anchors an Index keeps (16 bytes each: 32
	// MiB), whatever the length of the file.
	maxAnchors = 2 << 20
	// anchorsPerFile is the number of anchors an Index aims at: one every
	// 256 bytes for a file of up to 256 MiB, sparser beyond.
	anchorsPerFile = 1 << 20
	// minSpacing is the least mean distance between anchors.
	minSpacing = 256
)

// gear is the table of the rolling hash: 256 fixed pseudo-random words.
var gear = func() (g [256]uint64) {
	x := uint64(0x9e3779b97f4a7c15)
	for i := range g {
		// splitmix64
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		g[i] = z ^ z>>31
	}
	return g
}()

// anchor is a position of a file whose last 64 bytes hash to h with its
// top bits zero (content-defined: the same bytes anchor in both files).
type anchor struct {
	h   uint64
	pos int64
}

// An Index finds where the bytes of a piece of a new file were in an
// older file, the base: it holds the anchors of the base, positions chosen
// by their content, so that a piece's anchors vote for how far its bytes
// moved. It holds at most maxAnchors anchors of 16 bytes.
type Index struct {
	shift   uint // an anchor's hash has its top 64-shift bits zero
	size    int64
	anchors []anchor // sorted by h
}

// NewIndex reads the base, size bytes, from r once and returns its index.
func NewIndex(ctx context.Context, r io.Reader, size int64) (*Index, error) {
	spacing := max(int64(minSpacing), size/anchorsPerFile)
	x := &Index{shift: uint(64 - bits.Len64(uint64(spacing)-1)), size: size}
	br := bufio.NewReaderSize(r, 1<<20)
	var h uint64
	var pos int64
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k, err := io.ReadFull(br, buf)
		for i, c := range buf[:k] {
			h = h<<1 + gear[c]
			if h>>x.shift == 0 && len(x.anchors) < maxAnchors {
				x.anchors = append(x.anchors, anchor{h: h, pos: pos + int64(i) + 1})
			}
		}
		pos += int64(k)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if pos != size {
		return nil, fmt.Errorf("the base has %d bytes, not %d", pos, size)
	}
	// sort.Slice, not slices.SortFunc: a generic sort of a struct
	// links its own copy of the sort (docs/BENCHMARKS.md, Cost of embedding).
	sort.Slice(x.anchors, func(i, j int) bool { return x.anchors[i].h < x.anchors[j].h })
	return x, nil
}

// maxVotes bounds the positions of the base one anchor of a piece votes
// for (the same 64 bytes may be in many places).
const maxVotes = 4

// Span returns the span of the base to take as the dictionary of the
// piece at offset off of the new file: wire.MaxDictLen bytes (or the whole
// base, when shorter) centred where most of the piece's anchors say its
// bytes were. When no anchor of the piece is in the base, ok is false and
// the span is centred on the piece's own offset.
func (x *Index) Span(piece []byte, off int64) (dictOff int64, dictLen int, ok bool) {
	var moves []int64 // base position - new position, per vote
	var h uint64
	for i, c := range piece {
		h = h<<1 + gear[c]
		if i < 63 || h>>x.shift != 0 {
			continue
		}
		k, found := slices.BinarySearchFunc(x.anchors, h, func(a anchor, h uint64) int {
			switch {
			case a.h < h:
				return -1
			case a.h > h:
				return 1
			}
			return 0
		})
		for j := k; found && j < len(x.anchors) && j < k+maxVotes && x.anchors[j].h == h; j++ {
			moves = append(moves, x.anchors[j].pos-(off+int64(i)+1))
		}
	}
	dictLen = int(min(int64(wire.MaxDictLen), x.size))
	if len(moves) == 0 {
		return x.around(off+int64(len(piece))/2, dictLen), dictLen, false
	}
	slices.Sort(moves)
	best, bestN := moves[0], 0
	for i := 0; i < len(moves); {
		j := i
		for j < len(moves) && moves[j] == moves[i] {
			j++
		}
		if j-i > bestN {
			best, bestN = moves[i], j-i
		}
		i = j
	}
	return x.around(off+int64(len(piece))/2+best, dictLen), dictLen, true
}

// around returns the start of the span of n bytes of the base centred on
// center, moved to lie within the base.
func (x *Index) around(center int64, n int) int64 {
	return min(max(center-int64(n)/2, 0), x.size-int64(n))
}
