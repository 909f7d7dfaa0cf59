package region

// The bounds markers are kept in this package's code only masked (each byte
// XORed with markerMask) and built at run time, so that a program's file
// holds each marker only where a region is: rustpatcher 0.2's tools take
// their region to run from the first V0 marker in the file to the last, and
// refuse a file where that span is not exactly 176 bytes.

// Marker is the 28-byte bounds marker that opens and closes a V0 region:
// "\x17BRUSTPATCHERBEMBEDBBOUNDSB\x17". Code linked into an app should not
// use the constant: it would put a third copy of the marker into the file.
const Marker = "\x17\x42RUSTPATCHER\x42EMBED\x42BOUNDS\x42\x17"

// V1Marker and V1EndMarker open and close a V1 region.
const (
	V1Marker    = "\x17RUSTPATCHER/V1\x17"
	V1EndMarker = "\x17V1/RUSTPATCHER\x17"
)

// markerMask is XORed into every byte of the masked markers.
const markerMask = 0x5a

// maskedV0 is Marker, masked.
var maskedV0 = [28]byte{
	0x17 ^ markerMask, 'B' ^ markerMask, 'R' ^ markerMask, 'U' ^ markerMask, 'S' ^ markerMask, 'T' ^ markerMask,
	'P' ^ markerMask, 'A' ^ markerMask, 'T' ^ markerMask, 'C' ^ markerMask, 'H' ^ markerMask, 'E' ^ markerMask,
	'R' ^ markerMask, 'B' ^ markerMask, 'E' ^ markerMask, 'M' ^ markerMask, 'B' ^ markerMask, 'E' ^ markerMask,
	'D' ^ markerMask, 'B' ^ markerMask, 'B' ^ markerMask, 'O' ^ markerMask, 'U' ^ markerMask, 'N' ^ markerMask,
	'D' ^ markerMask, 'S' ^ markerMask, 'B' ^ markerMask, 0x17 ^ markerMask,
}

// maskedV1Start is V1Marker, masked.
var maskedV1Start = [16]byte{
	0x17 ^ markerMask, 'R' ^ markerMask, 'U' ^ markerMask, 'S' ^ markerMask, 'T' ^ markerMask, 'P' ^ markerMask,
	'A' ^ markerMask, 'T' ^ markerMask, 'C' ^ markerMask, 'H' ^ markerMask, 'E' ^ markerMask, 'R' ^ markerMask,
	'/' ^ markerMask, 'V' ^ markerMask, '1' ^ markerMask, 0x17 ^ markerMask,
}

// maskedV1End is V1EndMarker, masked.
var maskedV1End = [16]byte{
	0x17 ^ markerMask, 'V' ^ markerMask, '1' ^ markerMask, '/' ^ markerMask, 'R' ^ markerMask, 'U' ^ markerMask,
	'S' ^ markerMask, 'T' ^ markerMask, 'P' ^ markerMask, 'A' ^ markerMask, 'T' ^ markerMask, 'C' ^ markerMask,
	'H' ^ markerMask, 'E' ^ markerMask, 'R' ^ markerMask, 0x17 ^ markerMask,
}

// markerV0 returns Marker.
func markerV0() (m [MarkerLen]byte) {
	for i, c := range maskedV0 {
		m[i] = c ^ markerMask
	}
	return m
}

// markersV1 returns V1Marker and V1EndMarker.
func markersV1() (start, end [V1MarkerLen]byte) {
	for i := range start {
		start[i] = maskedV1Start[i] ^ markerMask
		end[i] = maskedV1End[i] ^ markerMask
	}
	return start, end
}
