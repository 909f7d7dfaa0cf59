// Package rotation implements key rotation statements: an owner moves one
// target from an old owner key to a new one with a statement signed by the
// old key. An app built with the old key that sees a valid statement trusts
// the new key from then on, and the old one no more (docs/FORMAT.md, "Key
// rotation").
//
// A statement is a few lines of text, so that it can be read, mailed and
// pasted:
//
//	rustpatcher-go key rotation v1
//	target: linux/amd64
//	from: <old public key, z-base-32>
//	to: <new public key, z-base-32>
//	sequence: 1
//	signature: <hex of the Ed25519 signature by the old key>
package rotation

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/org/rustpatcher-go/region"
)

// header is the first line of every statement.
const header = "rustpatcher-go key rotation v1"

// domain separates rotation signatures from any other use of the key.
const domain = "rustpatcher-go/v1 rotation\x00"

// MaxSize bounds the encoding of one statement; readers read no more.
const MaxSize = 512

// FileSuffix ends the names of files that hold one statement each, as
// rpsign rotate writes them next to the releases (such as
// linux-amd64-1.rotation); directory sources and rpseed read them.
const FileSuffix = ".rotation"

// MaxChain bounds how many statements a chain may hold.
const MaxChain = 16

// Errors of statements and chains.
var (
	// ErrMalformed means a statement does not follow the format.
	ErrMalformed = errors.New("malformed key rotation statement")
	// ErrBadSignature means a statement is not signed by its from key.
	ErrBadSignature = errors.New("key rotation statement not signed by the key it rotates")
)

// A Statement moves Target from the owner key From to the owner key To.
// Sequence orders the statements of one target: each one in a chain has a
// higher sequence than the one before.
type Statement struct {
	Target    string
	From, To  ed25519.PublicKey
	Sequence  uint64
	Signature [ed25519.SignatureSize]byte
}

// New returns the statement, signed by the old key, that moves target from
// old's public key to next.
func New(old ed25519.PrivateKey, next ed25519.PublicKey, target string, sequence uint64) (Statement, error) {
	s := Statement{Target: target, From: old.Public().(ed25519.PublicKey), To: next, Sequence: sequence}
	if err := s.check(); err != nil {
		return s, err
	}
	m := s.message()
	copy(s.Signature[:], ed25519.Sign(old, m[:]))
	return s, nil
}

func (s Statement) check() error {
	switch {
	case !region.ValidTarget(s.Target):
		return fmt.Errorf("%w: target %q (want GOOS/GOARCH)", ErrMalformed, s.Target)
	case len(s.From) != ed25519.PublicKeySize || len(s.To) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: keys must be %d bytes", ErrMalformed, ed25519.PublicKeySize)
	case s.From.Equal(s.To):
		return fmt.Errorf("%w: it rotates a key to itself", ErrMalformed)
	case s.Sequence == 0:
		return fmt.Errorf("%w: sequence must be 1 or more", ErrMalformed)
	}
	return nil
}

// message returns SHA-512(domain || target NUL-padded to 16 bytes || from
// || to || sequence as u64 little-endian): what the old key signs.
func (s Statement) message() [sha512.Size]byte {
	var t [region.TargetLen]byte
	copy(t[:], s.Target)
	h := sha512.New()
	h.Write([]byte(domain))
	h.Write(t[:])
	h.Write(s.From)
	h.Write(s.To)
	h.Write(binary.LittleEndian.AppendUint64(nil, s.Sequence))
	var m [sha512.Size]byte
	h.Sum(m[:0])
	return m
}

// Verify checks the statement's fields and that its From key signed it.
func (s Statement) Verify() error {
	if err := s.check(); err != nil {
		return err
	}
	m := s.message()
	if !ed25519.Verify(s.From, m[:], s.Signature[:]) {
		return ErrBadSignature
	}
	return nil
}

// MarshalText returns the statement's text form.
func (s Statement) MarshalText() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintln(&b, header)
	fmt.Fprintf(&b, "target: %s\n", s.Target)
	fmt.Fprintf(&b, "from: %s\n", region.EncodePublicKey(s.From))
	fmt.Fprintf(&b, "to: %s\n", region.EncodePublicKey(s.To))
	fmt.Fprintf(&b, "sequence: %d\n", s.Sequence)
	fmt.Fprintf(&b, "signature: %s\n", hex.EncodeToString(s.Signature[:]))
	return b.Bytes(), nil
}

