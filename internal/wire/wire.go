// Package wire encodes and decodes the frames of the rustpatcher stream
// protocol, /rustpatcher/<owner>/v1. See docs/PROTOCOL.md.
//
// Every stream carries one request from the client and one response from the
// server. Requests and error answers have small fixed limits. The length of
// every answer body is computed by the receiver, never read from the peer:
// from the signed region and the file length it accepted (see Layout).
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
	// MaxTargetLen is the longest target name ("GOOS/GOARCH") a frame
	// carries: as long as a V1 region's.
	MaxTargetLen = region.TargetLen
	// MaxMessageLen is the longest error message a response carries.
	MaxMessageLen = 255
	// AuthLen is the length of the namespace check (see Auth).
	AuthLen = sha512.Size
	// IDLen is the length of a file ID (see region.Scanned.FileID).
	IDLen = sha256.Size
	// MaxRequestLen is the longest request frame: a packed pieces
	// request with the longest target.
	MaxRequestLen = 2 + 1 + AuthLen + 1 + MaxTargetLen + IDLen + 4 + 4 + IDLen
	// InfoAnswerLen is the length of an info answer: status, region, file
	// length and file ID.
	InfoAnswerLen = 1 + region.Size + 8 + IDLen
	// MaxErrorLen is the longest error answer: status, message length,
	// message.
	MaxErrorLen = 2 + MaxMessageLen
	// MaxPiecesPerRequest is the most pieces one pieces request asks for.
	MaxPiecesPerRequest = 8
	// MaxContentLen is the longest content a node fetches: 64 GiB, whose
	// piece hashes take 2 MiB (region.MaxContentLen).
	MaxContentLen = region.MaxContentLen
)

// magic opens every request.
const magic = "RP"

// Kind is a request kind.
type Kind byte

// Request kinds.
const (
	// KindInfo asks for the newest release the peer serves for a target:
	// its signed region, the file's length and its file ID.
	KindInfo Kind = 1
	// KindHashes asks for the piece hashes of a file, by file ID.
	KindHashes Kind = 2
	// KindPieces asks for a run of pieces of a file, by file ID.
	KindPieces Kind = 3
	// KindRotations asks for the key rotation statements the peer has
	// that move a target away from the owner key of the protocol.
	KindRotations Kind = 4
	// KindPacked asks for a run of pieces of a file, by file ID, each
	// sent as a packed frame (see PackedPiece): raw, compressed, or as a
	// delta from a base file the asking node holds, named by its file ID.
	// A node of an older release refuses the kind with StatusBadRequest;
	// the asking node then uses KindPieces with that peer.
	KindPacked Kind = 5
)

// String returns the kind's name, as logs show it.
func (k Kind) String() string {
	switch k {
	case KindInfo:
		return "info"
	case KindHashes:
		return "hashes"
	case KindRotations:
		return "rotations"
	case KindPieces:
		return "pieces"
	case KindPacked:
		return "packed"
	case KindRollout:
		return "rollout"
	case KindHave:
		return "have"
	case KindWatch:
		return "watch"
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

// Sentinel errors. Decoders wrap them with details. An error that wraps
// none of them is an I/O error of the stream (reset, deadline), which says
// nothing about the peer's honesty.
var (
	// ErrMalformed means a frame does not follow the format: bytes no
	// honest peer sends, or a frame that ends early (the peer closed its
	// side before the length the format gives).
	ErrMalformed = errors.New("malformed frame")
	// ErrAuth means a request failed the namespace check.
	ErrAuth = errors.New("namespace check failed")
	// ErrBusy means the peer answered StatusBusy.
	ErrBusy = errors.New("peer is busy")
	// ErrNotFound means the peer answered StatusNotFound.
	ErrNotFound = errors.New("peer does not serve it")
	// ErrRefused means the peer answered StatusBadRequest.
	ErrRefused = errors.New("peer refused the request")
	// ErrTooLarge means a signed release is longer than MaxContentLen.
	ErrTooLarge = errors.New("release too large")
)

// ProtocolID returns the stream protocol of the owner key pub:
// /rustpatcher/<z-base-32 key>/v1.
func ProtocolID(pub ed25519.PublicKey) string {
	return "/rustpatcher/" + region.EncodePublicKey(pub) + "/v1"
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

// readFull reads len(b) bytes of the frame part named what. A frame that
// ends early is malformed; any other error is the stream's and is returned
// as it is, wrapped.
func readFull(r io.Reader, b []byte, what string) error {
	_, err := io.ReadFull(r, b)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: the frame ends in its %s", ErrMalformed, what)
	}
	return fmt.Errorf("reading %s: %w", what, err)
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

// readStatus reads a status byte and, for a non-OK status, its message, and
// returns the status as an error wrapping ErrBusy, ErrNotFound, ErrRefused or
// ErrMalformed. It reads at most MaxErrorLen bytes.
func readStatus(r io.Reader) error {
	var s [1]byte
	if err := readFull(r, s[:], "status"); err != nil {
		return err
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
	if err := readFull(r, l[:], st.String()+" message length"); err != nil {
		return err
	}
	var msg [MaxMessageLen]byte
	if err := readFull(r, msg[:l[0]], st.String()+" message"); err != nil {
		return err
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
