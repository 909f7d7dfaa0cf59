package region

import "sync/atomic"

// embedded is the region of the running program. Its initialiser holds only
// constants, so the linker places it in file-backed initialised data where
// rpsign can find it and write the signed fields after the build. It is the
// package's only mutable state, and nothing in the program writes it.
var embedded = [Size]byte{
	0x17, 0x42, 'R', 'U', 'S', 'T', 'P', 'A', 'T', 'C', 'H', 'E', 'R', 0x42,
	'E', 'M', 'B', 'E', 'D', 0x42, 'B', 'O', 'U', 'N', 'D', 'S', 0x42, 0x17,
	endOff + 0: 0x17, endOff + 1: 0x42,
	endOff + 2: 'R', endOff + 3: 'U', endOff + 4: 'S', endOff + 5: 'T', endOff + 6: 'P',
	endOff + 7: 'A', endOff + 8: 'T', endOff + 9: 'C', endOff + 10: 'H', endOff + 11: 'E',
	endOff + 12: 'R', endOff + 13: 0x42,
	endOff + 14: 'E', endOff + 15: 'M', endOff + 16: 'B', endOff + 17: 'E', endOff + 18: 'D',
	endOff + 19: 0x42,
	endOff + 20: 'B', endOff + 21: 'O', endOff + 22: 'U', endOff + 23: 'N', endOff + 24: 'D',
	endOff + 25: 'S', endOff + 26: 0x42, endOff + 27: 0x17,
}

// sink keeps a reference to embedded that the compiler cannot see through,
// so the region stays in every program that imports this package.
var sink atomic.Pointer[[Size]byte]

func init() { sink.Store(&embedded) }

// Current returns the running program's own region, as rpsign wrote it into
// the executable file. An unsigned build returns an Info for which Signed
// reports false.
func Current() (Info, error) {
	b := *sink.Load()
	return Parse(b[:])
}
