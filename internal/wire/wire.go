// Package wire encodes and decodes the frames of the rustpatcher stream
// protocol, /rustpatcher/<owner>/v0. See docs/PROTOCOL.md.
//
// Every stream carries one request from the client and one response from the
// server. All lengths are fixed or bounded by small constants, except the body
// of a fetch response, whose length the client checks against the signed size
// before reading a byte of it.
package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// Limits of the protocol.
const (
	// MaxTargetLen is the longest target name ("GOOS/GOARCH") a frame carries.
	MaxTargetLen = 32
	// MaxMessageLen is the longest error message a response carries.
	MaxMessageLen = 255
	// MaxRequestLen is the longest request frame.
	MaxRequestLen = 2 + 1 + AuthLen + 1 + MaxTargetLen + IDLen + 8
	// AuthLen is the length of the namespace check (see Auth).
	AuthLen = sha512.Size
	// IDLen is the length of a release ID (see ReleaseID).
	IDLen = sha256.Size
)

// magic opens every request.
const magic = "RP"

// Kind is a request kind.
type Kind byte

// Request kinds.
const (
	// KindInfo asks for the signed region of the newest release the peer
	// serves for a target.
	KindInfo Kind = 1
	// KindFetch asks for the bytes of one release from an offset.
	KindFetch Kind = 2
)

// String returns the kind's name, as logs show it.
func (k Kind) String() string {
	switch k {
	case KindInfo:
		return "info"
	case KindFetch:
		return "fetch"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Status is the first byte of every response.
type Status byte

// Response statuses.
const (
	// StatusOK is followed by the answer.
	StatusOK Status = 0
	// StatusBusy means the peer has no free upload slot: try another.
	StatusBusy Status = 1
	// StatusNotFound means the peer does not serve what was asked.
	StatusNotFound Status = 2
	// StatusBadRequest means the request was malformed or failed the
	// namespace check.
	StatusBadRequest Status = 3
)

// String returns the status's name, as logs show it.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusBusy:
		return "busy"
	case StatusNotFound:
		return "not found"
	case StatusBadRequest:
		return "bad request"
	}
	return fmt.Sprintf("status(%d)", byte(s))
}

// Sentinel errors. Decoders wrap them with details.
var (
	// ErrMalformed means a frame does not follow the format.
	ErrMalformed = errors.New("malformed frame")
	// ErrAuth means a request failed the namespace check.
	ErrAuth = errors.New("namespace check failed")
	// ErrBusy means the peer answered StatusBusy.
	ErrBusy = errors.New("peer is busy")
	// ErrNotFound means the peer answered StatusNotFound.
	ErrNotFound = errors.New("peer does not serve it")
	// ErrRefused means the peer answered StatusBadRequest.
	ErrRefused = errors.New("peer refused the request")
	// ErrLength means a fetch response announced a length other than the
	// one the signed size implies.
	ErrLength = errors.New("wrong transfer length")
)

// ProtocolID returns the stream protocol of the owner key pub:
// /rustpatcher/<z-base-32 key>/v0, as the original's ALPN.
func ProtocolID(pub ed25519.PublicKey) string {
	return "/rustpatcher/" + region.EncodePublicKey(pub) + "/v0"
}

// Auth returns the rotating namespace check of the original:
// SHA-512(owner public key || unix minute as u64 little-endian). Anyone who
// knows the public key can compute it: it only keeps requests meant for
// another owner out, and is no security. Security rests on the signature.
func Auth(pub ed25519.PublicKey, t time.Time) [AuthLen]byte {
	var m [8]byte
	binary.LittleEndian.PutUint64(m[:], uint64(t.Unix()/60))
	h := sha512.New()
	h.Write(pub)
	h.Write(m[:])
	var out [AuthLen]byte
	h.Sum(out[:0])
	return out
}

// CheckAuth reports whether a is Auth(pub, t') for t' in the minute before,
// of, or after t, as the original accepts.
func CheckAuth(pub ed25519.PublicKey, a [AuthLen]byte, t time.Time) bool {
	for _, d := range []time.Duration{0, -time.Minute, time.Minute} {
		if Auth(pub, t.Add(d)) == a {
			return true
		}
	}
	return false
}

// ReleaseID names one release exactly: SHA-256 of its 176-byte signed
// region. The region covers the content hash, size, version and signature,
// so two releases with the same content but different versions (which sign
// the same hash) have different IDs.
func ReleaseID(reg [region.Size]byte) [IDLen]byte {
	return sha256.Sum256(reg[:])
}

// Request is a decoded request frame.
type Request struct {
	// Kind is KindInfo or KindFetch.
	Kind Kind
	// Auth is the namespace check (see Auth).
	Auth [AuthLen]byte
	// Target is the "GOOS/GOARCH" asked about.
	Target string
	// ID is the release asked for (KindFetch only).
	ID [IDLen]byte
	// Offset is where the fetched bytes start (KindFetch only).
	Offset uint64
}

