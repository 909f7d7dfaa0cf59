package github

import (
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"errors"
	"fmt"
	"os"
	"strings"
)

// A Target is a GOOS/GOARCH pair, such as linux/amd64. Each target of a
// release has its own signing key.
type Target struct {
	OS   string // GOOS, lower case
	Arch string // GOARCH, lower case
}

// ParseTarget parses "linux/amd64", "linux-amd64", "linux_amd64" or
// "LINUX_AMD64" (case is ignored) into a Target.
func ParseTarget(s string) (Target, error) {
	f := strings.FieldsFunc(strings.ToLower(strings.TrimSpace(s)), func(r rune) bool {
		return r == '/' || r == '-' || r == '_'
	})
	if len(f) != 2 || !isWord(f[0]) || !isWord(f[1]) {
		return Target{}, fmt.Errorf("target %q: want OS/ARCH, such as linux/amd64", s)
	}
	return Target{OS: f[0], Arch: f[1]}, nil
}

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

// String returns "os/arch".
func (t Target) String() string { return t.OS + "/" + t.Arch }

// KeyEnv returns the name of the environment variable (and of the CI secret)
// that conventionally holds the target's signing key: RP_KEY_<OS>_<ARCH> in
// upper case, such as RP_KEY_LINUX_AMD64.
func (t Target) KeyEnv() string {
	return "RP_KEY_" + strings.ToUpper(t.OS) + "_" + strings.ToUpper(t.Arch)
}

// ManifestName returns the name of the release asset that holds the
// target's PatchInfo, such as rustpatcher-linux-amd64.json.
func (t Target) ManifestName() string {
	return ManifestPrefix + t.OS + "-" + t.Arch + ManifestSuffix
}

// Manifest asset names are ManifestPrefix + os + "-" + arch + ManifestSuffix.
const (
	ManifestPrefix = "rustpatcher-"
	ManifestSuffix = ".json"
)

// TargetFromManifestName returns the target of a manifest asset name, and
// false when name is not one.
func TargetFromManifestName(name string) (Target, bool) {
	s, ok := strings.CutPrefix(name, ManifestPrefix)
	if !ok {
		return Target{}, false
	}
	s, ok = strings.CutSuffix(s, ManifestSuffix)
	if !ok {
		return Target{}, false
	}
	t, err := ParseTarget(s)
	if err != nil || t.ManifestName() != name {
		return Target{}, false
	}
	return t, true
}

// ErrUnknownFormat means DetectTarget does not recognise the file's
// executable format or machine.
var ErrUnknownFormat = errors.New("not a recognised ELF, Mach-O or PE executable")

// DetectTarget reads the executable headers of the file at path and returns
// its target. ELF files are taken to be linux unless their OS ABI says
// otherwise; Mach-O files are darwin; PE files are windows.
func DetectTarget(path string) (Target, error) {
	f, err := os.Open(path)
	if err != nil {
		return Target{}, err
	}
	defer f.Close()
	if ef, err := elf.NewFile(f); err == nil {
		return elfTarget(path, ef)
	}
	if mf, err := macho.NewFile(f); err == nil {
		switch mf.Cpu {
		case macho.CpuAmd64:
			return Target{"darwin", "amd64"}, nil
		case macho.CpuArm64:
			return Target{"darwin", "arm64"}, nil
		}
		return Target{}, fmt.Errorf("%s: Mach-O for CPU %v: %w", path, mf.Cpu, ErrUnknownFormat)
	}
	if pf, err := pe.NewFile(f); err == nil {
		switch pf.Machine {
		case pe.IMAGE_FILE_MACHINE_AMD64:
			return Target{"windows", "amd64"}, nil
		case pe.IMAGE_FILE_MACHINE_ARM64:
			return Target{"windows", "arm64"}, nil
		case pe.IMAGE_FILE_MACHINE_I386:
			return Target{"windows", "386"}, nil
		}
		return Target{}, fmt.Errorf("%s: PE for machine %#x: %w", path, pf.Machine, ErrUnknownFormat)
	}
	return Target{}, fmt.Errorf("%s: %w", path, ErrUnknownFormat)
}

func elfTarget(path string, ef *elf.File) (Target, error) {
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
		return Target{}, fmt.Errorf("%s: ELF for machine %v: %w", path, ef.Machine, ErrUnknownFormat)
	}
	return Target{OS: goos, Arch: arch}, nil
}
