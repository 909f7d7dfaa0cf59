package rotation

import (
	"crypto/ed25519"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

func TestStatementRoundTrip(t *testing.T) {
	k0, k1 := regiontest.NewKey(t), regiontest.NewKey(t)
	s, err := New(k0.Private, k1.Public, "linux/amd64", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	b, _ := s.MarshalText()
	if !strings.HasPrefix(string(b), "rustpatcher-go key rotation v1\ntarget: linux/amd64\nfrom: "+k0.PublicText+"\nto: "+k1.PublicText+"\nsequence: 1\nsignature: ") {
		t.Errorf("text form:\n%s", b)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Target != s.Target || !got.From.Equal(s.From) || !got.To.Equal(s.To) || got.Sequence != 1 || got.Signature != s.Signature {
		t.Errorf("Parse(MarshalText) = %+v, want %+v", got, s)
	}
}

func TestVerifyRefuses(t *testing.T) {
	k0, k1, evil := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	good, _ := New(k0.Private, k1.Public, "linux/amd64", 1)
	tests := []struct {
		name   string
		change func(*Statement)
		want   error
	}{
		{"signed by another key", func(s *Statement) { *s, _ = New(evil.Private, k1.Public, "linux/amd64", 1); s.From = k0.Public }, ErrBadSignature},
		{"target changed", func(s *Statement) { s.Target = "linux/arm64" }, ErrBadSignature},
		{"new key changed", func(s *Statement) { s.To = evil.Public }, ErrBadSignature},
		{"sequence changed", func(s *Statement) { s.Sequence = 2 }, ErrBadSignature},
		{"to itself", func(s *Statement) { s.To = s.From }, ErrMalformed},
		{"no sequence", func(s *Statement) { s.Sequence = 0 }, ErrMalformed},
		{"bad target", func(s *Statement) { s.Target = "linux" }, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			s.From = append(ed25519.PublicKey(nil), good.From...)
			tt.change(&s)
			if err := s.Verify(); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	k0, k1 := regiontest.NewKey(t), regiontest.NewKey(t)
	s, _ := New(k0.Private, k1.Public, "linux/amd64", 3)
	b, _ := s.MarshalText()
	good := string(b)
	for name, text := range map[string]string{
		"empty":           "",
		"other header":    strings.Replace(good, "rotation v1", "rotation v9", 1),
		"bad key":         strings.Replace(good, k1.PublicText, "nope", 1),
		"bad sequence":    strings.Replace(good, "sequence: 3", "sequence: three", 1),
		"short signature": good[:len(good)-10] + "\n",
		"too long":        good + strings.Repeat("x", MaxSize),
		"missing field":   strings.Replace(good, "sequence: 3\n", "", 1),
	} {
		if _, err := Parse([]byte(text)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
}

func TestFollow(t *testing.T) {
	k0, k1, k2, evil := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	s01, _ := New(k0.Private, k1.Public, "linux/amd64", 1)
	s12, _ := New(k1.Private, k2.Public, "linux/amd64", 2)
	s0e, _ := New(k0.Private, evil.Public, "linux/amd64", 5) // later, same key
	forged, _ := New(evil.Private, evil.Public, "linux/amd64", 1)
	forged.From = k0.Public
	other, _ := New(k0.Private, evil.Public, "linux/arm64", 1)
	back, _ := New(k1.Private, k0.Public, "linux/amd64", 1) // sequence not above 1
	tests := []struct {
		name  string
		stmts []Statement
		want  ed25519.PublicKey
		chain int
	}{
		{"none", nil, k0.Public, 0},
		{"one", []Statement{s01}, k1.Public, 1},
		{"a chain, in any order", []Statement{s12, s01}, k2.Public, 2},
		{"a forged statement", []Statement{forged}, k0.Public, 0},
		{"another target", []Statement{other}, k0.Public, 0},
		{"the lower sequence wins", []Statement{s0e, s01}, k1.Public, 1},
		{"no way back", []Statement{s01, back}, k1.Public, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, chain := Follow(k0.Public, "linux/amd64", tt.stmts)
			if !got.Equal(tt.want) || len(chain) != tt.chain {
				t.Errorf("Follow = %x (chain of %d), want %x (chain of %d)", got[:4], len(chain), tt.want[:4], tt.chain)
			}
		})
	}
}

// mustNew returns the statement, signed by from, that moves target to to.
func mustNew(t *testing.T, from, to regiontest.Key, target string, seq uint64) Statement {
	t.Helper()
	s, err := New(from.Private, to.Public, target, seq)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNoWayBackToALeftKey: a chain never returns to a key it left, the
// starting key or one it moved through, whatever the sequences; a step
// that would is ignored, in Follow and in Extend, and the chain goes on
// by the next statement that does not return.
func TestNoWayBackToALeftKey(t *testing.T) {
	a, b, c, x := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	const target = "linux/amd64"
	st := func(from, to regiontest.Key, seq uint64) Statement { return mustNew(t, from, to, target, seq) }
	ab1, ba2, ax3 := st(a, b, 1), st(b, a, 2), st(a, x, 3)
	bc2, ca3, cb3, bx4, cx5 := st(b, c, 2), st(c, a, 3), st(c, b, 3), st(b, x, 4), st(c, x, 5)
	tests := []struct {
		name  string
		kept  []Statement // the chain followed before (Extend)
		stmts []Statement
		want  regiontest.Key
		steps int
	}{
		{"A→B, B→A, A→X stays on B", nil, []Statement{ab1, ba2, ax3}, b, 1},
		{"in any order", nil, []Statement{ax3, ba2, ab1}, b, 1},
		{"back to the start two steps on", nil, []Statement{ab1, bc2, ca3}, c, 2},
		{"back to a key moved through", nil, []Statement{ab1, bc2, cb3}, c, 2},
		{"a return is skipped for the next step", nil, []Statement{ab1, bc2, ca3, cx5}, x, 3},
		{"a lower return does not hide a forward step", nil, []Statement{ab1, ba2, bx4}, x, 2},
		{"Extend: back to the start", []Statement{ab1}, []Statement{ba2, ax3}, b, 1},
		{"Extend: back through a kept step", []Statement{ab1, bc2}, []Statement{cb3, bx4}, c, 2},
		{"Extend: forward still works", []Statement{ab1, bc2}, []Statement{cb3, cx5}, x, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, chain := Extend(a.Public, target, tt.kept, tt.stmts)
			if !got.Equal(tt.want.Public) || len(chain) != tt.steps {
				t.Errorf("Extend = %x (chain of %d), want %x (chain of %d)", got[:4], len(chain), tt.want.Public[:4], tt.steps)
			}
			if tt.kept == nil {
				if got, chain := Follow(a.Public, target, tt.stmts); !got.Equal(tt.want.Public) || len(chain) != tt.steps {
					t.Errorf("Follow = %x (chain of %d), want %x (chain of %d)", got[:4], len(chain), tt.want.Public[:4], tt.steps)
				}
			}
			seen := map[string]bool{string(a.Public): true}
			for _, s := range chain {
				if seen[string(s.To)] {
					t.Errorf("the chain returns to %x", s.To[:4])
				}
				seen[string(s.To)] = true
			}
		})
	}
}

// TestResume: a build for a later key of a chain, updated from a build
// that followed it, resumes the chain from where it started, so that the
// keys it left stay left; a kept chain that does not lead to the build's
// key is not its history.
func TestResume(t *testing.T) {
	a, b, c, x := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	const target = "linux/amd64"
	st := func(from, to regiontest.Key, seq uint64) Statement { return mustNew(t, from, to, target, seq) }
	ab1, bc2, ba2, ax3, cx3 := st(a, b, 1), st(b, c, 2), st(b, a, 2), st(a, x, 3), st(c, x, 3)
	tests := []struct {
		name   string
		build  regiontest.Key
		kept   []Statement
		origin regiontest.Key
		steps  int
		stmts  []Statement // offered next
		want   regiontest.Key
	}{
		{"nothing kept: B→A is a first step", b, nil, b, 0, []Statement{ba2, ax3}, x},
		{"the build for A itself", a, []Statement{ab1}, a, 1, []Statement{ba2, ax3}, b},
		{"the build for B that came from A", b, []Statement{ab1}, a, 1, []Statement{ba2, ax3}, b},
		{"the build for C, two steps on", c, []Statement{ab1, bc2}, a, 2, []Statement{cx3}, x},
		{"the build for B, a chain on past it", b, []Statement{ab1, bc2}, a, 2, []Statement{ba2}, c},
		{"a chain that does not lead here", c, []Statement{ab1}, c, 0, []Statement{cx3}, x},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			origin, kept := Resume(tt.build.Public, target, tt.kept)
			if !origin.Equal(tt.origin.Public) || len(kept) != tt.steps {
				t.Fatalf("Resume = %x (chain of %d), want %x (chain of %d)", origin[:4], len(kept), tt.origin.Public[:4], tt.steps)
			}
			if got, _ := Extend(origin, target, kept, tt.stmts); !got.Equal(tt.want.Public) {
				t.Errorf("then Extend = %x, want %x", got[:4], tt.want.Public[:4])
			}
		})
	}
}

// TestExtendKeepsTheChain: a chain once followed is only extended; a
// statement by a key it left, even with a lower sequence, moves nothing.
func TestExtendKeepsTheChain(t *testing.T) {
	k0, k1, k2, evil := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	s01, _ := New(k0.Private, k1.Public, "linux/amd64", 2)
	s12, _ := New(k1.Private, k2.Public, "linux/amd64", 3)
	leaked, _ := New(k0.Private, evil.Public, "linux/amd64", 1) // the leaked k0, lower sequence
	_, kept := Follow(k0.Public, "linux/amd64", []Statement{s01})

	key, chain := Extend(k0.Public, "linux/amd64", kept, []Statement{leaked})
	if !key.Equal(k1.Public) || len(chain) != 1 {
		t.Errorf("a leaked key's statement moved the chain: key %x, %d steps", key[:4], len(chain))
	}
	key, chain = Extend(k0.Public, "linux/amd64", kept, []Statement{leaked, s12})
	if !key.Equal(k2.Public) || len(chain) != 2 || chain[1].Signature != s12.Signature {
		t.Errorf("Extend = %x, %d steps; want k2 in 2", key[:4], len(chain))
	}
	if len(kept) != 1 {
		t.Error("Extend changed the chain it was given")
	}
	// Follow from scratch would take the lower sequence: that is why apps
	// extend what they kept.
	if key, _ := Follow(k0.Public, "linux/amd64", []Statement{s01, leaked}); !key.Equal(evil.Public) {
		t.Errorf("Follow took %x, want the lower sequence", key[:4])
	}
}

// FuzzParse checks that parsing untrusted statements never panics and that
// an accepted one survives a round trip.
func FuzzParse(f *testing.F) {
	k0, k1 := regiontest.NewKey(f), regiontest.NewKey(f)
	s, _ := New(k0.Private, k1.Public, "linux/amd64", 1)
	b, _ := s.MarshalText()
	f.Add(b)
	f.Add([]byte("rustpatcher-go key rotation v1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		out, _ := s.MarshalText()
		s2, err := Parse(out)
		if err != nil || s2.Target != s.Target || !s2.From.Equal(s.From) || s2.Sequence != s.Sequence {
			t.Fatalf("round trip: %v", err)
		}
		_ = s.Verify()
	})
}

// TestGolden checks the known-answer statement in testdata, also given in
// docs/FORMAT.md: the test-vector key (seed
// 5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o) moves linux/amd64
// to xobfxdf813f93u5mubhs6dgs53ee9zowymix8njqsdf4br1jmsuo, sequence 1.
// Ed25519 signatures are deterministic, so New must write it byte for
// byte.
func TestGolden(t *testing.T) {
	want, err := os.ReadFile("testdata/golden.rotation")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Verify(); err != nil {
		t.Fatalf("the golden statement does not verify: %v", err)
	}
	seed, err := region.ParseSecretKey("5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o")
	if err != nil {
		t.Fatal(err)
	}
	to, err := region.ParsePublicKey("xobfxdf813f93u5mubhs6dgs53ee9zowymix8njqsdf4br1jmsuo")
	if err != nil {
		t.Fatal(err)
	}
	made, err := New(seed, to, "linux/amd64", 1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := made.MarshalText()
	if string(got) != string(want) {
		t.Errorf("New wrote\n%s\nwant\n%s", got, want)
	}
}
