package exefmt

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
)

// Code signature blobs (Apple's cs_blobs.h); all their fields are big-endian.
const (
	csMagicEmbeddedSignature = 0xfade0cc0
	csMagicCodeDirectory     = 0xfade0c02
	csMagicBlobWrapper       = 0xfade0b01
	csSlotSignature          = 0x10000
	csFlagAdhoc              = 0x2
	csHashSHA1               = 1
	csHashSHA256             = 2
	csHashSHA256Truncated    = 3
	csHashSHA384             = 4
	maxBlobs                 = 64
)

// A ReadWriterAt is a file that can be read and written at offsets.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// A codeDirectory is the part of a CodeDirectory blob that locates its
// page hashes.
type codeDirectory struct {
	off       int64 // of the blob in the file
	flags     uint32
	hashOff   int64 // of code slot 0 in the file
	nSlots    int64
	codeLimit int64
	hashSize  int
	hashType  uint8
	pageShift uint8
}

// codeDirectories reads the CodeDirectory blobs of the Mach-O code
// signature at l.Signature, and reports whether a CMS signature (by a
// certificate, as codesign --sign makes) is present.
func codeDirectories(r io.ReaderAt, l Layout) (cds []codeDirectory, cms bool, err error) {
	if l.Kind != MachO || !l.HasSignature() {
		return nil, false, nil
	}
	sig := l.Signature
	var hdr [12]byte
	if _, err := r.ReadAt(hdr[:], sig.Off); err != nil {
		return nil, false, fmt.Errorf("reading the code signature: %w", err)
	}
	be := binary.BigEndian
	if be.Uint32(hdr[:]) != csMagicEmbeddedSignature {
		return nil, false, fmt.Errorf("%w: code signature magic %#x", ErrMalformed, be.Uint32(hdr[:]))
	}
	count := be.Uint32(hdr[8:])
	if count > maxBlobs || 12+8*int64(count) > sig.Len {
		return nil, false, fmt.Errorf("%w: code signature holds %d blobs", ErrMalformed, count)
	}
	index := make([]byte, 8*count)
	if _, err := r.ReadAt(index, sig.Off+12); err != nil {
		return nil, false, fmt.Errorf("reading the code signature: %w", err)
	}
	for i := range int(count) {
		typ, off := be.Uint32(index[8*i:]), int64(be.Uint32(index[8*i+4:]))
		if off+8 > sig.Len {
			return nil, false, fmt.Errorf("%w: code signature blob %d at %d, past its end", ErrMalformed, i, off)
		}
		var b [44]byte
		n, err := r.ReadAt(b[:min(int64(len(b)), sig.Len-off)], sig.Off+off)
		if err != nil && n < 8 {
			return nil, false, fmt.Errorf("reading code signature blob %d: %w", i, err)
		}
		magic, length := be.Uint32(b[:]), int64(be.Uint32(b[4:]))
		if length < 8 || off+length > sig.Len {
			return nil, false, fmt.Errorf("%w: code signature blob %d is %d bytes", ErrMalformed, i, length)
		}
		if typ == csSlotSignature && magic == csMagicBlobWrapper && length > 8 {
			cms = true
		}
		if magic != csMagicCodeDirectory {
			continue
		}
		if n < 44 || length < 44 {
			return nil, false, fmt.Errorf("%w: CodeDirectory %d is %d bytes", ErrMalformed, i, length)
		}
		cd := codeDirectory{
			off:       sig.Off + off,
			flags:     be.Uint32(b[12:]),
			hashOff:   sig.Off + off + int64(be.Uint32(b[16:])),
			nSlots:    int64(be.Uint32(b[28:])),
			codeLimit: int64(be.Uint32(b[32:])),
			hashSize:  int(b[36]),
			hashType:  b[37],
			pageShift: b[39],
		}
		if cd.pageShift < 9 || cd.pageShift > 24 {
			return nil, false, fmt.Errorf("%w: CodeDirectory page size 2^%d", ErrMalformed, cd.pageShift)
		}
		if cd.hashOff < cd.off || cd.hashOff+cd.nSlots*int64(cd.hashSize) > cd.off+length {
			return nil, false, fmt.Errorf("%w: CodeDirectory hash slots outside the blob", ErrMalformed)
		}
		if pages := (cd.codeLimit + 1<<cd.pageShift - 1) >> cd.pageShift; pages != cd.nSlots || cd.codeLimit > l.Signature.Off {
			return nil, false, fmt.Errorf("%w: CodeDirectory covers %d bytes in %d slots", ErrMalformed, cd.codeLimit, cd.nSlots)
		}
		if _, err := cd.newHash(); err != nil {
			return nil, false, err
		}
		cds = append(cds, cd)
	}
	return cds, cms, nil
}

