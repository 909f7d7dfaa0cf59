package target

import (
	"bytes"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		env     string
		wantErr bool
	}{
		{in: "linux/amd64", want: Target{"linux", "amd64"}, env: "RP_KEY_LINUX_AMD64"},
		{in: "linux-arm64", want: Target{"linux", "arm64"}, env: "RP_KEY_LINUX_ARM64"},
		{in: "DARWIN_ARM64", want: Target{"darwin", "arm64"}, env: "RP_KEY_DARWIN_ARM64"},
		{in: " windows/amd64 ", want: Target{"windows", "amd64"}, env: "RP_KEY_WINDOWS_AMD64"},
		{in: "windows/386", want: Target{"windows", "386"}, env: "RP_KEY_WINDOWS_386"},
		{in: "linux", wantErr: true},
		{in: "linux/amd64/v3", wantErr: true},
		{in: "linux/am d64", wantErr: true},
		{in: "linux/amd64!", wantErr: true},
		{in: "/amd64", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("Parse(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want || got.KeyEnv() != tt.env {
			t.Errorf("Parse(%q) = %v (%s), %v; want %v (%s)", tt.in, got, got.KeyEnv(), err, tt.want, tt.env)
		}
		if back, err := Parse(got.String()); err != nil || back != got {
			t.Errorf("Parse(%q.String()) = %v, %v; want %v", tt.in, back, err, got)
		}
	}
}

func TestCurrent(t *testing.T) {
	if got, want := Current().String(), runtime.GOOS+"/"+runtime.GOARCH; got != want {
		t.Errorf("Current() = %s, want %s", got, want)
	}
}

