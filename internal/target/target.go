// Package target is a GOOS/GOARCH pair, such as linux/amd64, and how to tell
// it from the headers of an executable.
package target

import (
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// A Target is a GOOS/GOARCH pair, such as linux/amd64. Each target of a
// release has its own signing key.
type Target struct {
	OS   string // GOOS, lower case
	Arch string // GOARCH, lower case
}

// Parse parses "linux/amd64", "linux-amd64", "linux_amd64" or
// "LINUX_AMD64" (case is ignored, surrounding space too) into a Target.
func Parse(s string) (Target, error) {
	f := strings.FieldsFunc(strings.ToLower(strings.TrimSpace(s)), func(r rune) bool {
		return r == '/' || r == '-' || r == '_'
	})
	if len(f) != 2 || !isWord(f[0]) || !isWord(f[1]) {
		return Target{}, fmt.Errorf("target %q: want OS/ARCH, such as linux/amd64", s)
	}
	return Target{OS: f[0], Arch: f[1]}, nil
}

// isWord reports whether s is a non-empty run of [a-z0-9].
func isWord(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// Current returns the target of the running program.
func Current() Target { return Target{OS: runtime.GOOS, Arch: runtime.GOARCH} }

// String returns "os/arch".
func (t Target) String() string { return t.OS + "/" + t.Arch }

// KeyEnv returns the name of the environment variable (and of the CI secret)
// that conventionally holds the target's signing key: RP_KEY_<OS>_<ARCH> in
// upper case, such as RP_KEY_LINUX_AMD64.
func (t Target) KeyEnv() string {
	return "RP_KEY_" + strings.ToUpper(t.OS) + "_" + strings.ToUpper(t.Arch)
}

// ErrUnknownFormat means Detect does not recognise an executable's format,
// or its machine.
var ErrUnknownFormat = errors.New("not a recognised ELF, Mach-O or PE executable")

// DetectFile is Detect for the file at path; its errors name the file.
func DetectFile(path string) (Target, error) {
	f, err := os.Open(path)
	if err != nil {
		return Target{}, err
	}
	defer f.Close()
	t, err := Detect(f)
	if err != nil {
		return Target{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Detect reads the executable headers in r and returns their target. ELF
// executables are linux unless their OS ABI names a BSD; Mach-O executables
// are darwin; PE executables are windows. An executable of another format,
// or for a machine Detect does not know, is an ErrUnknownFormat.
//
// Detect reads the few header fields it needs and nothing more: the
// parsers of debug/elf, debug/macho and debug/pe would link their section
// readers, with zlib and zstd decompression, into every app that embeds
// the client.
func Detect(r io.ReaderAt) (Target, error) {
	var h [64]byte
	n, _ := r.ReadAt(h[:], 0)
	b := h[:n]
	switch {
	case len(b) >= 4 && string(b[:4]) == elf.ELFMAG:
		return elfTarget(b)
	case len(b) >= 8 && (binary.LittleEndian.Uint32(b) == macho.Magic64 || binary.LittleEndian.Uint32(b) == macho.Magic32):
		return machoTarget(macho.Cpu(binary.LittleEndian.Uint32(b[4:])))
	case len(b) >= 8 && (binary.BigEndian.Uint32(b) == macho.Magic64 || binary.BigEndian.Uint32(b) == macho.Magic32):
		return machoTarget(macho.Cpu(binary.BigEndian.Uint32(b[4:])))
	case len(b) >= 0x40 && string(b[:2]) == "MZ":
		var sig [6]byte
		off := int64(binary.LittleEndian.Uint32(b[0x3c:]))
		if _, err := r.ReadAt(sig[:], off); err != nil || string(sig[:4]) != "PE\x00\x00" {
			return Target{}, ErrUnknownFormat
		}
		switch m := binary.LittleEndian.Uint16(sig[4:]); m {
		case pe.IMAGE_FILE_MACHINE_AMD64:
			return Target{"windows", "amd64"}, nil
		case pe.IMAGE_FILE_MACHINE_ARM64:
			return Target{"windows", "arm64"}, nil
		case pe.IMAGE_FILE_MACHINE_I386:
			return Target{"windows", "386"}, nil
		default:
			return Target{}, fmt.Errorf("PE for machine %#x: %w", m, ErrUnknownFormat)
		}
	}
	return Target{}, ErrUnknownFormat
}

// machoTarget returns the target of a Mach-O executable for cpu.
func machoTarget(cpu macho.Cpu) (Target, error) {
	switch cpu {
	case macho.CpuAmd64:
		return Target{"darwin", "amd64"}, nil
	case macho.CpuArm64:
		return Target{"darwin", "arm64"}, nil
	}
	return Target{}, fmt.Errorf("Mach-O for CPU %v: %w", cpu, ErrUnknownFormat)
}

// elfTarget returns the target of an ELF executable whose header starts
// h (the first 64 bytes of the file, or all of a shorter one).
func elfTarget(h []byte) (Target, error) {
	// The header is 52 bytes in a 32-bit ELF file, 64 in a 64-bit one.
	if len(h) < elf.EI_NIDENT {
		return Target{}, fmt.Errorf("%w: ELF file of %d bytes (truncated?)", ErrUnknownFormat, len(h))
	}
	var size int
	switch elf.Class(h[elf.EI_CLASS]) {
	case elf.ELFCLASS32:
		size = 52
	case elf.ELFCLASS64:
		size = 64
	default:
		return Target{}, fmt.Errorf("%w: ELF class %d", ErrUnknownFormat, h[elf.EI_CLASS])
	}
	var order binary.ByteOrder
	switch elf.Data(h[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		order = binary.LittleEndian
	case elf.ELFDATA2MSB:
		order = binary.BigEndian
	default:
		return Target{}, fmt.Errorf("%w: ELF data encoding %d", ErrUnknownFormat, h[elf.EI_DATA])
	}
	if len(h) < size {
		return Target{}, fmt.Errorf("%w: ELF header of %d bytes, want %d (truncated?)", ErrUnknownFormat, len(h), size)
	}
	if elf.Version(h[elf.EI_VERSION]) != elf.EV_CURRENT || elf.Version(order.Uint32(h[20:])) != elf.EV_CURRENT {
		return Target{}, fmt.Errorf("%w: ELF version %d", ErrUnknownFormat, h[elf.EI_VERSION])
	}
	osabi, machine := elf.OSABI(h[elf.EI_OSABI]), elf.Machine(order.Uint16(h[18:]))
	data := elf.Data(h[elf.EI_DATA])
	goos := "linux"
	switch osabi {
	case elf.ELFOSABI_FREEBSD:
		goos = "freebsd"
	case elf.ELFOSABI_NETBSD:
		goos = "netbsd"
	case elf.ELFOSABI_OPENBSD:
		goos = "openbsd"
	}
	var arch string
	switch machine {
	case elf.EM_X86_64:
		arch = "amd64"
	case elf.EM_AARCH64:
		arch = "arm64"
	case elf.EM_386:
		arch = "386"
	case elf.EM_ARM:
		arch = "arm"
	case elf.EM_RISCV:
		arch = "riscv64"
	case elf.EM_S390:
		arch = "s390x"
	case elf.EM_LOONGARCH:
		arch = "loong64"
	case elf.EM_PPC64:
		arch = "ppc64"
		if data == elf.ELFDATA2LSB {
			arch = "ppc64le"
		}
	default:
		return Target{}, fmt.Errorf("ELF for machine %v: %w", machine, ErrUnknownFormat)
	}
	return Target{OS: goos, Arch: arch}, nil
}
