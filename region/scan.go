package region

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
)

// chunkSize is how much of a file Scan reads at a time. Memory use of a scan
// is this plus one region, whatever the size of the file.
const chunkSize = 1 << 20

// Scanned is what one pass over a file tells: where its region is, what the
// region holds, and the hash and size of the file with the region cut out.
type Scanned struct {
	// Offset is the region's position in the file.
	Offset int64
	// Region is the raw region as found in the file.
	Region [Size]byte
	// Hash is the first 32 bytes of SHA-512 over the file without the region.
	Hash [HashLen]byte
	// Size is the length of the file without the region.
	Size uint64
	// Found reports, for each text a scan was asked to look for (see
	// SignOptions.Find), whether the file holds it.
	Found []bool
}

// Info decodes the region that was found.
func (s *Scanned) Info() (Info, error) { return Parse(s.Region[:]) }

// Scan reads r to its end once, or until ctx is done, locates exactly one
// well-formed region
// (marker, 120 bytes, marker) and hashes everything else. The marker may occur
// elsewhere in the file (this package's own constant, an embedded binary):
// only a marker followed 148 bytes later by another marker counts. Scan fails
// with ErrNoRegion or ErrMultipleRegions when there is not exactly one.
// Memory use does not depend on the length of r.
func Scan(ctx context.Context, r io.Reader) (*Scanned, error) {
	return scan(ctx, r, make([]byte, chunkSize+Size))
}

// scanFind is Scan that also looks for each of texts in the same pass and
// reports in Scanned.Found which ones the file holds.
func scanFind(ctx context.Context, r io.Reader, texts []string) (*Scanned, error) {
	if len(texts) == 0 {
		return Scan(ctx, r)
	}
	f := newFinder(texts)
	s, err := Scan(ctx, io.TeeReader(r, f))
	if err != nil {
		return nil, err
	}
	s.Found = f.found
	return s, nil
}

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

func scan(ctx context.Context, r io.Reader, buf []byte) (*Scanned, error) {
	var (
		res     Scanned
		found   = 0
		strays  = 0 // markers not part of a well-formed region
		h       = sha512.New()
		off     int64 // file offset of buf[0]
		n       int   // valid bytes in buf
		done    int   // buf[:done] is hashed or skipped
		from    int   // search for markers from here
		eof     bool
		hashed  uint64
		m       = marker()
		markerB = m[:]
	)
	hashUpTo := func(b []byte) {
		h.Write(b)
		hashed += uint64(len(b))
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for !eof && n < len(buf) {
			m, err := r.Read(buf[n:])
			n += m
			if errors.Is(err, io.EOF) {
				eof = true
			} else if err != nil {
				return nil, err
			}
		}
		for {
			j := bytes.Index(buf[from:n], markerB)
			if j < 0 {
				keep := 0
				if !eof {
					keep = min(MarkerLen-1, n-done)
				}
				hashUpTo(buf[done : n-keep])
				done = n - keep
				break
			}
			j += from
			if j+Size > n {
				if eof {
					strays++
					from = j + 1
					continue
				}
				hashUpTo(buf[done:j])
				done = j
				break
			}
			if !bytes.Equal(buf[j+endOff:j+Size], markerB) {
				strays++
				from = j + 1
				continue
			}
			found++
			if found > 1 {
				return nil, fmt.Errorf("%w: at offsets %d and %d", ErrMultipleRegions, res.Offset, off+int64(j))
			}
			res.Offset = off + int64(j)
			copy(res.Region[:], buf[j:j+Size])
			hashUpTo(buf[done:j])
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
	}
	if found == 0 {
		if strays > 0 {
			return nil, fmt.Errorf("%w: the marker occurs %d time(s) but never as a whole %d-byte region (truncated or damaged)", ErrNoRegion, strays, Size)
		}
		return nil, ErrNoRegion
	}
	var sum [sha512.Size]byte
	h.Sum(sum[:0])
	copy(res.Hash[:], sum[:HashLen])
	res.Size = hashed
	return &res, nil
}
