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

	"github.com/org/rustpatcher-go/internal/rotation"
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

// known reports whether k is a request kind of the protocol.
func (k Kind) known() bool {
	return k == KindInfo || k == KindHashes || k == KindPieces || k == KindRotations || k == KindPacked || k == KindRollout || k == KindHave
}

// hasID reports whether a request of kind k names a file.
func (k Kind) hasID() bool {
	return k == KindHashes || k == KindPieces || k == KindPacked || k == KindHave
}

// hasRange reports whether a request of kind k names a run of pieces.
func (k Kind) hasRange() bool { return k == KindPieces || k == KindPacked }

// Request is a decoded request frame.
type Request struct {
	// Kind is KindInfo, KindHashes, KindPieces, KindRotations,
	// KindPacked, KindRollout or KindHave.
	Kind Kind
	// Auth is the namespace check (see Auth).
	Auth [AuthLen]byte
	// Target is the "GOOS/GOARCH" asked about.
	Target string
	// ID is the file asked for (KindHashes, KindPieces, KindPacked and
	// KindHave).
	ID [IDLen]byte
	// First is the first piece asked for, and Count the number of pieces,
	// 1 to MaxPiecesPerRequest (KindPieces and KindPacked).
	First, Count uint32
	// Base is the file ID of the file the asking node holds, which the
	// pieces may be sent as deltas from; zero for none (KindPacked only).
	Base [IDLen]byte
	// Report is what the asking node says about itself (KindRollout
	// only); unauthenticated.
	Report Report
	// Known is the number of pieces of the file the asking node knows the
	// peer holds (KindHave only): the peer answers when it holds more, or
	// after at most MaxHaveWait.
	Known uint32
}

// check validates the fields of r that the frame format constrains.
func (r *Request) check() error {
	if !r.Kind.known() {
		return fmt.Errorf("%w: unknown kind %v", ErrMalformed, r.Kind)
	}
	if !region.ValidTarget(r.Target) {
		return fmt.Errorf("%w: target %q", ErrMalformed, r.Target)
	}
	if r.Kind.hasRange() && (r.Count == 0 || r.Count > MaxPiecesPerRequest) {
		return fmt.Errorf("%w: %d pieces asked, want 1 to %d", ErrMalformed, r.Count, MaxPiecesPerRequest)
	}
	if r.Kind == KindRollout {
		return r.Report.Check()
	}
	return nil
}

// Marshal encodes r:
//
//	"RP" | kind (1) | auth (64) | target length (1) | target
//	     | [file ID (32)                                  hashes, pieces, packed]
//	     | [first piece (u32 LE) | piece count (u32 LE)   pieces, packed]
//	     | [base file ID (32)                             packed]
//	     | [report (see Report)                           rollout]
//	     | [known piece count (u32 LE)                    have]
func (r *Request) Marshal() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, MaxRequestLen)
	b = append(b, magic...)
	b = append(b, byte(r.Kind))
	b = append(b, r.Auth[:]...)
	b = append(b, byte(len(r.Target)))
	b = append(b, r.Target...)
	if r.Kind.hasID() {
		b = append(b, r.ID[:]...)
	}
	if r.Kind.hasRange() {
		b = binary.LittleEndian.AppendUint32(b, r.First)
		b = binary.LittleEndian.AppendUint32(b, r.Count)
	}
	if r.Kind == KindPacked {
		b = append(b, r.Base[:]...)
	}
	if r.Kind == KindRollout {
		b = r.Report.append(b)
	}
	if r.Kind == KindHave {
		b = appendKnown(b, r.Known)
	}
	return b, nil
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

