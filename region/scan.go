package region

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/org/rustpatcher-go/internal/exefmt"
)

// chunkSize is how much of a file a scan reads at a time. Memory use of a
// scan is this plus one region and the piece hashes (32 bytes a MiB),
// whatever the size of the file. An app scans itself as it starts, to
// check itself and to serve itself (ScanOpen: two passes through one
// buffer), and every byte those scans allocate stays in its heap; larger
// reads are no faster (BenchmarkVerifyFile30MB).
const chunkSize = 256 << 10

// Scanned is what one pass over a file tells: where its region is, what the
// region holds, where its content ends, and the digests of the content.
type Scanned struct {
	// Offset is the region's position in the file.
	Offset int64
	// Region is the raw region as found in the file.
	Region [Size]byte
	// FileSize is the length of the file.
	FileSize int64
	// ContentEnd is where the content ends: the file's length, or where
	// its OS code signature starts (see docs/FORMAT.md). For a signed
	// region it is the signed content length.
	ContentEnd int64
	// V0Hash and V0Size are the V0 digest of the content: the first 32
	// bytes of SHA-512 over it with the region cut out, and that length.
	// They are zero when the scan did not compute them.
	V0Hash [HashLen]byte
	V0Size uint64
	// Root and Leaves are the V1 digest of the content: the hashes of its
	// pieces and their root. They are zero when the scan did not compute
	// them.
	Root   [HashLen]byte
	Leaves [][sha256.Size]byte
	// FileID names exactly these bytes of the file, code signature and
	// the header fields it rewrites included (see docs/FORMAT.md).
	FileID [sha256.Size]byte
	// Found reports, for each text a scan was asked to look for (see
	// SignOptions.Find), whether the file holds it.
	Found []bool

	layout exefmt.Layout
	v0, v1 bool // which digests were computed
}

// Info decodes the region that was found.
func (s *Scanned) Info() (Info, error) { return Parse(s.Region[:]) }

// Layout returns the executable layout the scan found in the file's
// headers: its format and what its OS code signature owns.
func (s *Scanned) Layout() exefmt.Layout { return s.layout }

// Scan reads r to its end once, or until ctx is done, locates exactly one
// well-formed region of either format (marker, the fields, end marker) and
// computes both formats' digests of the content. The markers may occur
// elsewhere in the file (an embedded binary, data): only a whole region
// counts. Scan fails with ErrNoRegion or ErrMultipleRegions when there is
// not exactly one. The content ends where the region found says it does
// (for an unsigned region, at the end of the file). Memory use does not
// depend on the length of r.
func Scan(ctx context.Context, r io.Reader) (*Scanned, error) {
	return ScanAs(ctx, r, 0)
}

// ScanAs is Scan computing only the digest of format f (V0 or V1), for a
// reader of a file whose format is known, such as a download of a release
// whose region was offered: half the work of Scan. A zero f computes both.
// Scanned.Verify then fails for a region of the other format.
func ScanAs(ctx context.Context, r io.Reader, f Format) (*Scanned, error) {
	opt := scanOptions{v0: f != V1, v1: f != V0, size: -1}
	return scan(ctx, r, opt, make([]byte, chunkSize+Size))
}

// ScanLayout is Scan without the digests: it locates the region, reads the
// executable layout and computes the content end and the file ID, at the
// speed of reading. It is for a stream whose content was checked piece by
// piece against a signed root as it arrived (see PieceChecker):
// Scanned.MatchesLayout checks the rest.
func ScanLayout(ctx context.Context, r io.Reader) (*Scanned, error) {
	return scan(ctx, r, scanOptions{size: -1}, make([]byte, chunkSize+Size))
}

// scanOptions say what a scan computes.
type scanOptions struct {
	v0, v1 bool     // the digests to compute
	size   int64    // the file's length if known, else -1
	sign   bool     // take the content end from the headers, not the region
	locate bool     // stop at the first whole region: only Offset, Region, FileSize (as given) and the layout
	find   []string // texts to look for (Scanned.Found)
}

// scanner is the state of one scan.
type scanner struct {
	opt       scanOptions
	res       Scanned
	found     int
	strays    int
	end       int64 // content end, -1 until known
	v0        hash.Hash
	v0n       uint64
	v1        *pieceWriter
	id        hash.Hash // FileID: mutable field bytes, then the tail
	mutable   []byte
	tailBytes int64
	finder    *finder
}

// A dataSeeker is a file that tells where its data is, past the holes of a
// sparse file, which hold only zeros. A region never overlaps a hole,
// since every byte of its markers is non-zero and a hole is longer than a
// region, so a scan that only locates the region (scanOptions.locate)
// skips the holes.
type dataSeeker interface {
	// nextData returns the offset of the first byte at or after off that
	// is not in a hole, or the file's length if none is, and leaves the
	// file's position there.
	nextData(off int64) (int64, error)
}

