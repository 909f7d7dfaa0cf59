package region

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/org/rustpatcher-go/internal/exefmt"
)

// refScan is the in-memory reference for Scan: it finds every region of
// either format with a naive loop and computes the content's digests from a
// canonical copy of the whole file.
type refScan struct {
	count     int
	off       int
	end       int64
	v0Hash    [HashLen]byte
	v0Size    uint64
	root      [HashLen]byte
	leaves    [][32]byte
	fileID    [32]byte
	layoutErr error
}

func reference(b []byte) refScan {
	r := refScan{off: -1}
	m0 := []byte(Marker)
	m1, m1end := []byte(V1Marker), []byte(V1EndMarker)
	for i := 0; i+Size <= len(b); i++ {
		v0 := bytes.Equal(b[i:i+MarkerLen], m0) && bytes.Equal(b[i+endOff:i+Size], m0)
		v1 := bytes.Equal(b[i:i+V1MarkerLen], m1) && bytes.Equal(b[i+v1EndOff:i+Size], m1end)
		if v0 || v1 {
			r.count++
			if r.off < 0 {
				r.off = i
			}
			i += Size - 1
		}
	}
	if r.count != 1 {
		return r
	}
	l, err := exefmt.Parse(b[:min(len(b), exefmt.MaxHeader)], int64(len(b)))
	if err != nil {
		r.layoutErr = err
		return r
	}
	r.end = int64(len(b))
	if in, err := Parse(b[r.off : r.off+Size]); err == nil && in.Signed() && in.ContentLen() >= int64(r.off)+Size && in.ContentLen() <= int64(len(b)) {
		r.end = in.ContentLen()
	}
	c := bytes.Clone(b[:r.end])
	var mutable []byte
	for _, m := range l.Mutable {
		for k := m.Off; k < m.End() && k < r.end; k++ {
			mutable = append(mutable, c[k])
			c[k] = 0
		}
	}
	cut := append(bytes.Clone(c[:r.off]), c[r.off+Size:]...)
	sum := sha512.Sum512(cut)
	copy(r.v0Hash[:], sum[:])
	r.v0Size = uint64(len(cut))
	clear(c[r.off : r.off+Size])
	for k := 0; k < len(c); k += PieceSize {
		r.leaves = append(r.leaves, sha256.Sum256(c[k:min(k+PieceSize, len(c))]))
	}
	r.root = Root(int64(len(c)), r.leaves)
	tail := sha256.Sum256(b[r.end:])
	id := sha256.New()
	id.Write([]byte("rustpatcher-go file\x00"))
	id.Write(b[r.off : r.off+Size])
	id.Write(binary.LittleEndian.AppendUint64(nil, uint64(r.off)))
	id.Write(binary.LittleEndian.AppendUint64(nil, uint64(r.end)))
	id.Write(mutable)
	id.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(b))-uint64(r.end)))
	id.Write(tail[:])
	id.Sum(r.fileID[:0])
	return r
}

