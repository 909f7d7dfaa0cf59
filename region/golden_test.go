package region_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// TestGolden signs each vector's file and compares the region byte for
// byte, as crypto/ed25519's TestGolden does with its testdata; then it
// verifies the signed file and checks that docs/FORMAT.md prints the same
// region.
func TestGolden(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "FORMAT.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The document wraps each region over several lines.
	doc = []byte(strings.Join(strings.Fields(string(doc)), ""))
	for _, v := range regiontest.AllVectors(t, "testdata") {
		t.Run(v.TestName(), func(t *testing.T) {
			t.Parallel()
			key := v.Key(t)
			file := v.File()
			p := filepath.Join(t.TempDir(), v.Name)
			if err := os.WriteFile(p, file, 0o644); err != nil {
				t.Fatal(err)
			}
			opts := region.SignOptions{Version: v.Version, Format: v.Format, Target: v.Target}
			if _, err := region.Sign(context.Background(), p, key, opts); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			off := v.Offset()
			if reg := got[off : off+region.Size]; !bytes.Equal(reg, v.Region) {
				t.Errorf("region:\n got %x\nwant %x", reg, v.Region)
			}
			if !bytes.Equal(got[:off], file[:off]) || !bytes.Equal(got[off+region.Size:], file[off+region.Size:]) {
				t.Error("signing changed bytes outside the region")
			}
			if in, err := region.VerifyFile(context.Background(), p, key.Public().(ed25519.PublicKey)); err != nil || in.Version != v.Version {
				t.Errorf("VerifyFile = %+v, %v", in, err)
			}
			if !bytes.Contains(doc, []byte(hex.EncodeToString(v.Region))) {
				t.Errorf("docs/FORMAT.md does not print the region of vector %s", v.Name)
			}
		})
	}
}
