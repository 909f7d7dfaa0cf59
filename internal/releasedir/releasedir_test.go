package releasedir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/region"
)

func TestSkip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		skip bool
	}{
		{"app-2.0.0", false},
		{"app.exe", false},
		{"tmp", false},
		{"app.tmp.exe", false},
		{".rpseed.key", true},
		{".app-2.0.0", true},
		{"app-2.0.0.tmp", true},
		{"app-2.0.0.part", true},
		{"linux-amd64-1.rotation", true},
		{"linux-amd64.rollout", true},
	}
	for _, tt := range tests {
		if got := Skip(tt.name); got != tt.skip {
			t.Errorf("Skip(%q) = %v, want %v", tt.name, got, tt.skip)
		}
	}
}

func TestRotations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old, next := regiontest.NewKey(t), regiontest.NewKey(t)
	st, err := rotation.New(old.Private, next.Public, "linux/amd64", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := st.MarshalText()
	for name, body := range map[string][]byte{
		"linux-amd64-1.rotation": b,
		"bad.rotation":           []byte("not a statement\n"),
		".hidden.rotation":       []byte("not read\n"),
		"app-1.0.0":              []byte("a release, not a statement"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := New(dir).Rotations(context.Background())
	if len(got) != 1 || !got[0].To.Equal(next.Public) || got[0].Signature != st.Signature {
		t.Errorf("got %+v, want the one statement", got)
	}
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "bad.rotation")) || !errors.Is(err, rotation.ErrMalformed) {
		t.Errorf("err = %v, want the malformed file named", err)
	}
	// Statements are not releases.
	if ents, _ := New(dir).List(context.Background()); summary(ents) != "app-1.0.0=error*" {
		t.Errorf("List lists %s, want only app-1.0.0", summary(ents))
	}

	// A Dir that is one file has no statements, and no error.
	if got, err := New(filepath.Join(dir, "app-1.0.0")).Rotations(context.Background()); len(got) != 0 || err != nil {
		t.Errorf("single file: %v, %v", got, err)
	}
	if _, err := New(filepath.Join(dir, "missing")).Rotations(context.Background()); err == nil {
		t.Error("a missing directory gave no error")
	}
}

