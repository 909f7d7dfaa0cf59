package target

// The header fields Detect reads, with the values debug/elf, debug/macho
// and debug/pe give them (TestHeaderConstants compares the two). They are
// copied rather than imported: importing those packages links their
// initialisation (debug/dwarf's tables among it) and the String methods of
// their types into every app that embeds the client.

// ELF identification (e_ident) indexes and values.
const (
	elfMagic = "\x7fELF"

	elfIdentClass   = 4  // EI_CLASS
	elfIdentData    = 5  // EI_DATA
	elfIdentVersion = 6  // EI_VERSION
	elfIdentOSABI   = 7  // EI_OSABI
	elfIdentLen     = 16 // EI_NIDENT

	elfClass32 = 1 // ELFCLASS32
	elfClass64 = 2 // ELFCLASS64

	elfData2LSB = 1 // ELFDATA2LSB
	elfData2MSB = 2 // ELFDATA2MSB

	elfVersionCurrent = 1 // EV_CURRENT

	elfOSABINetBSD  = 2  // ELFOSABI_NETBSD
	elfOSABIFreeBSD = 9  // ELFOSABI_FREEBSD
	elfOSABIOpenBSD = 12 // ELFOSABI_OPENBSD
)

// ELF machines (e_machine).
const (
	elfMachine386       = 3   // EM_386
	elfMachinePPC64     = 21  // EM_PPC64
	elfMachineS390      = 22  // EM_S390
	elfMachineARM       = 40  // EM_ARM
	elfMachineX86_64    = 62  // EM_X86_64
	elfMachineAArch64   = 183 // EM_AARCH64
	elfMachineRISCV     = 243 // EM_RISCV
	elfMachineLoongArch = 258 // EM_LOONGARCH
)

// Mach-O magic numbers and CPU types.
const (
	machoMagic32  = 0xfeedface
	machoMagic64  = 0xfeedfacf
	machoCPUAmd64 = 7 | 0x01000000  // CpuAmd64
	machoCPUArm64 = 12 | 0x01000000 // CpuArm64
)

// PE machines (IMAGE_FILE_MACHINE_*).
const (
	peMachineI386  = 0x14c
	peMachineAMD64 = 0x8664
	peMachineARM64 = 0xaa64
)
