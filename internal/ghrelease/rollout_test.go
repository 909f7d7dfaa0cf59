package ghrelease

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/target"
)

// signedRollout returns the text of a statement of key for target with
// sequence seq, issued at issued and fresh for life.
func signedRollout(t *testing.T, key regiontest.Key, tg target.Target, seq uint64, issued time.Time, life time.Duration) []byte {
	t.Helper()
	st := rollout.Statement{Target: tg.String(), Sequence: seq, Issued: issued, Expires: issued.Add(life),
		Channels: []rollout.Channel{{Name: "stable", Version: "1.0.0", Percent: int(seq)}}}
	if err := st.Sign(key.Private); err != nil {
		t.Fatal(err)
	}
	b, _ := st.MarshalText()
	return b
}

// TestPollerRollouts runs the publisher and the poller against
// ghreleasetest, a local server speaking GitHub's REST shapes, as GitHub
// cannot be reached from tests: statements attached to releases reach the
// seed's directory, the newest that verifies with the target's key only.
func TestPollerRollouts(t *testing.T) {
	t.Parallel()
	srv := ghreleasetest.NewServer(t)
	key, evil := regiontest.NewKey(t), regiontest.NewKey(t)
	publish(t, srv, map[target.Target]regiontest.Key{linuxAMD64: key}, "1.0.0")
	dir, local := t.TempDir(), t.TempDir()
	now := time.Now()

	// The publisher attaches a statement, and refuses a forged one.
	pub := &Publisher{Client: newClient(t, srv), Repo: Repo{"org", "app"}, Log: testLogger(t)}
	s1 := filepath.Join(local, "one.rollout")
	os.WriteFile(s1, signedRollout(t, key, linuxAMD64, 1, now, time.Hour), 0o644)
	if err := pub.PublishRollouts(context.Background(), "v1.0.0", []string{s1}); err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(local, "forged.rollout")
	os.WriteFile(forged, bytes.Replace(signedRollout(t, key, linuxAMD64, 2, now, time.Hour), []byte("percent=2"), []byte("percent=9"), 1), 0o644)
	if err := pub.PublishRollouts(context.Background(), "v1.0.0", []string{forged}); err == nil {
		t.Error("PublishRollouts published a forged statement")
	}
	if a := srv.Assets(repo, "v1.0.0"); !bytes.Equal(a["linux-amd64.rollout"], mustRead(t, s1)) {
		t.Fatalf("release assets lack the statement: %v", a)
	}

	p := &Poller{Client: newClient(t, srv), Repo: Repo{"org", "app"}, Dir: dir, Interval: time.Minute, Log: testLogger(t),
		Keys: map[target.Target]ed25519.PublicKey{linuxAMD64: key.Public}}
	held := func() uint64 {
		t.Helper()
		if _, err := p.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(dir, "linux-amd64.rollout"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		st, err := rollout.Read(f)
		if err != nil || st.Verify() != nil {
			t.Fatalf("the statement placed: %v", err)
		}
		return st.Sequence
	}
	if s := held(); s != 1 {
		t.Fatalf("sequence %d placed, want 1", s)
	}

	// A newer release carries a forged statement, one by another key, one
	// for another target and an expired one: none is placed. Then the
	// statement on the old release is replaced with sequence 3.
	srv.AddRelease(repo, "v1.1.0")
	srv.AddAsset(repo, "v1.1.0", "linux-amd64.rollout", mustRead(t, forged))
	if s := held(); s != 1 {
		t.Errorf("after a forged statement: sequence %d, want 1", s)
	}
	for i, b := range [][]byte{
		signedRollout(t, evil, linuxAMD64, 5, now, time.Hour),
		signedRollout(t, key, linuxARM64, 5, now, time.Hour),
		signedRollout(t, key, linuxAMD64, 5, now.Add(-2*time.Hour), time.Hour),
		bytes.Repeat([]byte("x"), rollout.MaxSize+1),
	} {
		srv.AddAsset(repo, "v1.1.0", "linux-amd64.rollout", b)
		if s := held(); s != 1 {
			t.Errorf("bad statement %d: sequence %d placed, want 1", i, s)
		}
	}
	srv.AddAsset(repo, "v1.0.0", "linux-amd64.rollout", signedRollout(t, key, linuxAMD64, 3, now, time.Hour))
	if s := held(); s != 3 {
		t.Errorf("sequence %d placed, want 3", s)
	}
	// An older one, wherever it is, does not replace it.
	srv.AddAsset(repo, "v1.1.0", "linux-amd64.rollout", signedRollout(t, key, linuxAMD64, 2, now, time.Hour))
	if s := held(); s != 3 {
		t.Errorf("after an older statement: sequence %d, want 3", s)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