// Parse reads one statement from its text form, at most MaxSize bytes. It
// does not verify the signature: see Verify.
func Parse(b []byte) (Statement, error) {
	var s Statement
	if len(b) > MaxSize {
		return s, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxSize)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	var lines []string
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) != 6 || lines[0] != header {
		return s, fmt.Errorf("%w: want the line %q and five fields", ErrMalformed, header)
	}
	fields := map[string]string{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return s, fmt.Errorf("%w: line %q", ErrMalformed, l)
		}
		fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	var err error
	s.Target = fields["target"]
	if s.From, err = region.ParsePublicKey(fields["from"]); err != nil {
		return s, fmt.Errorf("%w: from: %v", ErrMalformed, err)
	}
	if s.To, err = region.ParsePublicKey(fields["to"]); err != nil {
		return s, fmt.Errorf("%w: to: %v", ErrMalformed, err)
	}
	if s.Sequence, err = strconv.ParseUint(fields["sequence"], 10, 64); err != nil {
		return s, fmt.Errorf("%w: sequence: %v", ErrMalformed, err)
	}
	sig, err := hex.DecodeString(fields["signature"])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return s, fmt.Errorf("%w: signature: want %d hex digits", ErrMalformed, 2*ed25519.SignatureSize)
	}
	copy(s.Signature[:], sig)
	return s, s.check()
}

// Read reads one statement from r, at most MaxSize bytes.
func Read(r io.Reader) (Statement, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return Statement{}, err
	}
	return Parse(b)
}

// Follow returns the key that an app which trusts key for target trusts
// after the valid statements among stmts: it follows the chain from key,
// each step a statement for target from the key trusted so far, signed by
// it, with a higher sequence than the step before; when two statements
// would move the same key, the lower sequence wins (of equal ones, the
// first in stmts). A statement to a key the chain already held (the
// starting key or any key it moved through) is ignored: a chain never
// returns to a key it left. It returns the chain it followed, oldest first (none:
// key stays), at most MaxChain statements. Statements for other targets
// or keys, and forged ones, are ignored.
func Follow(key ed25519.PublicKey, target string, stmts []Statement) (ed25519.PublicKey, []Statement) {
	return Extend(key, target, nil, stmts)
}

// Resume returns what an app that runs with key and kept the chain kept
// (oldest first, as Extend returned it) passes to Extend: the key the
// chain started from and the chain, checked again. The chain may have been
// followed by a build for an earlier key, the one this build updated from:
// when it leads to key, it starts at that earlier key, so that the keys it
// left stay left for this build too (a build for B that came from A
// through A→B never follows B→A). Otherwise it is the part of kept that
// moves key on (see Follow).
func Resume(key ed25519.PublicKey, target string, kept []Statement) (ed25519.PublicKey, []Statement) {
	if len(kept) > 0 && !kept[0].From.Equal(key) {
		origin := kept[0].From
		_, chain := Follow(origin, target, kept)
		for _, s := range chain {
			if s.To.Equal(key) {
				return origin, chain
			}
		}
	}
	_, chain := Follow(key, target, kept)
	return key, chain
}

// Extend continues chain, a chain followed before from key (see Follow),
// with the valid statements among stmts, and returns the key trusted at
// its end and the whole chain. The steps taken before are never undone: a
// statement that would have moved an earlier key of the chain, even with
// a lower sequence, is ignored, so that whoever holds a retired key cannot
// move an app that already followed a chain away from it. Nor does a chain
// ever return to a key it left: a statement whose new key is the starting
// key or one the chain already moved through is ignored, so that A→B, B→A,
// A→X never reaches X.
func Extend(key ed25519.PublicKey, target string, chain []Statement, stmts []Statement) (ed25519.PublicKey, []Statement) {
	chain = slices.Clone(chain)
	visited := []ed25519.PublicKey{key}
	for _, s := range chain {
		visited = append(visited, s.To)
	}
	var seq uint64
	if len(chain) > 0 {
		key, seq = chain[len(chain)-1].To, chain[len(chain)-1].Sequence
	}
	left := func(k ed25519.PublicKey) bool {
		return slices.ContainsFunc(visited, func(v ed25519.PublicKey) bool { return v.Equal(k) })
	}
	for len(chain) < MaxChain {
		var next *Statement
		for i := range stmts {
			s := &stmts[i]
			if s.Target != target || !s.From.Equal(key) || s.Sequence <= seq || left(s.To) || s.Verify() != nil {
				continue
			}
			if next == nil || s.Sequence < next.Sequence {
				next = s
			}
		}
		if next == nil {
			break
		}
		chain = append(chain, *next)
		key, seq = next.To, next.Sequence
		visited = append(visited, key)
	}
	return key, chain
}
