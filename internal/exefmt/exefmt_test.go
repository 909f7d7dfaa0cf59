package exefmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

// macho64 returns a Mach-O 64-bit header with a __LINKEDIT segment and,
// if sig, an LC_CODE_SIGNATURE for size bytes at off.
func macho64(sig bool, off, size uint32) []byte {
	le := binary.LittleEndian
	seg := make([]byte, 72)
	le.PutUint32(seg, lcSegment64)
	le.PutUint32(seg[4:], 72)
	copy(seg[8:], "__LINKEDIT")
	cmds := seg
	ncmds := uint32(1)
	if sig {
		cs := make([]byte, 16)
		le.PutUint32(cs, lcCodeSignature)
		le.PutUint32(cs[4:], 16)
		le.PutUint32(cs[8:], off)
		le.PutUint32(cs[12:], size)
		cmds = append(cmds, cs...)
		ncmds++
	}
	h := make([]byte, machoHeader64)
	le.PutUint32(h, machoMagic64)
	le.PutUint32(h[16:], ncmds)
	le.PutUint32(h[20:], uint32(len(cmds)))
	return append(h, cmds...)
}

// pe32plus returns a PE32+ header whose Security directory is (va, size).
func pe32plus(va, size uint32) []byte {
	le := binary.LittleEndian
	h := make([]byte, 0x148)
	copy(h, "MZ")
	le.PutUint32(h[0x3c:], 0x40)
	copy(h[0x40:], "PE\x00\x00")
	le.PutUint16(h[0x54:], 240)
	le.PutUint16(h[0x58:], pe32PlusMagic)
	le.PutUint32(h[0xc4:], 16)
	le.PutUint32(h[0xe8:], va)
	le.PutUint32(h[0xec:], size)
	return h
}

func TestParse(t *testing.T) {
	fat := make([]byte, 16)
	binary.BigEndian.PutUint32(fat, fatMagic)
	binary.BigEndian.PutUint32(fat[4:], 2)
	java := make([]byte, 16)
	binary.BigEndian.PutUint32(java, fatMagic)
	binary.BigEndian.PutUint32(java[4:], 0x41) // a class file version
	tests := []struct {
		name    string
		header  []byte
		size    int64
		kind    Kind
		mutable []Range
		sig     Range
		err     error
	}{
		{"empty", nil, 0, Raw, nil, Range{}, nil},
		{"text", []byte("hello"), 5, Raw, nil, Range{}, nil},
		{"ELF", []byte("\x7fELF\x02\x01\x01"), 100, ELF, nil, Range{}, nil},
		{"Mach-O without a signature", macho64(false, 0, 0), 5000, MachO, nil, Range{}, nil},
		{"Mach-O with a signature", macho64(true, 4000, 1000), 5000, MachO,
			[]Range{{32 + 32, 8}, {32 + 48, 8}, {32 + 72 + 12, 4}}, Range{4000, 1000}, nil},
		{"Mach-O signature past the end", macho64(true, 4000, 2000), 5000, MachO, nil, Range{}, ErrMalformed},
		{"Mach-O commands cut short", macho64(true, 4000, 1000)[:100], 5000, MachO, nil, Range{}, ErrMalformed},
		{"universal", fat, 100, Raw, nil, Range{}, ErrUniversal},
		{"Java class", java, 100, Raw, nil, Range{}, nil},
		{"PE without certificates", pe32plus(0, 0), 5000, PE, []Range{{0x98, 4}, {0xe8, 8}}, Range{}, nil},
		{"PE with certificates", pe32plus(4000, 1000), 5000, PE, []Range{{0x98, 4}, {0xe8, 8}}, Range{4000, 1000}, nil},
		{"PE certificates past the end", pe32plus(4500, 1000), 5000, PE, nil, Range{}, ErrMalformed},
		{"MZ only", []byte("MZ"), 2, Raw, nil, Range{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.header, tt.size)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Parse = %+v, %v; want %v", l, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Kind != tt.kind || l.Signature != tt.sig || len(l.Mutable) != len(tt.mutable) {
				t.Fatalf("Parse = %+v, want kind %v, mutable %v, signature %v", l, tt.kind, tt.mutable, tt.sig)
			}
			for i := range l.Mutable {
				if l.Mutable[i] != tt.mutable[i] {
					t.Errorf("mutable %d = %v, want %v", i, l.Mutable[i], tt.mutable[i])
				}
			}
		})
	}
}

// FuzzParse checks that Parse never panics on untrusted headers and that
// what it returns lies inside the header and the file.
func FuzzParse(f *testing.F) {
	f.Add(macho64(true, 4000, 1000), int64(5000))
	f.Add(pe32plus(4000, 1000), int64(5000))
	f.Add([]byte("\x7fELF"), int64(10))
	f.Fuzz(func(t *testing.T, h []byte, size int64) {
		if size < int64(len(h)) {
			size = int64(len(h))
		}
		l, err := Parse(h, size)
		if err != nil {
			return
		}
		for _, m := range l.Mutable {
			if m.Off < 0 || m.End() > int64(len(h)) {
				t.Fatalf("mutable field %v outside the %d header bytes", m, len(h))
			}
		}
		if l.HasSignature() && (l.Signature.Off < 0 || l.Signature.End() > size) {
			t.Fatalf("signature %v outside the file of %d bytes", l.Signature, size)
		}
	})
}

// FuzzCodeDirectories checks that reading an untrusted code signature
// never panics.
func FuzzCodeDirectories(f *testing.F) {
	f.Add([]byte{0xfa, 0xde, 0x0c, 0xc0, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20})
	f.Fuzz(func(t *testing.T, blob []byte) {
		file := append(macho64(true, 200, uint32(len(blob))), make([]byte, 200)...)[:200]
		file = append(file, blob...)
		l, err := Parse(file[:min(len(file), MaxHeader)], int64(len(file)))
		if err != nil {
			return
		}
		codeDirectories(bytes.NewReader(file), l)
		CheckPageHashes(bytes.NewReader(file), l)
	})
}

func TestRepairNoSignature(t *testing.T) {
	p := t.TempDir() + "/f"
	if err := os.WriteFile(p, []byte("plain"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if adhoc, err := RepairCodeSignature(f, Layout{Kind: Raw}, Range{0, 2}); err != nil || !adhoc {
		t.Errorf("RepairCodeSignature without a signature = %v, %v", adhoc, err)
	}
}
