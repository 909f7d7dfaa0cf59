// Package exefmt tells which bytes of an executable an operating system's
// code signature owns: the fields of the headers that a code signer
// rewrites, and where the signature itself lives. The signed region's
// content rules (docs/FORMAT.md, "Which bytes are content") leave exactly
// these out, so that an OS code signature made after rpsign (codesign,
// osslsigncode, signtool) keeps the release's signature valid.
//
// Parse works on the first bytes of a file only, so that a receiver can
// apply the rules to a download as it streams in. It never trusts what it
// reads: every offset is bounds-checked, and the fields it uses to locate
// others are themselves left in the content, so a changed header changes
// the signed content.
package exefmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Kind is an executable format.
type Kind uint8

// Formats Parse tells apart. Raw is anything else: every byte is content.
const (
	Raw Kind = iota
	ELF
	MachO
	PE
)

func (k Kind) String() string {
	switch k {
	case ELF:
		return "ELF"
	case MachO:
		return "Mach-O"
	case PE:
		return "PE"
	}
	return "raw"
}

// A Range is a span of a file: Len bytes from offset Off.
type Range struct {
	Off, Len int64
}

// End returns the offset just past the range.
func (r Range) End() int64 { return r.Off + r.Len }

// A Layout is what a code signature owns in one executable.
type Layout struct {
	// Kind is the executable's format.
	Kind Kind
	// Mutable lists the header fields a code signer rewrites, in file
	// order: for a Mach-O with LC_CODE_SIGNATURE, its datasize and the
	// __LINKEDIT segment's vmsize and filesize; for PE, the optional
	// header's CheckSum and the Security data-directory entry.
	Mutable []Range
	// Signature is where the code signature is: for Mach-O the blob named
	// by LC_CODE_SIGNATURE (dataoff, datasize); for PE the attribute
	// certificate table named by the Security directory (its
	// VirtualAddress is a file offset). Len is 0 when there is none.
	Signature Range
}

// HasSignature reports whether the executable carries a code signature.
func (l Layout) HasSignature() bool { return l.Signature.Len > 0 }

// MaxHeader is the most bytes from the start of a file that Parse needs.
// Headers that reach further are refused.
const MaxHeader = 64 << 10

// Errors of Parse.
var (
	// ErrUniversal means the file is a universal (fat) Mach-O binary.
	ErrUniversal = errors.New("universal (fat) Mach-O binaries are not supported: sign and ship each architecture's binary on its own (each target has its own key)")
	// ErrMalformed means the headers contradict themselves or the file.
	ErrMalformed = errors.New("malformed executable headers")
)

// Mach-O and PE constants used here.
const (
	machoMagic64     = 0xfeedfacf
	machoHeader64    = 32
	lcSegment64      = 0x19
	lcCodeSignature  = 0x1d
	fatMagic         = 0xcafebabe
	fatMagic64       = 0xcafebabf
	peSignatureOff   = 0x3c
	pe32Magic        = 0x10b
	pe32PlusMagic    = 0x20b
	peSecurityDirIdx = 4
)

// Parse reads the layout from header, the first min(file size, MaxHeader)
// bytes of an executable whose total size is size.
func Parse(header []byte, size int64) (Layout, error) {
	switch {
	case len(header) >= 4 && string(header[:4]) == "\x7fELF":
		return Layout{Kind: ELF}, nil
	case len(header) >= 8 && (binary.BigEndian.Uint32(header) == fatMagic || binary.BigEndian.Uint32(header) == fatMagic64):
		// Java class files share the magic; their next field is a
		// version, far above any count of architectures.
		if n := binary.BigEndian.Uint32(header[4:]); n > 0 && n < 64 {
			return Layout{}, ErrUniversal
		}
	case len(header) >= 4 && binary.LittleEndian.Uint32(header) == machoMagic64:
		return parseMachO(header, size)
	case len(header) >= 2 && string(header[:2]) == "MZ":
		return parsePE(header, size)
	}
	return Layout{Kind: Raw}, nil
}

