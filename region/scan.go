package region

import (
	"bytes"
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
}

// Info decodes the region that was found.
func (s *Scanned) Info() (Info, error) { return Parse(s.Region[:]) }

// Scan reads r to its end once, locates exactly one well-formed region
// (marker, 120 bytes, marker) and hashes everything else. The marker may occur
// elsewhere in the file (this package's own constant, an embedded binary):
// only a marker followed 148 bytes later by another marker counts. Scan fails
// with ErrNoRegion or ErrMultipleRegions when there is not exactly one.
// Memory use does not depend on the length of r.
func Scan(r io.Reader) (*Scanned, error) {
	return scan(r, make([]byte, chunkSize+Size))
}

func scan(r io.Reader, buf []byte) (*Scanned, error) {
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
