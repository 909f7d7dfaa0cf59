package ghrelease

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/region"
)

// TestLayout checks what Layout puts in a release: the order (manifests
// last), piece hashes whose root is the signed hash, and manifests that
// name the binary's file and every statement; and what it refuses.
func TestLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, next := regiontest.NewKey(t), regiontest.NewKey(t)
	bin := filepath.Join(dir, "app_linux_amd64")
	// Three pieces and a bit.
	in := regiontest.WriteBinaryFor(t, bin, 3*region.PieceSize+5000, 7, key, "1.2.0", "linux/amd64")
	st, err := rotation.New(key.Private, next.Public, "linux/amd64", 1)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := st.MarshalText()
	stmt := filepath.Join(dir, "linux-amd64-1.rotation")
	if err := os.WriteFile(stmt, text, 0o644); err != nil {
		t.Fatal(err)
	}
	files := []Signed{{Path: bin, Target: linuxAMD64, Info: in, PublicKey: key.Public}}
	assets, err := Layout(context.Background(), files, []string{stmt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	byName := map[string]Asset{}
	for _, a := range assets {
		names = append(names, a.Name)
		byName[a.Name] = a
	}
	if want := []string{"app_linux_amd64", "app_linux_amd64.pieces", "linux-amd64-1.rotation", "rustpatcher-linux-amd64.json"}; !slices.Equal(names, want) {
		t.Fatalf("assets %v, want %v", names, want)
	}
	pieces := byName["app_linux_amd64.pieces"].Data
	if len(pieces) != 4*sha256.Size {
		t.Fatalf("piece hashes are %d bytes, want 4 of %d", len(pieces), sha256.Size)
	}
	leaves := make([][sha256.Size]byte, 4)
	for i := range leaves {
		copy(leaves[i][:], pieces[i*sha256.Size:])
	}
	if region.Root(in.ContentLen(), leaves) != in.Hash {
		t.Error("the piece hashes' root is not the signed hash")
	}
	pi, err := ReadPatchInfo(bytes.NewReader(byName["rustpatcher-linux-amd64.json"].Data))
	if err != nil {
		t.Fatal(err)
	}
	s, err := region.ScanFile(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	if pi.Asset != "app_linux_amd64" || pi.Pieces != "app_linux_amd64.pieces" || pi.FileSize != s.FileSize ||
		pi.FileID != hex.EncodeToString(s.FileID[:]) || !slices.Equal(pi.Statements, []string{"linux-amd64-1.rotation"}) {
		t.Errorf("manifest %+v", pi)
	}
	if _, err := pi.Verify(key.Public); err != nil {
		t.Error(err)
	}

	// WriteDir puts them in a directory, byte for byte.
	out := t.TempDir()
	if err := WriteDir(out, assets); err != nil {
		t.Fatal(err)
	}
	for _, a := range assets {
		got, err := os.ReadFile(filepath.Join(out, a.Name))
		if err != nil {
			t.Fatal(err)
		}
		want := a.Data
		if a.Path != "" {
			want, _ = os.ReadFile(a.Path)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the asset", a.Name)
		}
	}

	// Refused: a statement that does not verify, a name that is no
	// statement's, a binary changed since it was verified.
	bad := filepath.Join(dir, "bad.rotation")
	os.WriteFile(bad, bytes.Replace(text, []byte("sequence: 1"), []byte("sequence: 2"), 1), 0o644)
	other := filepath.Join(dir, "notes.txt")
	os.WriteFile(other, text, 0o644)
	for _, tt := range []struct {
		stmts []string
		want  string
	}{
		{[]string{bad}, "not publishing " + bad},
		{[]string{other}, "is not a statement file"},
	} {
		if _, err := Layout(context.Background(), files, tt.stmts, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Layout with %v = %v, want an error containing %q", tt.stmts, err, tt.want)
		}
	}
	regiontest.WriteBinaryFor(t, bin, 5000, 8, key, "1.3.0", "linux/amd64")
	if _, err := Layout(context.Background(), files, nil, nil); err == nil || !strings.Contains(err.Error(), "changed since it was verified") {
		t.Errorf("Layout of a changed binary = %v", err)
	}
}