// ReadRequest reads one request frame from r. It reads at most MaxRequestLen
// bytes.
func ReadRequest(r io.Reader) (*Request, error) {
	var hdr [2 + 1 + AuthLen + 1]byte
	if err := readFull(r, hdr[:], "request header"); err != nil {
		return nil, err
	}
	if string(hdr[:2]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrMalformed, hdr[:2])
	}
	req := &Request{Kind: Kind(hdr[2])}
	if !req.Kind.known() {
		return nil, fmt.Errorf("%w: unknown kind %v", ErrMalformed, req.Kind)
	}
	copy(req.Auth[:], hdr[3:3+AuthLen])
	n := int(hdr[3+AuthLen])
	if n == 0 || n > MaxTargetLen {
		return nil, fmt.Errorf("%w: target length %d", ErrMalformed, n)
	}
	var tb [MaxTargetLen]byte
	if err := readFull(r, tb[:n], "target"); err != nil {
		return nil, err
	}
	req.Target = string(tb[:n])
	if req.Kind.hasID() {
		if err := readFull(r, req.ID[:], "file ID"); err != nil {
			return nil, err
		}
	}
	if req.Kind.hasRange() {
		var rng [8]byte
		if err := readFull(r, rng[:], "piece range"); err != nil {
			return nil, err
		}
		req.First = binary.LittleEndian.Uint32(rng[:4])
		req.Count = binary.LittleEndian.Uint32(rng[4:])
	}
	if req.Kind == KindPacked {
		if err := readFull(r, req.Base[:], "base file ID"); err != nil {
			return nil, err
		}
	}
	if req.Kind == KindRollout {
		var err error
		if req.Report, err = readReport(r); err != nil {
			return nil, err
		}
	}
	if req.Kind == KindHave {
		var err error
		if req.Known, err = readKnown(r); err != nil {
			return nil, err
		}
	}
	if err := req.check(); err != nil {
		return nil, err
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

// WriteHashes writes a hashes answer: status OK (1) | the piece hashes, 32
// bytes each, in order.
func WriteHashes(w io.Writer, leaves [][sha256.Size]byte) error {
	b := make([]byte, 0, 1+len(leaves)*sha256.Size)
	b = append(b, byte(StatusOK))
	for _, l := range leaves {
		b = append(b, l[:]...)
	}
	_, err := w.Write(b)
	return err
}

// ReadHashes reads a hashes answer for a file of layout l: exactly
// l.ContentPieces() hashes, a number computed from the signed region.
func ReadHashes(r io.Reader, l Layout) ([][sha256.Size]byte, error) {
	if err := readStatus(r); err != nil {
		return nil, err
	}
	n := l.ContentPieces()
	if n <= 0 || n > MaxContentLen/region.PieceSize {
		return nil, fmt.Errorf("%w: %d piece hashes", ErrTooLarge, n)
	}
	leaves := make([][sha256.Size]byte, n)
	const batch = 256 // hashes read at a time
	buf := make([]byte, batch*sha256.Size)
	for i := int64(0); i < n; i += batch {
		k := min(batch, n-i)
		if err := readFull(r, buf[:k*sha256.Size], "piece hashes"); err != nil {
			return nil, err
		}
		for j := range k {
			copy(leaves[i+j][:], buf[j*sha256.Size:])
		}
	}
	return leaves, nil
}

// WritePiecesHeader writes the head of a pieces answer, status OK; the
// pieces' bytes follow.
func WritePiecesHeader(w io.Writer) error {
	_, err := w.Write([]byte{byte(StatusOK)})
	return err
}

// ReadPiecesHeader reads the head of a pieces answer: nil for status OK,
// after which the pieces' bytes follow (see Layout.ReadPiece), else the
// error the status stands for.
func ReadPiecesHeader(r io.Reader) error { return readStatus(r) }

// A Layout is how a file is cut into pieces on the wire: pieces 0 to n-1
// are the content's region.PieceSize pieces (the last one shorter), and
// piece n, only when the file is longer than its content, is the tail: the
// OS code signature after the content, which the region does not sign.
type Layout struct {
	// Content is the length of the content (region.Info.ContentLen).
	Content int64
	// Size is the length of the file.
	Size int64
}

// NewLayout returns the layout of a file of size bytes whose signed content
// is content bytes long. It fails with ErrMalformed unless the tail fits
// region.MaxTail, and with ErrTooLarge for content over MaxContentLen.
func NewLayout(content, size int64) (Layout, error) {
	if content <= 0 || content > MaxContentLen {
		return Layout{}, fmt.Errorf("%w: %d bytes of content", ErrTooLarge, content)
	}
	if size < content || size-content > region.MaxTail(content) {
		return Layout{}, fmt.Errorf("%w: a file of %d bytes for %d bytes of signed content", ErrMalformed, size, content)
	}
	return Layout{Content: content, Size: size}, nil
}

// ContentPieces returns the number of content pieces.
func (l Layout) ContentPieces() int64 { return region.NumPieces(l.Content) }

// NumPieces returns the number of pieces, the tail included.
func (l Layout) NumPieces() int64 {
	n := l.ContentPieces()
	if l.Size > l.Content {
		n++
	}
	return n
}

// IsTail reports whether piece i is the tail.
func (l Layout) IsTail(i int64) bool { return i == l.ContentPieces() && l.Size > l.Content }

// Piece returns the offset and length in the file of piece i, which must be
// below NumPieces.
func (l Layout) Piece(i int64) (off, n int64) {
	if l.IsTail(i) {
		return l.Content, l.Size - l.Content
	}
	off = i * region.PieceSize
	return off, min(region.PieceSize, l.Content-off)
}

// PieceAt returns the piece that holds byte off of the file, which must be
// below Size.
func (l Layout) PieceAt(off int64) int64 {
	if off >= l.Content {
		return l.ContentPieces()
	}
	return off / region.PieceSize
}

// MaxPieceLen returns the length of the longest piece.
func (l Layout) MaxPieceLen() int64 {
	return max(min(region.PieceSize, l.Content), l.Size-l.Content)
}

// CheckRange reports whether count pieces from first are pieces of l, and
// at most MaxPiecesPerRequest of them.
func (l Layout) CheckRange(first, count uint32) error {
	if count == 0 || count > MaxPiecesPerRequest || int64(first)+int64(count) > l.NumPieces() {
		return fmt.Errorf("%w: pieces %d+%d of %d", ErrMalformed, first, count, l.NumPieces())
	}
	return nil
}

// ReadPiece reads piece i of the file from r, after ReadPiecesHeader, into
// b, which must hold it, and returns the piece's bytes. A stream that ends
// before the piece does is malformed.
func (l Layout) ReadPiece(r io.Reader, i int64, b []byte) ([]byte, error) {
	if i < 0 || i >= l.NumPieces() {
		return nil, fmt.Errorf("no piece %d in %d", i, l.NumPieces())
	}
	_, n := l.Piece(i)
	if int64(len(b)) < n {
		return nil, fmt.Errorf("a buffer of %d bytes for piece %d of %d bytes", len(b), i, n)
	}
	if err := readFull(r, b[:n], fmt.Sprintf("piece %d", i)); err != nil {
		return nil, err
	}
	return b[:n], nil
}

// Limits of a rotations answer.
const (
	// MaxRotations is the most statements a rotations answer carries.
	MaxRotations = 16
	// MaxRotationLen is the longest statement it carries.
	MaxRotationLen = rotation.MaxSize
)

// WriteRotations writes a rotations answer: status OK (1) | count (1) |
// for each statement, its length (u16 LE) and its text form. It writes at
// most MaxRotations statements.
func WriteRotations(w io.Writer, stmts []rotation.Statement) error {
	return writeStatements(w, stmts, MaxRotations)
}

// ReadRotations reads a rotations answer: at most MaxRotations statements
// of at most MaxRotationLen bytes each. A statement that does not parse
// makes the answer malformed; signatures are not checked here (see
// rotation.Statement.Verify).
func ReadRotations(r io.Reader) ([]rotation.Statement, error) {
	return readStatements(r, "rotation", MaxRotations, MaxRotationLen, rotation.Parse)
}

// writeStatements writes an answer of statements in text form: status OK
// (1) | count (1) | for each statement, its length (u16 LE) and its text.
// It writes at most max statements.
func writeStatements[T interface{ MarshalText() ([]byte, error) }](w io.Writer, stmts []T, max int) error {
	stmts = stmts[:min(len(stmts), max)]
	b := []byte{byte(StatusOK), byte(len(stmts))}
	for _, st := range stmts {
		text, err := st.MarshalText()
		if err != nil {
			return err
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(text)))
		b = append(b, text...)
	}
	_, err := w.Write(b)
	return err
}

