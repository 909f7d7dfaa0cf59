package region

import (
	"encoding/binary"
	"errors"
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
		h := make([]byte, 0x148)
		copy(h, "MZ")
		binary.LittleEndian.PutUint32(h[0x3c:], 0x40)
		copy(h[0x40:], "PE\x00\x00")
		binary.LittleEndian.PutUint16(h[0x54:], 240)
		binary.LittleEndian.PutUint16(h[0x58:], 0x20b)
		binary.LittleEndian.PutUint32(h[0xc4:], 16)
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
