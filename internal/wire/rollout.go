package wire

import (
	"fmt"
	"io"

	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/region"
)

// KindRollout asks for the rollout statement the peer holds for a target,
// signed by the owner key of the protocol, and tells the peer what the
// asking node runs (see Report). It is numbered apart from the other
// kinds. A node of an older release refuses it with StatusBadRequest,
// which the asking node takes as "no statement".
const KindRollout Kind = 16

// Limits of a rollout answer.
const (
	// MaxRollouts is the most statements a rollout answer carries.
	MaxRollouts = 4
	// MaxRolloutLen is the longest statement it carries.
	MaxRolloutLen = rollout.MaxSize
	// MaxReportLen is the longest report a rollout request carries.
	MaxReportLen = 2 + 2*region.VersionLen
)

// A Report is what a node says about itself in its rollout requests, for
// the owner's view of the fleet: the version it runs and the version it
// last rolled back from (empty for none). Nothing authenticates them: a
// peer may report anything, so they are counts to watch, not facts. Each
// is empty or a version in canonical form, at most region.VersionLen
// bytes:
//
//	running length (1) | running | rolled-back-from length (1) | rolled-back-from
type Report struct {
	Running        string
	RolledBackFrom string
}

// Check reports whether the versions of r are empty or in canonical form.
func (r Report) Check() error {
	for _, v := range []string{r.Running, r.RolledBackFrom} {
		if v == "" {
			continue
		}
		c, err := region.ParseVersion(v)
		if err != nil || c != v || len(v) > region.VersionLen {
			return fmt.Errorf("%w: reported version %q is not a version in canonical form", ErrMalformed, printable([]byte(v)))
		}
	}
	return nil
}

// append appends the report's frame to b.
func (r Report) append(b []byte) []byte {
	b = append(b, byte(len(r.Running)))
	b = append(b, r.Running...)
	b = append(b, byte(len(r.RolledBackFrom)))
	return append(b, r.RolledBackFrom...)
}

// readReport reads a report frame: at most MaxReportLen bytes. The
// versions are checked by Report.Check.
func readReport(r io.Reader) (Report, error) {
	var out Report
	for _, v := range []*string{&out.Running, &out.RolledBackFrom} {
		var l [1]byte
		if err := readFull(r, l[:], "report"); err != nil {
			return Report{}, err
		}
		if l[0] > region.VersionLen {
			return Report{}, fmt.Errorf("%w: a reported version of %d bytes, at most %d", ErrMalformed, l[0], region.VersionLen)
		}
		var b [region.VersionLen]byte
		if err := readFull(r, b[:l[0]], "report"); err != nil {
			return Report{}, err
		}
		*v = string(b[:l[0]])
	}
	return out, nil
}

// WriteRollouts writes a rollout answer: status OK (1) | count (1) | for
// each statement, its length (u16 LE) and its text form (see
// rollout.Statement.MarshalText). It writes at most MaxRollouts
// statements.
func WriteRollouts(w io.Writer, stmts []rollout.Statement) error {
	return writeStatements(w, stmts, MaxRollouts)
}

// ReadRollouts reads a rollout answer: at most MaxRollouts statements of at
// most MaxRolloutLen bytes each. A statement that does not parse makes the
// answer malformed; signatures, keys and targets are not checked here (see
// rollout.Check).
func ReadRollouts(r io.Reader) ([]rollout.Statement, error) {
	return readStatements(r, "rollout", MaxRollouts, MaxRolloutLen, rollout.Parse)
}