func (cd codeDirectory) newHash() (hash.Hash, error) {
	var h hash.Hash
	switch cd.hashType {
	case csHashSHA1:
		h = sha1.New()
	case csHashSHA256, csHashSHA256Truncated:
		h = sha256.New()
	case csHashSHA384:
		h = sha512.New384()
	default:
		return nil, fmt.Errorf("%w: CodeDirectory hash type %d", ErrMalformed, cd.hashType)
	}
	if cd.hashSize > h.Size() || cd.hashSize == 0 {
		return nil, fmt.Errorf("%w: CodeDirectory hash size %d for hash type %d", ErrMalformed, cd.hashSize, cd.hashType)
	}
	return h, nil
}

// pageHash returns the hash of code page p as cd records it.
func (cd codeDirectory) pageHash(r io.ReaderAt, p int64, buf []byte) ([]byte, error) {
	h, err := cd.newHash()
	if err != nil {
		return nil, err
	}
	start := p << cd.pageShift
	n := min(int64(1)<<cd.pageShift, cd.codeLimit-start)
	if _, err := r.ReadAt(buf[:n], start); err != nil {
		return nil, fmt.Errorf("reading code page %d: %w", p, err)
	}
	h.Write(buf[:n])
	return h.Sum(nil)[:cd.hashSize], nil
}

// RepairCodeSignature brings the page hashes of the Mach-O code signature
// of f (whose layout is l) up to date for the pages that overlap changed,
// after those bytes were rewritten, and reports whether the signature is
// ad hoc. An ad hoc signature, which Go's linker gives every darwin/arm64
// binary, is then valid again. A signature by a certificate (Developer ID)
// has a CMS blob over its CodeDirectory that only codesign can make again:
// its page hashes are updated too, but the binary must be signed again with
// codesign. A file without a code signature is left alone.
func RepairCodeSignature(f ReadWriterAt, l Layout, changed Range) (adhoc bool, err error) {
	cds, cms, err := codeDirectories(f, l)
	if err != nil || len(cds) == 0 {
		return err == nil && !cms, err
	}
	adhoc = !cms
	for _, cd := range cds {
		if cd.flags&csFlagAdhoc == 0 {
			adhoc = false
		}
		buf := make([]byte, 1<<cd.pageShift)
		first, last := changed.Off>>cd.pageShift, (changed.End()-1)>>cd.pageShift
		for p := first; p <= last && p < cd.nSlots; p++ {
			sum, err := cd.pageHash(f, p, buf)
			if err != nil {
				return false, err
			}
			if _, err := f.WriteAt(sum, cd.hashOff+p*int64(cd.hashSize)); err != nil {
				return false, fmt.Errorf("writing the hash of code page %d: %w", p, err)
			}
		}
	}
	return adhoc, nil
}

// CheckPageHashes counts the code pages of a Mach-O code signature whose
// recorded hash matches the file, over every CodeDirectory.
func CheckPageHashes(r io.ReaderAt, l Layout) (good, total int, err error) {
	cds, _, err := codeDirectories(r, l)
	if err != nil {
		return 0, 0, err
	}
	for _, cd := range cds {
		buf := make([]byte, 1<<cd.pageShift)
		want := make([]byte, cd.hashSize)
		for p := range cd.nSlots {
			sum, err := cd.pageHash(r, p, buf)
			if err != nil {
				return good, total, err
			}
			if _, err := r.ReadAt(want, cd.hashOff+p*int64(cd.hashSize)); err != nil {
				return good, total, err
			}
			total++
			if string(sum) == string(want) {
				good++
			}
		}
	}
	return good, total, nil
}

// Adhoc reports whether the Mach-O code signature of r (whose layout is l)
// is ad hoc, as Go's linker makes it, rather than made with a certificate.
func Adhoc(r io.ReaderAt, l Layout) (bool, error) {
	cds, cms, err := codeDirectories(r, l)
	if err != nil {
		return false, err
	}
	if cms {
		return false, nil
	}
	for _, cd := range cds {
		if cd.flags&csFlagAdhoc == 0 {
			return false, nil
		}
	}
	return true, nil
}