func scan(ctx context.Context, r io.Reader, opt scanOptions, buf []byte) (*Scanned, error) {
	s := &scanner{opt: opt, end: -1, id: sha256.New()}
	if opt.v0 {
		s.v0 = sha512.New()
	}
	if opt.v1 {
		s.v1 = &pieceWriter{h: sha256.New()}
	}
	if len(opt.find) > 0 {
		s.finder = newFinder(opt.find)
	}
	m0 := markerV0()
	m1, m1end := markersV1()
	skip, _ := r.(dataSeeker)
	if !opt.locate {
		skip = nil
	}
	var (
		off    int64 // file offset of buf[0]
		n      int   // valid bytes in buf
		done   int   // buf[:done] is handled
		from   int   // search for markers from here
		eof    bool
		header = true
	)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for !eof && n < len(buf) {
			k, err := r.Read(buf[n:])
			if s.finder != nil {
				s.finder.Write(buf[n : n+k])
			}
			n += k
			if errors.Is(err, io.EOF) {
				eof = true
			} else if err != nil {
				return nil, err
			}
		}
		if header {
			header = false
			if err := s.readHeader(buf[:min(n, exefmt.MaxHeader)], eof, int64(n)); err != nil {
				return nil, err
			}
		}
		for {
			j, v1 := nextMarker(buf[from:n], m0[:], m1[:])
			if j < 0 {
				keep := 0
				if !eof {
					keep = min(MarkerLen-1, n-done)
				}
				s.emit(off+int64(done), buf[done:n-keep])
				done = n - keep
				break
			}
			j += from
			if j+Size > n {
				if eof {
					s.strays++
					from = j + 1
					continue
				}
				s.emit(off+int64(done), buf[done:j])
				done = j
				break
			}
			if (!v1 && !bytes.Equal(buf[j+endOff:j+Size], m0[:])) || (v1 && !bytes.Equal(buf[j+v1EndOff:j+Size], m1end[:])) {
				s.strays++
				from = j + 1
				continue
			}
			s.found++
			if s.found > 1 {
				return nil, fmt.Errorf("%w: at offsets %d and %d", ErrMultipleRegions, s.res.Offset, off+int64(j))
			}
			s.emit(off+int64(done), buf[done:j])
			s.region(off+int64(j), buf[j:j+Size])
			if s.opt.locate {
				s.res.FileSize = s.opt.size
				return &s.res, nil
			}
			done = j + Size
			from = done
		}
		if eof {
			break
		}
		copy(buf, buf[done:n])
		off += int64(done)
		n -= done
		done, from = 0, 0
		if skip != nil {
			at := off + int64(n) // the next byte to read
			next, err := skip.nextData(at)
			switch {
			case err != nil:
				skip = nil // the file system does not say: read on
			case next > at:
				// The bytes kept for a marker across the chunk's end
				// cannot complete one in a hole: drop them with it.
				off, n = next, 0
			}
		}
	}
	return s.finish(off + int64(n))
}

// nextMarker returns the position of the first V0 or V1 start marker in b,
// and whether it is a V1 one, or -1.
func nextMarker(b, m0, m1 []byte) (int, bool) {
	i0, i1 := bytes.Index(b, m0), bytes.Index(b, m1)
	switch {
	case i0 < 0:
		return i1, i1 >= 0
	case i1 < 0 || i0 < i1:
		return i0, false
	}
	return i1, true
}

// readHeader parses the executable's layout from its first bytes; when
// signing, it also fixes where the content ends.
func (s *scanner) readHeader(h []byte, eof bool, n int64) error {
	size := s.opt.size
	if size < 0 {
		size = 1<<62 - 1 // unknown: not checked here
		if eof {
			size = n
		}
	}
	l, err := exefmt.Parse(h, size)
	if err != nil {
		return err
	}
	s.res.layout = l
	if s.opt.sign {
		if s.opt.size < 0 {
			return errors.New("signing needs the file's size")
		}
		s.end = s.opt.size
		if l.HasSignature() && (l.Kind == exefmt.MachO || l.Signature.End() == s.opt.size) {
			s.end = l.Signature.Off
		}
	}
	return nil
}

// emit handles file bytes b at offset off that are not part of the region.
func (s *scanner) emit(off int64, b []byte) {
	if len(b) == 0 {
		return
	}
	content := b
	if s.end >= 0 {
		content = b[:max(0, min(int64(len(b)), s.end-off))]
	}
	if len(content) > 0 {
		for _, m := range s.res.layout.Mutable {
			if lo, hi := max(m.Off, off), min(m.End(), off+int64(len(content))); lo < hi {
				s.mutable = append(s.mutable, content[lo-off:hi-off]...)
			}
		}
		if s.v0 != nil {
			s.v0n += uint64(canonical(s.v0, off, content, s.res.layout.Mutable, -Size, V0))
		}
		if s.v1 != nil {
			canonical(s.v1, off, content, s.res.layout.Mutable, -Size, V1)
		}
	}
	if tail := b[len(content):]; len(tail) > 0 {
		s.id.Write(tail) // after the mutable bytes: see finish
		s.tailBytes += int64(len(tail))
	}
}

