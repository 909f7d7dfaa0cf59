package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/internal/wire"
)

// rotate returns the statement moving target from old to next.
func rotate(t testing.TB, old, next regiontest.Key, target string, seq uint64) rotation.Statement {
	t.Helper()
	st, err := rotation.New(old.Private, next.Public, target, seq)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// keysOf names the keys a chain moves through, for messages and
// comparisons: "from>to from>to".
func keysOf(stmts []rotation.Statement) string {
	var s []string
	for _, st := range stmts {
		s = append(s, string(st.From[:4])+">"+string(st.To[:4]))
	}
	return strings.Join(s, " ")
}

func TestRotationsFromBootstrapPeer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k0, k1, k2, other := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	chain := []rotation.Statement{rotate(t, k0, k1, testTarget, 1), rotate(t, k1, k2, testTarget, 2)}
	unrelated := rotate(t, other, k1, "windows/amd64", 1)

	seed := newTestNode(t, Config{})
	if err := seed.ServeRotations(ctx, append(chain, unrelated)); err != nil {
		t.Fatal(err)
	}
	// Served twice: nothing changes.
	if err := seed.ServeRotations(ctx, chain); err != nil {
		t.Fatal(err)
	}
	forged := rotate(t, other, k2, testTarget, 3)
	forged.From = k0.Public
	if err := seed.ServeRotations(ctx, []rotation.Statement{forged}); err == nil || !strings.Contains(err.Error(), testTarget) {
		t.Errorf("serving a forged statement: err = %v, want a refusal naming the target", err)
	}
	client := newTestNode(t, Config{}, seed)

	for _, tt := range []struct {
		name   string
		key    ed25519.PublicKey
		target string
		want   []rotation.Statement
	}{
		{"from the first key", k0.Public, testTarget, chain},
		{"from the second key", k1.Public, testTarget, chain[1:]},
		{"from the last key", k2.Public, testTarget, nil},
		{"another target", k0.Public, "linux/arm64", nil},
		{"a key nobody rotated", regiontest.NewKey(t).Public, testTarget, nil},
	} {
		got, err := client.Source(tt.key, tt.target).Rotations(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if keysOf(got) != keysOf(tt.want) {
			t.Errorf("%s: got chain %q, want %q", tt.name, keysOf(got), keysOf(tt.want))
		}
	}
	if s := client.strikes.of(seed.ID()); s != 0 {
		t.Errorf("the honest seed has %d strikes", s)
	}
}

// TestRotationsFoundThroughDHT: a seed that serves only a statement, no
// release, announces the old key's channel; a client that looked the
// channel up asks it.
func TestRotationsFoundThroughDHT(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	k0, k1 := regiontest.NewKey(t), regiontest.NewKey(t)
	st := rotate(t, k0, k1, testTarget, 1)
	boot := newTestNode(t, Config{})
	holder := newTestNode(t, Config{}, boot)
	if err := holder.ServeRotations(ctx, []rotation.Statement{st}); err != nil {
		t.Fatal(err)
	}
	client := newTestNode(t, Config{}, boot)
	src := client.Source(k0.Public, testTarget)
	var got []rotation.Statement
	for i := 0; i < 100 && len(got) == 0; i++ {
		// Releases looks the channel up and connects to its providers,
		// which answer that they have no release.
		rels, err := src.Releases(ctx)
		if err != nil || len(rels) != 0 {
			t.Fatalf("Releases = %v, %v; want none", rels, err)
		}
		if got, err = src.Rotations(ctx); err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(got) != 1 || got[0].Signature != st.Signature {
		t.Fatalf("got %d statements, want the holder's", len(got))
	}
}

func TestHostileRotations(t *testing.T) {
	t.Parallel()
	k0, k1, evil := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	good := rotate(t, k0, k1, testTarget, 1)
	forged := rotate(t, evil, k1, testTarget, 1)
	forged.From = k0.Public
	otherTarget := rotate(t, k0, k1, "darwin/arm64", 1)
	answer := func(stmts ...rotation.Statement) []byte {
		var buf bytes.Buffer
		wire.WriteRotations(&buf, stmts)
		return buf.Bytes()
	}
	tests := []struct {
		name   string
		answer []byte
		struck bool
	}{
		{"forged", answer(good, forged), true},
		{"another target", answer(otherTarget), true},
		{"garbage", append([]byte{0, 1, 100, 0}, junk(100)...), true},
		{"too many", []byte{0, wire.MaxRotations + 1}, true},
		{"busy", []byte{1, 0}, false},
		{"none", answer(), false},
		{"bad request", []byte{3, 0}, false},
	}
	seed := newTestNode(t, Config{})
	if err := seed.ServeRotations(context.Background(), []rotation.Statement{good}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			liar := newLiar(t, k0.Public, tt.answer)
			client := newTestNode(t, Config{IdleTimeout: time.Second}, liar, seed)
			got, err := client.Source(k0.Public, testTarget).Rotations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Only the seed's statement counts, whatever the liar said.
			key, chain := rotation.Follow(k0.Public, testTarget, got)
			if !key.Equal(k1.Public) || len(chain) != 1 || chain[0].Signature != good.Signature {
				t.Errorf("followed %q, want the seed's one statement", keysOf(chain))
			}
			if s := client.strikes.of(liar.ID()); (s > 0) != tt.struck {
				t.Errorf("liar has %d strikes; want strikes %v", s, tt.struck)
			}
			if s := client.strikes.of(seed.ID()); s != 0 {
				t.Errorf("the seed has %d strikes", s)
			}
		})
	}
}
