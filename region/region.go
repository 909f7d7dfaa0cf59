// Package region implements the signed region that rustpatcher-go embeds in
// every application binary, and the rules that say which bytes of a binary
// its signature covers.
//
// The region is a fixed 176-byte block compiled into the binary as
// initialised data. An application links it by importing this package (the
// client package does). After the build, rpsign finds it in the file and
// writes the signature into it with [Sign]; the running program reads its
// own region back from memory with [Current]; [Verify] checks a file.
//
// There are two formats, told apart by their bounds markers:
//
//   - [V1], the default: the signature covers every byte of the file that is
//     content (all of it, but for an OS code signature and the header fields
//     it rewrites), the region's position and its target, through the root
//     of a list of SHA-256 hashes of 1 MiB pieces. A receiver checks each
//     piece as it arrives.
//   - [V0], byte-compatible with rustpatcher 0.2: the signature covers the
//     SHA-512 of the file with the region cut out. rustpatcher's own tools
//     read and write it.
//
// A build holds an unsigned V0 region (so either format can be signed into
// it); rustpatcher 0.2's tools never mistake a V1 region for one of theirs,
// as it carries none of their markers.
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

// Size is the length of a region in bytes, in both formats.
const Size = 176

// Layout of a V0 region (rustpatcher 0.2).
const (
	MarkerLen  = 28 // length of each V0 bounds marker
	HashLen    = 32 // length of the hash field (V0: truncated SHA-512; V1: root)
	VersionLen = 16 // maximum length of the ASCII version

	hashOff    = MarkerLen
	sizeOff    = hashOff + HashLen
	sigOff     = sizeOff + 8
	versionOff = sigOff + ed25519.SignatureSize
	endOff     = versionOff + VersionLen
)

// Layout of a V1 region.
const (
	// V1MarkerLen is the length of each V1 bounds marker.
	V1MarkerLen = 16
	// TargetLen is the longest target ("GOOS/GOARCH") a V1 region holds.
	TargetLen = 16

	v1RootOff    = V1MarkerLen
	v1SizeOff    = v1RootOff + HashLen
	v1OffsetOff  = v1SizeOff + 8
	v1SigOff     = v1OffsetOff + 8
	v1VersionOff = v1SigOff + ed25519.SignatureSize
	v1TargetOff  = v1VersionOff + VersionLen
	v1EndOff     = v1TargetOff + TargetLen
)

// Format is a region format.
type Format uint8

// Region formats. The zero Format is no format: an unsigned region.
const (
	// V0 is rustpatcher 0.2's format.
	V0 Format = 1
	// V1 signs every byte of content, piece by piece.
	V1 Format = 2
)

// String returns "v0" or "v1".
func (f Format) String() string {
	switch f {
	case V0:
		return "v0"
	case V1:
		return "v1"
	}
	return "unsigned"
}

// MarshalText returns the format as String spells it, so that logs and
// JSON write "v1" as text does, never the number.
func (f Format) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads the format as MarshalText writes it.
func (f *Format) UnmarshalText(b []byte) error {
	switch string(b) {
	case "v0":
		*f = V0
	case "v1":
		*f = V1
	case "unsigned":
		*f = 0
	default:
		return fmt.Errorf("unknown region format %q; want v0 or v1", b)
	}
	return nil
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
	// ErrMoved means a V1 region is not at the offset it was signed for.
	ErrMoved = errors.New("region is not where it was signed")
)

