package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/org/rustpatcher-go/internal/pack"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// TestPackedReader reads a release from a pack of raw frames (random
// content compresses to nothing): the bytes are the file's; a frame
// damaged on the way, a pack of another file, or one of other content that
// claims to be this file's, is refused before a byte of a wrong piece is
// handed on, and the pack is reported bad.
func TestPackedReader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	key := regiontest.NewKey(t)
	bin := filepath.Join(dir, "prog")
	in := regiontest.WriteBinary(t, bin, 2*region.PieceSize+300_000, 5, key, "2.0.0")
	sc, err := region.ScanFile(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	c, err := region.NewPieceChecker(in, sc.Leaves, sc.FileSize)
	if err != nil {
		t.Fatal(err)
	}
	l, err := wire.NewLayout(in.ContentLen(), sc.FileSize)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	path, err := pack.Make(ctx, t.TempDir(), pack.Target{File: f, ID: sc.FileID, Layout: l}, nil)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	want, _ := os.ReadFile(bin)

	read := func(b []byte, id [32]byte) ([]byte, []string, error) {
		fr, err := pack.NewFrameReader(bytes.NewReader(b), id, [32]byte{}, l)
		if err != nil {
			return nil, nil, err
		}
		dec, err := pack.NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		var bad []string
		r := &packedReader{fr: fr, dec: dec, body: io.NopCloser(nil), c: c, l: l, piece: make([]byte, l.MaxPieceLen()),
			url: "pack", bad: func(u string) { bad = append(bad, u) }}
		defer r.Close()
		got, err := io.ReadAll(r)
		return got, bad, err
	}

	got, bad, err := read(good, sc.FileID)
	if err != nil || !bytes.Equal(got, want) || len(bad) != 0 {
		t.Fatalf("read %d bytes of %d (equal %v), %v; bad %v", len(got), len(want), bytes.Equal(got, want), err, bad)
	}

	// A byte of the second piece's frame flipped (after the header of 84
	// bytes, the index of 44 a piece, and the first frame, its method
	// byte and the piece): refused after the first piece.
	damaged := append([]byte(nil), good...)
	damaged[84+44*l.NumPieces()+1+region.PieceSize+1+100] ^= 1
	if got, bad, err = read(damaged, sc.FileID); err == nil || len(bad) != 1 || len(got) > int(region.PieceSize) {
		t.Errorf("damaged frame: read %d bytes, %v; bad %v", len(got), err, bad)
	}
	if _, _, err := read(good, [32]byte{1}); !errors.Is(err, pack.ErrCache) {
		t.Errorf("a pack of another file: %v", err)
	}

	// A well-formed pack of other content that claims this file's ID:
	// every frame matches its hash, and the piece check refuses the first.
	other := filepath.Join(dir, "other")
	regiontest.WriteBinary(t, other, 2*region.PieceSize+300_000, 6, key, "2.0.0")
	of, err := os.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	defer of.Close()
	liar, err := pack.Make(ctx, t.TempDir(), pack.Target{File: of, ID: sc.FileID, Layout: l}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lie, _ := os.ReadFile(liar)
	if got, bad, err = read(lie, sc.FileID); !errors.Is(err, region.ErrBadPiece) || len(got) != 0 || len(bad) != 1 {
		t.Errorf("a lying pack: read %d bytes, %v; bad %v", len(got), err, bad)
	}
}
