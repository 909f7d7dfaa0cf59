package region

import (
	"bytes"
	"context"
	"crypto/ed25519"
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
	f.Fuzz(func(t *testing.T, file []byte, chunk uint16) {
		c := int(chunk%2048) + 1
		wantOff, wantHash, wantSize, count := naiveScan(file)
		s, err := scan(context.Background(), bytes.NewReader(file), make([]byte, c+Size))
		switch count {
		case 0:
			if !errors.Is(err, ErrNoRegion) {
				t.Fatalf("got %v, want ErrNoRegion", err)
			}
		case 1:
			if err != nil {
				t.Fatal(err)
			}
			if s.Offset != int64(wantOff) || s.Hash != wantHash || s.Size != wantSize {
				t.Fatalf("got off=%d size=%d, want off=%d size=%d", s.Offset, s.Size, wantOff, wantSize)
			}
		default:
			if !errors.Is(err, ErrMultipleRegions) {
				t.Fatalf("got %v, want ErrMultipleRegions", err)
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