// Info is the content of a region: what rustpatcher calls a PatchInfo. The
// zero Info is an unsigned region.
type Info struct {
	// Format is V0 or V1; zero for an unsigned region.
	Format Format
	// Version is the release version, a semantic version without a leading
	// "v" (see ParseVersion). Empty in an unsigned region.
	Version string
	// Hash is, in V0, the first 32 bytes of SHA-512 over the content with
	// the region cut out; in V1, the root of the content's piece hashes
	// (see Root).
	Hash [HashLen]byte
	// Size is, in V0, the length of the content without the region; in
	// V1, the length of the content with it. Use ContentLen.
	Size uint64
	// Offset is, in V1, the region's offset in the file. Zero in V0.
	Offset uint64
	// Target is, in V1, the GOOS/GOARCH the release is for, such as
	// linux/amd64. Empty in V0.
	Target string
	// Signature is the Ed25519 signature of Message().
	Signature [ed25519.SignatureSize]byte
}

// Signed reports whether the region carries a signature. A freshly built
// binary has a zero hash, size and signature.
func (in Info) Signed() bool {
	return in.Size != 0 || in.Hash != [HashLen]byte{} || in.Signature != [ed25519.SignatureSize]byte{}
}

// ContentLen returns the length of the file's content, the region
// included: the bytes the signature covers, from the start of the file. An
// OS code signature may follow them (see docs/FORMAT.md).
func (in Info) ContentLen() int64 {
	if in.Format == V1 {
		return int64(in.Size)
	}
	return int64(in.Size) + Size
}

// v1Domain separates V1 signatures from any other use of the key.
const v1Domain = "rustpatcher-go/v1 region\x00"

// Message returns the 64-byte message that the owner key signs. In V0 it
// is SHA-512(version || hash || size as u64 little-endian); in V1 it is
// SHA-512("rustpatcher-go/v1 region\x00" || the region without its
// signature field).
func (in Info) Message() [sha512.Size]byte {
	h := sha512.New()
	if in.Format == V1 {
		b := in.marshalV1()
		h.Write([]byte(v1Domain))
		h.Write(b[:v1SigOff])
		h.Write(b[v1VersionOff:])
	} else {
		h.Write([]byte(in.Version))
		h.Write(in.Hash[:])
		var size [8]byte
		binary.LittleEndian.PutUint64(size[:], in.Size)
		h.Write(size[:])
	}
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
// verify. It does not look at any file: see Verify for that.
func (in Info) VerifySignature(pub ed25519.PublicKey) error {
	if !in.Signed() {
		return ErrUnsigned
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if err := in.check(); err != nil {
		return err
	}
	m := in.Message()
	if !ed25519.Verify(pub, m[:], in.Signature[:]) {
		return ErrBadSignature
	}
	return nil
}

// check validates the fields of a signed region.
func (in Info) check() error {
	if _, err := ParseVersion(in.Version); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch in.Format {
	case V0:
		if in.Offset != 0 || in.Target != "" {
			return fmt.Errorf("%w: a v0 region has no offset or target", ErrMalformed)
		}
	case V1:
		if !ValidTarget(in.Target) {
			return fmt.Errorf("%w: target %q (want GOOS/GOARCH, at most %d bytes)", ErrMalformed, in.Target, TargetLen)
		}
		if in.Offset > in.Size || in.Size-in.Offset < Size {
			return fmt.Errorf("%w: region at offset %d does not fit in %d bytes of content", ErrMalformed, in.Offset, in.Size)
		}
	default:
		return fmt.Errorf("%w: no format", ErrMalformed)
	}
	return nil
}

// ValidTarget reports whether t is a plausible "GOOS/GOARCH", as a V1
// region, a key rotation statement and a request of the peer protocol
// carry it: at most TargetLen bytes of [a-z0-9_-] with exactly one slash
// inside. Whether Go knows the pair is another question (see rpsign's and
// rpseed's checks).
func ValidTarget(t string) bool {
	if len(t) == 0 || len(t) > TargetLen || bytes.Count([]byte(t), []byte("/")) != 1 || t[0] == '/' || t[len(t)-1] == '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '/' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Marshal returns the 176 bytes of the region holding in, markers included,
// in in.Format (an Info without a format gives an unsigned V0 region). It
// fails only when the version or target does not fit.
func (in Info) Marshal() ([Size]byte, error) {
	if err := checkASCII("version", in.Version, VersionLen); err != nil {
		return [Size]byte{}, err
	}
	if in.Format == V1 {
		if err := checkASCII("target", in.Target, TargetLen); err != nil {
			return [Size]byte{}, err
		}
		return in.marshalV1(), nil
	}
	var b [Size]byte
	m := markerV0()
	copy(b[:], m[:])
	copy(b[hashOff:], in.Hash[:])
	binary.LittleEndian.PutUint64(b[sizeOff:], in.Size)
	copy(b[sigOff:], in.Signature[:])
	copy(b[versionOff:], in.Version)
	copy(b[endOff:], m[:])
	return b, nil
}

// marshalV1 lays out a V1 region; the caller checked the text fields.
func (in Info) marshalV1() [Size]byte {
	var b [Size]byte
	start, end := markersV1()
	copy(b[:], start[:])
	copy(b[v1RootOff:], in.Hash[:])
	binary.LittleEndian.PutUint64(b[v1SizeOff:], in.Size)
	binary.LittleEndian.PutUint64(b[v1OffsetOff:], in.Offset)
	copy(b[v1SigOff:], in.Signature[:])
	copy(b[v1VersionOff:], in.Version)
	copy(b[v1TargetOff:], in.Target)
	copy(b[v1EndOff:], end[:])
	return b
}

func checkASCII(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s %q is %d bytes, at most %d fit in the region", field, s, len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%s %q is not printable ASCII", field, s)
		}
	}
	return nil
}

