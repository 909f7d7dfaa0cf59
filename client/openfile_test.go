package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/org/rustpatcher-go/internal/checked"
)

// writingRelease is a Release whose download writes the file itself
// (fileOpener), as the network's does: OpenFile writes the bytes into the
// caller's file at their offsets before its reader returns them; with
// failAt, its reader fails there with checked.ErrWrite, as the network's
// does when the disk is full.
type writingRelease struct {
	claimingRelease
	failAt           int64 // > 0: the reader fails there
	opens, fileOpens int
}

func (r *writingRelease) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	r.opens++
	return r.claimingRelease.Open(ctx, off)
}

func (r *writingRelease) OpenFile(_ context.Context, f *os.File, off int64) (io.ReadCloser, error) {
	r.fileOpens++
	end := int64(len(r.data))
	if r.failAt > 0 {
		end = r.failAt
	}
	if _, err := f.WriteAt(r.data[off:end], off); err != nil {
		return nil, err
	}
	var rd io.Reader = bytes.NewReader(r.data[off:end])
	if r.failAt > 0 {
		rd = io.MultiReader(rd, errReader{fmt.Errorf("%w: disk full", checked.ErrWrite)})
	}
	return io.NopCloser(rd), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// fileOnly is the engine's temporary file as fetch sees it: it refuses
// writes through it, so that a fetch that writes the bytes again fails.
type fileOnly struct{ f *os.File }

func (w fileOnly) Write([]byte) (int, error) { return 0, errors.New("written through the writer") }
func (w fileOnly) OSFile() *os.File          { return w.f }

// TestFetchIntoFile checks that the engine lets a release whose download
// writes the file itself write it into the temporary file and only reads
// the bytes through (each written once), that a failure to write there is
// this machine's side (a localError, not read again), and that a release
// without OpenFile is written by the engine as before.
func TestFetchIntoFile(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	_, in, data := r.releaseBytes("p", "2.0.0")
	p := newPipeline(r.config(), r.key.Public, r.exe, newControl())
	tmp := func() *os.File {
		f, err := os.Create(filepath.Join(t.TempDir(), "staging"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}

	rel := &writingRelease{claimingRelease: claimingRelease{in: in, data: data}}
	c := candidate{src: claimingSource{&rel.claimingRelease}, rel: rel, in: in, piecesVerified: true}
	f := tmp()
	if _, _, err := p.fetch(context.Background(), c, fileOnly{f}); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if got, _ := os.ReadFile(f.Name()); !bytes.Equal(got, data) {
		t.Fatal("the temporary file does not hold the release")
	}
	if rel.fileOpens != 1 || rel.opens != 0 {
		t.Fatalf("OpenFile called %d times, Open %d; want 1 and 0", rel.fileOpens, rel.opens)
	}

	rel = &writingRelease{claimingRelease: claimingRelease{in: in, data: data}, failAt: int64(len(data)) / 2}
	c.rel = rel
	_, _, err := p.fetch(context.Background(), c, fileOnly{tmp()})
	var le *localError
	if !errors.As(err, &le) || !errors.Is(err, checked.ErrWrite) {
		t.Fatalf("fetch with a failing write: %v, want a localError wrapping %v", err, checked.ErrWrite)
	}
	if rel.fileOpens != 1 {
		t.Fatalf("OpenFile called %d times after a failed write, want 1", rel.fileOpens)
	}

	// Without the temporary file at hand, the engine writes the bytes.
	rel = &writingRelease{claimingRelease: claimingRelease{in: in, data: data}}
	c.rel = rel
	var buf bytes.Buffer
	if _, _, err := p.fetch(context.Background(), c, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("fetch into a writer: %v, equal %v", err, bytes.Equal(buf.Bytes(), data))
	}
	if rel.fileOpens != 0 || rel.opens != 1 {
		t.Fatalf("OpenFile called %d times, Open %d; want 0 and 1", rel.fileOpens, rel.opens)
	}
}
