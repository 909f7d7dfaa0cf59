// Package target is a GOOS/GOARCH pair, such as linux/amd64, and how to tell
// it from the headers of an executable.
package target

import (
	"debug/elf"
	"debug/macho"
	"debug/pe"
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
func Detect(r io.ReaderAt) (Target, error) {
	ef, elfErr := elf.NewFile(r)
	if elfErr == nil {
		return elfTarget(ef)
	}
	if mf, err := macho.NewFile(r); err == nil {
		switch mf.Cpu {
		case macho.CpuAmd64:
			return Target{"darwin", "amd64"}, nil
		case macho.CpuArm64:
			return Target{"darwin", "arm64"}, nil
		}
		return Target{}, fmt.Errorf("Mach-O for CPU %v: %w", mf.Cpu, ErrUnknownFormat)
	}
	if pf, err := pe.NewFile(r); err == nil {
		switch pf.Machine {
		case pe.IMAGE_FILE_MACHINE_AMD64:
			return Target{"windows", "amd64"}, nil
		case pe.IMAGE_FILE_MACHINE_ARM64:
			return Target{"windows", "arm64"}, nil
		case pe.IMAGE_FILE_MACHINE_I386:
			return Target{"windows", "386"}, nil
		}
		return Target{}, fmt.Errorf("PE for machine %#x: %w", pf.Machine, ErrUnknownFormat)
	}
	var magic [len(elf.ELFMAG)]byte
	if _, err := r.ReadAt(magic[:], 0); err == nil && string(magic[:]) == elf.ELFMAG {
		// Say why an ELF file, likely truncated, did not parse.
		return Target{}, fmt.Errorf("%w: %v", ErrUnknownFormat, elfErr)
	}
	return Target{}, ErrUnknownFormat
}

// elfTarget returns the target of an ELF executable.
func elfTarget(ef *elf.File) (Target, error) {
	goos := "linux"
	switch ef.OSABI {
	case elf.ELFOSABI_FREEBSD:
		goos = "freebsd"
	case elf.ELFOSABI_NETBSD:
		goos = "netbsd"
	case elf.ELFOSABI_OPENBSD:
		goos = "openbsd"
	}
	var arch string
	switch ef.Machine {
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
		if ef.Data == elf.ELFDATA2LSB {
			arch = "ppc64le"
		}
	default:
		return Target{}, fmt.Errorf("ELF for machine %v: %w", ef.Machine, ErrUnknownFormat)
	}
	return Target{OS: goos, Arch: arch}, nil
}