// Parse decodes a 176-byte region of either format. It checks the markers
// and the encoding of the text fields (printable ASCII followed only by NUL
// padding); it does not check the signature.
func Parse(b []byte) (Info, error) {
	var in Info
	if len(b) != Size {
		return in, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), Size)
	}
	m := markerV0()
	start, end := markersV1()
	switch {
	case bytes.Equal(b[:MarkerLen], m[:]) && bytes.Equal(b[endOff:], m[:]):
		v, err := parseText("version", b[versionOff:endOff])
		if err != nil {
			return in, err
		}
		in.Version = v
		copy(in.Hash[:], b[hashOff:sizeOff])
		in.Size = binary.LittleEndian.Uint64(b[sizeOff:sigOff])
		copy(in.Signature[:], b[sigOff:versionOff])
		if in.Signed() {
			in.Format = V0
		}
		return in, nil
	case bytes.Equal(b[:V1MarkerLen], start[:]) && bytes.Equal(b[v1EndOff:], end[:]):
		v, err := parseText("version", b[v1VersionOff:v1TargetOff])
		if err != nil {
			return in, err
		}
		t, err := parseText("target", b[v1TargetOff:v1EndOff])
		if err != nil {
			return in, err
		}
		in = Info{Format: V1, Version: v, Target: t}
		copy(in.Hash[:], b[v1RootOff:v1SizeOff])
		in.Size = binary.LittleEndian.Uint64(b[v1SizeOff:])
		in.Offset = binary.LittleEndian.Uint64(b[v1OffsetOff:])
		copy(in.Signature[:], b[v1SigOff:v1VersionOff])
		return in, nil
	}
	return in, fmt.Errorf("%w: bounds markers missing", ErrMalformed)
}

// parseText decodes a NUL-padded printable ASCII field.
func parseText(field string, v []byte) (string, error) {
	n := 0
	for n < len(v) && v[n] != 0 {
		if v[n] < 0x20 || v[n] > 0x7e {
			return "", fmt.Errorf("%w: %s byte %d is 0x%02x, not printable ASCII", ErrMalformed, field, n, v[n])
		}
		n++
	}
	for _, c := range v[n:] {
		if c != 0 {
			return "", fmt.Errorf("%w: %s has bytes after its NUL padding", ErrMalformed, field)
		}
	}
	return string(v[:n]), nil
}