// check compares a scan with the reference and returns a description of
// the first difference, or "".
func (r refScan) check(s *Scanned, err error) string {
	switch {
	case r.count == 0:
		if !errors.Is(err, ErrNoRegion) {
			return fmt.Sprintf("err = %v, want ErrNoRegion", err)
		}
	case r.count > 1:
		if !errors.Is(err, ErrMultipleRegions) {
			return fmt.Sprintf("err = %v, want ErrMultipleRegions", err)
		}
	case r.layoutErr != nil:
		if err == nil {
			return fmt.Sprintf("no error, want the layout's: %v", r.layoutErr)
		}
	case err != nil:
		return fmt.Sprintf("err = %v", err)
	case s.Offset != int64(r.off):
		return fmt.Sprintf("offset %d, want %d", s.Offset, r.off)
	case s.ContentEnd != r.end:
		return fmt.Sprintf("content end %d, want %d", s.ContentEnd, r.end)
	case s.V0Hash != r.v0Hash || s.V0Size != r.v0Size:
		return fmt.Sprintf("v0 digest differs (size %d, want %d)", s.V0Size, r.v0Size)
	case s.Root != r.root || len(s.Leaves) != len(r.leaves):
		return fmt.Sprintf("v1 root differs (%d leaves, want %d)", len(s.Leaves), len(r.leaves))
	case s.FileID != r.fileID:
		return "file ID differs"
	}
	return ""
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

// signedV1 returns a V1 region with the given fields, signed by the vector
// key, as a stand-in for one rpsign wrote at offset off of content of size
// bytes.
func signedV1(t testing.TB, off, size uint64) []byte {
	in := Info{Format: V1, Version: "1.0.0", Target: "linux/amd64", Size: size, Offset: off}
	in.Hash[0] = 1
	in.Sign(vectorKey(t))
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b[:]
}

func TestScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	reg := unsignedRegion()
	m := []byte(Marker)
	v1 := signedV1(t, 3000, 6176)
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
		{"v1 region", cat(randBytes(r, 3000), v1, randBytes(r, 3000)), 1},
		{"v1 region, content shorter than the file", cat(randBytes(r, 3000), v1, randBytes(r, 4000)), 1},
		{"v1 region, file shorter than the content", cat(randBytes(r, 3000), v1, randBytes(r, 100)), 1},
		{"v1 and v0 regions", cat(randBytes(r, 3000), v1, reg), 2},
		{"lone v1 marker", cat([]byte(V1Marker), randBytes(r, 300)), 0},
		{"v1 marker, v0 end", cat([]byte(V1Marker), reg[V1MarkerLen:]), 0},
		{"v1 region over two pieces", cat(randBytes(r, PieceSize-100), signedV1(t, PieceSize-100, PieceSize+5000), randBytes(r, 4824)), 1},
		{"ELF header", cat([]byte("\x7fELF"), randBytes(r, 2000), reg), 1},
	}
	// Small chunks move every boundary through markers and regions.
	chunks := []int{1, 2, 15, 16, 17, 27, 28, 29, 100, 175, 176, 177, 4096, chunkSize}
	for _, tt := range tests {
		ref := reference(tt.file)
		if ref.count != tt.count {
			t.Fatalf("%s: reference found %d regions, table says %d", tt.name, ref.count, tt.count)
		}
		for _, c := range chunks {
			if c < 100 && len(tt.file) > 100000 {
				continue // slow, and the small files cover small chunks
			}
			for _, rd := range []string{"plain", "onebyte", "half"} {
				in := iotestReader(rd, bytes.NewReader(tt.file))
				s, err := scan(context.Background(), in, scanOptions{v0: true, v1: true, size: -1}, make([]byte, c+Size))
				if diff := ref.check(s, err); diff != "" {
					t.Errorf("%s chunk=%d %s: %s", tt.name, c, rd, diff)
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
	for _, f := range []Format{V1, V0} {
		t.Run(f.String(), func(t *testing.T) { testSignVerify(t, f) })
	}
}

func testSignVerify(t *testing.T, f Format) {
	ctx := context.Background()
	key := vectorKey(t)
	pub := key.Public().(ed25519.PublicKey)
	r := rand.New(rand.NewPCG(3, 4))
	content := cat(randBytes(r, 7000), unsignedRegion(), randBytes(r, 3000))
	path := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(path, content, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := SignOptions{Version: "v1.2.3", Format: f}
	if f == V1 {
		opts.Target = "linux/arm64"
	}
	in, err := Sign(ctx, path, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	if in.Format != f || in.Version != "1.2.3" || in.ContentLen() != int64(len(content)) {
		t.Errorf("Sign = %+v", in)
	}
	if f == V1 && (in.Target != "linux/arm64" || in.Offset != 7000) {
		t.Errorf("Sign = %+v, want target linux/arm64 at offset 7000", in)
	}
	signed, _ := os.ReadFile(path)
	// Only the region's bytes changed.
	if !bytes.Equal(signed[:7000], content[:7000]) || !bytes.Equal(signed[7000+Size:], content[7000+Size:]) {
		t.Fatal("Sign changed bytes outside the region")
	}
	got, err := VerifyFile(ctx, path, pub)
	if err != nil || got != in {
		t.Fatalf("VerifyFile = %+v, %v", got, err)
	}
	if got, err := Verify(ctx, bytes.NewReader(signed), pub); err != nil || got != in {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	// Re-signing a signed file works and gives the same digest.
	opts.Version = "1.2.4"
	in2, err := Sign(ctx, path, key, opts)
	if err != nil || in2.Hash != in.Hash || in2.Version != "1.2.4" {
		t.Fatalf("re-sign: %+v, %v", in2, err)
	}
	os.WriteFile(path, signed, 0o755)

	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := VerifyFile(ctx, path, other); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: %v", err)
	}
	// Any changed byte outside the region fails, and in V1 any byte of it
	// too. -short flips every byte of the region and around its edges and
	// the file's, and every 61st byte elsewhere.
	for pos := range signed {
		inRegion := pos >= 7000 && pos < 7000+Size
		nearEdge := pos < 64 || pos >= len(signed)-64 || (pos >= 7000-64 && pos < 7000+Size+64)
		if testing.Short() && !inRegion && !nearEdge && pos%61 != 0 {
			continue
		}
		if inRegion && f == V0 {
			continue // V0's region fields are checked through the signature alone
		}
		b := bytes.Clone(signed)
		b[pos] ^= 0x40
		if _, err := Verify(ctx, bytes.NewReader(b), pub); err == nil {
			t.Fatalf("byte %d flipped: the file still verifies", pos)
		} else if !inRegion && !errors.Is(err, ErrHashMismatch) {
			t.Errorf("byte %d flipped: got %v, want ErrHashMismatch", pos, err)
		}
	}
	// The region moved elsewhere: V1 refuses it, V0 (rustpatcher's format)
	// cannot tell.
	cut := cat(signed[:7000], signed[7000+Size:])
	moved := cat(cut[:100], signed[7000:7000+Size], cut[100:])
	_, err = Verify(ctx, bytes.NewReader(moved), pub)
	switch {
	case f == V1 && !errors.Is(err, ErrMoved):
		t.Errorf("moved region: got %v, want ErrMoved", err)
	case f == V0 && err != nil:
		t.Errorf("moved v0 region: got %v; v0 cannot see a move", err)
	}
	if f == V1 {
		// Moved, and the offset field forged too: the signature fails.
		var reg Info
		reg, _ = Parse(signed[7000 : 7000+Size])
		reg.Offset = 100
		b, _ := reg.Marshal()
		forged := cat(cut[:100], b[:], cut[100:])
		if _, err := Verify(ctx, bytes.NewReader(forged), pub); !errors.Is(err, ErrBadSignature) {
			t.Errorf("moved region with a forged offset: got %v, want ErrBadSignature", err)
		}
	}
	if _, err := Verify(ctx, bytes.NewReader(cat(signed, []byte{1})), pub); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("appended byte: got %v, want ErrSizeMismatch", err)
	}
	if _, err := Verify(ctx, bytes.NewReader(signed[:len(signed)-1]), pub); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("last byte cut: got %v, want ErrSizeMismatch", err)
	}
	if _, err := Verify(ctx, bytes.NewReader(content), pub); !errors.Is(err, ErrUnsigned) {
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
			_, err := SignFile(context.Background(), tt.path, key, tt.version, "linux/amd64")
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

// peHeader returns the headers of a PE32+ file with 16 data directories,
// none set: its Security directory (the certificate table's offset and
// size) is at 0xe8.
func peHeader() []byte {
	hdr := make([]byte, 0x148)
	copy(hdr, "MZ")
	binary.LittleEndian.PutUint32(hdr[0x3c:], 0x40)
	copy(hdr[0x40:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(hdr[0x54:], 240)
	binary.LittleEndian.PutUint16(hdr[0x58:], 0x20b)
	binary.LittleEndian.PutUint32(hdr[0xc4:], 16)
	return hdr
}

// TestPESignedAfterwards signs a PE file, then changes it as Authenticode
// signing does (CheckSum, the Security directory entry, a certificate
// table appended): the release signature still verifies, the file ID
// changes, and a tail longer than MaxTail does not verify.
func TestPESignedAfterwards(t *testing.T) {
	ctx := context.Background()
	key := vectorKey(t)
	pub := key.Public().(ed25519.PublicKey)
	r := rand.New(rand.NewPCG(9, 10))
	file := cat(peHeader(), randBytes(r, 5000), unsignedRegion(), randBytes(r, 3000))
	path := filepath.Join(t.TempDir(), "app.exe")
	if err := os.WriteFile(path, file, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := SignFile(ctx, path, key, "1.0.0", "windows/amd64")
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := os.ReadFile(path)
	before, err := Scan(ctx, bytes.NewReader(signed))
	if err != nil {
		t.Fatal(err)
	}
	authenticode := func(tail int) []byte {
		b := cat(signed, randBytes(r, tail))
		binary.LittleEndian.PutUint32(b[0x98:], 0x1234abcd)          // CheckSum
		binary.LittleEndian.PutUint32(b[0xe8:], uint32(len(signed))) // certificate table offset
		binary.LittleEndian.PutUint32(b[0xec:], uint32(tail))        // and size
		return b
	}
	b := authenticode(2000)
	s, err := Scan(ctx, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Verify(pub); err != nil || got != in {
		t.Fatalf("after Authenticode: Verify = %+v, %v", got, err)
	}
	if s.FileID == before.FileID {
		t.Error("the file ID did not change with the code signature")
	}
	if _, err := Verify(ctx, bytes.NewReader(authenticode(int(MaxTail(int64(len(signed))))+1)), pub); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("a certificate table over MaxTail: %v, want ErrSizeMismatch", err)
	}
	// Bytes appended to a PE file that names no certificate table, or
	// after the table it names, do not verify.
	junk := cat(signed, randBytes(r, 100))
	if _, err := Verify(ctx, bytes.NewReader(junk), pub); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("bytes appended without a certificate table: %v, want ErrSizeMismatch", err)
	}
	if _, err := Verify(ctx, bytes.NewReader(cat(authenticode(2000), []byte{1})), pub); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("a byte after the certificate table: %v, want ErrSizeMismatch", err)
	}
	// A changed byte of the content still fails.
	b[0x40+24+4] ^= 1
	if _, err := Verify(ctx, bytes.NewReader(b), pub); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("changed header byte: %v, want ErrHashMismatch", err)
	}
}
