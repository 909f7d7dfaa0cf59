package region

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckFileSize: what the signed region alone says a file's length
// may be, as a node checks an offer before downloading it.
func TestCheckFileSize(t *testing.T) {
	const n = 10 << 20
	v1 := func(target string) Info {
		return Info{Format: V1, Version: "1.0.0", Size: n, Offset: 4096, Target: target}
	}
	v0 := Info{Format: V0, Version: "1.0.0", Size: n - Size}
	tests := []struct {
		name string
		in   Info
		size int64
		ok   bool
	}{
		{"linux, no tail", v1("linux/amd64"), n, true},
		{"linux, one byte of tail", v1("linux/amd64"), n + 1, false},
		{"linux, the longest tail", v1("linux/amd64"), n + MaxTail(n), false},
		{"freebsd, a tail", v1("freebsd/arm64"), n + 4096, false},
		{"wasip1, a tail", v1("wasip1/wasm"), n + 1, false},
		{"darwin, a code signature", v1("darwin/arm64"), n + 4096, true},
		{"ios, a code signature", v1("ios/arm64"), n + 4096, true},
		{"windows, a certificate table", v1("windows/amd64"), n + 4096, true},
		{"windows, the longest tail", v1("windows/amd64"), n + MaxTail(n), true},
		{"windows, past the longest tail", v1("windows/amd64"), n + MaxTail(n) + 1, false},
		{"shorter than the content", v1("windows/amd64"), n - 1, false},
		{"v0 names no target: its headers tell", v0, n + 4096, true},
		{"v0 past the longest tail", v0, n + MaxTail(n) + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.CheckFileSize(tt.size)
			if tt.ok && err != nil {
				t.Errorf("CheckFileSize(%d) = %v, want nil", tt.size, err)
			}
			if !tt.ok && !errors.Is(err, ErrSizeMismatch) {
				t.Errorf("CheckFileSize(%d) = %v, want ErrSizeMismatch", tt.size, err)
			}
		})
	}
	if MaxFileLen != MaxContentLen+MaxTail(MaxContentLen) {
		t.Errorf("MaxFileLen = %d, want MaxContentLen+MaxTail(MaxContentLen) = %d", int64(MaxFileLen), MaxContentLen+MaxTail(MaxContentLen))
	}
}

// TestCheckHeader: what a file's first bytes (piece 0 of a download) say
// may follow its content, as far as the content decides it.
func TestCheckHeader(t *testing.T) {
	const n = 1 << 20
	elf := append([]byte("\x7fELF"), make([]byte, 60)...)
	pe := func(certOff, certLen uint32) []byte {
		h := peHeader()
		binary.LittleEndian.PutUint32(h[0xe8:], certOff)
		binary.LittleEndian.PutUint32(h[0xec:], certLen)
		return h
	}
	v0 := Info{Format: V0, Version: "1.0.0", Size: n - Size}
	win := Info{Format: V1, Version: "1.0.0", Size: n, Offset: 4096, Target: "windows/amd64"}
	tests := []struct {
		name   string
		in     Info
		header []byte
		size   int64
		ok     bool
	}{
		{"ELF, no tail", v0, elf, n, true},
		{"ELF, a tail of zeros", v0, elf, n + MaxTail(n), false},
		{"raw bytes, a tail", v0, []byte("just some bytes"), n + 1, false},
		{"PE, no tail", win, pe(0, 0), n, true},
		{"PE, its certificate table", win, pe(n, 2000), n + 2000, true},
		// Where a PE's table lies is in fields the content leaves out:
		// the whole file decides (Scanned.MatchesLayout).
		{"PE, a tail but no table: left to the whole file", win, pe(0, 0), n + 2000, true},
		{"PE past the longest tail", win, pe(n, 2000), n + MaxTail(n) + 1, false},
		{"ELF for windows: CheckFileSize allows, the header does not", win, elf, n + 2000, false},
		{"v0 ELF past the longest tail", v0, elf, n + MaxTail(n) + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.CheckHeader(tt.header, tt.size)
			if tt.ok && err != nil {
				t.Errorf("CheckHeader(%d) = %v, want nil", tt.size, err)
			}
			if !tt.ok && !errors.Is(err, ErrSizeMismatch) {
				t.Errorf("CheckHeader(%d) = %v, want ErrSizeMismatch", tt.size, err)
			}
		})
	}
}

