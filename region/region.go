// Package region implements the signed region that rustpatcher-go embeds in
// every application binary, byte-compatible with rustpatcher 0.2.
//
// The region is a fixed 176-byte block compiled into the binary as
// initialised data:
//
//	offset  bytes  field
//	     0     28  bounds marker
//	    28     32  hash: first 32 bytes of SHA-512 of the file without the region
//	    60      8  size: length of the file without the region, little-endian
//	    68     64  Ed25519 signature of SHA-512(version || hash || size)
//	   132     16  version: ASCII, NUL-padded
//	   148     28  bounds marker
//
// An application links the region by importing this package and calling
// [Current] (the client package does this). After the build, rpsign finds the
// region in the file with [Scan] and writes the signed fields with [SignFile];
// the running program then reads them back from memory with [Current].
//
// See docs/FORMAT.md for the full specification and test vectors.
package region

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
)

// Layout of the region.
const (
	Size       = 176 // total length of the region in bytes
	MarkerLen  = 28  // length of each bounds marker
	HashLen    = 32  // length of the truncated SHA-512 hash
	VersionLen = 16  // maximum length of the ASCII version

	hashOff    = MarkerLen
	sizeOff    = hashOff + HashLen
	sigOff     = sizeOff + 8
	versionOff = sigOff + ed25519.SignatureSize
	endOff     = versionOff + VersionLen
)

// Marker is the 28-byte bounds marker that opens and closes the region:
// "\x17BRUSTPATCHERBEMBEDBBOUNDSB\x17".
//
// This package never uses the constant itself (see marker): a program that
// imports it holds the marker exactly twice, as the bounds of its region.
// Code linked into an app should not use it either.
const Marker = "\x17\x42RUSTPATCHER\x42EMBED\x42BOUNDS\x42\x17"

// markerMask is XORed into every byte of maskedMarker.
const markerMask = 0x5a

// maskedMarker is Marker with each byte XORed with markerMask: the only form
// in which the marker is in this package's code, so that it is not stored a
// third time in a program's file. rustpatcher 0.2's tools take the region
// to run from the first marker in the file to the last, and refuse a file
// where that span is not exactly 176 bytes.
var maskedMarker = [MarkerLen]byte{
	0x17 ^ markerMask, 0x42 ^ markerMask,
	'R' ^ markerMask, 'U' ^ markerMask, 'S' ^ markerMask, 'T' ^ markerMask, 'P' ^ markerMask, 'A' ^ markerMask,
	'T' ^ markerMask, 'C' ^ markerMask, 'H' ^ markerMask, 'E' ^ markerMask, 'R' ^ markerMask,
	0x42 ^ markerMask,
	'E' ^ markerMask, 'M' ^ markerMask, 'B' ^ markerMask, 'E' ^ markerMask, 'D' ^ markerMask,
	0x42 ^ markerMask,
	'B' ^ markerMask, 'O' ^ markerMask, 'U' ^ markerMask, 'N' ^ markerMask, 'D' ^ markerMask, 'S' ^ markerMask,
	0x42 ^ markerMask, 0x17 ^ markerMask,
}

// marker returns Marker, built at run time from maskedMarker.
func marker() [MarkerLen]byte {
	var m [MarkerLen]byte
	for i, c := range maskedMarker {
		m[i] = c ^ markerMask
	}
	return m
}

// Sentinel errors. Functions wrap them with the file name and details, so test
// with errors.Is.
var (
	// ErrNoRegion means the file holds no well-formed region.
	ErrNoRegion = errors.New("no signed region found")
	// ErrMultipleRegions means the file holds more than one well-formed region.
	ErrMultipleRegions = errors.New("more than one signed region found")
	// ErrUnsigned means the region is present but was never signed.
	ErrUnsigned = errors.New("binary is not signed")
	// ErrSizeMismatch means the file's size differs from the signed size.
	ErrSizeMismatch = errors.New("size does not match the signed size")
	// ErrHashMismatch means the file's contents differ from the signed hash.
	ErrHashMismatch = errors.New("contents do not match the signed hash")
	// ErrBadSignature means the signature does not verify with the given key.
	ErrBadSignature = errors.New("signature does not verify with this public key")
	// ErrMalformed means the region's bytes are not a valid region.
	ErrMalformed = errors.New("malformed region")
)