// readStatements reads an answer that writeStatements wrote: at most max
// statements of at most maxLen bytes each, each parsed with parse. what
// names the statements in errors.
func readStatements[T any](r io.Reader, what string, max, maxLen int, parse func([]byte) (T, error)) ([]T, error) {
	if err := readStatus(r); err != nil {
		return nil, err
	}
	var n [1]byte
	if err := readFull(r, n[:], what+" count"); err != nil {
		return nil, err
	}
	if int(n[0]) > max {
		return nil, fmt.Errorf("%w: %d %s statements, at most %d", ErrMalformed, n[0], what, max)
	}
	var out []T
	buf := make([]byte, maxLen)
	for range int(n[0]) {
		var l [2]byte
		if err := readFull(r, l[:], what+" length"); err != nil {
			return nil, err
		}
		k := int(binary.LittleEndian.Uint16(l[:]))
		if k == 0 || k > maxLen {
			return nil, fmt.Errorf("%w: a %s statement of %d bytes", ErrMalformed, what, k)
		}
		if err := readFull(r, buf[:k], what+" statement"); err != nil {
			return nil, err
		}
		st, err := parse(buf[:k])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// How a piece of a packed answer is sent (PackedPiece.Method).
const (
	// PackRaw sends the piece's bytes as they are.
	PackRaw byte = 0
	// PackZstd sends a zstd frame (RFC 8878) that decodes to the piece.
	PackZstd byte = 1
	// PackDelta sends a zstd frame that decodes to the piece with a span
	// of the base file named in the request as its raw dictionary.
	PackDelta byte = 2
)

// Limits of a packed answer.
const (
	// MaxDictLen is the longest span of the base file a delta piece
	// takes as its dictionary.
	MaxDictLen = 4 << 20
	// MaxPackedHeaderLen is the longest head of a packed piece: method,
	// dictionary span and data length.
	MaxPackedHeaderLen = 1 + 8 + 4 + 4
)

// A PackedPiece is one piece of a packed answer. Its frame is
//
//	method (1) | [dictionary offset (u64 LE) | dictionary length (u32 LE)    PackDelta]
//	           | [data length (u32 LE), 1 to the piece's length              PackZstd, PackDelta]
//	           | data
//
// where the data of a PackRaw piece is the piece itself (its length is the
// piece's), and that of the others a zstd frame no longer than the piece: a
// piece that does not compress is sent raw.
type PackedPiece struct {
	// Method is PackRaw, PackZstd or PackDelta.
	Method byte
	// DictOff and DictLen are the span of the base file that is the
	// dictionary of a PackDelta piece; DictLen is 1 to MaxDictLen.
	DictOff int64
	DictLen int
	// Data is the piece (PackRaw) or its zstd frame.
	Data []byte
}

// AppendPacked appends the frame of p to b.
func AppendPacked(b []byte, p PackedPiece) []byte {
	b = append(b, p.Method)
	if p.Method == PackDelta {
		b = binary.LittleEndian.AppendUint64(b, uint64(p.DictOff))
		b = binary.LittleEndian.AppendUint32(b, uint32(p.DictLen))
	}
	if p.Method != PackRaw {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Data)))
	}
	return append(b, p.Data...)
}

