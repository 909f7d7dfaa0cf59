package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"testing"

	"github.com/org/rustpatcher-go/internal/rotation"
)

// rotationChain returns n statements for target, each signed by the key
// the one before moved to.
func rotationChain(t testing.TB, target string, n int) []rotation.Statement {
	t.Helper()
	var out []rotation.Statement
	_, old, _ := ed25519.GenerateKey(nil)
	for i := range n {
		next, nextPriv, _ := ed25519.GenerateKey(nil)
		st, err := rotation.New(old, next, target, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
		old = nextPriv
	}
	return out
}

func TestRotations(t *testing.T) {
	for _, n := range []int{0, 1, 3, MaxRotations} {
		want := rotationChain(t, "linux/amd64", n)
		var buf bytes.Buffer
		if err := WriteRotations(&buf, want); err != nil {
			t.Fatal(err)
		}
		got, err := ReadRotations(&buf)
		if err != nil {
			t.Fatalf("%d statements: %v", n, err)
		}
		if len(got) != n {
			t.Fatalf("got %d statements, want %d", len(got), n)
		}
		for i := range got {
			if !got[i].From.Equal(want[i].From) || !got[i].To.Equal(want[i].To) || got[i].Signature != want[i].Signature || got[i].Sequence != want[i].Sequence {
				t.Errorf("statement %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
		if buf.Len() != 0 {
			t.Errorf("%d bytes left unread", buf.Len())
		}
	}

	// A writer never sends more than MaxRotations.
	var buf bytes.Buffer
	WriteRotations(&buf, rotationChain(t, "linux/amd64", MaxRotations+2))
	if got, err := ReadRotations(&buf); err != nil || len(got) != MaxRotations {
		t.Errorf("too many statements: read %d, %v; want %d", len(got), err, MaxRotations)
	}

	one := rotationChain(t, "linux/amd64", 1)
	text, _ := one[0].MarshalText()
	checkStatementsMalformed(t, text, MaxRotations, MaxRotationLen, func(r io.Reader) error { _, err := ReadRotations(r); return err })
	// A refusal is the peer's status, not a malformed answer.
	buf.Reset()
	WriteError(&buf, StatusNotFound, "none")
	if _, err := ReadRotations(&buf); !errors.Is(err, ErrNotFound) {
		t.Errorf("not found: err = %v", err)
	}
}

func FuzzReadRotations(f *testing.F) {
	var buf bytes.Buffer
	WriteRotations(&buf, rotationChain(f, "linux/amd64", 2))
	f.Add(buf.Bytes())
	buf.Reset()
	WriteRotations(&buf, nil)
	f.Add(buf.Bytes())
	f.Add([]byte{0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		stmts, err := ReadRotations(cr)
		if cr.n > max(MaxErrorLen, 2+MaxRotations*(2+MaxRotationLen)) {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err != nil {
			return
		}
		if len(stmts) > MaxRotations {
			t.Fatalf("%d statements", len(stmts))
		}
		for _, st := range stmts {
			if _, err := st.MarshalText(); err != nil {
				t.Fatalf("accepted a statement that does not encode: %v", err)
			}
		}
	})
}
