package wire

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/org/rustpatcher-go/internal/rotation"
)

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
