package region

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// The test vector of docs/FORMAT.md.
const (
	vectorSeed = "5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o"
	vectorPub  = "axegnqus3miex47g1kxf1j7j8spczbc57go7jgpeixq8nxjfz7gy"
)

func vectorKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	k, err := ParseSecretKey(vectorSeed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMarkerBytes(t *testing.T) {
	const want = "1742525553545041544348455242454d42454442424f554e44534217"
	if got := hex.EncodeToString([]byte(Marker)); got != want {
		t.Fatalf("Marker = %s, want %s", got, want)
	}
	m0 := markerV0()
	start, end := markersV1()
	if string(m0[:]) != Marker || string(start[:]) != V1Marker || string(end[:]) != V1EndMarker {
		t.Fatal("the masked markers do not unmask to the constants")
	}
	if string(embedded[:MarkerLen]) != Marker || string(embedded[endOff:]) != Marker {
		t.Fatal("embedded region does not carry the markers")
	}
}

func TestLayout(t *testing.T) {
	in := Info{Format: V0, Version: "0.2.0", Size: 0x0102030405060708}
	in = withPattern(in)
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[28:60], in.Hash[:]) {
		t.Error("hash not at offset 28")
	}
	if binary.LittleEndian.Uint64(b[60:68]) != in.Size {
		t.Error("size not little-endian at offset 60")
	}
	if !bytes.Equal(b[68:132], in.Signature[:]) {
		t.Error("signature not at offset 68")
	}
	if string(b[132:148]) != "0.2.0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" {
		t.Errorf("version field = %q", b[132:148])
	}
	got, err := Parse(b[:])
	if err != nil {
		t.Fatal(err)
	}
	if got != in {
		t.Errorf("Parse(Marshal(x)) = %+v, want %+v", got, in)
	}
}

func TestParseErrors(t *testing.T) {
	good, _ := Info{Version: "1.0.0"}.Marshal()
	mod := func(f func(b []byte)) []byte {
		b := good
		f(b[:])
		return b[:]
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"short", good[:Size-1]},
		{"long", append(good[:], 0)},
		{"no start marker", mod(func(b []byte) { b[0] = 0 })},
		{"no end marker", mod(func(b []byte) { b[Size-1] = 0 })},
		{"control byte in version", mod(func(b []byte) { b[versionOff] = 1 })},
		{"high byte in version", mod(func(b []byte) { b[versionOff+1] = 0xff })},
		{"bytes after padding", mod(func(b []byte) { b[endOff-1] = 'x' })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.b); !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse: got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestMarshalRejectsBadVersion(t *testing.T) {
	for _, v := range []string{"12345678901234567", "1.0.0\x00", "1.0.0\n"} {
		if _, err := (Info{Version: v}).Marshal(); err == nil {
			t.Errorf("Marshal with version %q: no error", v)
		}
	}
}

// withPattern returns in with a hash of bytes 1, 2, 3... and a signature
// of bytes 0x80, 0x81..., so that a field's place shows in the bytes.
func withPattern(in Info) Info {
	for i := range in.Hash {
		in.Hash[i] = byte(i + 1)
	}
	for i := range in.Signature {
		in.Signature[i] = byte(0x80 + i)
	}
	return in
}

func TestLayoutV1(t *testing.T) {
	in := Info{Format: V1, Version: "2.0.0-rc.1", Target: "windows/arm64", Size: 0x0102030405060708, Offset: 0x1112131415161718}
	in = withPattern(in)
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name     string
		off, end int
		bytes    []byte
	}{
		{"start marker", 0, 16, []byte("\x17RUSTPATCHER/V1\x17")},
		{"root", 16, 48, in.Hash[:]},
		{"content length", 48, 56, binary.LittleEndian.AppendUint64(nil, in.Size)},
		{"offset", 56, 64, binary.LittleEndian.AppendUint64(nil, in.Offset)},
		{"signature", 64, 128, in.Signature[:]},
		{"version", 128, 144, []byte("2.0.0-rc.1\x00\x00\x00\x00\x00\x00")},
		{"target", 144, 160, []byte("windows/arm64\x00\x00\x00")},
		{"end marker", 160, 176, []byte("\x17V1/RUSTPATCHER\x17")},
	}
	for _, w := range want {
		if !bytes.Equal(b[w.off:w.end], w.bytes) {
			t.Errorf("%s at %d: %q, want %q", w.name, w.off, b[w.off:w.end], w.bytes)
		}
	}
	if bytes.Contains(b[:], []byte(Marker)) {
		t.Error("a v1 region holds the v0 marker: rustpatcher's tools would take it for theirs")
	}
	got, err := Parse(b[:])
	if err != nil || got != in {
		t.Errorf("Parse(Marshal(x)) = %+v, %v; want %+v", got, err, in)
	}
	if _, err := (Info{Format: V1, Version: "1.0.0", Target: "linux/amd64-and-more"}).Marshal(); err == nil {
		t.Error("Marshal of a 20-byte target: no error")
	}
}

