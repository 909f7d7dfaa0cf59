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

// benchFile writes a file of about size bytes with its region in the
// middle, signed in format f.
func benchFile(b *testing.B, size int, f Format) (string, ed25519.PublicKey) {
	b.Helper()
	r := rand.New(rand.NewPCG(5, 6))
	half := randBytes(r, size/2)
	path := filepath.Join(b.TempDir(), "app")
	if err := os.WriteFile(path, cat(half, unsignedRegion(), half), 0o755); err != nil {
		b.Fatal(err)
	}
	key := vectorKey(b)
	opts := SignOptions{Version: "1.0.0", Format: f}
	if f == V1 {
		opts.Target = "linux/amd64"
	}
	if _, err := Sign(context.Background(), path, key, opts); err != nil {
		b.Fatal(err)
	}
	return path, key.Public().(ed25519.PublicKey)
}

// BenchmarkVerifyFile30MB is the work of a running program's
// self-verification of a 30 MB binary (file in the page cache).
func BenchmarkVerifyFile30MB(b *testing.B) {
	for _, f := range []Format{V1, V0} {
		b.Run(f.String(), func(b *testing.B) {
			path, pub := benchFile(b, 30_000_000, f)
			b.SetBytes(30_000_000)
			for b.Loop() {
				if _, err := VerifyFile(context.Background(), path, pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScan measures the scanner alone on 30 MB in memory: locating
// the region only, and with each format's digest.
func BenchmarkScan(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	data := cat(randBytes(r, 15_000_000), unsignedRegion(), randBytes(r, 15_000_000))
	buf := make([]byte, chunkSize+Size)
	for _, bb := range []struct {
		name string
		opt  scanOptions
	}{
		{"locate", scanOptions{size: -1}},
		{"v0", scanOptions{v0: true, size: -1}},
		{"v1", scanOptions{v1: true, size: -1}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := scan(context.Background(), bytes.NewReader(data), bb.opt, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