// Info is the signed content of a region: what rustpatcher calls a PatchInfo.
// The zero Info is an unsigned region.
type Info struct {
	// Version is the release version, a semantic version without a leading
	// "v" (see ParseVersion). Empty in an unsigned region.
	Version string
	// Hash is the first 32 bytes of SHA-512 over the file with the region
	// cut out.
	Hash [HashLen]byte
	// Size is the length of the file with the region cut out.
	Size uint64
	// Signature is the Ed25519 signature of Message().
	Signature [ed25519.SignatureSize]byte
}

// Signed reports whether the region carries a signature. A freshly built
// binary has a zero hash, size and signature.
func (in Info) Signed() bool {
	return in.Size != 0 || in.Hash != [HashLen]byte{} || in.Signature != [ed25519.SignatureSize]byte{}
}

// Message returns the 64-byte message that the owner key signs:
// SHA-512(version || hash || size as u64 little-endian).
func (in Info) Message() [sha512.Size]byte {
	h := sha512.New()
	h.Write([]byte(in.Version))
	h.Write(in.Hash[:])
	var size [8]byte
	binary.LittleEndian.PutUint64(size[:], in.Size)
	h.Write(size[:])
	var m [sha512.Size]byte
	h.Sum(m[:0])
	return m
}

// Sign sets in.Signature to the owner key's signature of in.Message.
func (in *Info) Sign(key ed25519.PrivateKey) {
	m := in.Message()
	copy(in.Signature[:], ed25519.Sign(key, m[:]))
}

// VerifySignature checks the signature against pub. It returns ErrUnsigned
// for an unsigned region and ErrBadSignature when the signature does not
// verify. It does not look at any file: see VerifyFile for that.
func (in Info) VerifySignature(pub ed25519.PublicKey) error {
	if !in.Signed() {
		return ErrUnsigned
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if _, err := ParseVersion(in.Version); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	m := in.Message()
	if !ed25519.Verify(pub, m[:], in.Signature[:]) {
		return ErrBadSignature
	}
	return nil
}

// Marshal returns the 176 bytes of the region holding in, markers included.
// It fails only when in.Version does not fit in 16 ASCII bytes.
func (in Info) Marshal() ([Size]byte, error) {
	var b [Size]byte
	if len(in.Version) > VersionLen {
		return b, fmt.Errorf("version %q is %d bytes, at most %d fit in the region", in.Version, len(in.Version), VersionLen)
	}
	for i := 0; i < len(in.Version); i++ {
		if c := in.Version[i]; c == 0 || c > 0x7e || c < 0x20 {
			return b, fmt.Errorf("version %q is not printable ASCII", in.Version)
		}
	}
	m := marker()
	copy(b[:], m[:])
	copy(b[hashOff:], in.Hash[:])
	binary.LittleEndian.PutUint64(b[sizeOff:], in.Size)
	copy(b[sigOff:], in.Signature[:])
	copy(b[versionOff:], in.Version)
	copy(b[endOff:], m[:])
	return b, nil
}

// Parse decodes a 176-byte region. It checks both markers and the version
// field's encoding (printable ASCII followed only by NUL padding); it does not
// check the signature.
func Parse(b []byte) (Info, error) {
	var in Info
	if len(b) != Size {
		return in, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), Size)
	}
	if m := marker(); !bytes.Equal(b[:MarkerLen], m[:]) || !bytes.Equal(b[endOff:], m[:]) {
		return in, fmt.Errorf("%w: bounds markers missing", ErrMalformed)
	}
	v := b[versionOff:endOff]
	n := 0
	for n < len(v) && v[n] != 0 {
		if v[n] < 0x20 || v[n] > 0x7e {
			return in, fmt.Errorf("%w: version byte %d is 0x%02x, not printable ASCII", ErrMalformed, n, v[n])
		}
		n++
	}
	for _, c := range v[n:] {
		if c != 0 {
			return in, fmt.Errorf("%w: version has bytes after its NUL padding", ErrMalformed)
		}
	}
	in.Version = string(v[:n])
	copy(in.Hash[:], b[hashOff:sizeOff])
	in.Size = binary.LittleEndian.Uint64(b[sizeOff:sigOff])
	copy(in.Signature[:], b[sigOff:versionOff])
	return in, nil
}