func TestRollouts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k := regiontest.NewKey(t)
	now := time.Now()
	st := rollout.Statement{Target: "linux/amd64", Sequence: 2, Issued: now, Expires: now.Add(time.Hour),
		Channels: []rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 25}}}
	if err := st.Sign(k.Private); err != nil {
		t.Fatal(err)
	}
	b, _ := st.MarshalText()
	for name, body := range map[string][]byte{
		"linux-amd64.rollout": b,
		"bad.rollout":         []byte("not a statement\n"),
		"huge.rollout":        append(b, make([]byte, rollout.MaxSize)...),
		".hidden.rollout":     []byte("not read\n"),
		"app-1.0.0":           []byte("a release, not a statement"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.rollout"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := New(dir).Rollouts(context.Background())
	if len(got) != 1 || !got[0].Equal(st) {
		t.Errorf("got %+v, want the one statement", got)
	}
	for _, name := range []string{"bad.rollout", "huge.rollout"} {
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, name)) || !errors.Is(err, rollout.ErrMalformed) {
			t.Errorf("err = %v, want %s named as malformed", err, name)
		}
	}
	// Statements are not releases.
	if ents, _ := New(dir).List(context.Background()); summary(ents) != "app-1.0.0=error*" {
		t.Errorf("List lists %s, want only app-1.0.0", summary(ents))
	}
	if got, err := New(filepath.Join(dir, "app-1.0.0")).Rollouts(context.Background()); len(got) != 0 || err != nil {
		t.Errorf("single file: %v, %v", got, err)
	}

	// At most MaxRolloutFiles are read.
	many := t.TempDir()
	for i := range MaxRolloutFiles + 3 {
		if err := os.WriteFile(filepath.Join(many, fmt.Sprintf("t%03d.rollout", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err = New(many).Rollouts(context.Background())
	if len(got) != MaxRolloutFiles || err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("%d statements read, err %v; want %d and a note of the rest", len(got), err, MaxRolloutFiles)
	}
}

// summary names each entry with what List found: "name=version",
// "name=unsigned" or "name=error", and a * if it was scanned by this List.
func summary(ents []Entry) string {
	var s []string
	for _, e := range ents {
		v := e.Info.Version
		switch {
		case e.Err != nil:
			v = "error"
		case v == "":
			v = "unsigned"
		}
		if e.Changed {
			v += "*"
		}
		s = append(s, e.Name+"="+v)
	}
	return strings.Join(s, " ")
}

func TestList(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	dir := t.TempDir()
	write := func(name, version string) string {
		p := filepath.Join(dir, name)
		regiontest.WriteBinary(t, p, 4000, uint64(len(name)), k, version)
		return p
	}
	a := write("a", "2.0.0")
	write("b", "3.0.0")
	write("unsigned", "")
	for _, skipped := range []string{".hidden", "copying.tmp", "download.part"} {
		write(skipped, "9.0.0")
	}
	write(filepath.Join("sub", "c"), "4.0.0")
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("no region here"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(a, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	d := New(dir)
	ctx := context.Background()

	// Each step changes the directory, then lists it.
	steps := []struct {
		name   string
		change func()
		want   string
	}{
		{"first listing scans every file", func() {}, "a=2.0.0* b=3.0.0* notes.txt=error* unsigned=unsigned*"},
		{"unchanged files are not scanned again", func() {}, "a=2.0.0 b=3.0.0 notes.txt=error unsigned=unsigned"},
		{"a file re-signed in place is scanned again", func() {
			// Same size, new contents and modification time.
			if _, err := region.SignFile(ctx, a, k.Private, "2.5.0", regiontest.Target); err != nil {
				t.Fatal(err)
			}
			future := time.Now().Add(time.Minute)
			if err := os.Chtimes(a, future, future); err != nil {
				t.Fatal(err)
			}
		}, "a=2.5.0* b=3.0.0 notes.txt=error unsigned=unsigned"},
		{"a new file is scanned", func() { write("d", "5.0.0") }, "a=2.5.0 b=3.0.0 d=5.0.0* notes.txt=error unsigned=unsigned"},
		{"a removed file is forgotten", func() {
			if err := os.Remove(filepath.Join(dir, "b")); err != nil {
				t.Fatal(err)
			}
		}, "a=2.5.0 d=5.0.0 notes.txt=error unsigned=unsigned"},
		{"a file put back is scanned again", func() { write("b", "3.0.0") }, "a=2.5.0 b=3.0.0* d=5.0.0 notes.txt=error unsigned=unsigned"},
	}
	for _, s := range steps {
		s.change()
		ents, err := d.List(ctx)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := summary(ents); got != s.want {
			t.Errorf("%s:\n got %s\nwant %s", s.name, got, s.want)
		}
	}
}

func TestEntryFields(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "app")
	in := regiontest.WriteBinary(t, p, 4000, 1, k, "2.0.0")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := New(dir).List(context.Background())
	if err != nil || len(ents) != 1 {
		t.Fatalf("List = %v, %v", ents, err)
	}
	e := ents[0]
	if e.Name != "app" || e.Path != p || e.Size != st.Size() || !e.ModTime.Equal(st.ModTime()) || e.Info != in || e.Err != nil {
		t.Errorf("entry = %+v, want %s, %d bytes, %v, version 2.0.0", e, p, st.Size(), st.ModTime())
	}
}

func TestEntryVerify(t *testing.T) {
	t.Parallel()
	k, other := regiontest.NewKey(t), regiontest.NewKey(t)
	tests := []struct {
		name    string
		write   func(t *testing.T, path string)
		wantErr error // nil: verifies as 2.0.0
	}{
		{"signed by the key", func(t *testing.T, p string) { regiontest.WriteBinary(t, p, 4000, 1, k, "2.0.0") }, nil},
		{"signed by another key", func(t *testing.T, p string) { regiontest.WriteBinary(t, p, 4000, 1, other, "2.0.0") }, region.ErrBadSignature},
		{"unsigned", func(t *testing.T, p string) { regiontest.WriteBinary(t, p, 4000, 1, k, "") }, region.ErrUnsigned},
		{"a byte flipped after signing", func(t *testing.T, p string) {
			regiontest.WriteBinary(t, p, 4000, 1, k, "2.0.0")
			regiontest.FlipByte(t, p, 10)
		}, region.ErrHashMismatch},
		{"truncated after signing", func(t *testing.T, p string) {
			regiontest.WriteBinary(t, p, 4000, 1, k, "2.0.0")
			if err := os.Truncate(p, 3000); err != nil {
				t.Fatal(err)
			}
		}, region.ErrSizeMismatch},
		{"no region", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, region.ErrNoRegion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "app")
			tt.write(t, p)
			ents, err := New(p).List(context.Background())
			if err != nil || len(ents) != 1 {
				t.Fatalf("List = %v, %v", ents, err)
			}
			in, err := ents[0].Verify(k.Public)
			if tt.wantErr == nil {
				if err != nil || in.Version != "2.0.0" {
					t.Fatalf("Verify = %v, %v; want 2.0.0", in.Version, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), p) {
				t.Errorf("Verify error = %v, want %v naming %s", err, tt.wantErr, p)
			}
		})
	}
}

func TestListPaths(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	dir := t.TempDir()
	file := filepath.Join(dir, ".hidden.tmp") // a named file is listed whatever its name
	regiontest.WriteBinary(t, file, 4000, 1, k, "2.0.0")
	tests := []struct {
		name    string
		path    string
		want    string
		wantErr error
	}{
		{"a regular file is listed alone", file, ".hidden.tmp=2.0.0*", nil},
		{"an empty directory", t.TempDir(), "", nil},
		{"a missing path", filepath.Join(dir, "missing"), "", os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ents, err := New(tt.path).List(context.Background())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.path) {
					t.Fatalf("List error = %v, want %v naming %s", err, tt.wantErr, tt.path)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(ents); got != tt.want {
				t.Errorf("List = %q, want %q", got, tt.want)
			}
		})
	}
	if st, err := os.Stat(os.DevNull); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		if _, err := New(os.DevNull).List(context.Background()); err == nil || !strings.Contains(err.Error(), "neither a directory nor a regular file") {
			t.Errorf("List(%s) = %v, want an error", os.DevNull, err)
		}
	}
}

