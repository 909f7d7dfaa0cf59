package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/target"
)

// signedStatement returns the text of a statement for this target by key,
// of sequence seq, fresh for a week, putting stable on version v for all
// nodes.
func signedStatement(t *testing.T, key regiontest.Key, seq uint64, v string) []byte {
	t.Helper()
	s := rollout.Statement{Target: runningTarget, Sequence: seq, Issued: time.Now().Add(-time.Minute), Expires: time.Now().Add(7 * 24 * time.Hour),
		Channels: []rollout.Channel{{Name: "stable", Version: v, Percent: 100}}}
	if err := s.Sign(key.Private); err != nil {
		t.Fatal(err)
	}
	b, err := s.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// held reports whether e is the rejection of version v held back by a
// rollout statement.
func held(v string) func(Event) bool {
	return func(e Event) bool { return e.Release.Version == v && errors.Is(e.Err, errRolloutHold) }
}

// TestMirrorRollout: an HTTPS mirror laid out with the target's rollout
// statement (rpsign publish --out) holds a release back as the statement
// says; a new statement put in the mirror's directory, with the manifest
// unchanged (rpsign rollout --out on the mirror), is read at the next
// poll and lets the release through.
func TestMirrorRollout(t *testing.T) {
	t.Parallel()
	m := newMirrorRig(t)
	name := rollout.FileName(runningTarget)
	first := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(first, signedStatement(t, m.key, 1, "1.0.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.publishWith(m.key, "2.0.0", 300_000, 2, first)
	u := m.spawn(m.config())
	_, i := m.waitEvent(0, EventRejected, held("2.0.0"))

	// Replaced in place; an mtime in the future, so that the mirror's
	// Last-Modified (whole seconds) changes however fast this runs.
	p := filepath.Join(m.dir, name)
	if err := os.WriteFile(p, signedStatement(t, m.key, 2, "2.0.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, time.Now().Add(2*time.Second), time.Now().Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	u.Check()
	m.waitEvent(i, EventApplied, func(e Event) bool { return e.Release.Version == "2.0.0" })
	if n := strings.Count(strings.Join(m.requestList(), "\n"), "/"+name+" "); n < 2 {
		t.Errorf("the statement was fetched %d times, want one per poll: %v", n, m.requestList())
	}
}

// TestGitHubRollout: the rollout statement attached to the latest GitHub
// release (as the Action's rollout input does, without a new manifest)
// is read from that release's downloads and obeyed; a repository
// without one updates as before (TestGitHubSource). The GitHub server is
// the local fake of its download links.
func TestGitHubRollout(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	gh := ghreleasetest.NewServer(t)
	bin := filepath.Join(t.TempDir(), "prog_"+target.Current().OS+"_"+target.Current().Arch)
	in := regiontest.WriteBinary(t, bin, 300_000, 2, r.key, "2.0.0")
	assets, err := ghrelease.Layout(context.Background(), []ghrelease.Signed{{Path: bin, Target: target.Current(), Info: in, PublicKey: r.key.Public}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gh.AddRelease("org/app", "v2.0.0")
	for _, a := range assets {
		b := a.Data
		if a.Path != "" {
			b, _ = os.ReadFile(a.Path)
		}
		gh.AddAsset("org/app", "v2.0.0", a.Name, b)
	}
	gh.AddAsset("org/app", "v2.0.0", rollout.FileName(runningTarget), signedStatement(t, r.key, 1, "1.0.0"))
	src, err := SourceFromURL("github:org/app?base=" + gh.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.config()
	cfg.Sources = []Source{src}
	r.spawn(cfg)
	r.waitEvent(0, EventRejected, held("2.0.0"))
	if n := r.countEvents(EventApplied); n != 0 {
		t.Errorf("%d updates applied against the statement", n)
	}
	want := "GET /org/app/releases/download/v2.0.0/" + rollout.FileName(runningTarget)
	if reqs := strings.Join(gh.Requests(), "\n"); !strings.Contains(reqs, want) {
		t.Errorf("no request %q: %s", want, reqs)
	}
}
