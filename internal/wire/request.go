package wire

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/org/rustpatcher-go/region"
)

// known reports whether k is a request kind of the protocol.
func (k Kind) known() bool {
	return k == KindInfo || k == KindHashes || k == KindPieces || k == KindRotations || k == KindPacked || k == KindRollout || k == KindHave || k == KindWatch
}

// hasID reports whether a request of kind k names a file.
func (k Kind) hasID() bool {
	return k == KindHashes || k == KindPieces || k == KindPacked || k == KindHave || k == KindWatch
}

// hasRange reports whether a request of kind k names a run of pieces.
func (k Kind) hasRange() bool { return k == KindPieces || k == KindPacked }

// Request is a decoded request frame.
type Request struct {
	// Kind is KindInfo, KindHashes, KindPieces, KindRotations,
	// KindPacked, KindRollout, KindHave or KindWatch.
	Kind Kind
	// Auth is the namespace check (see Auth).
	Auth [AuthLen]byte
	// Target is the "GOOS/GOARCH" asked about.
	Target string
	// ID is the file asked for (KindHashes, KindPieces, KindPacked,
	// KindHave and KindWatch).
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
	// peer holds (KindHave and KindWatch): the peer answers a have request
	// when it holds more, or after at most MaxHaveWait; a watch gets its
	// first bitfield at once whatever Known is.
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
	if r.Kind == KindHave || r.Kind == KindWatch {
		b = appendKnown(b, r.Known)
	}
	return b, nil
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
	if req.Kind == KindHave || req.Kind == KindWatch {
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
