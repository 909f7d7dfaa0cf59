package main

import (
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"errors"
	"fmt"
	"io"
)

// errUnknownFormat means a file is not an executable whose target rpseed can
// tell.
var errUnknownFormat = errors.New("not an ELF, Mach-O or PE executable of a known architecture")

// detectTarget tells the "GOOS/GOARCH" of an executable from its header. It
// is only needed when several targets share one key.
func detectTarget(r io.ReaderAt) (string, error) {
	if f, err := elf.NewFile(r); err == nil {
		defer f.Close()
		goos := "linux"
		switch f.OSABI {
		case elf.ELFOSABI_FREEBSD:
			goos = "freebsd"
		case elf.ELFOSABI_NETBSD:
			goos = "netbsd"
		case elf.ELFOSABI_OPENBSD:
			goos = "openbsd"
		}
		arch := map[elf.Machine]string{
			elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386",
			elf.EM_ARM: "arm", elf.EM_RISCV: "riscv64", elf.EM_S390: "s390x",
			elf.EM_LOONGARCH: "loong64",
		}[f.Machine]
		if f.Machine == elf.EM_PPC64 {
			arch = "ppc64"
			if f.ByteOrder.String() == "LittleEndian" {
				arch = "ppc64le"
			}
		}
		if arch == "" {
			return "", fmt.Errorf("%w: ELF machine %v", errUnknownFormat, f.Machine)
		}
		return goos + "/" + arch, nil
	}
	if f, err := macho.NewFile(r); err == nil {
		defer f.Close()
		switch f.Cpu {
		case macho.CpuAmd64:
			return "darwin/amd64", nil
		case macho.CpuArm64:
			return "darwin/arm64", nil
		}
		return "", fmt.Errorf("%w: Mach-O CPU %v", errUnknownFormat, f.Cpu)
	}
	if f, err := pe.NewFile(r); err == nil {
		defer f.Close()
		switch f.Machine {
		case pe.IMAGE_FILE_MACHINE_AMD64:
			return "windows/amd64", nil
		case pe.IMAGE_FILE_MACHINE_ARM64:
			return "windows/arm64", nil
		case pe.IMAGE_FILE_MACHINE_I386:
			return "windows/386", nil
		}
		return "", fmt.Errorf("%w: PE machine %#x", errUnknownFormat, f.Machine)
	}
	return "", errUnknownFormat
}
