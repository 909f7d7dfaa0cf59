package region

import (
	"errors"
	"os"
	"syscall"
)

// seekData is Linux's SEEK_DATA whence.
const seekData = 3

// holes returns f as a dataSeeker: Linux tells where a sparse file's data
// is.
func holes(f *os.File) dataSeeker { return fileHoles{f} }

type fileHoles struct{ f *os.File }

func (h fileHoles) nextData(off int64) (int64, error) {
	next, err := h.f.Seek(off, seekData)
	if errors.Is(err, syscall.ENXIO) { // only a hole is left
		return h.f.Seek(0, 2)
	}
	return next, err
}