// validTarget reports whether t is a plausible "GOOS/GOARCH": 1 to
// MaxTargetLen bytes of [a-z0-9_/-].
func validTarget(t string) bool {
	if len(t) == 0 || len(t) > MaxTargetLen {
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

// Marshal encodes r:
//
//	"RP" | kind (1) | auth (64) | target length (1) | target | [id (32) | offset (u64 LE)]
func (r *Request) Marshal() ([]byte, error) {
	if !validTarget(r.Target) {
		return nil, fmt.Errorf("%w: target %q", ErrMalformed, r.Target)
	}
	if r.Kind != KindInfo && r.Kind != KindFetch {
		return nil, fmt.Errorf("%w: unknown kind %v", ErrMalformed, r.Kind)
	}
	b := make([]byte, 0, MaxRequestLen)
	b = append(b, magic...)
	b = append(b, byte(r.Kind))
	b = append(b, r.Auth[:]...)
	b = append(b, byte(len(r.Target)))
	b = append(b, r.Target...)
	if r.Kind == KindFetch {
		b = append(b, r.ID[:]...)
		b = binary.LittleEndian.AppendUint64(b, r.Offset)
	}
	return b, nil
}

// ReadRequest reads one request frame from r. It reads at most MaxRequestLen
// bytes.
func ReadRequest(r io.Reader) (*Request, error) {
	var hdr [2 + 1 + AuthLen + 1]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: reading request header: %w", ErrMalformed, err)
	}
	if string(hdr[:2]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrMalformed, hdr[:2])
	}
	req := &Request{Kind: Kind(hdr[2])}
	if req.Kind != KindInfo && req.Kind != KindFetch {
		return nil, fmt.Errorf("%w: unknown kind %v", ErrMalformed, req.Kind)
	}
	copy(req.Auth[:], hdr[3:3+AuthLen])
	n := int(hdr[3+AuthLen])
	if n == 0 || n > MaxTargetLen {
		return nil, fmt.Errorf("%w: target length %d", ErrMalformed, n)
	}
	var tb [MaxTargetLen]byte
	if _, err := io.ReadFull(r, tb[:n]); err != nil {
		return nil, fmt.Errorf("%w: reading target: %w", ErrMalformed, err)
	}
	req.Target = string(tb[:n])
	if !validTarget(req.Target) {
		return nil, fmt.Errorf("%w: target %q", ErrMalformed, req.Target)
	}
	if req.Kind == KindFetch {
		var tail [IDLen + 8]byte
		if _, err := io.ReadFull(r, tail[:]); err != nil {
			return nil, fmt.Errorf("%w: reading fetch request: %w", ErrMalformed, err)
		}
		copy(req.ID[:], tail[:IDLen])
		req.Offset = binary.LittleEndian.Uint64(tail[IDLen:])
	}
	return req, nil
}

// WriteError writes a response with a non-OK status and a short message
// (cut to MaxMessageLen bytes): status (1) | message length (1) | message.
func WriteError(w io.Writer, s Status, msg string) error {
	if len(msg) > MaxMessageLen {
		msg = msg[:MaxMessageLen]
	}
	b := make([]byte, 0, 2+len(msg))
	b = append(b, byte(s), byte(len(msg)))
	b = append(b, msg...)
	_, err := w.Write(b)
	return err
}

// WriteInfo writes an info response: status OK (1) | region (176).
func WriteInfo(w io.Writer, reg [region.Size]byte) error {
	b := make([]byte, 0, 1+region.Size)
	b = append(b, byte(StatusOK))
	b = append(b, reg[:]...)
	_, err := w.Write(b)
	return err
}

// WriteFetchHeader writes the head of a fetch response: status OK (1) |
// length (u64 LE) of the bytes that follow.
func WriteFetchHeader(w io.Writer, n uint64) error {
	var b [9]byte
	b[0] = byte(StatusOK)
	binary.LittleEndian.PutUint64(b[1:], n)
	_, err := w.Write(b[:])
	return err
}

// readStatus reads a status byte and, for a non-OK status, its message, and
// returns the status as an error wrapping ErrBusy, ErrNotFound, ErrRefused or
// ErrMalformed.
func readStatus(r io.Reader) error {
	var s [1]byte
	if _, err := io.ReadFull(r, s[:]); err != nil {
		return fmt.Errorf("%w: reading status: %w", ErrMalformed, err)
	}
	st := Status(s[0])
	if st == StatusOK {
		return nil
	}
	var sentinel error
	switch st {
	case StatusBusy:
		sentinel = ErrBusy
	case StatusNotFound:
		sentinel = ErrNotFound
	case StatusBadRequest:
		sentinel = ErrRefused
	default:
		return fmt.Errorf("%w: unknown status %d", ErrMalformed, st)
	}
	var l [1]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return fmt.Errorf("%w: reading %v message: %w", ErrMalformed, st, err)
	}
	var msg [MaxMessageLen]byte
	if _, err := io.ReadFull(r, msg[:l[0]]); err != nil {
		return fmt.Errorf("%w: reading %v message: %w", ErrMalformed, st, err)
	}
	if l[0] == 0 {
		return sentinel
	}
	return fmt.Errorf("%w: %q", sentinel, printable(msg[:l[0]]))
}

// printable replaces non-printable bytes so that a peer's message cannot
// inject control characters into logs.
func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}

// ReadInfo reads an info response and returns the region's raw bytes and
// decoded Info. It does not check the signature. It reads at most
// 1+region.Size bytes (or 2+MaxMessageLen for an error).
func ReadInfo(r io.Reader) ([region.Size]byte, region.Info, error) {
	var reg [region.Size]byte
	if err := readStatus(r); err != nil {
		return reg, region.Info{}, err
	}
	if _, err := io.ReadFull(r, reg[:]); err != nil {
		return reg, region.Info{}, fmt.Errorf("%w: reading region: %w", ErrMalformed, err)
	}
	in, err := region.Parse(reg[:])
	if err != nil {
		return reg, region.Info{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return reg, in, nil
}

// ReadFetchHeader reads the head of a fetch response and checks that the
// announced length is exactly want, the number of bytes the signed size
// leaves from the requested offset.
func ReadFetchHeader(r io.Reader, want uint64) error {
	if err := readStatus(r); err != nil {
		return err
	}
	var l [8]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return fmt.Errorf("%w: reading length: %w", ErrMalformed, err)
	}
	if n := binary.LittleEndian.Uint64(l[:]); n != want {
		return fmt.Errorf("%w: peer announced %d bytes, the signed size leaves %d", ErrLength, n, want)
	}
	return nil
}