// region handles the region found at off.
func (s *scanner) region(off int64, reg []byte) {
	s.res.Offset = off
	copy(s.res.Region[:], reg)
	if s.v1 != nil {
		s.v1.Write(zeros[:])
	}
	if !s.opt.sign {
		if in, err := Parse(reg); err == nil && in.Signed() && in.ContentLen() >= off+Size {
			s.end = in.ContentLen()
		}
	}
}

// finish checks that exactly one region was found and completes the
// digests; total is the length of the file.
func (s *scanner) finish(total int64) (*Scanned, error) {
	if s.found == 0 {
		if s.strays > 0 {
			return nil, fmt.Errorf("%w: a bounds marker occurs %d time(s) but never as a whole %d-byte region (truncated or damaged)", ErrNoRegion, s.strays, Size)
		}
		return nil, ErrNoRegion
	}
	res := &s.res
	res.FileSize = total
	res.ContentEnd = s.end
	if s.end < 0 || s.end > total {
		// An unsigned region, or a file shorter than its signed
		// content: all of it is content.
		res.ContentEnd = total
	}
	if s.v0 != nil {
		var sum [sha512.Size]byte
		s.v0.Sum(sum[:0])
		copy(res.V0Hash[:], sum[:HashLen])
		res.V0Size = s.v0n
		res.v0 = true
	}
	if s.v1 != nil {
		res.Leaves = s.v1.finish()
		res.Root = Root(s.v1.n, res.Leaves)
		res.v1 = true
	}
	// FileID = SHA-256(domain || region || offset || content end ||
	// mutable bytes || tail). The tail is streamed into s.id first, so
	// its hash is folded in last.
	tail := s.id.Sum(nil)
	id := sha256.New()
	id.Write([]byte(fileIDDomain))
	id.Write(res.Region[:])
	id.Write(binary.LittleEndian.AppendUint64(nil, uint64(res.Offset)))
	id.Write(binary.LittleEndian.AppendUint64(nil, uint64(res.ContentEnd)))
	id.Write(s.mutable)
	id.Write(binary.LittleEndian.AppendUint64(nil, uint64(s.tailBytes)))
	id.Write(tail)
	id.Sum(res.FileID[:0])
	if s.finder != nil {
		res.Found = s.finder.found
	}
	return res, nil
}

// fileIDDomain separates file IDs from any other SHA-256 in the format.
const fileIDDomain = "rustpatcher-go file\x00"

// pieceWriter hashes what is written to it in pieces of PieceSize bytes.
type pieceWriter struct {
	h      hash.Hash
	filled int64 // bytes in the current piece
	n      int64 // bytes in all
	leaves [][sha256.Size]byte
}

func (p *pieceWriter) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		k := min(int64(len(b)), PieceSize-p.filled)
		p.h.Write(b[:k])
		p.filled += k
		p.n += k
		b = b[k:]
		if p.filled == PieceSize {
			p.cut()
		}
	}
	return total, nil
}

func (p *pieceWriter) cut() {
	var leaf [sha256.Size]byte
	p.h.Sum(leaf[:0])
	p.leaves = append(p.leaves, leaf)
	p.h.Reset()
	p.filled = 0
}

func (p *pieceWriter) finish() [][sha256.Size]byte {
	if p.filled > 0 {
		p.cut()
	}
	return p.leaves
}

// These make pieceWriter a hash.Hash for canonical; only Write is used.
func (p *pieceWriter) Sum(b []byte) []byte { return b }
func (p *pieceWriter) Reset()              {}
func (p *pieceWriter) Size() int           { return 0 }
func (p *pieceWriter) BlockSize() int      { return 1 }

// finder looks for texts in everything written to it, including texts that
// span two writes. Memory use is bounded by the longest text.
type finder struct {
	texts [][]byte
	found []bool
	left  int    // texts not found yet
	tail  []byte // the last longest-1 bytes written
	join  []byte // scratch: tail followed by the start of a write
	long  int    // length of the longest text
}

func newFinder(texts []string) *finder {
	f := &finder{found: make([]bool, len(texts)), left: len(texts)}
	for _, t := range texts {
		f.texts = append(f.texts, []byte(t))
		f.long = max(f.long, len(t))
	}
	return f
}

func (f *finder) Write(p []byte) (int, error) {
	if f.left == 0 || f.long == 0 {
		return len(p), nil
	}
	// Texts that start in the tail and end in p.
	f.join = append(append(f.join[:0], f.tail...), p[:min(len(p), f.long-1)]...)
	f.look(f.join)
	f.look(p)
	if keep := f.long - 1; len(p) >= keep {
		f.tail = append(f.tail[:0], p[len(p)-keep:]...)
	} else {
		f.tail = append(f.tail, p...)
		f.tail = f.tail[max(0, len(f.tail)-keep):]
	}
	return len(p), nil
}

func (f *finder) look(b []byte) {
	for i, t := range f.texts {
		if !f.found[i] && len(t) > 0 && bytes.Contains(b, t) {
			f.found[i] = true
			f.left--
		}
	}
}