// WritePackedHeader writes the head of a packed answer, status OK; the
// pieces' frames follow.
func WritePackedHeader(w io.Writer) error { return WritePiecesHeader(w) }

// ReadPackedHeader reads the head of a packed answer: nil for status OK,
// after which the frames follow (see Layout.ReadPacked), else the error the
// status stands for.
func ReadPackedHeader(r io.Reader) error { return readStatus(r) }

// ReadPacked reads the frame of piece i of the file from r, after
// ReadPackedHeader, with its data in buf, which must hold the piece. It
// reads at most MaxPackedHeaderLen bytes and the piece's length. The data
// is not decoded here (see internal/pack).
func (l Layout) ReadPacked(r io.Reader, i int64, buf []byte) (PackedPiece, error) {
	return l.ReadPackedInto(r, i, buf, buf)
}

// ReadPackedInto is ReadPacked with the data of a raw frame read into raw
// instead of buf: a raw piece needs no decoding, so it can be read where
// the piece goes. Both must hold the piece.
func (l Layout) ReadPackedInto(r io.Reader, i int64, buf, raw []byte) (PackedPiece, error) {
	if i < 0 || i >= l.NumPieces() {
		return PackedPiece{}, fmt.Errorf("no piece %d in %d", i, l.NumPieces())
	}
	_, n := l.Piece(i)
	if int64(min(len(buf), len(raw))) < n {
		return PackedPiece{}, fmt.Errorf("a buffer of %d bytes for piece %d of %d bytes", min(len(buf), len(raw)), i, n)
	}
	what := fmt.Sprintf("packed piece %d", i)
	var h [MaxPackedHeaderLen]byte
	if err := readFull(r, h[:1], what); err != nil {
		return PackedPiece{}, err
	}
	p := PackedPiece{Method: h[0]}
	size := n
	switch p.Method {
	case PackRaw:
		buf = raw
	case PackZstd, PackDelta:
		hl := 4
		if p.Method == PackDelta {
			hl += 12
		}
		if err := readFull(r, h[1:1+hl], what); err != nil {
			return PackedPiece{}, err
		}
		if p.Method == PackDelta {
			off := binary.LittleEndian.Uint64(h[1:])
			dl := binary.LittleEndian.Uint32(h[9:])
			if off > MaxContentLen*2 || dl == 0 || dl > MaxDictLen {
				return PackedPiece{}, fmt.Errorf("%w: %s: dictionary of %d bytes at %d", ErrMalformed, what, dl, off)
			}
			p.DictOff, p.DictLen = int64(off), int(dl)
		}
		size = int64(binary.LittleEndian.Uint32(h[hl-3:]))
		if size == 0 || size > n {
			return PackedPiece{}, fmt.Errorf("%w: %s: %d bytes of data for a piece of %d", ErrMalformed, what, size, n)
		}
	default:
		return PackedPiece{}, fmt.Errorf("%w: %s: unknown method %d", ErrMalformed, what, p.Method)
	}
	if err := readFull(r, buf[:size], what); err != nil {
		return PackedPiece{}, err
	}
	p.Data = buf[:size]
	return p, nil
}
