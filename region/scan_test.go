package region

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// naiveScan is the reference for Scan: it holds the whole file in memory.
func naiveScan(b []byte) (off int, hash [HashLen]byte, size uint64, count int) {
	off = -1
	for i := 0; i+Size <= len(b); i++ {
		if string(b[i:i+MarkerLen]) == Marker && string(b[i+endOff:i+Size]) == Marker {
			count++
			if off < 0 {
				off = i
			}
			i += Size - 1
		}
	}
	if count != 1 {
		return off, hash, 0, count
	}
	h := sha512.New()
	h.Write(b[:off])
	h.Write(b[off+Size:])
	copy(hash[:], h.Sum(nil))
	return off, hash, uint64(len(b) - Size), 1
}

func unsignedRegion() []byte {
	b, _ := Info{}.Marshal()
	return b[:]
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	reg := unsignedRegion()
	m := []byte(Marker)
	tests := []struct {
		name  string
		file  []byte
		count int // well-formed regions
	}{
		{"only the region", reg, 1},
		{"at start", cat(reg, randBytes(r, 5000)), 1},
		{"at end", cat(randBytes(r, 5000), reg), 1},
		{"in middle", cat(randBytes(r, 3000), reg, randBytes(r, 3000)), 1},
		{"stray markers around", cat(m, randBytes(r, 100), m, reg, m[:20], randBytes(r, 7), m), 1},
		{"marker right before region", cat(m, reg, m), 1},
		{"two regions", cat(randBytes(r, 10), reg, randBytes(r, 10), reg), 2},
		{"adjacent regions", cat(reg, reg), 2},
		{"empty", nil, 0},
		{"no marker", randBytes(r, 4000), 0},
		{"lone marker", cat(randBytes(r, 10), m, randBytes(r, 300)), 0},
		{"truncated region", cat(randBytes(r, 10), reg[:Size-1]), 0},
		{"region cut mid-way", cat(randBytes(r, 10), reg[:100]), 0},
	}
	// Small chunks move every boundary through markers and regions.
	chunks := []int{1, 2, 27, 28, 29, 100, 175, 176, 177, 4096, chunkSize}
	for _, tt := range tests {
		wantOff, wantHash, wantSize, count := naiveScan(tt.file)
		if count != tt.count {
			t.Fatalf("%s: reference found %d regions, table says %d", tt.name, count, tt.count)
		}
		for _, c := range chunks {
			for _, rd := range []string{"plain", "onebyte", "half"} {
				var src = bytes.NewReader(tt.file)
				var in = iotestReader(rd, src)
				s, err := scan(context.Background(), in, make([]byte, c+Size))
				switch count {
				case 0:
					if !errors.Is(err, ErrNoRegion) {
						t.Errorf("%s chunk=%d %s: err = %v, want ErrNoRegion", tt.name, c, rd, err)
					}
				case 1:
					if err != nil {
						t.Fatalf("%s chunk=%d %s: %v", tt.name, c, rd, err)
					}
					if s.Offset != int64(wantOff) || s.Hash != wantHash || s.Size != wantSize {
						t.Errorf("%s chunk=%d %s: got off=%d size=%d, want off=%d size=%d (hash equal: %v)",
							tt.name, c, rd, s.Offset, s.Size, wantOff, wantSize, s.Hash == wantHash)
					}
				default:
					if !errors.Is(err, ErrMultipleRegions) {
						t.Errorf("%s chunk=%d %s: err = %v, want ErrMultipleRegions", tt.name, c, rd, err)
					}
				}
			}
		}
	}
}

func iotestReader(kind string, r *bytes.Reader) interface{ Read([]byte) (int, error) } {
	switch kind {
	case "onebyte":
		return iotest.OneByteReader(r)
	case "half":
		return iotest.HalfReader(r)
	}
	return r
}

func TestScanReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Scan(context.Background(), iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the reader's error", err)
	}
}

func TestSignFileVerifyFile(t *testing.T) {
	key := vectorKey(t)
	pub := key.Public().(ed25519.PublicKey)
	r := rand.New(rand.NewPCG(3, 4))
	content := cat(randBytes(r, 70000), unsignedRegion(), randBytes(r, 30000))
	path := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(path, content, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := SignFile(context.Background(), path, key, "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if in.Version != "1.2.3" || in.Size != uint64(len(content)-Size) {
		t.Errorf("SignFile = %+v", in)
	}
	signed, _ := os.ReadFile(path)
	// Only the region's bytes changed.
	if !bytes.Equal(signed[:70000], content[:70000]) || !bytes.Equal(signed[70000+Size:], content[70000+Size:]) {
		t.Fatal("SignFile changed bytes outside the region")
	}
	if _, err := VerifyFile(context.Background(), path, pub); err != nil {
		t.Fatalf("VerifyFile: %v", err)
	}
	// Re-signing a signed file works and gives the same hash.
	in2, err := SignFile(context.Background(), path, key, "1.2.4")
	if err != nil || in2.Hash != in.Hash || in2.Version != "1.2.4" {
		t.Fatalf("re-sign: %+v, %v", in2, err)
	}

	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := VerifyFile(context.Background(), path, other); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: %v", err)
	}
	for _, pos := range []int{0, 69999, 70000 + Size, len(content) - 1} {
		b := bytes.Clone(signed)
		b[pos] ^= 0x40
		os.WriteFile(path, b, 0o755)
		if _, err := VerifyFile(context.Background(), path, pub); !errors.Is(err, ErrHashMismatch) {
			t.Errorf("flipped byte %d: got %v, want ErrHashMismatch", pos, err)
		}
	}
	os.WriteFile(path, cat(signed, []byte{1}), 0o755)
	if _, err := VerifyFile(context.Background(), path, pub); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("appended byte: got %v, want ErrSizeMismatch", err)
	}
	os.WriteFile(path, content, 0o755)
	if _, err := VerifyFile(context.Background(), path, pub); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned: got %v, want ErrUnsigned", err)
	}
}

func TestSignFileErrors(t *testing.T) {
	key := vectorKey(t)
	dir := t.TempDir()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	reg := unsignedRegion()
	tests := []struct {
		name, path, version string
		want                error  // errors.Is target, or nil to check the text
		text                string // substring of the message
	}{
		{"missing", filepath.Join(dir, "nope"), "1.0.0", os.ErrNotExist, "nope"},
		{"directory", dir, "1.0.0", nil, "is a directory"},
		{"read-only", write("ro", reg, 0o444), "1.0.0", nil, "read-only"},
		{"no region", write("none", []byte("hello"), 0o755), "1.0.0", ErrNoRegion, "none"},
		{"two regions", write("two", cat(reg, reg), 0o755), "1.0.0", ErrMultipleRegions, "two"},
		{"bad version", write("v", reg, 0o755), "1.0", ErrBadVersion, ""},
		{"long version", write("lv", reg, 0o755), "1.0.0-abcdefghijk", ErrBadVersion, "16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before []byte
			if st, err := os.Stat(tt.path); err == nil && st.Mode().IsRegular() {
				before, _ = os.ReadFile(tt.path)
			}
			_, err := SignFile(context.Background(), tt.path, key, tt.version)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not mention %q", err, tt.text)
			}
			if before != nil {
				after, _ := os.ReadFile(tt.path)
				if !bytes.Equal(before, after) {
					t.Error("file changed")
				}
			}
		})
	}
}
