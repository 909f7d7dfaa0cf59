package manifest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// TestRoundTrip: a manifest written with the fields Layout adds reads back
// as it was and verifies with the key; a reader bounds what it reads.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	in := regiontest.WriteBinaryFor(t, t.TempDir()+"/bin", 5000, 1, key, "1.2.3", "linux/amd64")
	p := New(target.Target{OS: "linux", Arch: "amd64"}, in, key.Public)
	p.Asset, p.FileSize, p.FileID, p.Pieces, p.Statements = "app_linux_amd64", 5176, strings.Repeat("ab", 32), "app_linux_amd64.pieces", []string{"linux-amd64-1.rotation"}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got.Pieces != p.Pieces || got.FileSize != p.FileSize || got.FileID != p.FileID || len(got.Statements) != 1 {
		t.Errorf("read back %+v", got)
	}
	if back, err := got.Verify(key.Public); err != nil || back != in {
		t.Errorf("Verify: %v, %v", back, err)
	}
	if _, err := got.Verify(regiontest.NewKey(t).Public); err == nil {
		t.Error("verifies with another key")
	}
	long := append([]byte(`{"target":"`), bytes.Repeat([]byte("x"), MaxSize)...)
	if _, err := Read(bytes.NewReader(append(long, `"}`...))); err == nil {
		t.Error("read a manifest longer than MaxSize")
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"target":"linux/amd64","format":"v1","version":"1.0.0","hash":"00","size":1}`))
	f.Add([]byte(`{"pieces":"x","statements":["a.rotation"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		if in, err := p.Info(); err == nil && in.Format != region.V0 && in.Format != region.V1 {
			t.Fatalf("format %v", in.Format)
		}
	})
}
