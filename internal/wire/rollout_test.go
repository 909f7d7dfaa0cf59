package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/rollout"
)

func TestRolloutRequest(t *testing.T) {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	for _, want := range []Request{
		{Kind: KindRollout, Auth: Auth(pub, time.Unix(600, 0)), Target: "linux/amd64"},
		{Kind: KindRollout, Target: "linux/arm64", Report: Report{Running: "2.0.0"}},
		{Kind: KindRollout, Target: "linux/arm64", Report: Report{Running: "1.0.1", RolledBackFrom: "2.0.0-rc.1"}},
		{Kind: KindRollout, Target: "b/" + strings.Repeat("b", MaxTargetLen-2), Report: Report{RolledBackFrom: "3.0.0"}},
	} {
		b, err := want.Marshal()
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		if len(b) > MaxRequestLen {
			t.Errorf("request is %d bytes, limit %d", len(b), MaxRequestLen)
		}
		got, err := ReadRequest(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		if *got != want {
			t.Errorf("round trip: got %+v, want %+v", *got, want)
		}
	}
	// The longest report fits MaxRequestLen.
	long := strings.Repeat("9", 7) + "." + strings.Repeat("9", 4) + "." + strings.Repeat("9", 3)
	r := Request{Kind: KindRollout, Target: "b/" + strings.Repeat("b", MaxTargetLen-2), Report: Report{Running: long, RolledBackFrom: long}}
	if b, err := r.Marshal(); err != nil || len(b) > MaxRequestLen {
		t.Errorf("longest rollout request: %d bytes, %v; limit %d", len(b), err, MaxRequestLen)
	}

	good, _ := (&Request{Kind: KindRollout, Target: "linux/amd64", Report: Report{Running: "2.0.0", RolledBackFrom: "2.1.0"}}).Marshal()
	head := len(good) - (2 + len("2.0.0") + len("2.1.0"))
	withReport := func(rep ...byte) []byte { return append(append([]byte{}, good[:head]...), rep...) }
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"no report", good[:head]},
		{"report cut short", good[:len(good)-1]},
		{"running too long", withReport(region17()...)},
		{"not a version", withReport(3, 'a', 'b', 'c', 0)},
		{"not canonical", withReport(6, 'v', '2', '.', '0', '.', '0', 0)},
		{"control bytes", withReport(0, 2, '\n', '1')},
	} {
		if _, err := ReadRequest(bytes.NewReader(tt.b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", tt.name, err)
		}
	}
	if _, err := (&Request{Kind: KindRollout, Target: "linux/amd64", Report: Report{Running: "banana"}}).Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("marshalling a report that is no version: %v", err)
	}
}

// region17 returns a report frame whose first version is one byte too
// long.
func region17() []byte {
	return append([]byte{17}, "1.2.3-aaaaaaaaaaa"...)
}

// rolloutStatement returns a signed statement for target with sequence seq.
func rolloutStatement(t testing.TB, target string, seq uint64) rollout.Statement {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	st := rollout.Statement{Target: target, Sequence: seq, Issued: now, Expires: now.Add(time.Hour),
		Channels: []rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 25}},
		Yanks:    []rollout.Yank{{Version: "1.9.0", To: "1.8.2"}}}
	if err := st.Sign(priv); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRollouts(t *testing.T) {
	for _, n := range []int{0, 1, MaxRollouts} {
		var want []rollout.Statement
		for i := range n {
			want = append(want, rolloutStatement(t, "linux/amd64", uint64(i+1)))
		}
		var buf bytes.Buffer
		if err := WriteRollouts(&buf, want); err != nil {
			t.Fatal(err)
		}
		got, err := ReadRollouts(&buf)
		if err != nil {
			t.Fatalf("%d statements: %v", n, err)
		}
		if len(got) != n {
			t.Fatalf("got %d statements, want %d", len(got), n)
		}
		for i := range got {
			if !got[i].Equal(want[i]) {
				t.Errorf("statement %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
		if buf.Len() != 0 {
			t.Errorf("%d bytes left unread", buf.Len())
		}
	}
	var buf bytes.Buffer
	many := make([]rollout.Statement, MaxRollouts+2)
	for i := range many {
		many[i] = rolloutStatement(t, "linux/amd64", 1)
	}
	WriteRollouts(&buf, many)
	if got, err := ReadRollouts(&buf); err != nil || len(got) != MaxRollouts {
		t.Errorf("too many statements: read %d, %v; want %d", len(got), err, MaxRollouts)
	}

	text, _ := rolloutStatement(t, "linux/amd64", 1).MarshalText()
	checkStatementsMalformed(t, text, MaxRollouts, MaxRolloutLen, func(r io.Reader) error { _, err := ReadRollouts(r); return err },
		[]byte("rustpatcher-go rotation v1\n\n"))
	buf.Reset()
	WriteError(&buf, StatusBadRequest, "malformed request")
	if _, err := ReadRollouts(&buf); !errors.Is(err, ErrRefused) {
		t.Errorf("an older node's refusal: err = %v, want ErrRefused", err)
	}
}

func FuzzReadRollouts(f *testing.F) {
	var buf bytes.Buffer
	WriteRollouts(&buf, []rollout.Statement{rolloutStatement(f, "linux/amd64", 3), rolloutStatement(f, "windows/arm64", 9)})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteRollouts(&buf, nil)
	f.Add(buf.Bytes())
	f.Add([]byte{0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		stmts, err := ReadRollouts(cr)
		if cr.n > max(MaxErrorLen, 2+MaxRollouts*(2+MaxRolloutLen)) {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err != nil {
			return
		}
		if len(stmts) > MaxRollouts {
			t.Fatalf("%d statements", len(stmts))
		}
		for _, st := range stmts {
			if _, err := st.MarshalText(); err != nil {
				t.Fatalf("accepted a statement that does not encode: %v", err)
			}
		}
	})
}
