//go:build unix

package e2e

import (
	"bytes"
	"crypto/sha256"
	"os"
	"testing"

	gomacho "github.com/blacktop/go-macho"
)

// checkPageHashes checks every page hash of every code directory in the
// Mach-O code signature of the file at path with an independent parser,
// github.com/blacktop/go-macho: macOS kills a program whose code pages do
// not match. It computes each page's SHA-256 itself.
func checkPageHashes(t *testing.T, path string) {
	t.Helper()
	f, err := gomacho.Open(path)
	if err != nil {
		t.Fatalf("go-macho: %v", err)
	}
	defer f.Close()
	cs := f.CodeSignature()
	if cs == nil {
		t.Fatalf("%s: go-macho finds no code signature", path)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.CodeDirectories) == 0 {
		t.Fatalf("%s: no code directory", path)
	}
	for _, cd := range cs.CodeDirectories {
		if cd.Header.HashType != 2 { // SHA-256, what Go's linker writes
			t.Fatalf("%s: code directory hash type %d", path, cd.Header.HashType)
		}
		page := 1 << cd.Header.PageSize
		limit := int(cd.Header.CodeLimit)
		bad := 0
		for i, slot := range cd.CodeSlots {
			start := i * page
			sum := sha256.Sum256(file[start:min(start+page, limit)])
			if !bytes.Equal(sum[:len(slot.Hash)], slot.Hash) {
				bad++
			}
		}
		if bad > 0 || len(cd.CodeSlots) == 0 {
			t.Errorf("%s: %d of %d code page hashes do not match (go-macho)", path, bad, len(cd.CodeSlots))
		}
	}
}
