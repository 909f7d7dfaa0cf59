package ghrelease

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/manifest"
	"github.com/org/rustpatcher-go/internal/pack"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// TestLayoutPacks checks the packs Layout adds when asked: the binary's
// pieces compressed alone and as a delta from an older binary of its
// target, each a cache file that pack.OpenCache accepts for that binary and
// base, named by the manifest; and the bases it refuses.
func TestLayoutPacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	key := regiontest.NewKey(t)
	bin := filepath.Join(dir, "app_linux_amd64")
	in := regiontest.WriteBinaryFor(t, bin, 3*region.PieceSize+5000, 7, key, "1.2.0", "linux/amd64")
	old := filepath.Join(dir, "old", "app_linux_amd64")
	regiontest.WriteBinaryFor(t, old, 3*region.PieceSize+5000, 7, key, "1.1.0", "linux/amd64")
	files := []Signed{{Path: bin, Target: linuxAMD64, Info: in, PublicKey: key.Public}}
	packDir := t.TempDir()

	assets, err := Layout(ctx, files, nil, &Packs{Dir: packDir, Compress: true, Bases: []string{old}})
	if err != nil {
		t.Fatal(err)
	}
	oldScan, err := region.ScanFile(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	binScan, err := region.ScanFile(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	deltaName := "app_linux_amd64." + hexID(oldScan.FileID[:8]) + ".delta"
	var names []string
	byName := map[string]Asset{}
	for _, a := range assets {
		names = append(names, a.Name)
		byName[a.Name] = a
	}
	want := []string{"app_linux_amd64", "app_linux_amd64.pieces", "app_linux_amd64.zst", deltaName, "rustpatcher-linux-amd64.json"}
	if !slices.Equal(names, want) {
		t.Fatalf("assets %v, want %v", names, want)
	}
	var pi manifest.PatchInfo
	if err := json.Unmarshal(byName["rustpatcher-linux-amd64.json"].Data, &pi); err != nil {
		t.Fatal(err)
	}
	l, err := wire.NewLayout(in.ContentLen(), binScan.FileSize)
	if err != nil {
		t.Fatal(err)
	}
	target := pack.Target{ID: binScan.FileID, Layout: l}
	for _, tt := range []struct {
		name string
		base [wire.IDLen]byte
	}{
		{"app_linux_amd64.zst", [wire.IDLen]byte{}},
		{deltaName, oldScan.FileID},
	} {
		i := slices.IndexFunc(pi.Packs, func(p manifest.Pack) bool { return p.Asset == tt.name })
		if i < 0 {
			t.Fatalf("the manifest names no pack %s: %+v", tt.name, pi.Packs)
		}
		ref := pi.Packs[i]
		if wantBase := hexID(tt.base[:]); tt.base == ([wire.IDLen]byte{}) && ref.Base != "" || tt.base != ([wire.IDLen]byte{}) && ref.Base != wantBase {
			t.Errorf("pack %s: base %q", tt.name, ref.Base)
		}
		c, err := pack.OpenCache(byName[tt.name].Path, target, tt.base)
		if err != nil {
			t.Fatalf("pack %s: %v", tt.name, err)
		}
		fi, _ := os.Stat(byName[tt.name].Path)
		if fi.Size() != ref.Size {
			t.Errorf("pack %s: %d bytes, the manifest says %d", tt.name, fi.Size(), ref.Size)
		}
		c.Close()
	}
	if d := pi.Packs[slices.IndexFunc(pi.Packs, func(p manifest.Pack) bool { return p.Base != "" })]; d.Size > binScan.FileSize/20 {
		t.Errorf("the delta from a binary that differs in its region only is %d bytes of %d", d.Size, binScan.FileSize)
	}

	newer := filepath.Join(dir, "newer", "app_linux_amd64")
	regiontest.WriteBinaryFor(t, newer, 3*region.PieceSize+5000, 7, key, "1.3.0", "linux/amd64")
	other := filepath.Join(dir, "other", "app_darwin_arm64")
	regiontest.WriteBinaryFor(t, other, 3*region.PieceSize+5000, 7, key, "1.1.0", "darwin/arm64")
	for _, tt := range []struct {
		base, want string
	}{
		{newer, "not older than"},
		{other, "no v1 binary of darwin/arm64 is published"},
		{filepath.Join(dir, "missing"), "delta base"},
		{bin + ".nothing", "no such file"},
	} {
		_, err := Layout(ctx, files, nil, &Packs{Dir: t.TempDir(), Bases: []string{tt.base}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("base %s: %v, want an error with %q", tt.base, err, tt.want)
		}
	}
}

func hexID(b []byte) string { return hex.EncodeToString(b) }