// elfHeader returns a 64-bit ELF header with no program or section headers.
func elfHeader(m elf.Machine, data elf.Data, abi elf.OSABI) []byte {
	var order binary.ByteOrder = binary.LittleEndian
	if data == elf.ELFDATA2MSB {
		order = binary.BigEndian
	}
	h := make([]byte, 64)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h[elf.EI_DATA] = byte(data)
	h[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	h[elf.EI_OSABI] = byte(abi)
	order.PutUint16(h[16:], uint16(elf.ET_EXEC))
	order.PutUint16(h[18:], uint16(m))
	order.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	order.PutUint16(h[52:], 64) // e_ehsize
	return h
}

// elfHeader32 returns a 32-bit little-endian ELF header for m.
func elfHeader32(m elf.Machine) []byte {
	h := make([]byte, 52)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	h[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.LittleEndian.PutUint16(h[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(h[18:], uint16(m))
	binary.LittleEndian.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	return h
}

// machoHeader returns a 64-bit little-endian Mach-O header with no load
// commands.
func machoHeader(cpu macho.Cpu) []byte {
	h := make([]byte, 32)
	binary.LittleEndian.PutUint32(h[0:], macho.Magic64)
	binary.LittleEndian.PutUint32(h[4:], uint32(cpu))
	binary.LittleEndian.PutUint32(h[12:], uint32(macho.TypeExec))
	return h
}

// peHeader returns a DOS stub and a COFF header with no sections, padded
// with zeros: pe.NewFile reads a few bytes past the COFF header.
func peHeader(machine uint16) []byte {
	h := make([]byte, 0x80)
	copy(h, "MZ")
	binary.LittleEndian.PutUint32(h[0x3c:], 0x40)
	copy(h[0x40:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(h[0x44:], machine)
	return h
}

func TestDetect(t *testing.T) {
	lsb, msb := elf.ELFDATA2LSB, elf.ELFDATA2MSB
	tests := []struct {
		name    string
		data    []byte
		want    Target
		wantErr bool // an ErrUnknownFormat
	}{
		{"elf amd64", elfHeader(elf.EM_X86_64, lsb, elf.ELFOSABI_NONE), Target{"linux", "amd64"}, false},
		{"elf arm64", elfHeader(elf.EM_AARCH64, lsb, elf.ELFOSABI_NONE), Target{"linux", "arm64"}, false},
		{"elf linux abi", elfHeader(elf.EM_AARCH64, lsb, elf.ELFOSABI_LINUX), Target{"linux", "arm64"}, false},
		{"elf riscv64", elfHeader(elf.EM_RISCV, lsb, elf.ELFOSABI_NONE), Target{"linux", "riscv64"}, false},
		{"elf s390x", elfHeader(elf.EM_S390, msb, elf.ELFOSABI_NONE), Target{"linux", "s390x"}, false},
		{"elf loong64", elfHeader(elf.EM_LOONGARCH, lsb, elf.ELFOSABI_NONE), Target{"linux", "loong64"}, false},
		{"elf ppc64", elfHeader(elf.EM_PPC64, msb, elf.ELFOSABI_NONE), Target{"linux", "ppc64"}, false},
		{"elf ppc64le", elfHeader(elf.EM_PPC64, lsb, elf.ELFOSABI_NONE), Target{"linux", "ppc64le"}, false},
		{"elf freebsd", elfHeader(elf.EM_X86_64, lsb, elf.ELFOSABI_FREEBSD), Target{"freebsd", "amd64"}, false},
		{"elf netbsd", elfHeader(elf.EM_AARCH64, lsb, elf.ELFOSABI_NETBSD), Target{"netbsd", "arm64"}, false},
		{"elf openbsd", elfHeader(elf.EM_X86_64, lsb, elf.ELFOSABI_OPENBSD), Target{"openbsd", "amd64"}, false},
		{"elf 386", elfHeader32(elf.EM_386), Target{"linux", "386"}, false},
		{"elf 386 truncated", elfHeader32(elf.EM_386)[:50], Target{}, true},
		{"elf bad version", append(elfHeader(elf.EM_X86_64, lsb, elf.ELFOSABI_NONE)[:elf.EI_VERSION], make([]byte, 64-elf.EI_VERSION)...), Target{}, true},
		{"elf unknown machine", elfHeader(elf.EM_SPARCV9, msb, elf.ELFOSABI_NONE), Target{}, true},
		{"elf truncated", elfHeader(elf.EM_X86_64, lsb, elf.ELFOSABI_NONE)[:40], Target{}, true},
		{"elf magic only", []byte(elf.ELFMAG), Target{}, true},
		{"mach-o amd64", machoHeader(macho.CpuAmd64), Target{"darwin", "amd64"}, false},
		{"mach-o arm64", machoHeader(macho.CpuArm64), Target{"darwin", "arm64"}, false},
		{"mach-o ppc", machoHeader(macho.CpuPpc), Target{}, true},
		{"pe amd64", peHeader(pe.IMAGE_FILE_MACHINE_AMD64), Target{"windows", "amd64"}, false},
		{"pe arm64", peHeader(pe.IMAGE_FILE_MACHINE_ARM64), Target{"windows", "arm64"}, false},
		{"pe 386", peHeader(pe.IMAGE_FILE_MACHINE_I386), Target{"windows", "386"}, false},
		{"pe arm", peHeader(pe.IMAGE_FILE_MACHINE_ARMNT), Target{}, true},
		{"script", []byte("#!/bin/sh\necho hi\n"), Target{}, true},
		{"empty", nil, Target{}, true},
	}
	for _, tt := range tests {
		got, err := Detect(bytes.NewReader(tt.data))
		if tt.wantErr {
			if !errors.Is(err, ErrUnknownFormat) {
				t.Errorf("%s: Detect = %v, %v; want ErrUnknownFormat", tt.name, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: Detect = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestDetectFile(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DetectFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if want := Current(); got != want {
		t.Errorf("DetectFile(test binary) = %v, want %v", got, want)
	}

	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	truncated := filepath.Join(dir, "truncated")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho not a binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, elfHeader(elf.EM_X86_64, elf.ELFDATA2LSB, elf.ELFOSABI_NONE)[:20], 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{script, truncated} {
		if _, err := DetectFile(path); !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), path) {
			t.Errorf("DetectFile(%s) = %v, want an ErrUnknownFormat naming the file", filepath.Base(path), err)
		}
	}
	missing := filepath.Join(dir, "missing")
	if _, err := DetectFile(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("DetectFile(missing) = %v, want a not-exist error naming the file", err)
	}
}

// TestHeaderConstants checks the header constants Detect uses (headers.go)
// against debug/elf, debug/macho and debug/pe.
func TestHeaderConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"EI_CLASS", elfIdentClass, elf.EI_CLASS},
		{"EI_DATA", elfIdentData, elf.EI_DATA},
		{"EI_VERSION", elfIdentVersion, elf.EI_VERSION},
		{"EI_OSABI", elfIdentOSABI, elf.EI_OSABI},
		{"EI_NIDENT", elfIdentLen, elf.EI_NIDENT},
		{"ELFCLASS32", elfClass32, uint64(elf.ELFCLASS32)},
		{"ELFCLASS64", elfClass64, uint64(elf.ELFCLASS64)},
		{"ELFDATA2LSB", elfData2LSB, uint64(elf.ELFDATA2LSB)},
		{"ELFDATA2MSB", elfData2MSB, uint64(elf.ELFDATA2MSB)},
		{"EV_CURRENT", elfVersionCurrent, uint64(elf.EV_CURRENT)},
		{"ELFOSABI_NETBSD", elfOSABINetBSD, uint64(elf.ELFOSABI_NETBSD)},
		{"ELFOSABI_FREEBSD", elfOSABIFreeBSD, uint64(elf.ELFOSABI_FREEBSD)},
		{"ELFOSABI_OPENBSD", elfOSABIOpenBSD, uint64(elf.ELFOSABI_OPENBSD)},
		{"EM_386", elfMachine386, uint64(elf.EM_386)},
		{"EM_PPC64", elfMachinePPC64, uint64(elf.EM_PPC64)},
		{"EM_S390", elfMachineS390, uint64(elf.EM_S390)},
		{"EM_ARM", elfMachineARM, uint64(elf.EM_ARM)},
		{"EM_X86_64", elfMachineX86_64, uint64(elf.EM_X86_64)},
		{"EM_AARCH64", elfMachineAArch64, uint64(elf.EM_AARCH64)},
		{"EM_RISCV", elfMachineRISCV, uint64(elf.EM_RISCV)},
		{"EM_LOONGARCH", elfMachineLoongArch, uint64(elf.EM_LOONGARCH)},
		{"macho.Magic32", machoMagic32, uint64(macho.Magic32)},
		{"macho.Magic64", machoMagic64, uint64(macho.Magic64)},
		{"macho.CpuAmd64", machoCPUAmd64, uint64(macho.CpuAmd64)},
		{"macho.CpuArm64", machoCPUArm64, uint64(macho.CpuArm64)},
		{"IMAGE_FILE_MACHINE_I386", peMachineI386, uint64(pe.IMAGE_FILE_MACHINE_I386)},
		{"IMAGE_FILE_MACHINE_AMD64", peMachineAMD64, uint64(pe.IMAGE_FILE_MACHINE_AMD64)},
		{"IMAGE_FILE_MACHINE_ARM64", peMachineARM64, uint64(pe.IMAGE_FILE_MACHINE_ARM64)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if elfMagic != elf.ELFMAG {
		t.Errorf("elfMagic = %q, want %q", elfMagic, elf.ELFMAG)
	}
}
