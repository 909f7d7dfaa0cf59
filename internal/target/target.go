// Package target is a GOOS/GOARCH pair, such as linux/amd64, and how to tell
// it from the headers of an executable.
package target

import (
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
// Detect reads the few header fields it needs and nothing more, with its
// own copies of their constants (headers.go): the parsers of debug/elf,
// debug/macho and debug/pe would link their section readers, with zlib and
// zstd decompression, into every app that embeds the client, and importing
// the packages at all links their initialisation.
func Detect(r io.ReaderAt) (Target, error) {
	var h [64]byte
	n, _ := r.ReadAt(h[:], 0)
	b := h[:n]
	switch {
	case len(b) >= 4 && string(b[:4]) == elfMagic:
		return elfTarget(b)
	case len(b) >= 8 && (binary.LittleEndian.Uint32(b) == machoMagic64 || binary.LittleEndian.Uint32(b) == machoMagic32):
		return machoTarget(binary.LittleEndian.Uint32(b[4:]))
	case len(b) >= 8 && (binary.BigEndian.Uint32(b) == machoMagic64 || binary.BigEndian.Uint32(b) == machoMagic32):
		return machoTarget(binary.BigEndian.Uint32(b[4:]))
	case len(b) >= 0x40 && string(b[:2]) == "MZ":
		var sig [6]byte
		off := int64(binary.LittleEndian.Uint32(b[0x3c:]))
		if _, err := r.ReadAt(sig[:], off); err != nil || string(sig[:4]) != "PE\x00\x00" {
			return Target{}, ErrUnknownFormat
		}
		switch m := binary.LittleEndian.Uint16(sig[4:]); m {
		case peMachineAMD64:
			return Target{"windows", "amd64"}, nil
		case peMachineARM64:
			return Target{"windows", "arm64"}, nil
		case peMachineI386:
			return Target{"windows", "386"}, nil
		default:
			return Target{}, fmt.Errorf("PE for machine %#x: %w", m, ErrUnknownFormat)
		}
	}
	return Target{}, ErrUnknownFormat
}

// machoTarget returns the target of a Mach-O executable for cpu.
func machoTarget(cpu uint32) (Target, error) {
	switch cpu {
	case machoCPUAmd64:
		return Target{"darwin", "amd64"}, nil
	case machoCPUArm64:
		return Target{"darwin", "arm64"}, nil
	}
	return Target{}, fmt.Errorf("Mach-O for CPU %#x: %w", cpu, ErrUnknownFormat)
}

// elfTarget returns the target of an ELF executable whose header starts
// h (the first 64 bytes of the file, or all of a shorter one).
func elfTarget(h []byte) (Target, error) {
	// The header is 52 bytes in a 32-bit ELF file, 64 in a 64-bit one.
	if len(h) < elfIdentLen {
		return Target{}, fmt.Errorf("%w: ELF file of %d bytes (truncated?)", ErrUnknownFormat, len(h))
	}
	var size int
	switch h[elfIdentClass] {
	case elfClass32:
		size = 52
	case elfClass64:
		size = 64
	default:
		return Target{}, fmt.Errorf("%w: ELF class %d", ErrUnknownFormat, h[elfIdentClass])
	}
	var order binary.ByteOrder
	switch h[elfIdentData] {
	case elfData2LSB:
		order = binary.LittleEndian
	case elfData2MSB:
		order = binary.BigEndian
	default:
		return Target{}, fmt.Errorf("%w: ELF data encoding %d", ErrUnknownFormat, h[elfIdentData])
	}
	if len(h) < size {
		return Target{}, fmt.Errorf("%w: ELF header of %d bytes, want %d (truncated?)", ErrUnknownFormat, len(h), size)
	}
	if h[elfIdentVersion] != elfVersionCurrent || order.Uint32(h[20:]) != elfVersionCurrent {
		return Target{}, fmt.Errorf("%w: ELF version %d", ErrUnknownFormat, h[elfIdentVersion])
	}
	osabi, machine := h[elfIdentOSABI], order.Uint16(h[18:])
	data := h[elfIdentData]
	goos := "linux"
	switch osabi {
	case elfOSABIFreeBSD:
		goos = "freebsd"
	case elfOSABINetBSD:
		goos = "netbsd"
	case elfOSABIOpenBSD:
		goos = "openbsd"
	}
	var arch string
	switch machine {
	case elfMachineX86_64:
		arch = "amd64"
	case elfMachineAArch64:
		arch = "arm64"
	case elfMachine386:
		arch = "386"
	case elfMachineARM:
		arch = "arm"
	case elfMachineRISCV:
		arch = "riscv64"
	case elfMachineS390:
		arch = "s390x"
	case elfMachineLoongArch:
		arch = "loong64"
	case elfMachinePPC64:
		arch = "ppc64"
		if data == elfData2LSB {
			arch = "ppc64le"
		}
	default:
		return Target{}, fmt.Errorf("ELF for machine %d: %w", machine, ErrUnknownFormat)
	}
	return Target{OS: goos, Arch: arch}, nil
}
