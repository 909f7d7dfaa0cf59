package region_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// The files of testdata/interop, signed by rustpatcher 0.2.1's own signing
// code (see its README.md), with the test-vector key of docs/FORMAT.md.
const (
	interopSeed   = "5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o"
	interopPub    = "axegnqus3miex47g1kxf1j7j8spczbc57go7jgpeixq8nxjfz7gy"
	interopOffset = 100003 // where the region starts in each file
	interopTail   = 50001  // data bytes after the region
	interopHash   = "3d238273a1b5b36c71663a9743d39375c970e64070462baed43d7f870d17d8d0"
	interopSize   = 150004 // the v0 size field: the file without the region
)

// interopData returns n bytes of the README's counter-mode construction:
// SHA-256(label ‖ u64le(i)) for i = 0, 1, …, cut to n.
func interopData(label string, n int) []byte {
	var b []byte
	for i := uint64(0); len(b) < n; i++ {
		sum := sha256.Sum256(binary.LittleEndian.AppendUint64([]byte(label), i))
		b = append(b, sum[:]...)
	}
	return b[:n]
}

func readInterop(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "interop", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRustpatcherInterop checks region against files that rustpatcher
// 0.2.1's signing code made: each signed file verifies with the test-vector
// public key (and not with another key, nor with a byte changed), its
// region has the hash and size that rustpatcher wrote and parses and
// marshals back to the same 176 bytes, regiontest.RustpatcherVerify (this
// project's model of rustpatcher's check) accepts it, and signing the unsigned file with
// the same key and version in format v0 gives exactly rustpatcher's file.
func TestRustpatcherInterop(t *testing.T) {
	ctx := context.Background()
	key, err := region.ParseSecretKey(interopSeed)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := region.ParsePublicKey(interopPub)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(key.Public()) {
		t.Fatal("the README's public key is not the seed's")
	}
	other, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}

	unsigned := readInterop(t, "synth-unsigned.bin")
	// The file is what the README says: data, a region, data.
	if want := interopOffset + region.Size + interopTail; len(unsigned) != want {
		t.Fatalf("synth-unsigned.bin is %d bytes, want %d", len(unsigned), want)
	}
	if !bytes.Equal(unsigned[:interopOffset], interopData("a", interopOffset)) ||
		!bytes.Equal(unsigned[interopOffset+region.Size:], interopData("b", interopTail)) {
		t.Fatal("synth-unsigned.bin's data bytes are not the README's construction")
	}
	if in, err := region.Parse(unsigned[interopOffset : interopOffset+region.Size]); err != nil || in.Signed() || in.Version != "0.2.0" {
		t.Fatalf("the unsigned region parses as %+v, %v; want unsigned, version field 0.2.0", in, err)
	}

	for _, version := range []string{"0.2.0", "1.2.3"} {
		t.Run(version, func(t *testing.T) {
			name := "synth-rustpatcher-" + version + ".bin"
			signed := readInterop(t, name)
			path := filepath.Join("testdata", "interop", name)

			// region verifies rustpatcher's file.
			in, err := region.VerifyFile(ctx, path, pub)
			if err != nil {
				t.Fatalf("VerifyFile(%s) = %v", name, err)
			}
			if in.Format != region.V0 || in.Version != version || hex.EncodeToString(in.Hash[:]) != interopHash || in.Size != interopSize {
				t.Errorf("%s's region: %+v; want v0, version %s, hash %s, size %d", name, in, version, interopHash, interopSize)
			}
			// So does this project's model of rustpatcher's verifier,
			// which e2e uses on every built binary.
			if err := regiontest.RustpatcherVerify(signed, pub); err != nil {
				t.Errorf("regiontest.RustpatcherVerify(%s) = %v", name, err)
			}
			s, err := region.Scan(ctx, bytes.NewReader(signed))
			if err != nil {
				t.Fatal(err)
			}
			if s.Offset != interopOffset {
				t.Errorf("region at %d, want %d", s.Offset, interopOffset)
			}
			if _, err := s.Verify(other); !errors.Is(err, region.ErrBadSignature) {
				t.Errorf("verifying with another key: %v, want ErrBadSignature", err)
			}
			tampered := bytes.Clone(signed)
			tampered[len(tampered)-1] ^= 1
			if _, err := region.Verify(ctx, bytes.NewReader(tampered), pub); !errors.Is(err, region.ErrHashMismatch) {
				t.Errorf("verifying with the last byte changed: %v, want ErrHashMismatch", err)
			}

			// The region round-trips byte for byte.
			reg := signed[interopOffset : interopOffset+region.Size]
			back, err := in.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back[:], reg) {
				t.Errorf("Parse then Marshal changed the region:\n got %x\nwant %x", back, reg)
			}

			// Signing the unsigned file as rustpatcher did gives its bytes.
			p := filepath.Join(t.TempDir(), "app")
			if err := os.WriteFile(p, unsigned, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := region.Sign(ctx, p, key, region.SignOptions{Version: version, Format: region.V0}); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, signed) {
				t.Errorf("region.Sign of synth-unsigned.bin as %s differs from rustpatcher's:\n got region %x\nwant region %x",
					version, got[interopOffset:interopOffset+region.Size], reg)
			}
		})
	}
}
