package client

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/region"
)

// writeRotation puts a statement moving this target from old to next into
// the rig's release directory.
func (r *rig) writeRotation(name string, old regiontest.Key, next regiontest.Key, seq uint64) {
	r.t.Helper()
	s, err := rotation.New(old.Private, next.Public, runningTarget, seq)
	if err != nil {
		r.t.Fatal(err)
	}
	b, _ := s.MarshalText()
	if err := os.WriteFile(filepath.Join(r.rels, name+rotationSuffix), b, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// TestKeyRotation: a release signed with a new key is taken once a
// statement signed by the program's key moves the target to it; from then
// on a release signed with the old key is refused, also after a restart
// with the statement gone.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	next := regiontest.NewKey(t)
	r.release("new-2.0.0", 2, next, "2.0.0")

	// Without a statement, the new key's release is refused.
	u := r.spawn(r.config())
	r.waitEvent(0, EventRejected, func(e Event) bool { return e.Release.Version == "2.0.0" })
	u.Close()

	r.writeRotation("rotate", r.key, next, 1)
	os.Remove(filepath.Join(r.rels, "new-2.0.0"))
	r.release("old-3.0.0", 3, r.key, "3.0.0") // signed with the retired key
	r.events = nil
	u = r.spawn(r.config())
	e, _ := r.waitEvent(0, EventKeyRotated, nil)
	if e.Key != next.PublicText {
		t.Errorf("rotated to %s, want %s", e.Key, next.PublicText)
	}
	r.waitEvent(0, EventRejected, func(e Event) bool {
		return e.Release.Version == "3.0.0" && errors.Is(e.Err, ErrRotatedKey)
	})
	u.Close()

	// Restarted, with the statement gone: the new key is still the only
	// one trusted, and its release is applied.
	os.Remove(filepath.Join(r.rels, "rotate"+rotationSuffix))
	r.release("new-2.1.0", 4, next, "2.1.0")
	r.events = nil
	r.spawn(r.config())
	r.waitEvent(0, EventRejected, func(e Event) bool {
		return e.Release.Version == "3.0.0" && errors.Is(e.Err, ErrRotatedKey)
	})
	e, _ = r.waitEvent(0, EventApplied, nil)
	if e.Release.Version != "2.1.0" {
		t.Errorf("applied %s, want 2.1.0", e.Release.Version)
	}
}

// TestForgedRotation: a statement for this program's key signed by another
// key moves nothing.
func TestForgedRotation(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	evil := regiontest.NewKey(t)
	s, err := rotation.New(evil.Private, evil.Public, runningTarget, 1)
	if err == nil {
		t.Fatal("a statement rotating a key to itself was made")
	}
	other := regiontest.NewKey(t)
	s, _ = rotation.New(evil.Private, other.Public, runningTarget, 1)
	s.From = r.key.Public // claims to move the program's key
	b, _ := s.MarshalText()
	if err := os.WriteFile(filepath.Join(r.rels, "forged"+rotationSuffix), b, 0o644); err != nil {
		t.Fatal(err)
	}
	r.release("p", 2, other, "2.0.0")
	r.spawn(r.config())
	e, _ := r.waitEvent(0, EventRejected, func(e Event) bool { return e.Release.Version == "2.0.0" })
	if !errors.Is(e.Err, region.ErrBadSignature) {
		t.Errorf("rejected with %v, want a bad signature", e.Err)
	}
	if n := r.countEvents(EventKeyRotated); n != 0 {
		t.Error("a forged statement rotated the key")
	}
}

// TestRetiredKeyCannotMoveBack: once the program followed a statement, one
// signed by the key it left (a leaked key), even with a lower sequence,
// moves nothing, and that key's releases stay refused.
func TestRetiredKeyCannotMoveBack(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	next, evil := regiontest.NewKey(t), regiontest.NewKey(t)
	r.writeRotation("rotate", r.key, next, 2)
	u := r.spawn(r.config())
	r.waitEvent(0, EventKeyRotated, nil)
	u.Close()

	r.writeRotation("leak", r.key, evil, 1)
	r.release("evil-5.0.0", 5, evil, "5.0.0")
	r.events = nil
	r.spawn(r.config())
	e, _ := r.waitEvent(0, EventRejected, func(e Event) bool { return e.Release.Version == "5.0.0" })
	if !errors.Is(e.Err, region.ErrBadSignature) {
		t.Errorf("5.0.0 rejected with %v, want a bad signature", e.Err)
	}
	if n := r.countEvents(EventKeyRotated); n != 0 {
		t.Errorf("the retired key's statement rotated the key again (%d events)", n)
	}
}

// TestRotationRetriesKeyRefusals: a release refused only because it is not
// signed by the trusted key is judged again once a statement moves the
// trust to its key, in the same run, without the file being touched.
func TestRotationRetriesKeyRefusals(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	next := regiontest.NewKey(t)
	r.release("new-2.0.0", 2, next, "2.0.0")
	u := r.spawn(r.config())
	e, i := r.waitEvent(0, EventRejected, func(e Event) bool { return e.Release.Version == "2.0.0" })
	if !errors.Is(e.Err, region.ErrBadSignature) {
		t.Fatalf("2.0.0 rejected with %v, want a bad signature", e.Err)
	}

	r.writeRotation("rotate", r.key, next, 1)
	u.Check()
	r.waitEvent(i, EventKeyRotated, nil)
	e, _ = r.waitEvent(i, EventApplied, nil)
	if e.Release.Version != "2.0.0" {
		t.Errorf("applied %s, want 2.0.0", e.Release.Version)
	}
}
