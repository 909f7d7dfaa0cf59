package region

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchFile writes a signed file of about size bytes with its region in the
// middle.
func benchFile(b *testing.B, size int) (string, ed25519.PublicKey) {
	b.Helper()
	r := rand.New(rand.NewPCG(5, 6))
	half := randBytes(r, size/2)
	path := filepath.Join(b.TempDir(), "app")
	if err := os.WriteFile(path, cat(half, unsignedRegion(), half), 0o755); err != nil {
		b.Fatal(err)
	}
	key := vectorKey(b)
	if _, err := SignFile(context.Background(), path, key, "1.0.0"); err != nil {
		b.Fatal(err)
	}
	return path, key.Public().(ed25519.PublicKey)
}

// BenchmarkVerifyFile30MB is the work of a running program's
// self-verification of a 30 MB binary (file in the page cache).
func BenchmarkVerifyFile30MB(b *testing.B) {
	path, pub := benchFile(b, 30_000_000)
	b.SetBytes(30_000_000)
	for b.Loop() {
		if _, err := VerifyFile(context.Background(), path, pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan measures the scanner alone on 30 MB in memory.
func BenchmarkScan(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	data := cat(randBytes(r, 15_000_000), unsignedRegion(), randBytes(r, 15_000_000))
	buf := make([]byte, chunkSize+Size)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := scan(context.Background(), bytes.NewReader(data), buf); err != nil {
			b.Fatal(err)
		}
	}
}