// TestListCanceled checks that a List stopped by its context returns the
// context's error and leaves the cache as it was: the files are reported
// as changed by the next List.
func TestListCanceled(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	dir := t.TempDir()
	regiontest.WriteBinary(t, filepath.Join(dir, "a"), 4000, 1, k, "2.0.0")
	d := New(dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.List(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with a canceled context = %v", err)
	}
	ents, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(ents); got != "a=2.0.0*" {
		t.Errorf("List after a canceled one = %q, want a=2.0.0*", got)
	}
}

// TestHostileFiles: a file longer than any release (a sparse 1 TiB one) is
// listed with ErrTooLarge without being read, a sparse 32 GiB one as
// holding no region, and a release with zeros
// after its content (a length its region rules out) with ErrSizeMismatch;
// the genuine release beside them is listed, and a second List scans
// nothing again.
func TestHostileFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := regiontest.NewKey(t)
	regiontest.WriteBinary(t, filepath.Join(dir, "app-2.0.0"), 300_000, 1, key, "2.0.0")
	padded := filepath.Join(dir, "app-3.0.0")
	in := regiontest.WriteBinary(t, padded, 300_000, 2, key, "3.0.0")
	if err := os.Truncate(padded, in.ContentLen()+region.MaxTail(in.ContentLen())); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 1<<40); err != nil {
		t.Skipf("no sparse 1 TiB file here: %v", err)
	}
	// Not too large to be a release, but all holes: the pass that
	// locates the region skips them (on Linux).
	holes := filepath.Join(dir, "holes")
	if err := os.WriteFile(holes, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(holes, 32<<30); err != nil {
		t.Fatal(err)
	}
	d := New(dir)
	for round := range 2 {
		ents, err := d.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 4 {
			t.Fatalf("listed %d files, want 4", len(ents))
		}
		byName := map[string]Entry{}
		for _, e := range ents {
			byName[e.Name] = e
			if e.Changed != (round == 0) {
				t.Errorf("round %d: %s Changed = %v", round, e.Name, e.Changed)
			}
		}
		if e := byName["app-2.0.0"]; e.Err != nil || e.Info.Version != "2.0.0" {
			t.Errorf("the genuine release: %+v", e)
		}
		if e := byName["holes"]; !errors.Is(e.Err, region.ErrNoRegion) {
			t.Errorf("the 32 GiB sparse file: %v, want ErrNoRegion", e.Err)
		}
		if e := byName["huge"]; !errors.Is(e.Err, ErrTooLarge) || !strings.Contains(e.Err.Error(), huge) {
			t.Errorf("the 1 TiB file: %v, want ErrTooLarge naming it", e.Err)
		}
		if e := byName["app-3.0.0"]; !errors.Is(e.Err, region.ErrSizeMismatch) || !strings.Contains(e.Err.Error(), padded) || e.Info.Version != "3.0.0" {
			t.Errorf("the padded release: %v (region %q), want ErrSizeMismatch naming it, and the 3.0.0 it claims to be", e.Err, e.Info.Version)
		}
	}
}