func TestSignVerifyV1(t *testing.T) {
	key := vectorKey(t)
	pub := key.Public().(ed25519.PublicKey)
	in := Info{Format: V1, Version: "1.0.0", Target: "linux/amd64", Size: 5000, Offset: 100}
	in.Hash[0] = 9
	in.Sign(key)
	if err := in.VerifySignature(pub); err != nil {
		t.Fatalf("VerifySignature: %v", err)
	}
	// The message is SHA-512(domain || the region without its signature).
	b, _ := in.Marshal()
	msg := append([]byte("rustpatcher-go/v1 region\x00"), b[:64]...)
	msg = append(msg, b[128:]...)
	if in.Message() != sha512.Sum512(msg) {
		t.Error("Message is not SHA-512(domain || region without the signature)")
	}
	for name, tamper := range map[string]func(*Info){
		"version": func(i *Info) { i.Version = "1.0.1" },
		"root":    func(i *Info) { i.Hash[31] ^= 1 },
		"size":    func(i *Info) { i.Size++ },
		"offset":  func(i *Info) { i.Offset++ },
		"target":  func(i *Info) { i.Target = "linux/arm64" },
		"sig":     func(i *Info) { i.Signature[0] ^= 1 },
		"format":  func(i *Info) { i.Format = V0; i.Offset = 0; i.Target = "" },
	} {
		c := in
		tamper(&c)
		if err := c.VerifySignature(pub); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tampered %s: got %v, want ErrBadSignature", name, err)
		}
	}
	for name, bad := range map[string]Info{
		"no target":        {Format: V1, Version: "1.0.0", Size: 5000, Offset: 100, Hash: in.Hash},
		"target no slash":  {Format: V1, Version: "1.0.0", Target: "linux", Size: 5000, Offset: 100, Hash: in.Hash},
		"region past size": {Format: V1, Version: "1.0.0", Target: "linux/amd64", Size: 200, Offset: 100, Hash: in.Hash},
	} {
		bad.Sign(key)
		if err := bad.VerifySignature(pub); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	key := vectorKey(t)
	pub := key.Public().(ed25519.PublicKey)
	in := Info{Format: V0, Version: "0.2.0", Size: 1234}
	in.Hash[0] = 9
	in.Sign(key)
	if err := in.VerifySignature(pub); err != nil {
		t.Fatalf("VerifySignature: %v", err)
	}
	// The message is SHA-512(version || hash || size_le).
	var msg []byte
	msg = append(msg, "0.2.0"...)
	msg = append(msg, in.Hash[:]...)
	msg = binary.LittleEndian.AppendUint64(msg, 1234)
	if in.Message() != sha512.Sum512(msg) {
		t.Error("Message is not SHA-512(version || hash || size_le)")
	}
	other, _, _ := ed25519.GenerateKey(nil)
	for name, tamper := range map[string]func(*Info){
		"version": func(i *Info) { i.Version = "0.2.1" },
		"hash":    func(i *Info) { i.Hash[31] ^= 1 },
		"size":    func(i *Info) { i.Size++ },
		"sig":     func(i *Info) { i.Signature[0] ^= 1 },
	} {
		c := in
		tamper(&c)
		if err := c.VerifySignature(pub); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tampered %s: got %v, want ErrBadSignature", name, err)
		}
	}
	if err := in.VerifySignature(other); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: got %v, want ErrBadSignature", err)
	}
	if err := (Info{}).VerifySignature(pub); !errors.Is(err, ErrUnsigned) {
		t.Errorf("zero Info: got %v, want ErrUnsigned", err)
	}
}

func TestCurrentUnsigned(t *testing.T) {
	in, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	if in.Signed() || in.Version != "" {
		t.Errorf("test binary's own region = %+v, want unsigned", in)
	}
}

func TestVersions(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"1.2.3", "1.2.3", true},
		{"v1.2.3", "1.2.3", true},
		{"0.2.0", "0.2.0", true},
		{"1.0.0-rc.1", "1.0.0-rc.1", true},
		{"v10.20.30-beta", "10.20.30-beta", true},
		{"1.0.0+build.5", "1.0.0+build.5", true},
		{"1.2.3-aaaaaaaaaaa", "", false}, // 17 bytes
		{"", "", false},
		{"v", "", false},
		{"1.2", "", false},
		{"1", "", false},
		{"01.2.3", "", false},
		{"1.2.3.4", "", false},
		{"1.2.3-", "", false},
		{"latest", "", false},
		{"vv1.2.3", "", false},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseVersion(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadVersion) {
			t.Errorf("ParseVersion(%q) error %v is not ErrBadVersion", tt.in, err)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "2.0.0", -1},
		{"2.0.0", "1.0.0", 1},
		{"1.0.0", "v1.0.0", 0},
		{"1.10.0", "1.9.0", 1},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0-rc.2", "1.0.0-rc.10", -1},
		{"1.0.0-alpha", "1.0.0-beta", -1},
		{"1.0.0+a", "1.0.0+b", 0},
		{"", "0.0.1", -1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	if !IsPrerelease("2.0.0-rc.1") || IsPrerelease("2.0.0") || IsPrerelease("2.0.0+meta") {
		t.Error("IsPrerelease wrong")
	}
}

func TestKeys(t *testing.T) {
	key := vectorKey(t)
	if got := EncodePublicKey(key.Public().(ed25519.PublicKey)); got != vectorPub {
		t.Fatalf("public key of the test vector seed = %s, want %s", got, vectorPub)
	}
	if got := EncodeSecretKey(key); got != vectorSeed {
		t.Fatalf("EncodeSecretKey = %s, want %s", got, vectorSeed)
	}
	if _, err := ParsePublicKey(" " + vectorPub + "\n"); err != nil {
		t.Errorf("white space around key: %v", err)
	}
	bad := []string{
		"",
		vectorPub[:51],
		vectorPub + "y",
		strings.Replace(vectorPub, "a", "0", 1), // '0' is not in the z-base-32 alphabet
		strings.ToUpper(vectorPub),
		vectorPub[:51] + "9", // non-canonical spare bits
	}
	for _, s := range bad {
		if _, err := ParsePublicKey(s); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParsePublicKey(%q) = %v, want ErrBadKey", s, err)
		}
		if _, err := ParseSecretKey(s); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseSecretKey(%q) = %v, want ErrBadKey", s, err)
		}
	}
}