func parseMachO(h []byte, size int64) (Layout, error) {
	l := Layout{Kind: MachO}
	if len(h) < machoHeader64 {
		return l, fmt.Errorf("%w: Mach-O header cut short", ErrMalformed)
	}
	le := binary.LittleEndian
	ncmds, sizeofcmds := le.Uint32(h[16:]), le.Uint32(h[20:])
	end := machoHeader64 + int64(sizeofcmds)
	if end > int64(len(h)) {
		return l, fmt.Errorf("%w: Mach-O load commands end at byte %d, past the %d header bytes read", ErrMalformed, end, len(h))
	}
	var linkedit, codesig []Range
	off := int64(machoHeader64)
	for i := uint32(0); i < ncmds; i++ {
		if off+8 > end {
			return l, fmt.Errorf("%w: Mach-O load command %d starts past sizeofcmds", ErrMalformed, i)
		}
		cmd, cmdsize := le.Uint32(h[off:]), int64(le.Uint32(h[off+4:]))
		if cmdsize < 8 || off+cmdsize > end {
			return l, fmt.Errorf("%w: Mach-O load command %d has size %d", ErrMalformed, i, cmdsize)
		}
		switch cmd {
		case lcSegment64:
			if cmdsize < 72 {
				return l, fmt.Errorf("%w: Mach-O segment command %d is %d bytes", ErrMalformed, i, cmdsize)
			}
			if name := h[off+8 : off+24]; string(trimNUL(name)) == "__LINKEDIT" {
				linkedit = append(linkedit, Range{off + 32, 8}, Range{off + 48, 8}) // vmsize, filesize
			}
		case lcCodeSignature:
			if cmdsize < 16 {
				return l, fmt.Errorf("%w: LC_CODE_SIGNATURE is %d bytes", ErrMalformed, cmdsize)
			}
			codesig = append(codesig, Range{off + 12, 4}) // datasize
			l.Signature = Range{int64(le.Uint32(h[off+8:])), int64(le.Uint32(h[off+12:]))}
		}
		off += cmdsize
	}
	if len(codesig) > 1 || len(linkedit) > 2 {
		return l, fmt.Errorf("%w: more than one LC_CODE_SIGNATURE or __LINKEDIT segment", ErrMalformed)
	}
	if l.HasSignature() {
		if l.Signature.Off < end || l.Signature.End() > size {
			return l, fmt.Errorf("%w: code signature at %d+%d lies outside the file's %d bytes after the headers", ErrMalformed, l.Signature.Off, l.Signature.Len, size)
		}
	}
	// A re-signer rewrites these only when there is a signature to redo.
	// Adding a first code signature adds a load command, which no
	// content rule can allow for: such binaries are signed ad hoc first.
	if len(codesig) > 0 {
		l.Mutable = sortRanges(append(codesig, linkedit...))
	}
	return l, nil
}

func parsePE(h []byte, size int64) (Layout, error) {
	l := Layout{Kind: PE}
	le := binary.LittleEndian
	if len(h) < peSignatureOff+4 {
		return Layout{Kind: Raw}, nil // an "MZ" too short to be PE
	}
	pe := int64(le.Uint32(h[peSignatureOff:]))
	if pe+24+2 > int64(len(h)) || string(h[pe:pe+4]) != "PE\x00\x00" {
		return Layout{Kind: Raw}, nil // DOS executable, or not PE
	}
	optSize := int64(le.Uint16(h[pe+20:]))
	opt := pe + 24
	if opt+optSize > int64(len(h)) {
		return l, fmt.Errorf("%w: PE optional header ends past the %d header bytes read", ErrMalformed, len(h))
	}
	var ndirOff, dirs int64
	switch le.Uint16(h[opt:]) {
	case pe32Magic:
		ndirOff, dirs = 92, 96
	case pe32PlusMagic:
		ndirOff, dirs = 108, 112
	default:
		return l, fmt.Errorf("%w: PE optional header magic %#x", ErrMalformed, le.Uint16(h[opt:]))
	}
	if optSize < 68 {
		return l, fmt.Errorf("%w: PE optional header is %d bytes", ErrMalformed, optSize)
	}
	l.Mutable = append(l.Mutable, Range{opt + 64, 4}) // CheckSum
	if optSize >= ndirOff+4 && le.Uint32(h[opt+ndirOff:]) > peSecurityDirIdx {
		sec := opt + dirs + 8*peSecurityDirIdx
		if sec+8 > opt+optSize {
			return l, fmt.Errorf("%w: PE data directories end past the optional header", ErrMalformed)
		}
		l.Mutable = append(l.Mutable, Range{sec, 8})
		l.Signature = Range{int64(le.Uint32(h[sec:])), int64(le.Uint32(h[sec+4:]))}
		if l.HasSignature() && (l.Signature.Off < opt+optSize || l.Signature.End() > size) {
			return l, fmt.Errorf("%w: certificate table at %d+%d lies outside the file's %d bytes after the headers", ErrMalformed, l.Signature.Off, l.Signature.Len, size)
		}
	}
	return l, nil
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func sortRanges(rs []Range) []Range {
	// sort.Slice, not slices.SortFunc: a generic sort of a struct
	// links its own copy of the sort (docs/BENCHMARKS.md, Cost of embedding).
	sort.Slice(rs, func(i, j int) bool { return rs[i].Off < rs[j].Off })
	return rs
}
