package wire

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/org/rustpatcher-go/region"
)

// An Offer is what an info answer says: the newest release a peer serves
// for a target, as one exact file.
type Offer struct {
	// Region is the release's signed region as sent, and Info its
	// decoding (the signature is not checked by the decoder).
	Region [region.Size]byte
	Info   region.Info
	// Layout gives the file's length and its pieces.
	Layout Layout
	// FileID names the file's exact bytes (see region.Scanned.FileID).
	FileID [IDLen]byte
	// Ext is what the peer said after the answer; zero for a peer of an
	// older release, which says nothing more.
	Ext InfoExt
}

// Limits of the info extension.
const (
	// MaxDeltaBases is the most delta bases an info answer names.
	MaxDeltaBases = 16
	// MaxInfoExtLen is the longest info extension: tag, flags, count and
	// the bases.
	MaxInfoExtLen = 3 + MaxDeltaBases*IDLen
)

// infoExtTag opens the info extension.
const infoExtTag = 'P'

// Flags of the info extension.
const extPacked = 1 << 0

// InfoExt is what a node of this release appends to an info answer, which
// older nodes read no further than InfoAnswerLen (see docs/PROTOCOL.md):
//
//	'P' | flags (1; bit 0: packed) | n (1, at most MaxDeltaBases) | n file IDs (32 each)
type InfoExt struct {
	// Packed reports that the peer answers KindPacked requests with
	// compressed pieces.
	Packed bool
	// Bases are the files the peer holds deltas from to the file offered,
	// by file ID: a node that holds one of them asks for the pieces as
	// deltas from it.
	Bases [][IDLen]byte
}

// HasBase reports whether the peer holds a delta from the file id.
func (e InfoExt) HasBase(id [IDLen]byte) bool {
	for _, b := range e.Bases {
		if b == id {
			return true
		}
	}
	return false
}

// WriteInfo writes an info answer of an older release: status OK (1) |
// region (176) | file length (u64 LE) | file ID (32), and no extension.
func WriteInfo(w io.Writer, reg [region.Size]byte, size int64, id [IDLen]byte) error {
	_, err := w.Write(appendInfo(nil, reg, size, id))
	return err
}

// WriteInfoExt writes an info answer followed by the extension ext, with
// at most MaxDeltaBases bases, in one write.
func WriteInfoExt(w io.Writer, reg [region.Size]byte, size int64, id [IDLen]byte, ext InfoExt) error {
	bases := ext.Bases[:min(len(ext.Bases), MaxDeltaBases)]
	b := make([]byte, 0, InfoAnswerLen+3+len(bases)*IDLen)
	b = appendInfo(b, reg, size, id)
	var flags byte
	if ext.Packed {
		flags |= extPacked
	}
	b = append(b, infoExtTag, flags, byte(len(bases)))
	for _, base := range bases {
		b = append(b, base[:]...)
	}
	_, err := w.Write(b)
	return err
}

func appendInfo(b []byte, reg [region.Size]byte, size int64, id [IDLen]byte) []byte {
	b = append(b, byte(StatusOK))
	b = append(b, reg[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(size))
	return append(b, id[:]...)
}

// readInfoExt reads the extension that may follow an info answer. A peer
// that sends no byte more (it closes its side, or the stream fails) is of
// an older release: no extension and no error. A peer that starts one must
// send it whole and well formed. It reads at most MaxInfoExtLen bytes.
func readInfoExt(r io.Reader) (InfoExt, error) {
	var h [3]byte
	if k, _ := io.ReadFull(r, h[:1]); k == 0 {
		return InfoExt{}, nil
	}
	if h[0] != infoExtTag {
		return InfoExt{}, fmt.Errorf("%w: info extension tag %#x", ErrMalformed, h[0])
	}
	if err := readFull(r, h[1:], "info extension"); err != nil {
		return InfoExt{}, err
	}
	n := int(h[2])
	if n > MaxDeltaBases {
		return InfoExt{}, fmt.Errorf("%w: %d delta bases, at most %d", ErrMalformed, n, MaxDeltaBases)
	}
	ext := InfoExt{Packed: h[1]&extPacked != 0}
	for range n {
		var id [IDLen]byte
		if err := readFull(r, id[:], "delta base"); err != nil {
			return InfoExt{}, err
		}
		ext.Bases = append(ext.Bases, id)
	}
	return ext, nil
}

// ReadInfo reads an info answer and the extension that may follow it (see
// InfoExt). It checks the region's format and that the file length fits
// the signed content (see NewLayout); it does not check the signature. It
// reads at most InfoAnswerLen+MaxInfoExtLen bytes (MaxErrorLen for an
// error).
func ReadInfo(r io.Reader) (Offer, error) {
	var o Offer
	if err := readStatus(r); err != nil {
		return o, err
	}
	var b [InfoAnswerLen - 1]byte
	if err := readFull(r, b[:], "info answer"); err != nil {
		return o, err
	}
	copy(o.Region[:], b[:region.Size])
	in, err := region.Parse(o.Region[:])
	if err != nil {
		return o, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !in.Signed() {
		return o, fmt.Errorf("%w: an unsigned region", ErrMalformed)
	}
	o.Info = in
	size := binary.LittleEndian.Uint64(b[region.Size:])
	if size > MaxContentLen+uint64(region.MaxTail(MaxContentLen)) {
		return o, fmt.Errorf("%w: file length %d", ErrMalformed, size)
	}
	if o.Layout, err = NewLayout(in.ContentLen(), int64(size)); err != nil {
		return o, err
	}
	copy(o.FileID[:], b[region.Size+8:])
	if o.Ext, err = readInfoExt(r); err != nil {
		return o, err
	}
	return o, nil
}