// TestScanReleaseFile: a file in a release directory is refused without
// being read when it is longer than any release, and after reading only
// up to its region when the region or its file type rules its length
// out; other files scan as with ScanFile.
func TestScanReleaseFile(t *testing.T) {
	ctx := context.Background()
	key := vectorKey(t)
	r := rand.New(rand.NewPCG(5, 6))
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	signed := func(name, target string, format Format) string {
		t.Helper()
		p := write(name, cat([]byte("\x7fELF"), randBytes(r, 20000), unsignedRegion(), randBytes(r, 20000)))
		if _, err := Sign(ctx, p, key, SignOptions{Version: "1.0.0", Format: format, Target: target}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	appendZeros := func(p string, n int64) string {
		t.Helper()
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, st.Size()+n); err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := write("huge", nil)
	if err := os.Truncate(huge, MaxFileLen+1); err != nil {
		t.Skipf("no sparse file of %d bytes here: %v", int64(MaxFileLen+1), err)
	}
	tests := []struct {
		name string
		path string
		want error // nil: scans as ScanFile does
	}{
		{"a release", signed("ok", "linux/amd64", V1), nil},
		{"zeros after an ELF signed for windows: its header tells", appendZeros(signed("win", "windows/amd64", V1), 100), ErrSizeMismatch},
		{"zeros after a release for linux", appendZeros(signed("linux-tail", "linux/amd64", V1), 4096), ErrSizeMismatch},
		{"zeros after a v0 ELF", appendZeros(signed("v0-tail", "", V0), 4096), ErrSizeMismatch},
		{"shorter than its content", func() string {
			p := signed("short", "linux/amd64", V1)
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-1)
			return p
		}(), ErrSizeMismatch},
		{"longer than any release", huge, ErrSizeMismatch},
		{"no region", write("none", randBytes(r, 5000)), ErrNoRegion},
		{"two regions", write("two", cat(randBytes(r, 100), unsignedRegion(), randBytes(r, 100), unsignedRegion())), ErrMultipleRegions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ScanReleaseFile(ctx, tt.path)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.path) {
					t.Fatalf("ScanReleaseFile = %v, want %v naming the file", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, err := ScanFile(ctx, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if s.Offset != want.Offset || s.Root != want.Root || s.FileID != want.FileID || s.FileSize != want.FileSize {
				t.Errorf("ScanReleaseFile and ScanFile disagree: %+v, %+v", s, want)
			}
		})
	}
}

// TestScanSkipsHoles: the pass that locates the region skips the holes of
// a sparse file (on Linux; elsewhere it reads their zeros) and still finds
// the region at its offset, after islands of data, one of which ends in
// the first bytes of a marker.
func TestScanSkipsHoles(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 8))
	rel := filepath.Join(t.TempDir(), "rel")
	if err := os.WriteFile(rel, cat(randBytes(r, 20000), unsignedRegion(), randBytes(r, 20000)), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(ctx, rel, vectorKey(t), SignOptions{Version: "1.0.0", Target: "linux/amd64"}); err != nil {
		t.Fatal(err)
	}
	relBytes, _ := os.ReadFile(rel)
	at, err := ScanFile(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const island, release = 256 << 20, 512 << 20
	m1, _ := markersV1()
	if _, err := f.WriteAt(cat(randBytes(r, 10000), m1[:10]), island); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(relBytes, release); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(release + int64(len(relBytes)) + 1<<20); err != nil {
		t.Skipf("no sparse file here: %v", err)
	}
	s, err := ScanReleaseFile(ctx, path)
	if !errors.Is(err, ErrSizeMismatch) || s == nil {
		t.Fatalf("ScanReleaseFile = %v, want ErrSizeMismatch and the region found", err)
	}
	if s.Offset != release+at.Offset {
		t.Errorf("region found at %d, want %d", s.Offset, release+at.Offset)
	}
	if in, err := s.Info(); err != nil || in.Version != "1.0.0" {
		t.Errorf("region found: %+v, %v", in, err)
	}
}
