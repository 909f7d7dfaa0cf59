package region

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// survives a Marshal round trip byte for byte.
func FuzzParse(f *testing.F) {
	reg := unsignedRegion()
	f.Add(reg)
	in := Info{Version: "0.2.0", Size: 99}
	in.Sign(vectorKey(f))
	b, _ := in.Marshal()
	f.Add(b[:])
	f.Add([]byte(Marker))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v is not ErrMalformed", err)
			}
			return
		}
		out, err := in.Marshal()
		if err != nil {
			t.Fatalf("Marshal of parsed region: %v", err)
		}
		if !bytes.Equal(out[:], b) {
			t.Fatalf("round trip changed the region:\n%x\n%x", b, out)
		}
		// Verification of untrusted regions must not panic either.
		_ = in.VerifySignature(vectorKey(t).Public().(ed25519.PublicKey))
	})
}

// FuzzScan compares the streaming scanner with the in-memory reference on
// arbitrary files, read in arbitrary chunk sizes.
func FuzzScan(f *testing.F) {
	reg := unsignedRegion()
	f.Add([]byte("plain bytes"), uint16(7))
	f.Add(cat([]byte("abc"), reg, []byte("xyz")), uint16(1))
	f.Add(cat(reg, reg), uint16(200))
	f.Add(cat([]byte(Marker), reg[:150]), uint16(28))
	f.Add(cat(make([]byte, 100), signedV1(f, 100, 400), make([]byte, 200)), uint16(50))
	f.Add(cat([]byte("MZ"), make([]byte, 100), reg), uint16(16))
	f.Fuzz(func(t *testing.T, file []byte, chunk uint16) {
		c := int(chunk%2048) + 1
		ref := reference(file)
		s, err := scan(context.Background(), bytes.NewReader(file), scanOptions{v0: true, v1: true, size: -1}, make([]byte, c+Size))
		if diff := ref.check(s, err); diff != "" {
			t.Fatalf("chunk %d: %s", c, diff)
		}
		if err == nil {
			// Verification of untrusted files must not panic either.
			_, _ = s.Verify(vectorKey(t).Public().(ed25519.PublicKey))
		}
	})
}

// FuzzPieceChecker checks that checking untrusted pieces never panics and
// that a piece passes only when it is the content's.
func FuzzPieceChecker(f *testing.F) {
	f.Add([]byte("some piece"), int64(0), uint16(10))
	f.Add(make([]byte, 300), int64(0), uint16(100))
	f.Fuzz(func(t *testing.T, piece []byte, index int64, off uint16) {
		content := bytes.Repeat([]byte{7}, 2*PieceSize+int(off))
		in := Info{Format: V1, Version: "1.0.0", Target: "linux/amd64", Size: uint64(len(content)), Offset: uint64(off)}
		var leaves [][32]byte
		for k := 0; k < len(content); k += PieceSize {
			c := bytes.Clone(content[k:min(k+PieceSize, len(content))])
			if k == 0 {
				clear(c[off : int(off)+Size])
			}
			leaves = append(leaves, sha256.Sum256(c))
		}
		in.Hash = Root(int64(len(content)), leaves)
		pc, err := NewPieceChecker(in, leaves, int64(len(content)))
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Check(index, piece); err == nil {
			o, n := pc.Piece(index)
			want := content[o : o+n]
			if index == 0 {
				// The region's bytes are not content.
				want = bytes.Clone(want)
				copy(want[off:], piece[off:int(off)+Size])
			}
			if !bytes.Equal(piece, want) {
				t.Fatalf("piece %d accepted but it is not the content's", index)
			}
		}
	})
}

// FuzzParseKey checks that key decoding never panics and that an accepted
// key has exactly one spelling.
func FuzzParseKey(f *testing.F) {
	f.Add(vectorSeed)
	f.Add(vectorPub)
	f.Add("")
	f.Add("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy9")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := ParsePublicKey(s)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("error %v is not ErrBadKey", err)
			}
			return
		}
		if got := EncodePublicKey(pub); got != strings.TrimSpace(s) {
			t.Fatalf("accepted %q but it encodes back as %q", s, got)
		}
		if _, err := ParseSecretKey(s); err != nil {
			t.Fatalf("ParsePublicKey accepted %q, ParseSecretKey did not: %v", s, err)
		}
	})
}

// FuzzFinder compares the streaming text finder with bytes.Contains on the
// whole input, written in arbitrary chunk sizes, so that texts split across
// two writes are found.
func FuzzFinder(f *testing.F) {
	f.Add([]byte("xxabcxx"), "abc", "zz", uint8(1))
	f.Add([]byte("ab"), "abc", "b", uint8(3))
	f.Add([]byte("aaaaaaab"), "aab", "aaaaaaaaa", uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, a, b string, chunk uint8) {
		c := int(chunk%64) + 1
		fd := newFinder([]string{a, b})
		for off := 0; off < len(data); off += c {
			fd.Write(data[off:min(off+c, len(data))])
		}
		for i, text := range []string{a, b} {
			want := text != "" && bytes.Contains(data, []byte(text))
			if fd.found[i] != want {
				t.Fatalf("text %d %q in %q (chunks of %d): found %v, want %v", i, text, data, c, fd.found[i], want)
			}
		}
	})
}
